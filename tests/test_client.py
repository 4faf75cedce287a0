"""Tests of the HTTP client (voltage_iac.client) against respx-mocked answers.

They pin what users rely on: the right typed error and exit code for each failure, reads
retried with bounded jittered backoff, 429 waits honoured, writes never re-sent once they
may have reached the API, and the API key never shown anywhere but the request header.
No test sleeps: the client gets a recording sleep function and a fixed random source.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import respx

from voltage_iac import http as http_module
from voltage_iac.client import VoltageClient
from voltage_iac.errors import (
    EXIT_AUTH,
    ApiError,
    AuthError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    WriteOutcomeUnknown,
)
from voltage_iac.secret import Secret

BASE = "https://api.voltage.test/v1"
ORG = "0b9c1e7e-55a2-4f2b-9a53-0f6a3f1f0a01"
ENV = "123e4567-e89b-12d3-a456-426614174000"
WALLET = "7a68a525-9d11-4c1e-a3dd-1c2bf1378ba2"
LINE = "7df75323-84f1-4699-97da-776380a0aa81"
KEY = "sk-live-DISTINCTIVE-123"

WALLETS_PATH = f"/organizations/{ORG}/wallets"
WALLET_PATH = f"/organizations/{ORG}/wallets/{WALLET}"
POLICIES_PATH = f"{WALLET_PATH}/policies"

NEW_WALLET = {
    "id": WALLET,
    "environment_id": ENV,
    "line_of_credit_id": LINE,
    "name": "payouts-eu",
    "network": "mutinynet",
    "limit": 100_000_000,
    "metadata": {"team": "payouts"},
}


def envelope(error_type: str, detail: str = "Human-readable error detail", **extra: Any) -> dict:
    return {"error": {"type": error_type, "detail": detail, **extra}}


class Clock:
    """Records the waits the client asks for instead of sleeping."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def make_client(clock: Clock) -> Iterator[Callable[..., VoltageClient]]:
    clients: list[VoltageClient] = []

    def make(**kwargs: Any) -> VoltageClient:
        kwargs.setdefault("sleep", clock)
        kwargs.setdefault("random", lambda: 1.0)
        client = VoltageClient(kwargs.pop("base_url", BASE), Secret(KEY), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., VoltageClient]) -> VoltageClient:
    return make_client()


# -- what goes on the wire ----------------------------------------------------------------


@pytest.mark.parametrize("base_url", [BASE, BASE + "/"])
def test_list_wallets_sends_key_headers_and_query(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient], base_url: str
) -> None:
    route = api.get(WALLETS_PATH).respond(200, json=[{"id": WALLET, "name": "payouts-eu"}])
    client = make_client(base_url=base_url)

    wallets = client.list_wallets(ORG, ENV, inactive=True)

    assert wallets == [{"id": WALLET, "name": "payouts-eu"}]
    request = route.calls.last.request
    assert request.url.path == f"/v1{WALLETS_PATH}"
    assert request.url.params.multi_items() == [("environment_id", ENV), ("inactive", "true")]
    assert request.headers["x-api-key"] == KEY
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("voltage-iac/")


def test_inactive_false_is_sent_explicitly(api: respx.MockRouter, client: VoltageClient) -> None:
    route = api.get(WALLETS_PATH).respond(200, json=[])
    assert client.list_wallets(ORG, ENV, inactive=False) == []
    assert route.calls.last.request.url.params["inactive"] == "false"


