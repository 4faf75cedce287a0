#!/usr/bin/env python3
"""Benchmark: a no-op plan over one environment with many wallets (default up to 100,000).

For each size, seeds a served emulator on 127.0.0.1 with that many wallets exactly as
voltage-iac creates them, writes the matching configuration, and runs
`voltage-iac plan --detailed-exitcode` as a new process: it must exit 0 (no changes).
Prints, per size, the wall time, the CPU time and the peak memory (max RSS) of that
process, and the time per wallet, so linearity can be read off one run. The machine is
printed too. Nothing here is a test: rerun it to check a claim in docs/benchmarks.md.

    python benchmarks/bench_large_env.py                 # 10,000, 50,000 and 100,000
    python benchmarks/bench_large_env.py --sizes 1000 5000
"""

from __future__ import annotations

import argparse
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_plan_apply as bench


def plan_once(served: bench.Served, key: str, config: Path, limit: float) -> dict[str, float]:
    command, env = bench.plan_process(served, key, config)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=limit, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace")[-800:]
        raise bench.BenchmarkError(f"plan exited with {done.returncode}: {tail}")
    return {
        "seconds": seconds,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        # ru_maxrss of children is the largest child so far: sizes run in rising order
        "max_rss_mb": after.ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    deadline = time.monotonic() + args.max_seconds
    key = secrets.token_urlsafe(24)
    print(f"machine: {bench.machine()}")
    header = ("wallets", "seed s", "plan s", "cpu s", "ms/wallet", "max RSS MB")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (8, 8, 8, 8, 10, 11), strict=True)))
    with tempfile.TemporaryDirectory(prefix="voltage-iac-large-") as tmp:
        work = Path(tmp)
        with bench.served_emulator(
            work / "emulator.db", key, latency_ms=0, visibility_delay=0.0, logs=work / "logs"
        ) as served:
            for size in sizes:
                scenario = bench.Scenario(f"large-{size}", size, size)
                seeded = bench.seed(served, scenario)
                config = bench.write_config(scenario, work / f"config-{size}")
                row = plan_once(served, key, config, max(1.0, deadline - time.monotonic()))
                print(
                    f"{size:>8} {seeded:>8.1f} {row['seconds']:>8.1f} {row['cpu']:>8.1f} "
                    f"{1000 * row['cpu'] / size:>10.3f} {row['max_rss_mb']:>11.0f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
