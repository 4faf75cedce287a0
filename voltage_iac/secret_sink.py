"""Where a secret the API shows only once is handed over: a file, or a command's stdin.

Imports only `secret` and `errors`. A webhook's signing secret (`shared_secret`) is
answered once, by the create and by each key rotation; voltage-iac never prints, logs or
stores it anywhere else. A `SecretSink` (from the webhook's `secret:` in the
configuration) receives it:

- `file`: the file is written atomically (a temporary file in the same folder, flushed,
  then renamed over the old one) with mode 0600. A `.json` file holds a JSON object, any
  other file dotenv lines (`NAME=value`). Two entries are written, named after the
  webhook's key (see `variable_names`): the webhook's id and its secret. Other entries
  already in the file are kept, so several webhooks may share one file.
- `command`: the command (a list: program and arguments, no shell) receives the secret
  alone on standard input, without a line break. Its output is discarded (it could
  echo the secret), its exit status is checked and its run time is bounded. It gets
  VOLTAGE_WEBHOOK_ID, VOLTAGE_WEBHOOK_KEY and VOLTAGE_WEBHOOK_SECRET_NAME in its
  environment.

A failure raises `SinkError`, whose message names the sink and the reason, never the
secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from voltage_iac.errors import VoltageIacError
from voltage_iac.secret import Secret, redact

#: Seconds a sink command may run before it is stopped (and the handoff has failed).
DEFAULT_COMMAND_TIMEOUT = 30.0

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_\-.~+/=:@,%]*$")
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")

# One writer at a time per file (several webhooks may share one file in one apply).
_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


class SinkError(VoltageIacError):
    """The secret could not be handed to its sink (the message never holds the secret)."""


def variable_names(key: str) -> tuple[str, str]:
    """The names under which a webhook's id and secret are written, from its key:
    `payment-events` -> (VOLTAGE_WEBHOOK_ID_PAYMENT_EVENTS,
    VOLTAGE_WEBHOOK_SECRET_PAYMENT_EVENTS); `-` and `.` become `_`."""
    suffix = re.sub(r"[^A-Z0-9_]", "_", key.upper())
    return f"VOLTAGE_WEBHOOK_ID_{suffix}", f"VOLTAGE_WEBHOOK_SECRET_{suffix}"


@dataclass(frozen=True)
class SecretSink:
    """A file path or a command (exactly one), as the configuration names it.

    `file` is as written; `base_dir` is the folder it is relative to (that of the
    configuration file that declares it); a command runs in `base_dir` too."""

    file: str | None = None
    command: tuple[str, ...] = ()
    base_dir: str = "."
    timeout: float = DEFAULT_COMMAND_TIMEOUT

    @property
    def path(self) -> Path:
        assert self.file is not None
        return Path(self.base_dir, self.file)

    def describe(self) -> str:
        """Where the secret goes, for plans and result lines (never the secret)."""
        if self.file is not None:
            return f"file {_shown_path(self.path)}"
        return f"the standard input of `{Path(self.command[0]).name}`"

    def canonical(self) -> dict[str, object]:
        """The sink's meaning, for the configuration digest."""
        if self.file is not None:
            return {"file": self.file}
        return {"command": list(self.command)}

    def hand_over(self, secret: Secret, *, key: str, resource_id: str) -> None:
        """Give `secret` (of webhook `key`, id `resource_id`) to the sink, or raise
        `SinkError`."""
        if not secret:
            raise SinkError(f"the secret for {key} is empty; nothing was written")
        try:
            if self.file is not None:
                _write_file(self.path, secret, key, resource_id)
            else:
                _run_command(self, secret, key, resource_id)
        except SinkError as exc:
            # a last guard: no part of the secret in the message, whatever produced it
            exc.message = redact(exc.message, secret)
            exc.args = (exc.message,)
            raise