def test_create_wallet_posts_json_and_accepts_202(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    route = api.post(WALLETS_PATH).respond(202)
    assert client.create_wallet(ORG, NEW_WALLET) is None
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == NEW_WALLET


def test_update_wallet_sends_only_the_name(api: respx.MockRouter, client: VoltageClient) -> None:
    route = api.patch(WALLET_PATH).respond(202)
    client.update_wallet(ORG, WALLET, "payouts-europe")
    assert json.loads(route.calls.last.request.content) == {"name": "payouts-europe"}


def test_delete_wallet_sends_delete_without_body(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    route = api.delete(WALLET_PATH).respond(202)
    client.delete_wallet(ORG, WALLET)
    assert route.call_count == 1
    assert route.calls.last.request.content == b""
    assert "content-type" not in route.calls.last.request.headers


def test_update_policies_sends_nulls_as_nulls(api: respx.MockRouter, client: VoltageClient) -> None:
    route = api.patch(POLICIES_PATH).respond(202)
    body = {"max_payment_size_sats": 50_000, "processing_fee": None, "template_id": None}
    client.update_policies(ORG, WALLET, body)
    assert json.loads(route.calls.last.request.content) == body


def test_get_policies_returns_the_record(api: respx.MockRouter, client: VoltageClient) -> None:
    record = {"id": WALLET, "policies": [], "updated_at": "2026-10-01T00:00:00Z"}
    api.get(POLICIES_PATH).respond(200, json=record)
    assert client.get_policies(ORG, WALLET) == record


def test_line_of_credit_summaries_repeat_environment_ids(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    other = "223e4567-e89b-12d3-a456-426614174000"
    route = api.get(f"/organizations/{ORG}/lines_of_credit/summaries").respond(200, json=[])
    client.line_of_credit_summaries(ORG, environment_ids=[ENV, other])
    assert route.calls.last.request.url.params.multi_items() == [
        ("environment_ids", ENV),
        ("environment_ids", other),
        ("include_disabled", "true"),
    ]


def test_line_of_credit_summary_and_missing_one(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    summary = {"id": LINE, "limit": 10, "allocated_limit": 5}
    api.get(f"/organizations/{ORG}/lines_of_credit/{LINE}/summary").respond(200, json=summary)
    missing = "00000000-0000-0000-0000-000000000000"
    api.get(f"/organizations/{ORG}/lines_of_credit/{missing}/summary").respond(
        404, json=envelope("line_of_credit_not_found_in_organization")
    )
    assert client.line_of_credit_summary(ORG, LINE) == summary
    assert client.line_of_credit_summary(ORG, missing) is None


def test_ids_cannot_add_path_segments(api: respx.MockRouter, client: VoltageClient) -> None:
    route = api.get(url__regex=r".*").respond(200, json={})
    client.get_wallet(ORG, "../../other")
    assert route.calls.last.request.url.raw_path.decode().endswith("/wallets/..%2F..%2Fother")


def test_timeout_is_configured_on_every_request(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient]
) -> None:
    route = api.get(WALLET_PATH).respond(200, json={})
    make_client(timeout=12.5).get_wallet(ORG, WALLET)
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout == {"connect": 12.5, "read": 12.5, "write": 12.5, "pool": 12.5}


def test_repr_shows_the_base_url_only(client: VoltageClient) -> None:
    assert repr(client) == f"VoltageClient(base_url='{BASE}')"


def test_context_manager_closes_the_client(api: respx.MockRouter) -> None:
    api.get(WALLET_PATH).respond(200, json={})
    with VoltageClient(BASE, Secret(KEY)) as client:
        client.get_wallet(ORG, WALLET)
    with pytest.raises(RuntimeError):
        client.get_wallet(ORG, WALLET)


def test_rejects_a_raw_string_key() -> None:
    with pytest.raises(TypeError):
        VoltageClient(BASE, KEY)  # type: ignore[arg-type]


# -- status mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "hint_word"),
    [(401, "wrong_credentials", "VOLTAGE_API_KEY"), (403, "access_rights", "access")],
)
def test_auth_failures_exit_4_with_a_hint(
    api: respx.MockRouter, client: VoltageClient, status: int, error_type: str, hint_word: str
) -> None:
    api.get(WALLETS_PATH).respond(status, json=envelope(error_type))
    with pytest.raises(AuthError) as caught:
        client.list_wallets(ORG, ENV, inactive=False)
    err = caught.value
    assert err.exit_code == EXIT_AUTH
    assert err.status == status
    assert err.error_type == error_type
    assert err.hint is not None and hint_word in err.hint
    assert f"list wallets of environment {ENV}" in err.message


def test_auth_failure_is_not_retried(api: respx.MockRouter, client: VoltageClient) -> None:
    route = api.get(WALLET_PATH).respond(401, json=envelope("wrong_credentials"))
    with pytest.raises(AuthError):
        client.get_wallet(ORG, WALLET)
    assert route.call_count == 1


def test_missing_wallet_reads_as_none(api: respx.MockRouter, client: VoltageClient) -> None:
    api.get(WALLET_PATH).respond(
        404, json=envelope("instance_not_found", context={"wallet_id": WALLET})
    )
    assert client.get_wallet(ORG, WALLET) is None


def test_missing_policies_read_as_none(api: respx.MockRouter, client: VoltageClient) -> None:
    api.get(POLICIES_PATH).respond(404, json=envelope("wallet_policies_not_found"))
    assert client.get_policies(ORG, WALLET) is None


def test_404_without_the_api_envelope_is_not_taken_as_absence(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    # A 404 page from a proxy or a wrong base URL says nothing about the wallet.
    api.get(WALLET_PATH).respond(404, text="<html>Not Found</html>")
    with pytest.raises(NotFoundError) as caught:
        client.get_wallet(ORG, WALLET)
    assert caught.value.status == 404
    assert "Not Found" in caught.value.message


def test_404_on_a_write_raises_not_found(api: respx.MockRouter, client: VoltageClient) -> None:
    api.patch(WALLET_PATH).respond(404, json=envelope("instance_not_found"))
    with pytest.raises(NotFoundError) as caught:
        client.update_wallet(ORG, WALLET, "new name")
    assert caught.value.message.startswith(f"update wallet {WALLET}: not found")


def test_business_refusal_names_operation_object_and_type(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    api.post(WALLETS_PATH).respond(
        400,
        json=envelope("line_of_credit_cannot_allocate_wallet_limit"),
        headers={"x-request-id": "req-42"},
    )
    with pytest.raises(InvalidRequestError) as caught:
        client.create_wallet(ORG, NEW_WALLET)
    err = caught.value
    assert err.message.startswith(
        f"create wallet {WALLET}: the line of credit cannot allocate the wallet's limit "
        "(line_of_credit_cannot_allocate_wallet_limit, HTTP 400)"
    )
    assert (err.status, err.error_type, err.request_id) == (
        400,
        "line_of_credit_cannot_allocate_wallet_limit",
        "req-42",
    )
    assert "req-42" in err.message


def test_invalid_request_keeps_fields_and_code(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    api.post(WALLETS_PATH).respond(
        400,
        json=envelope(
            "invalid_request", code="too_short", context={"fields": ["name", "metadata.team"]}
        ),
    )
    with pytest.raises(InvalidRequestError) as caught:
        client.create_wallet(ORG, NEW_WALLET)
    err = caught.value
    assert err.error_type == "invalid_request"
    assert err.code == "too_short"
    assert "fields: name, metadata.team" in err.message
    assert "code too_short" in err.message


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(413, "payload_too_large"), (415, "missing_content_type"), (422, "invalid_data")],
)
def test_shape_refusals_are_invalid_requests(
    api: respx.MockRouter, client: VoltageClient, status: int, error_type: str
) -> None:
    route = api.patch(POLICIES_PATH).respond(status, json=envelope(error_type))
    with pytest.raises(InvalidRequestError) as caught:
        client.update_policies(ORG, WALLET, {"ofac_compliant": True})
    assert (caught.value.status, caught.value.error_type) == (status, error_type)
    assert route.call_count == 1


def test_unknown_error_type_is_tolerated(api: respx.MockRouter, client: VoltageClient) -> None:
    api.delete(WALLET_PATH).respond(
        400, json=envelope("brand_new_rule", detail="wallet is frozen by compliance")
    )
    with pytest.raises(InvalidRequestError) as caught:
        client.delete_wallet(ORG, WALLET)
    err = caught.value
    assert err.error_type == "brand_new_rule"
    assert "wallet is frozen by compliance" in err.message
    assert "brand_new_rule" in err.message


def test_server_error_on_a_read_after_the_budget(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient], clock: Clock
) -> None:
    route = api.get(WALLET_PATH).respond(500, json=envelope("internal_error"))
    with pytest.raises(ServerError) as caught:
        make_client(max_attempts=3).get_wallet(ORG, WALLET)
    assert route.call_count == 3
    assert len(clock.sleeps) == 2
    assert caught.value.status == 500
    assert caught.value.error_type == "internal_error"
    assert "3 attempts" in caught.value.message


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, "<html><body>Bad Gateway</body></html>", ServerError),
        (400, "plain words, not JSON", InvalidRequestError),
        (403, "", AuthError),
        (400, json.dumps({"message": "no envelope"}), InvalidRequestError),
        (404, json.dumps(["not", "an", "envelope"]), NotFoundError),
    ],
)
def test_error_bodies_without_envelope_still_map_by_status(
    api: respx.MockRouter,
    make_client: Callable[..., VoltageClient],
    status: int,
    body: str,
    expected: type[ApiError],
) -> None:
    api.get(WALLETS_PATH).respond(status, text=body)
    with pytest.raises(expected) as caught:
        make_client(max_attempts=1).list_wallets(ORG, ENV, inactive=False)
    err = caught.value
    assert err.status == status
    assert err.error_type is None
    assert f"HTTP {status}" in err.message
    if body:
        assert body[:20] in err.message
    else:
        assert "empty body" in err.message


