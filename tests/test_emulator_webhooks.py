"""Webhooks in the emulator, as a client of the Voltage API meets them over HTTP:
client-chosen ids, 202 with the shared secret shown once, 409 on a reused id, eventual
consistency, update/start/stop/delete, key rotation, filters, and the faults of the
secret-returning calls. Every answer is checked against the official contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_emulator_contract import ContractChecker, contract  # noqa: F401
from voltage_iac.emulator import EmbeddedEmulator, Faults, SeedError
from voltage_iac.emulator.seed import validate_seed

ORG = "11111111-1111-4111-8111-111111111111"
STAGING = "22222222-2222-4222-8222-222222222222"
PROD = "33333333-3333-4333-8333-333333333333"
WRITE_KEY = "hooks-write-key"
READ_KEY = "hooks-read-key"
STAGING_KEY = "hooks-staging-key"
SEEDED = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
SEEDED_SECRET = "seeded-shared-secret"
DELAY = 1.0
SEED: dict[str, Any] = {
    "organization_id": ORG,
    "api_keys": [
        {"key": WRITE_KEY, "access": "write"},
        {"key": READ_KEY, "access": "read"},
        {"key": STAGING_KEY, "access": "write", "environment_id": STAGING},
    ],
    "environments": [
        {"id": STAGING, "network": "mutinynet"},
        {"id": PROD, "network": "mainnet"},
    ],
    "webhooks": [
        {
            "id": SEEDED,
            "environment_id": PROD,
            "url": "https://hooks.example.com/prod",
            "name": "seeded",
            "events": [{"send": "failed"}],
            "status": "stopped",
            "shared_secret": SEEDED_SECRET,
        }
    ],
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(tmp_path: Path, clock: FakeClock) -> Iterator[EmbeddedEmulator]:
    faults = Faults(visibility_delay=DELAY, seed=7)
    with EmbeddedEmulator(tmp_path / "hooks.db", seed=SEED, faults=faults, clock=clock) as e:
        yield e


@pytest.fixture
def checker(contract: dict[str, Any]) -> ContractChecker:  # noqa: F811
    return ContractChecker(contract)


def client(emu: EmbeddedEmulator, checker: ContractChecker, key: str = WRITE_KEY) -> httpx.Client:
    hooks = {"response": [lambda r: (r.read(), checker.check(r))]}
    return httpx.Client(
        base_url=emu.base_url, headers={"x-api-key": key}, event_hooks=hooks, timeout=10.0
    )


def hooks_url(env: str = STAGING) -> str:
    return f"/organizations/{ORG}/environments/{env}/webhooks"


def new_hook(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "url": "https://hooks.example.com/voltage",
        "name": "payments",
        "events": [{"send": "succeeded"}, {"receive": "completed"}],
    }
    body.update(overrides)
    return body


def test_create_returns_the_secret_once_and_shows_after_the_delay(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    body = new_hook()
    one = f"{hooks_url()}/{body['id']}"
    with client(emu, checker) as http:
        created = http.post(hooks_url(), json=body)
        assert created.status_code == 202
        answer = created.json()
        assert answer["id"] == body["id"] and answer["shared_secret"]
        secret = answer["shared_secret"]
        assert emu.store.webhook_secret_matches(body["id"], secret)
        assert http.get(one).status_code == 404  # eventually consistent
        assert body["id"] not in [
            h["id"] for h in http.get(f"/organizations/{ORG}/webhooks").json()
        ]
        clock.advance(DELAY)
        read = http.get(one)
        assert read.status_code == 200
        hook = read.json()
        assert hook["status"] == "active" and hook["stopped_at"] is None
        assert hook["events"] == body["events"] and hook["url"] == body["url"]
        assert hook["environment_id"] == STAGING and hook["organization_id"] == ORG
        listed = http.get(f"/organizations/{ORG}/webhooks").json()
        # The secret is never shown again: not in reads, lists or the admin state.
        for text in (read.text, http.get(f"/organizations/{ORG}/webhooks").text):
            assert secret not in text
        assert secret not in httpx.get(emu.admin_url + "/state").text
        assert {h["id"] for h in listed} == {body["id"], SEEDED}  # stopped ones are listed


def test_a_reused_id_is_409_webhook_exists(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    body = new_hook()
    with client(emu, checker) as http:
        assert http.post(hooks_url(), json=body).status_code == 202
        pending = http.post(hooks_url(), json={**body, "name": "other"})
        assert pending.status_code == 409
        assert pending.json()["error"]["type"] == "webhook_exists"
        assert pending.json()["error"]["context"] == {"webhook_id": body["id"]}
        assert "shared_secret" not in pending.text
        clock.advance(DELAY)
        assert http.delete(f"{hooks_url()}/{body['id']}").status_code == 202
        clock.advance(DELAY)
        # Deleted ids are not reusable either, in any environment.
        assert http.post(hooks_url(PROD), json=body).status_code == 409
        assert http.post(hooks_url(), json={**body, "id": SEEDED}).status_code == 409


def test_update_replaces_events_whole_and_keeps_omitted_fields(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    body = new_hook()
    one = f"{hooks_url()}/{body['id']}"
    with client(emu, checker) as http:
        http.post(hooks_url(), json=body)
        clock.advance(DELAY)
        update = http.patch(one, json={"events": [{"receive": "failed"}], "name": None})
        assert update.status_code == 202 and update.content == b""
        assert http.get(one).json()["events"] == body["events"]  # not yet
        clock.advance(DELAY)
        hook = http.get(one).json()
        assert hook["events"] == [{"receive": "failed"}]
        assert hook["name"] == "payments" and hook["url"] == body["url"]
        assert hook["updated_at"] > hook["created_at"]
        http.patch(one, json={"events": [{"test": "created"}], "url": "https://new.example.com/h"})
        clock.advance(DELAY)
        hook = http.get(one).json()
        assert hook["url"] == "https://new.example.com/h" and hook["events"] == [
            {"test": "created"}
        ]
        assert http.patch(one, json={"name": "no events"}).status_code == 422  # events required
        assert http.patch(one, json={"events": []}).status_code == 400
        ghost = http.patch(f"{hooks_url()}/{uuid.uuid4()}", json={"events": body["events"]})
        assert ghost.status_code == 404 and ghost.json()["error"]["type"] == "webhook_not_found"


def test_stop_start_and_delete(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    body = new_hook()
    one = f"{hooks_url()}/{body['id']}"
    with client(emu, checker) as http:
        http.post(hooks_url(), json=body)
        assert http.post(f"{one}/stop").status_code == 404  # not visible yet
        clock.advance(DELAY)
        assert http.post(f"{one}/stop").status_code == 202
        clock.advance(DELAY)
        hook = http.get(one).json()
        assert hook["status"] == "stopped" and hook["stopped_at"] is not None
        assert http.post(f"{one}/start").status_code == 202
        clock.advance(DELAY)
        hook = http.get(one).json()
        assert hook["status"] == "active" and hook["stopped_at"] is None
        assert http.delete(one).status_code == 202
        assert http.delete(one).status_code == 202  # pending: accepted, nothing more
        assert http.get(one).json()["status"] == "active"
        clock.advance(DELAY)
        hook = http.get(one).json()
        assert hook["status"] == "deleted" and hook["deleted_at"] is not None
        for after in (
            http.delete(one),
            http.post(f"{one}/start"),
            http.post(f"{one}/keys"),
            http.patch(one, json={"events": body["events"]}),
        ):
            assert after.status_code == 404
        listing = f"/organizations/{ORG}/webhooks"
        assert body["id"] not in [h["id"] for h in http.get(listing).json()]
        deleted = http.get(listing, params={"statuses": "deleted"}).json()
        assert [h["id"] for h in deleted] == [body["id"]]


def test_key_rotation_replaces_the_secret(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    body = new_hook()
    one = f"{hooks_url()}/{body['id']}"
    with client(emu, checker) as http:
        first = http.post(hooks_url(), json=body).json()["shared_secret"]
        clock.advance(DELAY)
        rotated = http.post(f"{one}/keys")
        assert rotated.status_code == 202
        second = rotated.json()["shared_secret"]
        assert rotated.json()["id"] == body["id"] and second != first
        assert emu.store.webhook_secret_matches(body["id"], second)
        assert not emu.store.webhook_secret_matches(body["id"], first)
        missing = http.post(f"{hooks_url()}/{uuid.uuid4()}/keys")
        assert missing.status_code == 404
        # The seeded webhook lives in production: not found through staging.
        assert http.post(f"{hooks_url()}/{SEEDED}/keys").status_code == 404


def test_list_filters_and_order(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    listing = f"/organizations/{ORG}/webhooks"
    ids = []
    clock.advance(DELAY)  # after the seeded webhook
    with client(emu, checker) as http:
        for _ in range(3):
            body = new_hook()
            http.post(hooks_url(), json=body)
            ids.append(body["id"])
            clock.advance(DELAY)
        http.post(f"{hooks_url()}/{ids[0]}/stop")
        clock.advance(DELAY)
        everything = http.get(listing).json()
        assert [h["id"] for h in everything] == [SEEDED, *ids]
        assert [h["id"] for h in http.get(listing, params={"sort_order": "DESC"}).json()] == [
            *reversed(ids),
            SEEDED,
        ]
        by_update = http.get(listing, params={"sort_key": "updated_at", "sort_order": "DESC"})
        assert by_update.json()[0]["id"] == ids[0]  # its stop is the latest change
        staging = http.get(listing, params={"environment_ids": STAGING}).json()
        assert [h["id"] for h in staging] == ids
        stopped = http.get(listing, params=[("statuses", "stopped")]).json()
        assert [h["id"] for h in stopped] == [SEEDED, ids[0]]
        both = http.get(listing, params=[("statuses", "stopped"), ("statuses", "active")])
        assert len(both.json()) == 4
        assert http.get(listing, params={"statuses": "paused"}).status_code == 400
        assert http.get(listing, params={"sort_key": "name"}).status_code == 400
        assert http.get(listing, params={"environment_ids": "nope"}).status_code == 400
    with client(emu, checker, STAGING_KEY) as scoped:
        assert [h["id"] for h in scoped.get(listing).json()] == ids
        assert scoped.get(listing, params={"environment_ids": PROD}).status_code == 403


def test_request_checks_and_access(emu: EmbeddedEmulator, checker: ContractChecker) -> None:
    with client(emu, checker) as http:
        for bad in (
            {"events": [{"send": "exploded"}]},
            {"events": [{"send": "failed", "receive": "failed"}]},
            {"events": "send"},
            {"id": "hook-1"},
            {"url": 42},
        ):
            answer = http.post(hooks_url(), json=new_hook(**bad))
            assert answer.status_code == 422, bad
            assert answer.json()["error"]["type"] == "invalid_data"
        for bad in ({"events": []}, {"url": "ftp://x.example.com"}, {"url": "not a url"}):
            answer = http.post(hooks_url(), json=new_hook(**bad))
            assert answer.status_code == 400, bad
            assert answer.json()["error"]["type"] == "invalid_webhook"
        unknown_env = http.post(hooks_url(str(uuid.uuid4())), json=new_hook())
        assert unknown_env.status_code == 400
    with client(emu, checker, READ_KEY) as reader:
        assert reader.post(hooks_url(), json=new_hook()).status_code == 403
        assert reader.get(f"/organizations/{ORG}/webhooks").status_code == 200
    with client(emu, checker, STAGING_KEY) as scoped:
        assert scoped.post(hooks_url(PROD), json=new_hook()).status_code == 403
        assert scoped.get(f"{hooks_url(PROD)}/{SEEDED}").status_code == 403
        assert scoped.post(hooks_url(), json=new_hook()).status_code == 202


def test_dropped_create_answer_leaves_the_webhook_but_not_the_secret(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    body = new_hook()
    one = f"{hooks_url()}/{body['id']}"
    emu.faults.add_rule("secret_dropped", method="POST", path_contains="/webhooks")
    with client(emu, checker) as http:
        with pytest.raises(httpx.HTTPError):
            http.post(hooks_url(), json=body)
        clock.advance(DELAY)
        assert http.get(one).json()["status"] == "active"  # it was made
        again = http.post(hooks_url(), json=body)
        assert again.status_code == 409  # a blind re-send cannot get the secret
        # The way out: rotate, which shows a secret that is in force.
        secret = http.post(f"{one}/keys").json()["shared_secret"]
        assert emu.store.webhook_secret_matches(body["id"], secret)


def test_rotation_faults(emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock) -> None:
    body = new_hook()
    one = f"{hooks_url()}/{body['id']}"
    with client(emu, checker) as http:
        first = http.post(hooks_url(), json=body).json()["shared_secret"]
        clock.advance(DELAY)
        emu.faults.add_rule("rotation_fails", path_contains="/keys")
        failed = http.post(f"{one}/keys")
        assert failed.status_code == 500 and failed.json()["error"]["type"] == "internal_error"
        assert emu.store.webhook_secret_matches(body["id"], first)  # nothing changed
        # A rotation done but answered 500: the old secret is gone, the new one unseen.
        emu.faults.add_rule("fail_after_commit", path_contains="/keys")
        assert http.post(f"{one}/keys").status_code == 500
        assert not emu.store.webhook_secret_matches(body["id"], first)
        # The rate setting hits only the secret-returning calls, never a plain write.
        emu.faults.update(secret_dropped=1.0, rotation_fails=1.0)
        assert http.post(f"{one}/stop").status_code == 202
        assert http.post(f"{one}/keys").status_code == 500
        with pytest.raises(httpx.HTTPError):
            http.post(hooks_url(), json=new_hook())


def test_seeded_webhook(emu: EmbeddedEmulator, checker: ContractChecker) -> None:
    with client(emu, checker) as http:
        hook = http.get(f"{hooks_url(PROD)}/{SEEDED}").json()
    assert hook["status"] == "stopped" and hook["events"] == [{"send": "failed"}]
    assert emu.store.webhook_secret_matches(SEEDED, SEEDED_SECRET)
    with pytest.raises(SeedError) as caught:
        validate_seed(
            {
                **SEED,
                "webhooks": [
                    {
                        "id": SEEDED,
                        "environment_id": STAGING,
                        "url": "",
                        "name": "x",
                        "events": [{"send": "maybe"}],
                        "status": "paused",
                    },
                ],
            }
        )
    text = str(caught.value)
    assert "webhooks[0].url" in text and "webhooks[0].events" in text
    assert "webhooks[0].status" in text


def test_every_webhook_operation_and_status_was_checked(
    emu: EmbeddedEmulator, checker: ContractChecker, clock: FakeClock
) -> None:
    """One pass over every implemented webhook operation, asserting the checker saw each."""
    body = new_hook()
    one = f"{hooks_url()}/{body['id']}"
    with client(emu, checker) as http, client(emu, checker, READ_KEY) as reader:
        http.post(hooks_url(), json=body)
        http.post(hooks_url(), json=body)  # 409
        http.post(hooks_url(), json=new_hook(events=[]))  # 400
        http.post(hooks_url(), json=new_hook(events=[1]))  # 422
        reader.post(hooks_url(), json=new_hook())  # 403
        http.get(one)  # 404
        clock.advance(DELAY)
        http.get(one)
        http.get(f"/organizations/{ORG}/webhooks")
        http.patch(one, json={"events": [{"send": "failed"}]})
        http.post(f"{one}/stop")
        http.post(f"{one}/start")
        http.post(f"{one}/keys")
        http.delete(one)
    hook = "/organizations/{organization_id}/environments/{environment_id}/webhooks"
    expected = {
        ("POST", hook, 202),
        ("POST", hook, 409),
        ("POST", hook, 400),
        ("POST", hook, 422),
        ("POST", hook, 403),
        ("GET", hook + "/{webhook_id}", 404),
        ("GET", hook + "/{webhook_id}", 200),
        ("GET", "/organizations/{organization_id}/webhooks", 200),
        ("PATCH", hook + "/{webhook_id}", 202),
        ("POST", hook + "/{webhook_id}/stop", 202),
        ("POST", hook + "/{webhook_id}/start", 202),
        ("POST", hook + "/{webhook_id}/keys", 202),
        ("DELETE", hook + "/{webhook_id}", 202),
    }
    assert not expected - checker.seen, sorted(expected - checker.seen)
