"""Webhooks on the Voltage API: contract JSON -> model, and writes safe to repeat.

Used by `providers.voltage.VoltageProvider` (which owns the client and the waiting
rules) for the `webhook` kind. Reads list every webhook of each configured environment
(active, stopped and deleted: a deleted id can never be used again) and refuse a
malformed answer. Writes follow the wallet rules: every 202 is followed by polling until
the change is visible, and a create whose outcome is unknown is resolved by reading
before anything is sent again, so a webhook is never created twice.

The signing secret (`shared_secret`) is answered once, by the create and by a key
rotation. The client hands it over as a `Secret`; it goes straight to the webhook's sink
(`voltage_iac.secret_sink`) and nowhere else. When it cannot get there (the sink failed,
or the answer that carried it was lost), the operation fails with the one command that
recovers: `voltage-iac rotate-secret PATH webhook KEY`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from voltage_iac.errors import (
    ApiError,
    MalformedResponseError,
    NotFoundError,
    VoltageIacError,
    WriteOutcomeUnknown,
)
from voltage_iac.kinds.base import Operation
from voltage_iac.kinds.webhook import (
    EVENT_TYPES,
    LiveWebhook,
    api_events,
    marked_name,
    split_name,
    webhook_id,
)
from voltage_iac.model import DesiredState, canonical_uuid
from voltage_iac.secret import Secret, redact
from voltage_iac.secret_sink import SecretSink, SinkError

if TYPE_CHECKING:
    from voltage_iac.providers.voltage import VoltageProvider

log = logging.getLogger("voltage_iac.provider")

STATUSES = ("active", "stopped", "deleted")
#: key rotations tried when the answer carrying the new secret is lost
ROTATION_ATTEMPTS = 3


class SecretHandoffError(VoltageIacError):
    """The API made a secret that did not reach its sink (rotating it recovers)."""


# -- parsing -------------------------------------------------------------------------------


def _text(data: Mapping[str, Any], name: str, what: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise MalformedResponseError(f"{what}: field {name!r} is missing or has the wrong type")
    return value


def _uuid(value: Any, what: str) -> str:
    canonical = canonical_uuid(value)
    if canonical is None:
        raise MalformedResponseError(f"{what}: {str(value)[:40]!r} is not a UUID")
    return canonical


def parse_events(value: Any, what: str) -> tuple[str, ...]:
    """The contract's `EventTypes[]` -> sorted `kind.event` names."""
    if not isinstance(value, list):
        raise MalformedResponseError(f"{what}: field 'events' is missing or not an array")
    out: set[str] = set()
    for item in value:
        if not isinstance(item, dict) or len(item) != 1:
            raise MalformedResponseError(f"{what}: an event is not a one-key object")
        ((kind, event),) = item.items()
        name = f"{kind}.{event}" if isinstance(kind, str) and isinstance(event, str) else ""
        if name not in EVENT_TYPES:
            raise MalformedResponseError(
                f"{what}: unknown event type {name[:60]!r}",
                hint="upgrade voltage-iac to manage webhooks with this event type",
            )
        out.add(name)
    return tuple(sorted(out))


def parse_webhook(data: Any, organization_id: str) -> LiveWebhook:
    """A contract `WebhookRead` object -> LiveWebhook (ownership read from the name).

    A webhook is owned only when the marker in its name names a stack and key whose
    derived id is this webhook's id: a name copied onto another webhook is not enough."""
    if not isinstance(data, dict):
        raise MalformedResponseError("webhook: expected a JSON object")
    hook_id = _uuid(_text(data, "id", "webhook"), "webhook id")
    what = f"webhook {hook_id}"
    env = _uuid(_text(data, "environment_id", what), what)
    url = _text(data, "url", what)
    full = _text(data, "name", what)
    status = _text(data, "status", what)
    if status not in STATUSES:
        raise MalformedResponseError(f"{what}: unknown status {status[:40]!r}")
    events = parse_events(data.get("events"), what)
    display, owner = split_name(full)
    if owner is not None:
        try:
            expected = webhook_id(organization_id, env, owner.stack, owner.key, owner.generation)
        except ValueError:
            expected = ""
        if expected != hook_id:
            owner = None  # a marker on a webhook voltage-iac did not make: unmanaged
    return LiveWebhook(
        id=hook_id,
        name=display if owner is not None else full,
        environment_id=env,
        url=url,
        events=events,
        status=status,
        active=status != "deleted",
        owner=owner,
    )


def _config_path(desired: DesiredState) -> str:
    """How the user names this configuration on the command line (for fix commands)."""
    files = [f for f in desired.files if not f.startswith("<")]
    if not files:
        return "PATH"
    if len(files) == 1:
        return files[0]
    folders = {os.path.dirname(f) or "." for f in files}
    return folders.pop() if len(folders) == 1 else "PATH"