def test_long_error_body_is_cut_short(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient]
) -> None:
    api.get(WALLETS_PATH).respond(500, text="x" * 100_000)
    with pytest.raises(ServerError) as caught:
        make_client(max_attempts=1).list_wallets(ORG, ENV, inactive=False)
    assert len(caught.value.message) < 500


# -- malformed success answers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "path", "kwargs"),
    [
        (lambda c: c.list_wallets(ORG, ENV, inactive=False), WALLETS_PATH, {"text": "<html>"}),
        (lambda c: c.list_wallets(ORG, ENV, inactive=False), WALLETS_PATH, {"json": {"a": 1}}),
        (lambda c: c.list_wallets(ORG, ENV, inactive=False), WALLETS_PATH, {"json": [1, 2]}),
        (lambda c: c.get_wallet(ORG, WALLET), WALLET_PATH, {"json": [{"id": WALLET}]}),
        (lambda c: c.get_wallet(ORG, WALLET), WALLET_PATH, {"content": b""}),
        (lambda c: c.get_policies(ORG, WALLET), POLICIES_PATH, {"json": None}),
        (lambda c: c.get_policies(ORG, WALLET), POLICIES_PATH, {"content": b"\xff\xfe{"}),
    ],
)
def test_malformed_success_answers_are_refused_without_retry(
    api: respx.MockRouter,
    client: VoltageClient,
    call: Callable[[VoltageClient], Any],
    path: str,
    kwargs: dict[str, Any],
) -> None:
    route = api.get(path).respond(200, **kwargs)
    with pytest.raises(MalformedResponseError):
        call(client)
    assert route.call_count == 1


