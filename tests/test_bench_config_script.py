"""The configuration-loading benchmark (benchmarks/bench_config.py) runs at a tiny size
and finds the same state on both paths. Only completion and the result are checked,
never timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_config.py"


def test_config_benchmark_runs_and_both_paths_agree(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--wallets", "300", "--repeat", "1", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results["wallets"] == 300
    assert results["same_state"] is True
    assert set(results["paths"]) == {"fast", "pure"}
    for row in results["paths"].values():
        assert set(row) == {"load_config", "parse", "schema", "checks_and_digest"}
    assert "machine:" in done.stderr and "ms of CPU per wallet" in done.stderr
