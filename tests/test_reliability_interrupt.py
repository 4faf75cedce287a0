"""Ctrl-C during apply: no new operation starts, running ones finish, the report says
what was done and what was not, the exit code is 130, and a re-run finishes the job.
A second Ctrl-C while the running operations finish changes none of that.

`voltage-iac apply` runs in a child process against a served emulator whose added
latency makes each operation take a while; SIGINT is sent once a random number of
operations have started (read from the per-change lines that -v writes to stderr).
"""

from __future__ import annotations

import dataclasses
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.reliability_helpers import (
    KEYS,
    Child,
    Config,
    Spec,
    budget,
    check_converged,
    check_no_extra,
    cli_apply_argv,
    eventual_view,
    expected_id,
    wait_settled,
    write_config,
)
from tests.served import served_emulator, stop_process

TRIALS = budget(2, 8)  # VOLTAGE_IAC_SLOW=1: the large budget
LATENCY_MS = 120
DEADLINE = 60.0
WAITING = re.compile(r"^Interrupted: no new operation starts; waiting for (\d+) running")
SUMMARY = re.compile(r"Apply interrupted: (\d+) done, (\d+) failed, (\d+) not started\.")


PROGRESS = re.compile(r"^\w+ (\w+): \w+ started$")


def started(lines: list[str]) -> list[str]:
    """Keys of the operations the progress lines say were started."""
    return [m.group(1) for m in map(PROGRESS.match, lines) if m]


def started_at_least(count: int) -> Callable[[list[str]], bool]:
    return lambda lines: len(started(lines)) >= count


def test_ctrl_c_stops_new_operations_and_a_rerun_finishes(tmp_path: Path) -> None:
    rng = random.Random(130)
    figures: Counter[str] = Counter()
    for trial in range(TRIALS):
        # Even trials interrupt creates; odd ones interrupt replacements (new limits).
        action = "create" if trial % 2 == 0 else "replace"
        generation = 0 if action == "create" else 1
        double = trial % 4 in (1, 2)  # a second Ctrl-C while running operations finish
        workdir = tmp_path / f"trial-{trial}"
        workdir.mkdir()
        config: Config = {
            key: Spec(f"{key.title()} {trial}", 1000, (("trial", str(trial)),)) for key in KEYS
        }
        config_path = write_config(workdir / "wallets.yaml", config)
        with (
            served_emulator(workdir, latency_ms=LATENCY_MS) as emu,
            eventual_view(emu.db_path) as eventual,
        ):
            argv = cli_apply_argv(config_path, emu.base_url, "--parallelism", "2", "-v")
            if action == "replace":
                emu.faults(latency_ms=0)
                first = Child(argv)
                code, lines = first.finish()
                assert code == 0, "\n".join(lines)
                emu.faults(latency_ms=LATENCY_MS)
                config = {k: dataclasses.replace(v, limit_sats=2000) for k, v in config.items()}
                write_config(config_path, config)

            child = Child(argv)
            try:
                wanted = rng.randint(1, len(config) - 3)
                child.wait_for(started_at_least(wanted), f"{wanted} operations started")
                child.process.send_signal(signal.SIGINT)
                interrupted_after = len(started(child.lines))
                child.wait_for(lambda lines: any(WAITING.match(x) for x in lines), "the notice")
                if double:
                    # An impatient second Ctrl-C must not lose the running operations'
                    # results.
                    child.process.send_signal(signal.SIGINT)
                code, lines = child.finish()
            finally:
                stop_process(child.process)
            text = "\n".join(lines)
            assert code == 130, text
            match = SUMMARY.search(text)
            assert match, text
            done, failed, not_started = (int(g) for g in match.groups())
            assert done + failed + not_started == len(config), text
            assert not_started >= 1, text
            assert failed == 0, text
            # Every operation that started got to finish; none started after Ctrl-C was
            # handled (a worker may have been starting one as the signal arrived).
            began = started(lines)
            assert len(began) == done, text
            assert len(began) <= interrupted_after + 2, text
            assert "Re-run apply to finish" in text, text
            [notice] = [m for m in map(WAITING.match, lines) if m]
            # running: the changes sending their writes (at most --parallelism 2) and those
            # whose writes were sent and are waiting to show
            assert 1 <= int(notice.group(1)) <= len(began), text
            results = dict(
                re.findall(rf"^\s+(\w+)\s+{action}\s+(done|not started)", text, flags=re.MULTILINE)
            )
            assert sorted(results) == sorted(config), text
            by_id = {w["id"]: w for w in eventual.snapshot()["wallets"]}
            for key, status in results.items():
                new = by_id.get(expected_id(key, generation))
                assert (new is not None) == (status == "done"), f"{key} {status}:\n{text}"
                if action == "replace":
                    old = by_id[expected_id(key, 0)]
                    assert old["active"] == (status != "done"), f"{key} {status}:\n{text}"
            check_no_extra(emu.state(), Counter({k: 1 for k in KEYS}), f"trial {trial}")
            figures[f"{action}s interrupted" + (" twice" if double else "")] += 1
            figures["operations done before stopping"] += done
            figures["operations not started"] += not_started

            code, lines = Child(argv).finish()
            assert code == 0, "\n".join(lines)
            figures["re-runs that finished"] += 1
            snapshot = wait_settled(emu.state, 5.0)
            check_converged(snapshot, config, f"trial {trial} after the re-run")
    print(
        f"interrupt test: {TRIALS} trials; "
        + ", ".join(f"{k} {v}" for k, v in sorted(figures.items()))
    )


def test_ctrl_c_while_planning_changes_nothing(tmp_path: Path) -> None:
    config: Config = {key: Spec(f"{key.title()} wallet", 1000) for key in KEYS[:3]}
    config_path = write_config(tmp_path / "wallets.yaml", config)
    with served_emulator(tmp_path) as emu:
        # The first read is answered 429 "retry in 20 s": the apply is then waiting in the
        # middle of planning, before any write.
        emu.faults(retry_after_ms=20_000)
        emu.admin.post(
            emu.admin_url + "/faults/schedule",
            json={"fault": "rate_limit", "method": "GET", "path_contains": "/wallets"},
        ).raise_for_status()
        child = Child(cli_apply_argv(config_path, emu.base_url))
        try:
            deadline = time.monotonic() + DEADLINE
            while emu.admin.get(emu.admin_url + "/faults").json()["schedule"]:
                assert child.process.poll() is None, "\n".join(child.lines)
                assert time.monotonic() < deadline, "the apply never read the wallets"
                time.sleep(0.01)
            child.process.send_signal(signal.SIGINT)
            code, lines = child.finish()
        finally:
            stop_process(child.process)
        text = "\n".join(lines)
        assert code == 130, text
        assert "Interrupted." in text, text
        assert "Traceback" not in text, text
        assert not [
            w for w in emu.state()["wallets"] if (w["metadata"] or {}).get("voltage-iac.key")
        ]