def test_oversized_answer_is_refused(api: respx.MockRouter, client: VoltageClient) -> None:
    client.max_listing_bytes = 1_000
    api.get(WALLETS_PATH).respond(200, json=[{"id": str(i)} for i in range(200)])
    with pytest.raises(MalformedResponseError) as caught:
        client.list_wallets(ORG, ENV, inactive=False)
    assert "larger than 1000 bytes" in caught.value.message


def test_a_listing_may_be_larger_than_other_answers(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    """An environment's listing is one unpaginated answer: it has a cap of its own."""
    client.max_response_bytes = 1_000
    client.max_listing_bytes = 100_000
    listing = [{"id": str(i)} for i in range(200)]
    api.get(WALLETS_PATH).respond(200, json=listing)
    assert client.list_wallets(ORG, ENV, inactive=False) == listing
    api.get(f"{WALLETS_PATH}/w1").respond(200, json={"id": "w1", "pad": "x" * 2_000})
    with pytest.raises(MalformedResponseError) as caught:
        client.get_wallet(ORG, "w1")
    assert "larger than 1000 bytes" in caught.value.message


# -- read retries -----------------------------------------------------------------------


def test_read_recovers_from_transient_failures(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient], clock: Clock
) -> None:
    route = api.get(WALLET_PATH).mock(
        side_effect=[
            httpx.ReadTimeout("timed out"),
            httpx.Response(503, json=envelope("internal_error")),
            httpx.ConnectError("refused"),
            httpx.RemoteProtocolError("server disconnected"),
            httpx.Response(200, json={"id": WALLET}),
        ]
    )
    assert make_client(max_attempts=5).get_wallet(ORG, WALLET) == {"id": WALLET}
    assert route.call_count == 5
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("random_value", "expected"),
    [
        (0.0, [0.125, 0.25, 0.5, 1.0, 1.0, 1.0]),
        (1.0, [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]),
        (0.5, [0.1875, 0.375, 0.75, 1.5, 1.5, 1.5]),
    ],
)
def test_backoff_doubles_to_the_cap_with_jitter_between_half_and_all(
    api: respx.MockRouter,
    make_client: Callable[..., VoltageClient],
    clock: Clock,
    random_value: float,
    expected: list[float],
) -> None:
    api.get(WALLET_PATH).respond(503)
    client = make_client(max_attempts=7, random=lambda: random_value)
    with pytest.raises(ServerError):
        client.get_wallet(ORG, WALLET)
    assert clock.sleeps == pytest.approx(expected)


