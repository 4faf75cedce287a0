"""Meaning checks of the `webhooks` section (resource kind `webhook`).

Run by `build.py` after the reference sections, only when the backend declares the
`webhook` kind (the lnbits backend does not, so a `webhooks:` section there is refused
by `build.py` with the declared reason). The schema has checked the shape; here:

- `environment` names an entry of `environments`;
- `url` is an absolute http(s) URL;
- every event is one of the contract's event types (`kind.event`), with a did-you-mean,
  and none is listed twice;
- display names are unique within an environment (ignoring case, spacing and Unicode
  form) and never contain `[iac:`, which starts the ownership marker voltage-iac adds;
- `secret` names exactly one sink: a `file` (not a YAML file, which the next load
  would read as configuration) or a `command`.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from voltage_iac.config.checks import entries
from voltage_iac.config.checks.provider import is_http_url
from voltage_iac.config.checks.registry import Context, Section, plain_name, register
from voltage_iac.config.document import Path_
from voltage_iac.config.merge import Entry
from voltage_iac.kinds.webhook import EVENT_TYPES, MARKER_PREFIX, DesiredWebhook
from voltage_iac.secret_sink import DEFAULT_COMMAND_TIMEOUT, SecretSink

KIND = "webhook"


def check(ctx: Context) -> dict[str, DesiredWebhook]:
    result: dict[str, DesiredWebhook] = {}
    names_seen: entries.NamesSeen = {}
    pinned: dict[str, str] = {}
    for key, entry in entries.mappings(ctx, "webhooks"):
        hook = entry.value
        ok = True
        name = _name(ctx, entry)
        env_name = hook.get("environment")
        env = entries.reference(ctx, entry, "environment", "environments")
        if name is not None and isinstance(env_name, str):
            ok = entries.unique_name(ctx, entry, key, "webhook", name, env_name, names_seen) and ok
        pinned_id: str | None = None
        if "id" in hook:
            pinned_id, pinnable = entries.pin(ctx, entry, key, "webhook", pinned)
            ok = ok and pinnable
        url = _url(ctx, entry)
        events = _events(ctx, entry)
        sink = _sink(ctx, entry)
        status = hook.get("status", "active")
        generic = entries.protect_and_ignore(entry)
        if (
            not ok
            or name is None
            or env is None
            or url is None
            or events is None
            or sink is None
            or status not in ("active", "stopped")
            or generic is None
        ):
            ctx.dropped = True
            continue
        protect, ignore = generic
        result[key] = DesiredWebhook(
            key=key,
            name=name,
            environment=env.name,
            environment_id=env.id,
            url=url,
            events=events,
            status=status,
            secret=sink,
            protect=protect,
            pinned_id=pinned_id,
            ignore=ignore,
            source=entries.source(entry),
        )
    return dict(sorted(result.items()))


def _name(ctx: Context, entry: Entry) -> str | None:
    path = (*entry.path, "name")
    name = plain_name(ctx, entry, entry.value.get("name"))
    if name is None:
        return None
    if not name:
        ctx.issues.at(entry.doc, path, "the display name is empty", "give the webhook a name")
        return None
    if not entries.marker_free(ctx, entry, name, MARKER_PREFIX, "webhook names", "Payment events"):
        return None
    return name


def _url(ctx: Context, entry: Entry) -> str | None:
    value = entry.value.get("url")
    if not isinstance(value, str):
        return None
    path = (*entry.path, "url")
    if not is_http_url(value):
        ctx.issues.at(
            entry.doc,
            path,
            f"{entry.doc.show(path, value)} is not an http(s) URL",
            "write the absolute URL the API should deliver to, e.g. "
            "https://hooks.example.com/voltage",
        )
        return None
    return value


def _events(ctx: Context, entry: Entry) -> tuple[str, ...] | None:
    value = entry.value.get("events")
    if not isinstance(value, list) or not value:
        return None
    seen: set[str] = set()
    ok = True
    for index, event in enumerate(value):
        path = (*entry.path, "events", index)
        if not isinstance(event, str):
            ok = False  # reported by the schema
            continue
        if event not in EVENT_TYPES:
            close = difflib.get_close_matches(event.lower(), EVENT_TYPES, n=1, cutoff=0.6)
            hint = "event types: " + ", ".join(EVENT_TYPES)
            if close:
                hint = f"did you mean `{close[0]}`? " + hint
            ctx.issues.at(
                entry.doc, path, f"unknown event type {entry.doc.show(path, event)}", hint
            )
            ok = False
        elif event in seen:
            ctx.issues.at(
                entry.doc,
                path,
                f"event type `{event}` is listed twice",
                "list each event once",
            )
            ok = False
        seen.add(event)
    return tuple(sorted(seen)) if ok else None


def _sink(ctx: Context, entry: Entry) -> SecretSink | None:
    value = entry.value.get("secret")
    if not isinstance(value, dict):
        return None
    doc = entry.doc
    path = (*entry.path, "secret")
    base_dir = os.path.dirname(os.path.abspath(doc.file))
    has_file, has_command = "file" in value, "command" in value
    if has_file == has_command:
        ctx.issues.at(
            doc,
            path,
            "`secret` names both a file and a command"
            if has_file
            else "`secret` names no sink for the webhook's signing secret",
            "give exactly one: `secret: {file: secrets/<key>.env}` or "
            "`secret: {command: [program, arg, ...]}` (the secret arrives on its standard input)",
        )
        return None
    timeout = value.get("timeout_seconds", DEFAULT_COMMAND_TIMEOUT)
    if has_file:
        file = value["file"]
        if not isinstance(file, str):
            return None
        if "timeout_seconds" in value:
            ctx.issues.at(
                doc,
                (*path, "timeout_seconds"),
                "`timeout_seconds` applies to a command only",
                "remove it",
                key=True,
            )
            return None
        if "\0" in file or file.endswith(("/", os.sep)):
            ctx.issues.at(
                doc,
                (*path, "file"),
                "`secret.file` is not a file path",
                "name a file, e.g. `secret: {file: secrets/payment-events.env}` (its folder "
                "is made if needed)",
            )
            return None
        if file.lower().endswith((".yaml", ".yml")):
            ctx.issues.at(
                doc,
                (*path, "file"),
                f"`secret.file` {doc.show((*path, 'file'), file)} is a YAML file, which "
                "voltage-iac would read as configuration",
                "use a file ending in .env or .json, outside the configuration's files",
            )
            return None
        return SecretSink(file=file, base_dir=base_dir)
    command = value["command"]
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        return None
    return SecretSink(command=tuple(command), base_dir=base_dir, timeout=float(timeout))


def _canonical(w: DesiredWebhook) -> dict[str, Any]:
    return {
        "name": w.name,
        "environment": w.environment,
        "environment_id": w.environment_id,
        "url": w.url,
        "events": list(w.events),
        "status": w.status,
        "secret": w.secret.canonical(),
        "protect": w.protect,
        "ignore": list(w.ignore),
    }


def _explains(inner: Path_, validator: str) -> bool:
    # event types are checked here, with a did-you-mean
    return len(inner) == 2 and inner[0] == "events" and validator == "enum"


WEBHOOKS = register(
    Section(
        name="webhooks",
        label="webhook",
        plural="webhooks",
        check=check,
        canonical=_canonical,
        kind=KIND,
        key_label="webhook key",
        required_hints={
            "name": "give the webhook a display name, e.g. `name: Payment events`",
            "environment": "name one of `environments`, e.g. `environment: staging`",
            "url": "give the URL the API delivers to, e.g. `url: https://hooks.example.com/voltage`",
            "events": "list the events to deliver, e.g. `events: [send.succeeded, send.failed]`",
            "secret": "say where the signing secret goes, e.g. "
            "`secret: {file: secrets/payment-events.env}`",
        },
        range_hints={
            "events": "list the events to deliver, e.g. `events: [send.succeeded, send.failed]`",
            "command": "give the program and its arguments, e.g. "
            "`command: [vault, kv, put, secret/hooks/payment-events, -]` (it reads the "
            "secret on standard input)",
            "timeout_seconds": "give the sink command at most 600 seconds (default "
            f"{DEFAULT_COMMAND_TIMEOUT:g})",
        },
        explains=_explains,
    )
)
