"""The webhook kind: endpoints the Voltage API calls when a payment succeeds or fails.

A registered resource kind (see `voltage_iac.kinds.base`). Owns the webhook's desired
and live types and its pure rules: `url`, `name` and `events` change in place (events
are replaced whole and compared as a set); `status` (active or stopped) becomes a
start or stop; the environment is fixed at creation, so moving a webhook is a
replacement (a new webhook with the next generation's id, then the old one deleted).

Ids are chosen by the client: a UUIDv5 in a namespace of the webhook kind's own, over
organization, environment, stack, key and generation (`webhook_id`), so a repeated or
crashed apply can only ever address the webhook it meant.

Ownership: the API keeps no metadata on a webhook, so it is recorded in the only field
the client sets at creation, the name, as a marker after the display name:
`Payment events [iac:acme:payment-events]` (`:N` is added for generation N > 0). The
provider strips it for display and comparison (`split_name`); a webhook is owned only
when its marker names this stack and its id is the one that marker derives, so a copied
name never makes a hand-made webhook look owned. Display names may not contain `[iac:`.

The signing secret the API shows once (at creation and at each key rotation) goes to
the webhook's `secret` sink (`voltage_iac.secret_sink`); nothing else ever sees it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voltage_iac.identity import resource_id
from voltage_iac.kinds.base import (
    DiffContext,
    Operation,
    ResourceKind,
    environment_change,
    planned_id,
    portable_path,
    record_of,
)
from voltage_iac.kinds.naming import import_key, normal_name
from voltage_iac.model import DesiredState, LiveState, Ownership, SourceRef
from voltage_iac.plan import Action, Change, FieldChange, Plan
from voltage_iac.secret_sink import SecretSink

#: Fixed namespace for voltage-iac webhook ids (not the wallets'). Changing it would
#: re-key every webhook.
WEBHOOK_NAMESPACE = uuid.UUID("3c9d7b52-1e4f-5a86-b0d2-7f61e8a4c935")

#: The contract's `EventTypes`, as the configuration spells them (`kind.event`).
EVENT_TYPES = (
    "send.succeeded",
    "send.failed",
    "receive.generated",
    "receive.detected",
    "receive.refreshed",
    "receive.expired",
    "receive.succeeded",
    "receive.completed",
    "receive.failed",
    "test.created",
)

STATUSES = ("active", "stopped")

#: The API's limit on a webhook name; the display name leaves room for the marker.
API_NAME_MAX = 256
DISPLAY_NAME_MAX = 100

MARKER_PREFIX = "[iac:"
_PART = r"[a-z0-9][a-z0-9._-]{0,63}"
_MARKER_RE = re.compile(
    rf"^(?P<display>.*) \[iac:(?P<stack>{_PART}):(?P<key>{_PART})"
    r"(?::(?P<gen>[1-9][0-9]{0,8}))?\]$",
    re.DOTALL,
)


def webhook_id(
    organization_id: str, environment_id: str, stack: str, key: str, generation: int = 0
) -> str:
    """The deterministic id of generation `generation` of webhook `key` in `stack`."""
    return resource_id(WEBHOOK_NAMESPACE, organization_id, environment_id, stack, key, generation)


def marker(stack: str, key: str, generation: int = 0) -> str:
    """The ownership marker of entry `key` of `stack`, e.g. `[iac:acme:payment-events]`."""
    suffix = f":{generation}" if generation else ""
    return f"{MARKER_PREFIX}{stack}:{key}{suffix}]"


def marked_name(display: str, stack: str, key: str, generation: int = 0) -> str:
    """The name sent to the API: the display name, a space, the ownership marker."""
    if MARKER_PREFIX in display:
        raise ValueError(f"a webhook display name cannot contain {MARKER_PREFIX!r}")
    return f"{display} {marker(stack, key, generation)}"


def split_name(name: str) -> tuple[str, Ownership | None]:
    """A live webhook's name -> (display name, ownership or None)."""
    match = _MARKER_RE.match(name)
    if not match:
        return name, None
    return match.group("display"), Ownership(
        stack=match.group("stack"),
        key=match.group("key"),
        generation=int(match.group("gen") or 0),
    )