@pytest.mark.parametrize(
    ("effect", "expected"),
    [
        (httpx.ReadTimeout("timed out"), TransportError),
        (httpx.ConnectError("refused"), TransportError),
        (httpx.ReadError("reset"), TransportError),
        (httpx.Response(503), ServerError),
        (httpx.Response(429), RateLimitedError),
    ],
)
def test_read_retries_are_bounded(
    api: respx.MockRouter,
    make_client: Callable[..., VoltageClient],
    clock: Clock,
    effect: Any,
    expected: type[ApiError],
) -> None:
    route = api.get(WALLETS_PATH).mock(side_effect=[effect] * 10)
    with pytest.raises(expected) as caught:
        make_client(max_attempts=4).list_wallets(ORG, ENV, inactive=True)
    assert route.call_count == 4
    assert len(clock.sleeps) == 3
    assert "4 attempts" in caught.value.message


def test_max_attempts_one_means_no_retry(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient], clock: Clock
) -> None:
    route = api.get(WALLET_PATH).mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(TransportError):
        make_client(max_attempts=1).get_wallet(ORG, WALLET)
    assert route.call_count == 1
    assert clock.sleeps == []


# -- 429 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"x-retry-after-ms": "1500", "retry-after": "10"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "120"}, 30.0),  # capped at max_retry_after
        ({"x-retry-after-ms": "90000"}, 30.0),
        (
            {
                "retry-after": "Wed, 21 Oct 2026 07:28:07 GMT",
                "date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            7.0,
        ),
        ({"retry-after": "soon"}, 0.25),  # unusable: falls back to the backoff step
        ({}, 0.25),
    ],
)
def test_429_waits_as_asked(
    api: respx.MockRouter,
    client: VoltageClient,
    clock: Clock,
    headers: dict[str, str],
    expected_wait: float,
) -> None:
    route = api.get(WALLET_PATH).mock(
        side_effect=[httpx.Response(429, headers=headers), httpx.Response(200, json={})]
    )
    assert client.get_wallet(ORG, WALLET) == {}
    assert route.call_count == 2
    assert clock.sleeps == [pytest.approx(expected_wait)]


def test_write_is_resent_after_429(
    api: respx.MockRouter, client: VoltageClient, clock: Clock
) -> None:
    route = api.post(WALLETS_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"x-retry-after-ms": "200"}),
            httpx.Response(202),
        ]
    )
    client.create_wallet(ORG, NEW_WALLET)
    assert route.call_count == 2
    assert clock.sleeps == [pytest.approx(0.2)]
    assert json.loads(route.calls[1].request.content) == NEW_WALLET


def test_write_429_beyond_the_budget_is_rate_limited(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient]
) -> None:
    route = api.patch(WALLET_PATH).respond(429, headers={"retry-after": "1"})
    with pytest.raises(RateLimitedError) as caught:
        make_client(max_attempts=3).update_wallet(ORG, WALLET, "new name")
    assert route.call_count == 3
    assert caught.value.status == 429


# -- writes are never re-sent blindly ---------------------------------------------------

