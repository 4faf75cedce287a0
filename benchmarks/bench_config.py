#!/usr/bin/env python3
"""Benchmark of loading and validating a configuration: the fast path against the pure path.

Generates a configuration directory of N wallets (default 10,000, in files of 2,000 so
each stays under the 1 MiB limit per file; each wallet has a name, an environment, a
line of credit, a limit with a unit, metadata and policies), then measures, in one run
and side by side:

- the whole `load_config` with the fast path (libyaml's C parser, the compiled schema
  validator) and with the pure path (`fast=False`: the pure-Python parser, jsonschema);
- each step on its own: parsing every file, the schema check, the meaning checks and
  the digest.

Times are CPU seconds of this process (`time.process_time`), the best of --repeat runs,
also given per wallet. The result of both paths is checked to be the same state.

Usage:
    python benchmarks/bench_config.py [--wallets 10000] [--repeat 3] [--json]

Prints the machine, then a table (to stderr with --json, which prints JSON on stdout).
Exit status 0 when both paths loaded the configuration to the same state. Timing
targets are reported, never enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from voltage_iac.config import load_config
from voltage_iac.config.build import check, state_digest
from voltage_iac.config.document import Issues
from voltage_iac.config.loader import config_files, decode, parse_text, read_bytes
from voltage_iac.config.schema import schema_issues

WALLETS_PER_FILE = 2_000
TARGET_MS_PER_WALLET = 0.1  # load and validation, CPU
ORG = "123e4567-e89b-12d3-a456-426614174000"
ENVIRONMENTS = {
    "staging": ("7a68a525-9d11-4c1e-a3dd-1c2bf1378ba2", "mutinynet"),
    "prod": ("0f3c2b1a-4d5e-4f60-8a7b-9c0d1e2f3a4b", "mainnet"),
}
LINES = {"main": "7df75323-84f1-4699-97da-776380a0aa81"}


def write_config(folder: Path, wallets: int) -> None:
    head = [
        "version: 1",
        "stack: bench",
        "provider:",
        f"  organization_id: {ORG}",
        "  api_url: emulator",
        "environments:",
        *(f"  {name}: {{id: {i}, network: {n}}}" for name, (i, n) in ENVIRONMENTS.items()),
        "lines_of_credit:",
        *(f"  {name}: {i}" for name, i in LINES.items()),
        "guards: {mass_change_share: 0.5}",
    ]
    (folder / "00-provider.yaml").write_text("\n".join(head) + "\n", encoding="utf-8")
    for start in range(0, wallets, WALLETS_PER_FILE):
        lines = ["version: 1", "wallets:"]
        for index in range(start, min(start + WALLETS_PER_FILE, wallets)):
            env = "staging" if index % 2 else "prod"
            lines += [
                f"  wallet-{index:05d}:",
                f"    name: Wallet {index:05d}",
                f"    environment: {env}",
                "    line_of_credit: main",
                f"    limit: {1000 + index} sat",
                f"    metadata: {{team: team-{index % 7}, cost-center: '{4000 + index % 50}'}}",
                "    policies: {max_payment_size_sats: 50000, transactions_per_minute: 60}",
            ]
        name = f"{10 + start // WALLETS_PER_FILE:02d}-wallets.yaml"
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def best_cpu(repeat: int, action: Callable[[], Any]) -> tuple[float, Any]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.process_time()
        result = action()
        best = min(best, time.process_time() - started)
    return best, result


def steps(folder: Path, fast: bool, repeat: int) -> dict[str, float]:
    texts = [(shown, decode(read_bytes(path))) for path, shown in config_files(folder)]

    def parse() -> list[Any]:
        issues = Issues()
        docs = [parse_text(text, shown, {}, issues, fast=fast) for shown, text in texts]
        assert not issues.items, issues.items
        return docs

    parse_s, docs = best_cpu(repeat, parse)

    def schema() -> None:
        issues = Issues()
        for doc in docs:
            schema_issues(doc, issues, fast=fast)
        assert not issues.items, issues.items

    schema_s, _ = best_cpu(repeat, schema)

    def meaning() -> Any:
        state = check(docs, Issues(), {})
        assert state is not None
        return state_digest(state)

    check_s, _ = best_cpu(repeat, meaning)
    return {"parse": parse_s, "schema": schema_s, "checks_and_digest": check_s}


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import fastjsonschema

        fast_version = fastjsonschema.VERSION
    except ImportError:
        fast_version = "not installed"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "os": platform.platform(),
        "pyyaml": yaml.__version__,
        "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
        "fastjsonschema": fast_version,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON results on stdout")
    args = parser.parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    info = machine()
    print(
        f"machine: {info['cpus']} CPUs, {info['cpu_model']}; Python {info['python']}; "
        f"{info['os']}; PyYAML {info['pyyaml']} (libyaml: {info['libyaml']}); "
        f"fastjsonschema {info['fastjsonschema']}",
        file=out,
    )
    results: dict[str, Any] = {"machine": info, "wallets": args.wallets, "paths": {}}
    with tempfile.TemporaryDirectory(prefix="voltage-iac-bench-config-") as tmp:
        folder = Path(tmp)
        write_config(folder, args.wallets)
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"configuration: {args.wallets} wallets, {size} bytes in {folder}", file=out)
        states = {}
        for name, fast in (("fast", True), ("pure", False)):
            total, state = best_cpu(
                args.repeat, lambda fast=fast: load_config(folder, environ={}, fast=fast)
            )
            states[name] = state
            row = {"load_config": total, **steps(folder, fast, args.repeat)}
            results["paths"][name] = row
    same = states["fast"] == states["pure"] and states["fast"].digest == states["pure"].digest
    results["same_state"] = same
    print(
        f"\n{'CPU seconds (best of ' + str(args.repeat) + ')':<28}{'fast':>10}{'pure':>10}"
        f"{'speed-up':>10}",
        file=out,
    )
    for key in ("load_config", "parse", "schema", "checks_and_digest"):
        fast_s, pure_s = results["paths"]["fast"][key], results["paths"]["pure"][key]
        ratio = pure_s / fast_s if fast_s else float("inf")
        print(f"{key:<28}{fast_s:>10.3f}{pure_s:>10.3f}{ratio:>9.1f}x", file=out)
    per_wallet = results["paths"]["fast"]["load_config"] / max(args.wallets, 1) * 1000
    results["fast_ms_per_wallet"] = per_wallet
    print(
        f"\nfast path: {per_wallet:.3f} ms of CPU per wallet (target about "
        f"{TARGET_MS_PER_WALLET} ms); same state from both paths: {same}",
        file=out,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
