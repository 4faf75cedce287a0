"""The plan/apply benchmark (benchmarks/bench_plan_apply.py) runs end to end at tiny sizes.

It starts the emulator served on loopback in a subprocess, so this runs it as a
subprocess too, with a time-out. Only completion and the reported numbers are checked:
request counts, never timings. The results go to the user's cache folder by default
(here a temporary one), never to the tracked benchmarks/results/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_plan_apply.py"


def _tracked_results() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (REPO / "benchmarks" / "results").glob("*")
    }


def test_quick_benchmark_completes_and_reports_numbers(tmp_path: Path) -> None:
    tracked = _tracked_results()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--wallets-plan",
            "50",
            "--wallets-apply",
            "8",
            "--latency-ms",
            "5",
            "--json",
            "--max-seconds",
            "150",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    [written] = re.findall(r"^results written to (.+)$", done.stderr, re.M)
    out = Path(written)
    assert out.is_relative_to(tmp_path / "cache" / "voltage-iac" / "benchmarks")
    assert json.loads(out.read_text(encoding="utf-8")) == results
    assert _tracked_results() == tracked

    machine = results["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")

    plain = [row for row in results["plan"] if not row["policies"]]
    assert {(row["wallets"], row["latency_ms"]) for row in plain} == {
        (5, 0),
        (50, 0),
        (5, 5),
        (50, 5),
    }
    # One listing of wallets and one of webhooks for the one environment, plus one
    # line-of-credit summaries call, whatever the number of wallets.
    assert {row["requests"] for row in plain} == {3}
    assert results["plan_requests_independent_of_wallets"] is True
    for row in results["plan"]:
        assert row["seconds_median"] > 0
    assert any(row.get("cli_seconds") for row in plain)

    # Wallets whose configuration manages policies cost one policies read each.
    (with_policies,) = [row for row in results["plan"] if row["policies"]]
    assert with_policies["requests"] == 3 + with_policies["wallets"]

    by_parallelism = {row["parallelism"]: row for row in results["apply"]}
    assert set(by_parallelism) == {1, 16}
    for row in by_parallelism.values():
        assert row["wallets"] == 8
        assert row["converged"] is True
        assert row["requests"] > 8  # every create, and at least one read confirming it
        assert row["seconds"] > 0
    # each create is sent once and confirmed from environment listings shared by the
    # creates waiting to show (the worker that sent one goes on to the next meanwhile)
    for row in by_parallelism.values():
        assert 8 < row["requests"] <= 2 * 8
        # the round-trip bound with the requests actually sent, and the time over it
        assert row["bound_seconds"] == pytest.approx(
            8 / row["parallelism"] * row["requests"] / 8 * 5 / 1000
        )
        assert row["bound_ratio"] == pytest.approx(row["seconds"] / row["bound_seconds"])
    assert results["apply_speedup"] > 0
    assert "speed-up, parallelism 16 over 1" in done.stderr

    # The peer, in the same run: a refresh of the same wallets, one GET per wallet, ten
    # at a time, beside each no-op plan.
    peer = {(row["wallets"], row["latency_ms"]): row for row in results["peer"]}
    assert set(peer) == {(5, 0), (50, 0), (5, 5), (50, 5)}
    for (wallets, latency), row in peer.items():
        assert row["requests"] == wallets and row["parallelism"] == 10
        [plan_row] = [r for r in plain if (r["wallets"], r["latency_ms"]) == (wallets, latency)]
        assert row["plan_requests"] == plan_row["requests"] == 3
        assert row["plan_seconds_median"] == plan_row["seconds_median"]
        assert row["ratio"] == row["seconds_median"] / row["plan_seconds_median"] > 0
        assert (
            f"voltage-iac no-op plan vs peer refresh, {wallets} wallets at {latency} ms:"
            in done.stderr
        )
    assert machine["cpu_model"] and machine["implementation"]