WRITES: list[tuple[str, str, Callable[[VoltageClient], None]]] = [
    ("POST", WALLETS_PATH, lambda c: c.create_wallet(ORG, NEW_WALLET)),
    ("PATCH", WALLET_PATH, lambda c: c.update_wallet(ORG, WALLET, "new name")),
    ("DELETE", WALLET_PATH, lambda c: c.delete_wallet(ORG, WALLET)),
    ("PATCH", POLICIES_PATH, lambda c: c.update_policies(ORG, WALLET, {"ofac_compliant": True})),
]

AMBIGUOUS = [
    httpx.Response(500, json=envelope("internal_error")),
    httpx.Response(502, text="bad gateway"),
    httpx.Response(503),
    httpx.ReadTimeout("timed out"),
    httpx.WriteTimeout("timed out"),
    httpx.ReadError("connection reset"),
    httpx.RemoteProtocolError("server disconnected without a response"),
]


@pytest.mark.parametrize(("method", "path", "write"), WRITES)
@pytest.mark.parametrize(
    "effect", AMBIGUOUS, ids=lambda e: getattr(e, "status_code", None) or type(e).__name__
)
def test_ambiguous_write_failure_is_never_resent(
    api: respx.MockRouter,
    client: VoltageClient,
    clock: Clock,
    method: str,
    path: str,
    write: Callable[[VoltageClient], None],
    effect: Any,
) -> None:
    route = api.route(method=method, path=path).mock(side_effect=[effect, httpx.Response(202)])
    with pytest.raises(WriteOutcomeUnknown) as caught:
        write(client)
    assert route.call_count == 1
    assert clock.sleeps == []
    message = caught.value.message
    assert "outcome is unknown" in message
    assert "reads the live state before trying again" in message


def test_write_5xx_keeps_status_and_type(api: respx.MockRouter, client: VoltageClient) -> None:
    api.post(WALLETS_PATH).respond(
        500, json=envelope("internal_error"), headers={"x-request-id": "req-7"}
    )
    with pytest.raises(WriteOutcomeUnknown) as caught:
        client.create_wallet(ORG, NEW_WALLET)
    err = caught.value
    assert (err.status, err.error_type, err.request_id) == (500, "internal_error", "req-7")
    assert err.message.startswith(f"create wallet {WALLET}: the outcome is unknown")


def test_write_that_could_not_connect_is_retried(
    api: respx.MockRouter, client: VoltageClient, clock: Clock
) -> None:
    route = api.post(WALLETS_PATH).mock(
        side_effect=[
            httpx.ConnectError("connection refused"),
            httpx.ConnectTimeout("connect timed out"),
            httpx.Response(202),
        ]
    )
    client.create_wallet(ORG, NEW_WALLET)
    assert route.call_count == 3
    assert clock.sleeps == [0.25, 0.5]
    # Only the attempt that reached the API counts as sent.
    assert client.request_count == 1


def test_write_that_never_connects_is_a_transport_error_not_unknown(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient]
) -> None:
    route = api.delete(WALLET_PATH).mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(TransportError) as caught:
        make_client(max_attempts=3).delete_wallet(ORG, WALLET)
    assert not isinstance(caught.value, WriteOutcomeUnknown)
    assert route.call_count == 3
    assert "could not connect" in caught.value.message
    assert "api.voltage.test" in caught.value.message


def test_write_refusal_is_not_retried(api: respx.MockRouter, client: VoltageClient) -> None:
    route = api.delete(WALLET_PATH).respond(400, json=envelope("wallet_not_empty"))
    with pytest.raises(InvalidRequestError) as caught:
        client.delete_wallet(ORG, WALLET)
    assert route.call_count == 1
    assert "the wallet still holds funds" in caught.value.message


# -- request count and logging ----------------------------------------------------------


def test_request_count_includes_retries(api: respx.MockRouter, client: VoltageClient) -> None:
    api.get(WALLET_PATH).mock(side_effect=[httpx.Response(503), httpx.Response(200, json={})])
    api.get(WALLETS_PATH).respond(200, json=[])
    client.get_wallet(ORG, WALLET)
    client.list_wallets(ORG, ENV, inactive=False)
    assert client.request_count == 3


def test_request_count_is_exact_across_threads(
    api: respx.MockRouter, client: VoltageClient
) -> None:
    api.get(WALLET_PATH).respond(200, json={"id": WALLET})
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: client.get_wallet(ORG, WALLET), range(64)))
    assert all(result == {"id": WALLET} for result in results)
    assert client.request_count == 64


