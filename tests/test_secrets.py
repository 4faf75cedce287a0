"""The API key never shows: not on stdout or stderr, in any log record, or in any file written.

Every command runs at maximum verbosity (`--debug -vv`) with a distinctive key, given
both ways (VOLTAGE_API_KEY, VOLTAGE_API_KEY_FILE), against a served emulator; the error
paths run against a wrong key and a hostile server on loopback that echoes the key back
in every place it can (error details, context, codes, request ids, plain-text and
non-JSON bodies, response headers). Everything the tool produced is then searched.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from tests.conftest import TEST_KEY, config_doc, wallet
from voltage_iac.cli import cli
from voltage_iac.client import VoltageClient
from voltage_iac.connect import api_key_from_environment
from voltage_iac.secret import Secret

WRONG_KEY = "vk-wrong-Pm4Tq9Xc2Vb7Nn5s"  # as distinctive as TEST_KEY, and never valid


class _Hostile(BaseHTTPRequestHandler):
    """Answers every request with the key it was sent, in the way `server.mode` says."""

    server: _HostileServer

    def do_GET(self) -> None:
        key = self.headers.get("x-api-key", "")
        mode = self.server.mode
        self.server.seen.append(key)
        status, body, ctype = {
            "auth-echo": (
                401,
                {"error": {"type": "wrong_credentials", "detail": f"unknown key {key}"}},
                "application/json",
            ),
            "context-echo": (
                400,
                {
                    "error": {
                        "type": f"invalid_{key}",
                        "code": key,
                        "detail": f"bad key {key}",
                        "context": {"fields": [key], "key": key, "nested": {"k": key}},
                    }
                },
                "application/json",
            ),
            "text-500-echo": (500, f"<html>crashed handling {key}</html>", "text/html"),
            "rate-limit-echo": (
                429,
                {"error": {"type": "rate_limited", "detail": f"slow down {key}"}},
                "application/json",
            ),
            "malformed-echo": (200, f"not json, but your key: {key}", "text/plain"),
            "wrong-shape-echo": (200, {"key": key}, "application/json"),
            "404-echo": (404, f"no route for {key}", "text/plain"),
            "fragment-echo": (
                400,
                {
                    "error": {
                        "type": "invalid_parameter",
                        "detail": f"key starting {key[:16]} and ending {key[-9:]} is odd",
                        "context": {"fields": [key[4:20]]},
                    }
                },
                "application/json",
            ),
        }[mode]
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req-{key[2:18]}" if "fragment" in mode else f"req-{key}")
        self.send_header("x-echo-api-key", key)
        self.send_header("retry-after", "0")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


class _HostileServer(ThreadingHTTPServer):
    mode = "auth-echo"
    seen: list[str]


@pytest.fixture
def hostile() -> Iterator[_HostileServer]:
    server = _HostileServer(("127.0.0.1", 0), _Hostile)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VoltageClient, "_pause", lambda self, seconds, operation, why: None)


class Recorder:
    """Runs the CLI and keeps everything it printed, for the final search."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.outputs: list[tuple[str, str]] = []

    def run(self, *argv: str, env: dict[str, str] | None = None, expect: int | None = 0) -> Result:
        args = ["--debug", "-vv", *argv]
        merged = {"NO_COLOR": "1", "VOLTAGE_API_URL": "", **self.env, **(env or {})}
        result = CliRunner().invoke(cli, args, env=merged, catch_exceptions=False)
        self.outputs.append((" ".join(argv), result.stdout + "\n" + result.stderr))
        if expect is not None:
            assert result.exit_code == expect, (argv, result.output)
        return result


def _every_command(rec: Recorder, config: Path, api: list[str], out: Path, tag: str) -> None:
    rec.run("validate", str(config))
    for fmt in ("text", "json", "markdown"):
        rec.run("plan", str(config), *api, "--format", fmt, "--out", str(out / f"{tag}-{fmt}.json"))
    rec.run("plan", str(config), *api, "--force", "--detailed-exitcode", expect=None)
    rec.run("apply", str(config), *api, "--auto-approve")
    for fmt in ("text", "json", "markdown", "junit"):
        rec.run(
            "drift",
            str(config),
            *api,
            "--format",
            fmt,
            "--output",
            str(out / f"{tag}.{fmt}"),
            expect=None,
        )
        rec.run("drift", str(config), *api, "--format", fmt, expect=None)
    rec.run(
        "import",
        str(config),
        *api,
        "--environment",
        "staging",
        "--output",
        str(out / f"{tag}-imported.yaml"),
    )
    rec.run("import", str(config), *api, "--environment", "staging")
    # The saved plan applied, and a stale one refused.
    saved = out / f"{tag}-saved.json"
    rec.run("plan", str(config), *api, "--out", str(saved))
    rec.run("apply", str(config), *api, "--plan", str(saved), "--auto-approve")


