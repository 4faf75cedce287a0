#!/usr/bin/env python3
"""Benchmark: how long `voltage-iac --version` takes, as a new process.

Runs the installed `voltage-iac` command (the one beside this Python, else
`python -m voltage_iac`) --repeat times, and `python -c pass` as many times for the
interpreter's own start-up; prints the median and the slowest of each, the machine and
its load. Nothing here is a test; no file is written.

    python benchmarks/bench_startup.py                # 20 runs each
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_plan_apply as bench

TARGET_SECONDS = 0.15


def command() -> list[str]:
    beside = Path(sys.executable).with_name("voltage-iac")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("voltage-iac")
    return [found] if found else [sys.executable, "-m", "voltage_iac"]


def timed(argv: list[str], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise bench.BenchmarkError(f"{' '.join(argv)} exited {done.returncode}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    load = os.getloadavg()
    tool = [*command(), "--version"]
    try:
        version = timed(tool, args.repeat)
        python = timed([sys.executable, "-c", "pass"], args.repeat)
    except bench.BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    m = bench.machine()
    print(
        f"machine: {m['cpu_count']} CPU(s), {m['cpu_model']}; {m['implementation']} "
        f"{m['python']}; load {load[0]:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    median = statistics.median(version)
    verdict = "met" if median < TARGET_SECONDS else "missed"
    print(
        f"{' '.join(tool)}: median {median:.3f} s, slowest {max(version):.3f} s "
        f"({args.repeat} runs; target < {TARGET_SECONDS:g} s: {verdict})"
    )
    print(
        f"python -c pass: median {statistics.median(python):.3f} s, "
        f"slowest {max(python):.3f} s (the interpreter alone)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
