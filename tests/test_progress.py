"""What a person and a CI log see of an apply: progress, per-change lines, -v and -vv,
and the machine-readable result of `apply --format json`.

Over the emulator served on 127.0.0.1 (the CLI in-process, its output captured), plus
the live display drawn by rich on a stream that says it is a terminal.
"""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Backend, config_doc, wallet
from tests.served import TEST_KEY
from voltage_iac.progress import LINES, LIVE, Board, choose_mode, count_line

served = pytest.mark.parametrize("backend", ["served"], indirect=True)

KEYS = [f"w{n:02d}" for n in range(12)]
COUNT = re.compile(r"^apply: (\d+)/12, (\d+) done, (\d+) failed(, [\d.]+/s)?", re.MULTILINE)


def _config(backend: Backend, keys: list[str] = KEYS) -> str:
    doc = config_doc({key: wallet(f"Wallet {key}") for key in keys})
    return str(backend.write_config(doc))


# -- progress in a CI log ------------------------------------------------------------------


@served
def test_apply_in_ci_writes_count_lines_and_keeps_the_results(backend: Backend) -> None:
    path = _config(backend)
    result = backend.run("apply", path, "--auto-approve", "--parallelism", "3", env={"CI": "true"})
    assert result.exit_code == 0, result.output
    counts = [tuple(int(g) for g in m.groups()[:3]) for m in COUNT.finditer(result.stderr)]
    assert len(counts) >= 2, result.stderr
    assert counts[-1] == (12, 12, 0)  # the last line: everything
    assert [c[0] for c in counts] == sorted(c[0] for c in counts)  # counts only grow
    assert re.search(r"^apply: 12/12, 12 done, 0 failed, [\d.]+/s, in \d+s$", result.stderr, re.M)
    # Per-change lines are for -v; the results a person scrolls back to stay on stdout.
    assert " started" not in result.stderr and " done (" not in result.stderr
    for key in KEYS:
        assert re.search(rf"^  {key}\s+create\s+done ", result.stdout, re.M), result.stdout
    assert "Apply complete: 12 done, 0 failed, 0 not started." in result.stdout


@served
def test_verbose_apply_shows_each_change_and_the_phase_timings(backend: Backend) -> None:
    path = _config(backend, KEYS[:3])
    result = backend.run("apply", path, "--auto-approve", "-v")
    assert result.exit_code == 0, result.output
    err = result.stderr
    for key in KEYS[:3]:
        assert f"wallet {key}: create started" in err
        assert re.search(rf"^wallet {key}: create done \([\d.]+s\)$", err, re.M), err
    # The seed has one wallet of nobody's in staging: read sees it.
    assert re.search(r"^read 1 wallet, 0 webhooks in [\d.]+s \(\d+ requests?\)$", err, re.M), err
    assert re.search(r"^diff: 3 changes planned in [\d.]+s$", err, re.M), err
    assert re.search(r"^apply: 3 changes in [\d.]+s \(\d+ requests\)$", err, re.M), err

    plan = backend.run("plan", path, "-v")
    assert re.search(
        r"^read 4 wallets, 0 webhooks in [\d.]+s \(\d+ requests?\)$", plan.stderr, re.M
    )
    quiet = backend.run("plan", path)
    assert "read " not in quiet.stderr and "diff:" not in quiet.stderr


@served
def test_a_failed_change_is_shown_as_it_happens_and_in_the_json_result(
    backend: Backend,
) -> None:
    path = _config(backend, KEYS[:2])
    assert backend.run("apply", path, "--auto-approve").exit_code == 0
    _config(backend, KEYS[:1])  # w01 is to be deleted; the emulator will fail the deletion
    httpx.patch(backend.admin_url + "/faults", json={"deletion_fails": 1.0}).raise_for_status()
    result = backend.run(
        "apply", path, "--auto-approve", "--allow-delete", "--format", "json", "--timeout", "5"
    )
    assert result.exit_code == 1, result.output
    assert re.search(r"^wallet w01: delete FAILED: \S", result.stderr, re.M), result.stderr
    doc = json.loads(result.stdout)
    [change] = doc["changes"]
    assert change["key"] == "w01" and change["action"] == "delete"
    assert change["status"] == "failed" and change["message"]
    assert doc["totals"] == {"changes": 1, "done": 0, "failed": 1, "skipped": 0}
    assert doc["exit_code"] == 1
    assert "Re-run apply after fixing the cause" in result.stderr


# -- apply --format json ------------------------------------------------------------------


@served
def test_apply_json_is_a_result_document_on_stdout(backend: Backend) -> None:
    path = _config(backend, KEYS[:3])
    planned = backend.run("plan", path, "--format", "json")
    checksum = json.loads(planned.stdout)["checksum"]
    result = backend.run("apply", path, "--auto-approve", "--format", "json")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)  # stdout is the document, nothing else
    assert doc["format_version"] == 1 and doc["stack"] == "e2e"
    assert doc["plan_checksum"] == checksum
    assert doc["plan_summary"] == {"create": 3, "update": 0, "replace": 0, "delete": 0}
    assert doc["totals"] == {"changes": 3, "done": 3, "failed": 0, "skipped": 0}
    assert doc["interrupted"] is False and doc["exit_code"] == 0
    live = {w["name"]: w["id"] for w in backend.wallets()}
    assert sorted(c["key"] for c in doc["changes"]) == KEYS[:3]
    for change in doc["changes"]:
        assert set(change) == {"kind", "key", "action", "status", "id", "seconds", "message"}
        assert change["kind"] == "wallet" and change["action"] == "create"
        assert change["status"] == "done" and change["message"] == ""
        assert change["id"] == live[f"Wallet {change['key']}"]
        assert change["seconds"] >= 0
    # The plan a person reads went to stderr.
    assert "will be created" in result.stderr

    again = backend.run("apply", path, "--auto-approve", "--format", "json")
    assert again.exit_code == 0, again.output
    nothing = json.loads(again.stdout)
    assert nothing["changes"] == [] and nothing["totals"]["changes"] == 0


