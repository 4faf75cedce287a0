#!/usr/bin/env python3
"""Benchmark: this checkout's no-op plan side by side with a previous release's.

Exports a git ref (default: the newest release tag, else BASELINE_COMMIT, the last
commit before the performance work) into a temporary directory with `git archive`,
then runs `voltage-iac plan --detailed-exitcode` as a new process from each tree in
turn (PYTHONPATH pointing at that tree, the installed dependencies reused), against the
same served emulator (127.0.0.1, no added latency) seeded with the same wallets, on the
same generated configuration. Both must report no changes (exit 0). Prints both times
(median of --repeat, runs interleaved so load drifts hit both alike), the ratio of this
checkout's time to the release's, the machine and its load. The temporary tree and the
emulator are removed on exit, also on failure; --max-seconds bounds the whole run.

    python benchmarks/bench_release.py                    # 10,000 wallets, 3 runs each
    python benchmarks/bench_release.py --ref v0.1.0 --wallets 1000 --repeat 1

Results go to a new JSON file in ~/.cache/voltage-iac/benchmarks/ (or --output FILE, or
--no-output), never to a tracked file unless asked. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_plan_apply as bench

REPO = Path(__file__).resolve().parent.parent
# No release is tagged yet: the last commit before the performance work (the state of
# 2026-11-21: pure-Python YAML and jsonschema, deepdiff, no shared listings).
BASELINE_COMMIT = "241ebdafb9836d35a70ebf729737443160f8b8a4"
TARGET_RATIO = 0.25


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise bench.BenchmarkError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def default_ref() -> str:
    """The newest release tag (by version order), else the baseline commit."""
    tags = [t for t in git("tag", "--list", "v*", "--sort=-v:refname").splitlines() if t]
    return tags[0] if tags else BASELINE_COMMIT


def export_tree(ref: str, into: Path) -> str:
    """`git archive` of ref into `into`; returns the commit id."""
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    data = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "voltage_iac"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if data.returncode != 0:
        raise bench.BenchmarkError(f"git archive {ref}: {data.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # Python before 3.10.12: the archive is git's own output
            tar.extractall(into)
    if not (into / "voltage_iac" / "__init__.py").is_file():
        raise bench.BenchmarkError(f"{ref} has no voltage_iac package")
    return commit


def plan_process(
    tree: Path, served: bench.Served, key: str, config: Path, cwd: Path, limit: float
) -> float:
    """Wall time of `python -m voltage_iac plan --detailed-exitcode` importing from tree."""
    command, env = bench.plan_process(served, key, config, tree=tree)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=env, cwd=cwd, capture_output=True, timeout=max(1.0, limit), check=False
        )
    except subprocess.TimeoutExpired:
        raise bench.BenchmarkError(f"the plan from {tree} passed the time limit") from None
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace")[-800:]
        raise bench.BenchmarkError(f"the plan from {tree} exited {done.returncode}: {tail}")
    return seconds


def imported_from(tree: Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [sys.executable, "-c", "import voltage_iac; print(voltage_iac.__file__)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise bench.BenchmarkError(f"cannot import voltage_iac from {tree}: {done.stderr[-400:]}")
    return done.stdout.strip()


def run(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + args.max_seconds
    key = "bench-" + secrets.token_urlsafe(24)
    ref = args.ref or default_ref()
    results: dict[str, Any] = {
        "machine": bench.machine(),
        "load_before": os.getloadavg(),
        "ref": ref,
        "wallets": args.wallets,
        "repeat": args.repeat,
    }
    with tempfile.TemporaryDirectory(prefix="voltage-iac-release-") as tmp:
        work = Path(tmp)
        old_tree = work / "release"
        old_tree.mkdir()
        results["ref_commit"] = export_tree(ref, old_tree)
        results["head_commit"] = git("rev-parse", "HEAD")
        run_dir = work / "cwd"  # neither tree: `python -m` puts the cwd first on sys.path
        run_dir.mkdir()
        for tree in (REPO, old_tree):
            where = imported_from(tree, run_dir)
            if not where.startswith(str(tree)):
                raise bench.BenchmarkError(f"voltage_iac imported from {where}, not {tree}")
        scenario = bench.Scenario(f"release-{args.wallets}", args.wallets, args.wallets)
        config = bench.write_config(scenario, work / "config")
        with bench.served_emulator(
            work / "emulator.db", key, latency_ms=0, visibility_delay=0.0, logs=work / "logs"
        ) as served:
            results["seed_seconds"] = bench.seed(served, scenario)
            times: dict[str, list[float]] = {"current": [], "release": []}
            for _ in range(args.repeat):
                for name, tree in (("release", old_tree), ("current", REPO)):
                    limit = deadline - time.monotonic()
                    if limit <= 0:
                        raise bench.BenchmarkError(f"time limit of {args.max_seconds:g}s reached")
                    times[name].append(plan_process(tree, served, key, config, run_dir, limit))
    results["load_after"] = os.getloadavg()
    results["seconds"] = times
    current = statistics.median(times["current"])
    release = statistics.median(times["release"])
    results["current_seconds_median"] = current
    results["release_seconds_median"] = release
    results["ratio"] = current / release
    results["target_ratio"] = TARGET_RATIO
    results["target_met"] = results["ratio"] <= TARGET_RATIO
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ref", help="git ref of the release (default: newest v* tag, else 241ebda)"
    )
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--output", type=Path, help="results file (default: in the cache folder)")
    parser.add_argument("--no-output", action="store_true")
    args = parser.parse_args(argv)
    if args.wallets < 1 or args.repeat < 1 or args.max_seconds <= 0:
        parser.error("--wallets and --repeat must be at least 1, --max-seconds > 0")
    try:
        results = run(args)
    except bench.BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    m = results["machine"]
    print(
        f"machine: {m['cpu_count']} CPU(s), {m['cpu_model']}; {m['implementation']} "
        f"{m['python']}; load {results['load_before'][0]:.2f} -> {results['load_after'][0]:.2f}"
    )
    print(
        f"no-op plan over {args.wallets} wallets, whole process, 0 ms latency, "
        f"median of {args.repeat}:"
    )
    print(
        f"  release {results['ref']} ({results['ref_commit'][:12]}): "
        f"{results['release_seconds_median']:.2f} s"
    )
    head = results["head_commit"][:12]
    print(f"  this checkout ({head}): {results['current_seconds_median']:.2f} s")
    verdict = "met" if results["target_met"] else "missed"
    print(f"  ratio: {results['ratio']:.3f}x (target <= {TARGET_RATIO:g}x: {verdict})")
    if not args.no_output:
        output = args.output or bench.default_output().with_name(
            bench.default_output().name.replace("bench-", "release-")
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