def _error_paths(
    rec: Recorder, config: Path, base_url: str, hostile: _HostileServer, key_env: dict[str, str]
) -> None:
    # A wrong key against the real emulator.
    wrong = rec.run(
        "plan",
        str(config),
        "--api-url",
        base_url,
        env={"VOLTAGE_API_KEY": WRONG_KEY, "VOLTAGE_API_KEY_FILE": ""},
        expect=4,
    )
    assert "wrong_credentials" in wrong.stderr
    # Nothing listens there: a transport error.
    rec.run("plan", str(config), "--api-url", "http://127.0.0.1:9/v1", expect=1, env=key_env)
    # A server that echoes the key back in every way it can.
    hostile_url = f"http://127.0.0.1:{hostile.server_address[1]}/v1"
    for mode, code in (
        ("auth-echo", 4),
        ("context-echo", 1),
        ("text-500-echo", 1),
        ("rate-limit-echo", 1),
        ("malformed-echo", 1),
        ("wrong-shape-echo", 1),
        ("404-echo", 1),
    ):
        hostile.mode = mode
        for command in (["plan"], ["apply", "--auto-approve"], ["drift"]):
            rec.run(
                command[0],
                str(config),
                *command[1:],
                "--api-url",
                hostile_url,
                env=key_env,
                expect=code,
            )
        rec.run(
            "import",
            str(config),
            "--environment",
            "staging",
            "--api-url",
            hostile_url,
            env=key_env,
            expect=code,
        )


def _search(rec: Recorder, caplog: pytest.LogCaptureFixture, roots: list[Path], *keys: str) -> int:
    """Fail if any key is anywhere the tool wrote; returns how many places were searched."""
    places = 0
    for what, text in rec.outputs:
        places += 1
        for key in keys:
            assert key not in text, f"key in the output of `{what}`"
    for record in caplog.records:
        places += 1
        rendered = f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for key in keys:
            assert key not in rendered, f"key in a log record of {record.name}"
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                places += 1
                data = path.read_bytes()
                for key in keys:
                    assert key.encode() not in data, f"key in {path}"
    return places