@served
def test_apply_json_refused_keeps_exit_5_and_stdout_empty(backend: Backend) -> None:
    path = _config(backend, KEYS[:2])
    assert backend.run("apply", path, "--auto-approve").exit_code == 0
    _config(backend, KEYS[:1])
    result = backend.run("apply", path, "--auto-approve", "--format", "json")
    assert result.exit_code == 5, result.output
    assert result.stdout == ""
    assert "refused by safety rules" in result.stderr


# -- -vv: every request, never a secret -----------------------------------------------------


@served
def test_vv_logs_every_request_and_never_the_api_key(backend: Backend) -> None:
    path = _config(backend, KEYS[:2])
    result = backend.run("apply", path, "--auto-approve", "-vv")
    assert result.exit_code == 0, result.output
    lines = re.findall(
        r"^DEBUG voltage_iac\.client: (GET|POST|PATCH|PUT|DELETE) (/\S+) -> (\d{3}) in \d+ ms",
        result.stderr,
        re.M,
    )
    methods = {m for m, _, _ in lines}
    assert {"GET", "POST"} <= methods, result.stderr
    assert any(p.endswith("/wallets") and m == "POST" for m, p, _ in lines)
    assert TEST_KEY not in result.output
    for fragment in (TEST_KEY[i : i + 8] for i in range(len(TEST_KEY) - 7)):
        assert fragment not in result.output
    # -v alone: progress and timings, not the requests.
    plan = backend.run("plan", path, "-v")
    assert "read " in plan.stderr and "DEBUG voltage_iac.client" not in plan.stderr


# -- the display itself ---------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_is_live_on_a_terminal_and_lines_in_ci() -> None:
    assert choose_mode(_Terminal(), {}) == LIVE
    assert choose_mode(_Terminal(), {"CI": "true"}) == LINES
    assert choose_mode(io.StringIO(), {}) == LINES


def test_live_display_draws_counts_and_keeps_lines_above_it() -> None:
    stream = _Terminal()
    with Board(stream, LIVE) as board:
        tracker = board.tracker("apply payments")
        tracker.begin(3)
        tracker.advance(True)
        board.echo("wallet w01: create FAILED: refused")
        tracker.advance(False)
        tracker.advance(True)
        tracker.end()
    text = stream.getvalue()
    assert "apply payments" in text and "3/3" in text and "1 failed" in text
    assert "wallet w01: create FAILED: refused" in text
    assert "\x1b[" in text  # drawn in place with terminal controls, not as count lines
    assert "apply payments: 3/3" not in text


def test_count_line_has_rate_and_eta() -> None:
    assert (
        count_line("apply", 200, 118, 2, 8.0)
        == "apply: 120/200, 118 done, 2 failed, 15.0/s, ETA 5s"
    )
    assert count_line("apply", 10, 10, 0, 2.0) == "apply: 10/10, 10 done, 0 failed, 5.0/s, in 2s"
    assert count_line("apply", 10, 0, 0, 0.0) == "apply: 0/10, 0 done, 0 failed"
    assert "ETA 1h05m" in count_line("apply", 4000, 100, 0, 100.0)


def test_count_lines_come_every_tenth_or_every_few_seconds() -> None:
    now = [0.0]
    stream = io.StringIO()
    board = Board(stream, LINES, interval=5.0, clock=lambda: now[0])
    tracker = board.tracker("apply")
    tracker.begin(100)
    for _ in range(25):
        now[0] += 0.01
        tracker.advance(True)
    assert [line.split(",")[0] for line in stream.getvalue().splitlines()] == [
        "apply: 10/100",
        "apply: 20/100",
    ]
    now[0] += 6.0  # a slow change: the next result is reported whatever the count
    tracker.advance(True)
    assert stream.getvalue().splitlines()[-1].startswith("apply: 26/100")
    board.close()


def test_a_count_line_comes_while_no_change_finishes() -> None:
    stream = io.StringIO()
    with Board(stream, LINES, interval=0.05) as board:
        tracker = board.tracker("apply")
        tracker.begin(4)
        tracker.advance(True)
        deadline = time.monotonic() + 10
        while stream.getvalue().count("apply: 1/4") < 2:  # the heartbeat repeats it
            assert time.monotonic() < deadline, stream.getvalue()
            time.sleep(0.01)
        for _ in range(3):
            tracker.advance(True)
        tracker.end()
        lines = stream.getvalue().splitlines()
        assert lines[-1].startswith("apply: 4/4, 4 done, 0 failed")
        time.sleep(0.2)  # finished: no more lines for it
        assert stream.getvalue().splitlines() == lines