def api_events(events: Sequence[str]) -> list[dict[str, str]]:
    """`send.succeeded` -> `{"send": "succeeded"}` (the contract's EventTypes)."""
    out = []
    for event in events:
        kind, _, name = event.partition(".")
        out.append({kind: name})
    return out


@dataclass(frozen=True)
class DesiredWebhook:
    """One webhook as the configuration wants it. `events` is sorted, without repeats."""

    key: str
    name: str  # display name, without the ownership marker
    environment: str
    environment_id: str
    url: str
    events: tuple[str, ...]
    status: str = "active"
    secret: SecretSink = field(default_factory=SecretSink)
    protect: bool = False
    pinned_id: str | None = None
    ignore: tuple[str, ...] = ()
    source: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LiveWebhook:
    """One webhook as the API reports it. `name` is the display name (marker removed)
    when the webhook is owned, the full name otherwise; `active` is False once deleted
    (a stopped webhook is still active in this sense: it exists)."""

    id: str
    name: str
    environment_id: str
    url: str
    events: tuple[str, ...]
    status: str  # active | stopped | deleted
    active: bool = True
    owner: Ownership | None = None
    deletion_failed_at: str | None = None


class WebhookKind(ResourceKind):
    name = "webhook"
    section = "webhooks"
    plural = "webhooks"
    rotates_secrets = True

    def new_id(self, ctx: DiffContext, want: Any, generation: int) -> str | None:
        return planned_id(ctx, want, generation, webhook_id)

    def create_fields(self, ctx: DiffContext, want: Any) -> list[FieldChange]:
        return [
            FieldChange("name", None, want.name),
            FieldChange("environment", None, want.environment),
            FieldChange("url", None, want.url),
            FieldChange("events", None, list(want.events)),
            FieldChange("status", None, want.status),
            FieldChange("secret_sink", None, want.secret.describe()),
        ]

    def compare(self, ctx: DiffContext, want: Any, current: Any) -> list[FieldChange]:
        out = environment_change(ctx, want, current)
        if want.name != current.name:
            out.append(FieldChange("name", current.name, want.name))
        if want.url != current.url:
            out.append(FieldChange("url", current.url, want.url))
        if tuple(sorted(set(want.events))) != tuple(sorted(set(current.events))):
            out.append(FieldChange("events", list(current.events), list(want.events)))
        if want.status != current.status:
            out.append(FieldChange("status", current.status, want.status))
        return out

    def replace_reasons(self, fields: Sequence[FieldChange]) -> tuple[str, ...]:
        return ("the environment is fixed at creation",)

    def delete_fields(self, current: Any) -> list[FieldChange]:
        return [FieldChange("name", current.name, None), FieldChange("url", current.url, None)]

    def snapshot(self, current: Any) -> dict[str, Any]:
        return {
            **super().snapshot(current),
            "environment_id": current.environment_id,
            "url": current.url,
            "events": list(current.events),
            "status": current.status,
        }

    def import_sections(
        self, desired: DesiredState, live: LiveState, environment: str
    ) -> tuple[dict[str, Any], list[str]]:
        """Entries adopting the unmanaged webhooks of `environment`, each pinned by its id.

        The signing secret of an existing webhook was shown once, when it was made, and
        cannot be read back: each entry gets a file sink under `secrets/`, and a note says
        to rotate the key so that the sink holds a secret the configuration knows of."""
        env = desired.environments[environment]
        own = desired.of(self.name)
        pinned = {w.pinned_id for w in own.values() if w.pinned_id}
        taken_keys = set(own)
        taken_names = {normal_name(w.name) for w in own.values() if w.environment == environment}
        hooks: dict[str, Any] = {}
        notes: list[str] = []
        candidates = sorted(
            (
                h
                for h in live.of(self.name)
                if h.active and h.environment_id == env.id and h.id not in pinned
            ),
            key=lambda h: (h.name, h.id),
        )
        for hook in candidates:
            if hook.owner is not None:
                if hook.owner.stack != desired.stack:
                    notes.append(
                        f"skipped webhook {hook.name} ({hook.id}): managed by stack "
                        f"{hook.owner.stack}"
                    )
                continue
            reason = _unimportable(hook, taken_names)
            if reason:
                notes.append(f"skipped webhook {hook.name} ({hook.id}): {reason}")
                continue
            key = import_key(hook.name, taken_keys, "webhook")
            taken_keys.add(key)
            taken_names.add(normal_name(hook.name))
            entry: dict[str, Any] = {
                "id": hook.id,
                "name": hook.name.strip(),
                "environment": environment,
                "url": hook.url,
                "events": sorted(set(hook.events)),
            }
            if hook.status != "active":
                entry["status"] = hook.status
            entry["secret"] = {"file": f"secrets/{key}.env"}
            hooks[key] = entry
            notes.append(
                f"webhook {key}: its signing secret cannot be read back; after committing, "
                f"run `voltage-iac rotate-secret CONFIG webhook {key}` to hand a new one to "
                f"secrets/{key}.env (or change its `secret` sink first)"
            )
        return ({self.section: hooks} if hooks else {}), notes

    def record(self, want: Any) -> dict[str, Any]:
        sink = want.secret
        secret: dict[str, Any] = {"base_dir": portable_path(sink.base_dir)}
        if sink.file is not None:
            secret["file"] = sink.file
        else:
            secret["command"] = list(sink.command)
            secret["timeout_seconds"] = sink.timeout
        return record_of(
            want,
            {
                "url": want.url,
                "events": list(want.events),
                "status": want.status,
                "secret": secret,
            },
        )

    def from_record(self, key: str, data: Any) -> DesiredWebhook:
        secret = data["secret"]
        base_dir = os.path.abspath(secret["base_dir"])
        if "file" in secret:
            sink = SecretSink(file=secret["file"], base_dir=base_dir)
        else:
            sink = SecretSink(
                command=tuple(secret["command"]),
                base_dir=base_dir,
                timeout=float(secret["timeout_seconds"]),
            )
        return DesiredWebhook(
            key=key,
            name=data["name"],
            environment=data["environment"],
            environment_id=data["environment_id"],
            url=data["url"],
            events=tuple(data["events"]),
            status=data["status"],
            secret=sink,
            protect=data["protect"],
            pinned_id=data["pinned_id"],
            ignore=tuple(data["ignore"]),
        )

    def local_folders(self, want: Any, action: Action) -> list[tuple[str, str]]:
        """A create (or the create of a replacement) hands the new signing secret to the
        sink, whose file and command are relative to `base_dir`."""
        if action not in (Action.CREATE, Action.REPLACE):
            return []
        return [(f"secret sink folder of webhook {want.key}", want.secret.base_dir)]

    def result_detail(self, want: Any | None, verb: str) -> str:
        if want is None or verb not in ("create", "replace", "rotate_secret"):
            return ""
        return f"signing secret handed to {want.secret.describe()}"

    def operations(self, change: Change, plan: Plan) -> list[Operation]:
        """An update is one PATCH (url, name, events) and/or a start or stop; a create
        of a stopped webhook is followed by a stop."""
        want = change.desired
        if change.action is Action.UPDATE:
            names = {f.field for f in change.fields}
            out = []
            if names & {"name", "url", "events"}:
                out.append(self.operation(change, plan, "update", change.id))
            if "status" in names:
                verb = "start" if want.status == "active" else "stop"
                out.append(self.operation(change, plan, verb, change.id))
            return out
        out = []
        for op in super().operations(change, plan):
            out.append(op)
            if op.verb == "create" and want.status == "stopped":
                # id None: the webhook that create made
                out.append(
                    dataclasses.replace(self.operation(change, plan, "stop", None), live=None)
                )
        return out


def _unimportable(hook: LiveWebhook, taken_names: set[str]) -> str | None:
    name = hook.name.strip()
    if MARKER_PREFIX in name:
        return f"its name contains {MARKER_PREFIX!r}, which starts voltage-iac's ownership marker"
    if not 1 <= len(name) <= DISPLAY_NAME_MAX or any(unicodedata.category(c) == "Cc" for c in name):
        return f"its name is not 1-{DISPLAY_NAME_MAX} characters of plain text; rename it first"
    if not hook.url.startswith(("http://", "https://")):
        return "its URL is not http(s)"
    if not hook.events or not set(hook.events) <= set(EVENT_TYPES):
        return "it has no events, or events this version does not know"
    if normal_name(name) in taken_names:
        return "its name is already used by a configured webhook in this environment"
    return None


WEBHOOK = WebhookKind()