def test_one_debug_line_per_request(
    api: respx.MockRouter, client: VoltageClient, caplog: pytest.LogCaptureFixture
) -> None:
    api.get(WALLET_PATH).mock(side_effect=[httpx.Response(503), httpx.Response(200, json={})])
    with caplog.at_level(logging.DEBUG, logger="voltage_iac.client"):
        client.get_wallet(ORG, WALLET)
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "voltage_iac.client" and " -> " in r.getMessage()
    ]
    assert len(lines) == 2
    assert lines[0].startswith(f"GET /v1{WALLET_PATH} -> 503 in ")
    assert lines[0].endswith("(attempt 1)")
    assert lines[1].startswith(f"GET /v1{WALLET_PATH} -> 200 in ")
    assert lines[1].endswith("(attempt 2)")


# -- the API key never leaks ------------------------------------------------------------

ECHO = envelope("wrong_credentials", detail=f"key {KEY} is revoked", context={"key": KEY})

LEAK_CASES: list[tuple[str, Any, Callable[[VoltageClient], Any]]] = [
    (
        "GET",
        httpx.Response(401, json=ECHO, headers={"x-request-id": KEY}),
        lambda c: c.get_wallet(ORG, WALLET),
    ),
    ("GET", httpx.Response(403, text=f"denied for {KEY}"), lambda c: c.get_wallet(ORG, WALLET)),
    ("GET", httpx.Response(404, text=f"no route {KEY}"), lambda c: c.get_wallet(ORG, WALLET)),
    ("GET", httpx.Response(400, json=ECHO), lambda c: c.get_wallet(ORG, WALLET)),
    ("GET", httpx.Response(500, text=KEY), lambda c: c.get_wallet(ORG, WALLET)),
    ("GET", httpx.Response(429, text=KEY), lambda c: c.get_wallet(ORG, WALLET)),
    ("GET", httpx.Response(200, text=f"not json {KEY}"), lambda c: c.get_wallet(ORG, WALLET)),
    ("GET", httpx.ReadTimeout(f"timed out {KEY}"), lambda c: c.get_wallet(ORG, WALLET)),
    ("GET", httpx.ConnectError(f"refused {KEY}"), lambda c: c.get_wallet(ORG, WALLET)),
    ("PATCH", httpx.Response(500, json=ECHO), lambda c: c.update_wallet(ORG, WALLET, "n3w")),
    ("PATCH", httpx.ReadTimeout(KEY), lambda c: c.update_wallet(ORG, WALLET, "n3w")),
    ("PATCH", httpx.RemoteProtocolError(KEY), lambda c: c.update_wallet(ORG, WALLET, "n3w")),
    ("PATCH", httpx.Response(422, json=ECHO), lambda c: c.update_wallet(ORG, WALLET, "n3w")),
]


@pytest.mark.parametrize(("method", "effect", "call"), LEAK_CASES)
def test_api_key_appears_only_in_the_header(
    api: respx.MockRouter,
    make_client: Callable[..., VoltageClient],
    caplog: pytest.LogCaptureFixture,
    method: str,
    effect: Any,
    call: Callable[[VoltageClient], Any],
) -> None:
    route = api.route(method=method, path=WALLET_PATH).mock(side_effect=[effect] * 3)
    client = make_client(max_attempts=3)
    with caplog.at_level(logging.DEBUG), pytest.raises(ApiError) as caught:
        call(client)
    err = caught.value
    shown = [
        str(err),
        repr(err),
        err.message,
        str(err.hint),
        str(err.request_id),
        *map(str, err.args),
    ]
    shown += [repr(client), str(client)]
    for record in caplog.records:
        shown += [record.getMessage(), str(record.args), str(record.exc_info)]
    assert all(KEY not in text for text in shown)
    assert err.__cause__ is None
    assert route.calls.last.request.headers["x-api-key"] == KEY


