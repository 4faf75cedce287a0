"""The overall deadline of a command (`--deadline`): it bounds the whole command, not only
each request, and an apply it stops leaves nothing half-written.

Real child processes against servers on 127.0.0.1: a server that trickles bytes (each
request would be allowed 60 s by its own deadline) and a served emulator slowed by latency.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from tests.conftest import REPO, TEST_KEY, config_doc, wallet
from tests.served import served_emulator
from tests.slow_servers import SlowServer


def _run(*argv: str, env: dict[str, str], timeout: float = 90) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "voltage_iac", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "VOLTAGE_API_URL": "", **env},
        cwd=REPO,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def _config(tmp_path: Path, wallets: dict[str, dict[str, object]]) -> Path:
    path = tmp_path / "wallets.yaml"
    path.write_text(yaml.safe_dump(config_doc(wallets), sort_keys=False), encoding="utf-8")
    return path


def test_a_command_ends_by_its_deadline_even_when_each_request_may_take_longer(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, {"pay": wallet("Payouts")})
    with SlowServer("trickle-headers", interval=0.5) as slow:
        code, output, elapsed = _run(
            "plan",
            str(config),
            "--api-url",
            slow.origin + "/v1",
            "--deadline",
            "2",
            env={"VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_IAC_REQUEST_DEADLINE": "60"},
        )
    assert code == 1, output
    assert elapsed < 2 + 10, f"took {elapsed:.1f} s"  # 2 s, plus a Python start on a busy box
    assert "--deadline of 2s passed" in output
    assert "Traceback" not in output and "Interrupted." not in output


def test_an_apply_stopped_by_its_deadline_finishes_what_it_started_and_a_rerun_completes(
    tmp_path: Path,
) -> None:
    # One at a time, 30 creates cannot take less than 30 x 200 ms = 6 s, twice the deadline,
    # however fast the machine (each waits out the emulator's latency).
    wallets = {f"w{i:02d}": wallet(f"Wallet {i}") for i in range(30)}
    config = _config(tmp_path, wallets)
    env = {"VOLTAGE_API_KEY": TEST_KEY}
    with served_emulator(tmp_path, latency_ms=200) as emu:
        argv = ["apply", str(config), "--auto-approve", "--api-url", emu.base_url]
        code, output, _elapsed = _run(*argv, "--parallelism", "1", "--deadline", "3", env=env)
        assert code == 1, output
        assert "--deadline of 3s passed" in output
        assert "Apply interrupted:" in output and "not started" in output
        again, output, _elapsed = _run(*argv, "--parallelism", "8", env=env)
        assert again == 0, output
        live = [
            w
            for w in emu.state()["wallets"]
            if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == "e2e"
        ]
    keys = Counter(w["metadata"]["voltage-iac.key"] for w in live)
    assert keys == Counter({key: 1 for key in wallets})  # each once: nothing half-written
