#!/usr/bin/env python3
"""Benchmark: rendering a plan of many changes as text, Markdown and JSON.

Seeds a served emulator (127.0.0.1, no added latency) with half of --changes wallets,
each under another name than the configuration gives it, and writes a configuration of
--changes wallets: the plan then holds --changes/2 updates (renames) and --changes/2
creates. Times each renderer on that plan (the best of --repeat, wall clock, one
thread) and prints each time with the size of its output, the machine and its load.
Nothing here is a test; no file is written.

    python benchmarks/bench_render.py                    # 10,000 changes, best of 3
    python benchmarks/bench_render.py --changes 1000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_plan_apply as bench
import httpx

from voltage_iac.config import load_config
from voltage_iac.engine import Engine
from voltage_iac.render.jsonfmt import render_json
from voltage_iac.render.markdown import render_markdown
from voltage_iac.render.text import render_text

TARGET_SECONDS = 1.0


def seed_renamed(served: bench.Served, scenario: bench.Scenario) -> None:
    document = bench.seed_document(scenario)
    for wallet in document["wallets"]:
        wallet["name"] = "Old " + wallet["name"]
    response = httpx.post(
        f"{served.origin}/_emulator/seed", json=document, timeout=bench.HTTP_TIMEOUT
    )
    if response.status_code != 200:
        raise bench.BenchmarkError(f"seeding failed: {response.text[:500]}")


def best(render: Callable[[], str], repeat: int) -> tuple[float, int]:
    seconds = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = len(render())
        seconds.append(time.perf_counter() - started)
    return min(seconds), size


def run(args: argparse.Namespace) -> dict[str, Any]:
    key = "bench-" + secrets.token_urlsafe(24)
    seeded = bench.Scenario(f"render-{args.changes}", args.changes // 2, args.changes)
    with tempfile.TemporaryDirectory(prefix="voltage-iac-render-") as tmp:
        work = Path(tmp)
        config = bench.write_config(seeded, work / "config")
        desired = load_config(config)
        with bench.served_emulator(
            work / "emulator.db", key, latency_ms=0, visibility_delay=0.0, logs=work / "logs"
        ) as served:
            seed_renamed(served, seeded)
            provider = bench.open_provider(served, key, desired.organization_id)
            try:
                plan = Engine(desired, provider).plan()
            finally:
                provider.close()
    counts = plan.counts()
    if len(plan.actionable) != args.changes:
        raise bench.BenchmarkError(f"expected {args.changes} changes: {plan.summary_line()}")
    renderers: dict[str, Callable[[], str]] = {
        "text": lambda: render_text(plan),
        "markdown": lambda: render_markdown(plan),
        "json": lambda: render_json(plan),
    }
    rows = {}
    for name, render in renderers.items():
        seconds, size = best(render, args.repeat)
        rows[name] = {"seconds": seconds, "chars": size}
    return {"counts": counts, "renders": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.changes < 2 or args.repeat < 1:
        parser.error("--changes must be at least 2 and --repeat at least 1")
    load = os.getloadavg()
    try:
        results = run(args)
    except bench.BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    m = bench.machine()
    print(
        f"machine: {m['cpu_count']} CPU(s), {m['cpu_model']}; {m['implementation']} "
        f"{m['python']}; load {load[0]:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    counts = ", ".join(f"{v} {k}" for k, v in results["counts"].items() if v)
    print(f"plan of {args.changes} changes ({counts}), best of {args.repeat}:")
    for name, row in results["renders"].items():
        verdict = "met" if row["seconds"] < TARGET_SECONDS else "missed"
        print(
            f"  {name:<8} {row['seconds']:7.3f} s  {row['chars']:>10,} chars  "
            f"(target < {TARGET_SECONDS:g} s: {verdict})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