def test_key_in_an_id_is_masked_in_messages_and_logs(
    api: respx.MockRouter, client: VoltageClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A key pasted into the wrong field of a config must not be echoed back.
    api.get(url__regex=r".*").respond(400, json=envelope("invalid_parameter"))
    with caplog.at_level(logging.DEBUG), pytest.raises(InvalidRequestError) as caught:
        client.get_wallet(ORG, KEY)
    assert KEY not in str(caught.value)
    ours = [r for r in caplog.records if r.name.startswith("voltage_iac")]
    assert ours
    assert all(KEY not in record.getMessage() for record in ours)


def test_short_test_key_does_not_garble_messages_but_is_masked_in_server_text(
    api: respx.MockRouter,
) -> None:
    api.get(WALLET_PATH).respond(401, json=envelope("wrong_credentials", detail="bad key dev"))
    with VoltageClient(BASE, Secret("dev")) as client, pytest.raises(AuthError) as caught:
        client.get_wallet(ORG, WALLET)
    assert "the API key was not accepted" in caught.value.message
    assert "VOLTAGE_API_KEY" in str(caught.value.hint)
    assert "bad key ***" in caught.value.message


# -- deadlines, shared back-pressure, the rate cap ----------------------------------------


def test_deadline_and_rate_cap_are_checked(make_client: Callable[..., VoltageClient]) -> None:
    client = make_client(deadline=12.0, max_requests_per_second=3.0)
    assert (client.deadline, client.max_requests_per_second) == (12.0, 3.0)
    for bad in ({"deadline": 0}, {"deadline": -1.0}, {"max_requests_per_second": 0}):
        with pytest.raises(ValueError):
            make_client(**bad)


def test_a_429_makes_other_threads_wait_out_the_same_pause(
    api: respx.MockRouter, client: VoltageClient, clock: Clock
) -> None:
    api.get(WALLET_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"x-retry-after-ms": "5000"}),
            httpx.Response(200, json={}),
            httpx.Response(200, json={}),
            httpx.Response(200, json={}),
        ]
    )
    assert client.get_wallet(ORG, WALLET) == {}
    assert clock.sleeps == [pytest.approx(5.0)]
    # The same thread has waited its pause out: its next request goes at once.
    client.get_wallet(ORG, WALLET)
    assert len(clock.sleeps) == 1
    # Another thread (the recording clock does not move time) still owes the rest of it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(client.get_wallet, ORG, WALLET).result()
    assert len(clock.sleeps) == 2
    assert 4.0 < clock.sleeps[1] <= 5.0


def test_a_429_that_outlived_the_budget_still_pauses_the_others(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient], clock: Clock
) -> None:
    api.get(WALLET_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after": "3"}),
            httpx.Response(200, json={}),
        ]
    )
    client = make_client(max_attempts=1)
    with pytest.raises(RateLimitedError):
        client.get_wallet(ORG, WALLET)
    assert clock.sleeps == []
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(client.get_wallet, ORG, WALLET).result()
    assert len(clock.sleeps) == 1 and 2.0 < clock.sleeps[0] <= 3.0


def test_a_pause_longer_than_the_deadline_fails_fast_as_rate_limited(
    api: respx.MockRouter, make_client: Callable[..., VoltageClient]
) -> None:
    route = api.get(WALLET_PATH).mock(
        side_effect=[httpx.Response(429, headers={"retry-after": "20"}), httpx.Response(200)]
    )
    client = make_client(deadline=5.0)
    with pytest.raises(RateLimitedError) as caught:
        client.get_wallet(ORG, WALLET)
    assert route.call_count == 1  # not retried: the wait would outlast the deadline
    assert caught.value.exit_code == 1


def test_the_rate_cap_asks_for_evenly_spaced_slots(
    api: respx.MockRouter,
    make_client: Callable[..., VoltageClient],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class StoppedTime:
        """The time module with its monotonic clock stopped: however slowly the machine
        runs the requests, the slots are counted from one instant."""

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def monotonic() -> float:
            return 1_000.0

    monkeypatch.setattr(http_module, "time", StoppedTime())
    api.get(WALLET_PATH).respond(200, json={})
    client = make_client(max_requests_per_second=10.0)
    for _ in range(4):
        client.get_wallet(ORG, WALLET)
    # Neither clock moves, so each request waits one more slot.
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.3], abs=1e-9)