@pytest.mark.parametrize("source", ["VOLTAGE_API_KEY", "VOLTAGE_API_KEY_FILE"])
def test_the_key_shows_nowhere_whatever_the_command(
    source: str,
    served_emulator: tuple[str, str],
    hostile: _HostileServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base_url, _admin = served_emulator
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    key_file = secrets_dir / "voltage.key"
    key_file.write_text(TEST_KEY + "\n", encoding="utf-8")
    if source == "VOLTAGE_API_KEY":
        key_env = {"VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_API_KEY_FILE": ""}
    else:
        key_env = {"VOLTAGE_API_KEY": "", "VOLTAGE_API_KEY_FILE": str(key_file)}
    work = tmp_path / "work"
    work.mkdir()
    config = work / "wallets.yaml"
    config.write_text(
        yaml.safe_dump(
            config_doc(
                {
                    "pay": wallet("Payouts", policies={"max_payment_size_sats": 5000}),
                    "ops": wallet("Operations", metadata={"team": "ops"}),
                }
            ),
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    rec = Recorder(work, key_env)
    api = ["--api-url", base_url]

    _every_command(rec, config, api, work, source.lower())
    _error_paths(rec, config, base_url, hostile, key_env)

    # The hostile server did receive the key (so it had something to echo back) ...
    assert TEST_KEY in hostile.seen
    # ... and the debug logs were on: the client logged every request.
    assert any(r.name == "voltage_iac.client" for r in caplog.records)
    places = _search(rec, caplog, [work, secrets_dir.parent / "work"], TEST_KEY, WRONG_KEY)
    assert places > 100


def test_http_library_debug_logs_stay_quiet_even_at_maximum_verbosity(
    hostile: _HostileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """httpcore logs response headers at DEBUG, and a server or proxy may echo the key in
    one: the CLI keeps the HTTP libraries at WARNING, whatever -v says."""
    caplog.set_level(logging.DEBUG)
    config = tmp_path / "wallets.yaml"
    config.write_text(yaml.safe_dump(config_doc({"a": wallet("Alpha")})), encoding="utf-8")
    hostile.mode = "auth-echo"
    url = f"http://127.0.0.1:{hostile.server_address[1]}/v1"
    rec = Recorder(tmp_path, {"VOLTAGE_API_KEY": TEST_KEY})
    rec.run("plan", str(config), "--api-url", url, expect=4)
    assert hostile.seen == [TEST_KEY]
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING
    assert [r for r in caplog.records if r.name == "voltage_iac.client"]


def test_the_key_file_is_read_stripped_and_its_problems_are_named_without_the_key(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"  {TEST_KEY}\n", encoding="utf-8")
    key = api_key_from_environment({"VOLTAGE_API_KEY_FILE": str(key_file)})
    assert isinstance(key, Secret) and key.reveal() == TEST_KEY
    assert TEST_KEY not in repr(key) and TEST_KEY not in str(key)
    assert TEST_KEY not in f"{key!r} {key} {[key]} {{'k': {key!r}}}"
    with pytest.raises(TypeError):
        json.dumps({"key": key})

    config = tmp_path / "wallets.yaml"
    config.write_text(yaml.safe_dump(config_doc({"a": wallet("Alpha")})), encoding="utf-8")
    rec = Recorder(tmp_path, {})
    url = ["--api-url", "http://127.0.0.1:9/v1"]
    both = rec.run(
        "plan",
        str(config),
        *url,
        env={"VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_API_KEY_FILE": str(key_file)},
        expect=3,
    )
    assert "set only one of them" in both.stderr
    missing = rec.run(
        "plan",
        str(config),
        *url,
        env={"VOLTAGE_API_KEY": "", "VOLTAGE_API_KEY_FILE": str(tmp_path / "nope")},
        expect=3,
    )
    assert "cannot read the API key file" in missing.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    blank = rec.run(
        "plan",
        str(config),
        *url,
        env={"VOLTAGE_API_KEY": "", "VOLTAGE_API_KEY_FILE": str(empty)},
        expect=3,
    )
    assert "is empty" in blank.stderr
    for _what, text in rec.outputs:
        assert TEST_KEY not in text


def test_fragments_of_the_key_echoed_by_the_server_are_masked_everywhere(
    hostile: _HostileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server error that echoes 16 characters of the key (in its detail, context and
    request id) prints none of them, at maximum verbosity, from any reading command."""
    caplog.set_level(logging.DEBUG)
    config = tmp_path / "wallets.yaml"
    config.write_text(yaml.safe_dump(config_doc({"a": wallet("Alpha")})), encoding="utf-8")
    hostile.mode = "fragment-echo"
    url = f"http://127.0.0.1:{hostile.server_address[1]}/v1"
    rec = Recorder(tmp_path, {"VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_API_KEY_FILE": ""})
    plan = rec.run("plan", str(config), "--api-url", url, expect=1)
    assert "invalid_parameter" in plan.stderr  # the error itself is shown...
    assert "key starting *** and ending *** is odd" in plan.stderr  # ...with the key masked
    rec.run("apply", str(config), "--api-url", url, "--auto-approve", expect=1)
    rec.run("drift", str(config), "--api-url", url, expect=1)
    rec.run("import", str(config), "--api-url", url, "--environment", "staging", expect=1)
    assert TEST_KEY in hostile.seen
    fragments = [TEST_KEY[:16], TEST_KEY[4:20], TEST_KEY[2:18], TEST_KEY[-9:]]
    for what, text in rec.outputs:
        for fragment in fragments:
            assert fragment not in text, f"a fragment of the key in the output of `{what}`"
    for record in caplog.records:
        rendered = f"{record.getMessage()} {record.exc_text or ''}"
        for fragment in fragments:
            assert fragment not in rendered, f"a fragment of the key in a log of {record.name}"
