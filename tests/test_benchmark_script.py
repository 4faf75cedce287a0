"""The plan/apply benchmark (benchmarks/bench_plan_apply.py) runs end to end at tiny sizes.

It starts the emulator served on loopback in a subprocess, so this runs it as a
subprocess too, with a time-out. Only completion and the reported numbers are checked:
request counts, never timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_plan_apply.py"


def test_quick_benchmark_completes_and_reports_numbers(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
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
            "--out",
            str(out),
            "--max-seconds",
            "150",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert json.loads(out.read_text(encoding="utf-8")) == results

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
    # One listing for the one environment plus one line-of-credit summaries call,
    # whatever the number of wallets.
    assert {row["requests"] for row in plain} == {2}
    assert results["plan_requests_independent_of_wallets"] is True
    for row in results["plan"]:
        assert row["seconds_median"] > 0
    assert any(row.get("cli_seconds") for row in plain)

    # Wallets whose configuration manages policies cost one policies read each.
    (with_policies,) = [row for row in results["plan"] if row["policies"]]
    assert with_policies["requests"] == 2 + with_policies["wallets"]

    by_parallelism = {row["parallelism"]: row for row in results["apply"]}
    assert set(by_parallelism) == {1, 16}
    for row in by_parallelism.values():
        assert row["wallets"] == 8
        assert row["converged"] is True
        assert row["requests"] >= 2 * 8  # at least the create and one read-back each
        assert row["seconds"] > 0
    assert results["apply_speedup"] > 0
    assert "speed-up, parallelism 16 over 1" in done.stderr