class VoltageWebhooks:
    """The webhook half of the Voltage provider."""

    def __init__(self, provider: VoltageProvider) -> None:
        self.provider = provider
        self.config_path = "PATH"

    @property
    def _client(self) -> Any:
        return self.provider.client

    @property
    def _org(self) -> str:
        return self.provider.organization_id

    # -- reads ---------------------------------------------------------------------------
    def read(self, desired: DesiredState) -> tuple[LiveWebhook, ...]:
        """Every webhook of every configured environment; any failure or malformed
        answer raises (all or nothing)."""
        self.config_path = _config_path(desired)
        hooks: list[LiveWebhook] = []
        seen: set[str] = set()
        for env in desired.environments.values():
            where = f"list webhooks of environment {env.name} ({env.id})"
            raw = self._client.list_webhooks(self._org, env.id)
            if not isinstance(raw, list):
                raise MalformedResponseError(f"{where}: expected a JSON array")
            for item in raw:
                try:
                    hook = parse_webhook(item, self._org)
                except MalformedResponseError as exc:
                    raise MalformedResponseError(f"{where}: {exc.message}", hint=exc.hint) from None
                if hook.environment_id != env.id:
                    raise MalformedResponseError(
                        f"{where}: webhook {hook.id} belongs to environment {hook.environment_id}"
                    )
                if hook.id in seen:
                    raise MalformedResponseError(
                        f"{where}: webhook {hook.id} is listed more than once"
                    )
                seen.add(hook.id)
                hooks.append(hook)
        return tuple(sorted(hooks, key=lambda h: h.id))

    # -- writes --------------------------------------------------------------------------
    def execute(self, operation: Operation) -> str | None:
        verb = operation.verb
        if verb == "create":
            return self.create(operation)
        hook_id = operation.id
        assert hook_id is not None, operation.describe()
        env_id = self._environment_of(operation)
        if verb == "update":
            self.update(operation, env_id, hook_id)
        elif verb in ("start", "stop"):
            self.set_status(env_id, hook_id, "active" if verb == "start" else "stopped")
        elif verb == "delete":
            self.delete(env_id, hook_id)
        elif verb == "rotate_secret":
            self.rotate(operation, env_id, hook_id)
        else:
            from voltage_iac.providers.base import unsupported

            raise unsupported("voltage", operation)
        return hook_id

    def _environment_of(self, operation: Operation) -> str:
        if operation.live is not None:
            return str(operation.live.environment_id)
        return str(operation.desired.environment_id)

    def _get(self, env_id: str, hook_id: str) -> LiveWebhook | None:
        raw = self._client.get_webhook(self._org, env_id, hook_id)
        return None if raw is None else parse_webhook(raw, self._org)

    def create(self, request: Operation) -> str:
        want = request.desired
        hook_id, generation = request.id, request.generation
        if hook_id is None or generation is None:
            raise VoltageIacError(f"{want.key}: no webhook id was planned")
        env_id = want.environment_id
        name = marked_name(want.name, request.stack, want.key, generation)
        body = {"id": hook_id, "url": want.url, "name": name, "events": api_events(want.events)}
        last: dict[str, Any] = {}

        def exists() -> bool:
            raw = self._client.get_webhook(self._org, env_id, hook_id)
            if raw is not None:
                last["raw"], last["hook"] = raw, parse_webhook(raw, self._org)
            return raw is not None

        secret: Secret | None = None
        lost = ""
        try:
            secret = self._client.create_webhook(self._org, env_id, body)
        except WriteOutcomeUnknown as exc:
            log.info("create %s: outcome unknown (%s); reading before re-sending", hook_id, exc)
            if self.provider._poll(exists, self.provider._ambiguity_window()):
                lost = "the API's answer to the create was lost"
            else:
                secret, lost = self._resend(env_id, body)
        except MalformedResponseError:
            lost = "the API's answer to the create carried no readable secret"
        except ApiError as exc:
            if not _is_conflict(exc):
                raise
            lost = "the webhook already existed: an earlier attempt created it"
        # The secret goes to its sink before anything else can fail.
        sink_error = self._hand_over(want.secret, secret, want.key, hook_id) if secret else None
        self.provider._wait(exists, f"webhook {hook_id} ({want.key}) to appear")
        current = last.get("hook")
        if current is not None and not current.active:
            raise VoltageIacError(
                f"{want.key}: webhook id {hook_id} belongs to a deleted webhook; deleted ids "
                "cannot be reused",
                hint="re-run plan: the next plan picks the next generation's id",
            )
        if current is not None and (
            current.url != want.url
            or current.events != tuple(want.events)
            or last["raw"].get("name") != name
        ):
            # made by an earlier attempt for an older version of the configuration
            self._patch(env_id, hook_id, body)
        then = "; then re-run apply to stop it" if want.status == "stopped" else ""
        if sink_error is not None:
            raise SecretHandoffError(
                redact(
                    f"webhook {want.key} was created ({hook_id}), but its signing secret could "
                    f"not be handed to {want.secret.describe()}: {sink_error.message}. The API "
                    "shows a secret only once, so that one is lost",
                    secret,
                ),
                hint=f"fix the cause, then run `{self._fix(want.key)}`: it makes a new "
                f"secret and hands it to the same sink{then}",
            )
        if secret is None:
            raise SecretHandoffError(
                f"webhook {want.key} exists ({hook_id}), but its signing secret never reached "
                f"voltage-iac ({lost}); the API shows a secret only once, so it must be rotated",
                hint=f"run `{self._fix(want.key)}`: it makes a new secret and hands it to "
                f"{want.secret.describe()}{then}",
            )
        return hook_id

    def _resend(self, env_id: str, body: dict[str, Any]) -> tuple[Secret | None, str]:
        try:
            return self._client.create_webhook(self._org, env_id, body), ""
        except WriteOutcomeUnknown:
            log.info("create %s: outcome unknown again; waiting for it to appear", body["id"])
            return None, "the API's answer to the create was lost twice"
        except MalformedResponseError:
            return None, "the API's answer to the create carried no readable secret"
        except ApiError as exc:
            if not _is_conflict(exc):
                raise
            return None, "the API's answer to the create was lost"

    def _hand_over(
        self, sink: SecretSink, secret: Secret, key: str, hook_id: str
    ) -> SinkError | None:
        try:
            sink.hand_over(secret, key=key, resource_id=hook_id)
        except SinkError as exc:
            return exc
        log.info("webhook %s: signing secret handed to %s", key, sink.describe())
        return None

    def _fix(self, key: str) -> str:
        return f"voltage-iac rotate-secret {self.config_path} webhook {key}"

    def update(self, request: Operation, env_id: str, hook_id: str) -> None:
        want, live = request.desired, request.live
        if live is not None and live.owner is None:
            # adopted by a pinned id: the pin is its ownership, and a marker would not
            # match an id voltage-iac did not derive, so the display name goes as it is
            name = want.name
        else:
            generation = live.owner.generation if live is not None and live.owner else 0
            name = marked_name(want.name, request.stack, request.key, generation)
        body = {
            "id": hook_id,
            "url": want.url,
            "name": name,
            "events": api_events(want.events),
        }
        self._patch(env_id, hook_id, body)

    def _patch(self, env_id: str, hook_id: str, body: Mapping[str, Any]) -> None:
        update = {"url": body["url"], "name": body["name"], "events": body["events"]}
        events = tuple(sorted(f"{k}.{v}" for item in body["events"] for k, v in item.items()))

        def applied() -> bool:
            raw = self._client.get_webhook(self._org, env_id, hook_id)
            if raw is None:
                return False
            current = parse_webhook(raw, self._org)
            return (
                raw.get("name") == body["name"]
                and current.url == body["url"]
                and (current.events == events)
            )

        self._write_then_wait(
            lambda: self._client.update_webhook(self._org, env_id, hook_id, update),
            applied,
            f"webhook {hook_id} to change",
        )

    def set_status(self, env_id: str, hook_id: str, status: str) -> None:
        send = self._client.start_webhook if status == "active" else self._client.stop_webhook

        def reached() -> bool:
            current = self._get(env_id, hook_id)
            return current is not None and current.status == status

        verb = "start" if status == "active" else "stop"
        self._write_then_wait(
            lambda: send(self._org, env_id, hook_id), reached, f"webhook {hook_id} to {verb}"
        )

    def delete(self, env_id: str, hook_id: str) -> None:
        def gone() -> bool:
            current = self._get(env_id, hook_id)
            return current is None or not current.active

        def send() -> None:
            with contextlib.suppress(NotFoundError):  # already gone
                self._client.delete_webhook(self._org, env_id, hook_id)

        self._write_then_wait(send, gone, f"webhook {hook_id} to be deleted")

    def rotate(self, request: Operation, env_id: str, hook_id: str) -> None:
        """A new signing secret, handed to the sink. A rotation whose answer is lost is
        simply made again: each one replaces the last, and only a known one counts."""
        want = request.desired
        secret: Secret | None = None
        failure: VoltageIacError | None = None
        for _ in range(ROTATION_ATTEMPTS):
            try:
                secret = self._client.rotate_webhook_key(self._org, env_id, hook_id)
                break
            except (WriteOutcomeUnknown, MalformedResponseError) as exc:
                log.info(
                    "rotate %s: the new secret did not arrive (%s); rotating again", hook_id, exc
                )
                failure = exc
        if secret is None:
            assert failure is not None
            raise SecretHandoffError(
                f"webhook {want.key}: no new signing secret arrived after {ROTATION_ATTEMPTS} "
                f"rotations ({failure.message})",
                hint=f"run `{self._fix(want.key)}` again later",
            )
        sink_error = self._hand_over(want.secret, secret, want.key, hook_id)
        if sink_error is not None:
            raise SecretHandoffError(
                redact(
                    f"webhook {want.key}: the key was rotated ({hook_id}), but the new signing "
                    f"secret could not be handed to {want.secret.describe()}: "
                    f"{sink_error.message}. The old secret no longer works",
                    secret,
                ),
                hint=f"fix the cause, then run `{self._fix(want.key)}` again",
            )

    def _write_then_wait(
        self, send: Callable[[], None], done: Callable[[], bool], what: str
    ) -> None:
        self.provider._write_then_wait(send, done, what)


def _is_conflict(exc: ApiError) -> bool:
    return exc.error_type == "webhook_exists" or exc.status == 409