def _shown_path(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _lock_for(path: Path) -> threading.Lock:
    name = os.path.abspath(path)
    with _file_locks_guard:
        return _file_locks.setdefault(name, threading.Lock())


def _write_file(path: Path, secret: Secret, key: str, resource_id: str) -> None:
    id_name, secret_name = variable_names(key)
    shown = _shown_path(path)
    with _lock_for(path):
        try:
            existing = path.read_text(encoding="utf-8") if path.exists() else None
        except (OSError, UnicodeDecodeError) as exc:
            raise SinkError(f"cannot read {shown} to update it: {_reason(exc)}") from None
        if path.suffix.lower() == ".json":
            text = _json_text(existing, shown, {id_name: resource_id, secret_name: secret})
        else:
            text = _dotenv_text(
                existing, shown, key, [(id_name, resource_id), (secret_name, secret)]
            )
        _replace_atomically(path, text, shown)


def _json_text(existing: str | None, shown: str, values: Mapping[str, str | Secret]) -> str:
    data: dict[str, object] = {}
    if existing is not None and existing.strip():
        try:
            loaded = json.loads(existing)
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            raise SinkError(
                f"{shown} exists but is not a JSON object; voltage-iac will not overwrite it",
                hint="remove the file, or point `secret.file` at a new one",
            )
        data = loaded
    for name, value in values.items():
        data[name] = value.reveal() if isinstance(value, Secret) else value
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _dotenv_value(value: str, shown: str) -> str:
    if _SAFE_VALUE.match(value):
        return value
    if "'" not in value and "\n" not in value and "\r" not in value and "\0" not in value:
        return f"'{value}'"
    raise SinkError(
        f"the value cannot be written as one dotenv line in {shown}",
        hint="use a file ending in .json, or a command",
    )


def _dotenv_text(
    existing: str | None, shown: str, key: str, values: list[tuple[str, str | Secret]]
) -> str:
    wanted = {
        name: _dotenv_value(v.reveal() if isinstance(v, Secret) else v, shown) for name, v in values
    }
    lines: list[str] = []
    written: set[str] = set()
    for line in (existing or "").splitlines():
        match = _DOTENV_LINE.match(line)
        name = match.group(1) if match else None
        if name in wanted:
            if name not in written:
                lines.append(f"{name}={wanted[name]}")
                written.add(name)
            continue  # a second line of the same name would shadow the new value
        lines.append(line)
    missing = [name for name, _ in values if name not in written]
    if missing:
        if not lines:
            lines.append("# Written by voltage-iac: webhook signing secrets. Keep out of git.")
        lines.append(f"# webhook {key}")
        lines.extend(f"{name}={wanted[name]}" for name in missing)
    return "\n".join(lines) + "\n"


def _replace_atomically(path: Path, text: str, shown: str) -> None:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise SinkError(f"cannot write {shown}: {_reason(exc)}") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        os.chmod(path, 0o600)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise SinkError(f"cannot write {shown}: {_reason(exc)}") from None


def _run_command(sink: SecretSink, secret: Secret, key: str, resource_id: str) -> None:
    program = Path(sink.command[0]).name
    _, secret_name = variable_names(key)
    env = {
        **os.environ,
        "VOLTAGE_WEBHOOK_ID": resource_id,
        "VOLTAGE_WEBHOOK_KEY": key,
        "VOLTAGE_WEBHOOK_SECRET_NAME": secret_name,
    }
    try:
        done = subprocess.run(
            list(sink.command),
            input=secret.reveal().encode("utf-8"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=sink.base_dir,
            env=env,
            timeout=sink.timeout,
            check=False,
        )
    except FileNotFoundError:
        raise SinkError(
            f"the secret command `{program}` was not found",
            hint="check `secret.command` (the program must be on PATH, or give its path)",
        ) from None
    except subprocess.TimeoutExpired:
        raise SinkError(
            f"the secret command `{program}` did not finish within {sink.timeout:g} s "
            "and was stopped"
        ) from None
    except OSError as exc:
        raise SinkError(f"the secret command `{program}` could not run: {_reason(exc)}") from None
    if done.returncode != 0:
        raise SinkError(
            f"the secret command `{program}` exited with status {done.returncode} "
            "(its output is not shown: it could hold the secret)",
            hint="run the command by hand to see why it fails",
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
