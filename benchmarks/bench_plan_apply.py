#!/usr/bin/env python3
"""Benchmark of `plan` and `apply` against the Voltage API emulator served on loopback.

Starts `python -m voltage_iac emulator serve` in a subprocess (127.0.0.1, a port the OS
picks, a temporary database, optional added latency per request, a small visibility
delay) and measures the tool over real HTTP:

(a) a plan over N wallets that are already in sync (seeded exactly as voltage-iac would
    have created them), for N = wallets-plan, wallets-plan/10 and wallets-plan/100, with
    no added latency and with --latency-ms: time and API requests. The request count of
    a plan is per environment, not per wallet, and the benchmark checks that it is the
    same for every N. One more row shows the cost of wallets whose configuration
    manages policies (one policies read each).
(b) applying wallets-apply new wallets at parallelism 1 and at parallelism 16, with the
    added latency: time, requests and the speed-up.
(c) the peer, side by side in the same run: a Terraform-style refresh of the same
    wallets (refresh_peer.py: one GET per wallet, parallelism 10, httpx directly)
    against the same served emulator at the same latencies, and the ratio of its time
    to the time of voltage-iac's no-op plan.

Usage:
    python benchmarks/bench_plan_apply.py [--full] [--wallets-plan N] [--wallets-apply N]
                                          [--latency-ms 50] [--json] [--output FILE]

The default run is quick (500 / 64 wallets); --full measures 10,000 / 1,000 (and so the
ratios at 1,000 and 10,000 wallets). Prints a table (to stderr with --json, which prints
the results as JSON on stdout) and writes the results as JSON to --output FILE, by
default a new file in the user's cache folder (the path is printed); never to a tracked
file unless asked. Exit status: 0 when every measurement completed and the plan request
count did not depend on the wallet count; 1 otherwise. Timing targets are reported,
never enforced.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import refresh_peer
import yaml

from voltage_iac import __version__, identity
from voltage_iac.client import VoltageClient
from voltage_iac.config import load_config
from voltage_iac.model import DesiredState
from voltage_iac.providers.voltage import VoltageProvider
from voltage_iac.secret import Secret

HERE = Path(__file__).resolve().parent

# Fixed namespace for the benchmark's organizations, environments and lines of credit.
BENCH_NAMESPACE = uuid.UUID("3d0c5b1e-8f2a-5e47-9b6d-0a1c2e3f4b5d")
STACK = "bench"
NETWORK = "mutinynet"
WALLET_LIMIT = "1000 sat"
WALLET_LIMIT_MSATS = 1_000_000
LINE_LIMIT_MSATS = 10**15  # ample room for every wallet of a run
WALLETS_PER_FILE = 2_000  # keeps each configuration file well under the 1 MiB limit
POLICIES = {"max_payment_size_sats": 50_000}
API_KEY_ENV = "VOLTAGE_API_KEY"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 120.0
PARALLELISMS = (1, 16)
TARGET_SPEEDUP = 8.0


class BenchmarkError(Exception):
    """A measurement could not be completed or gave a wrong result."""


@dataclass(frozen=True)
class Measured:
    """What is measured: planning, and the engine's gated apply."""

    make_plan: Callable[..., Any]  # (desired, provider) -> Plan
    apply: Callable[..., Any]  # (desired, provider, parallelism, time_limit, on_plan) -> report


def engine() -> Measured:
    """The planning and applying functions measured: the one place they are imported from."""
    from voltage_iac.engine import ApplyEvents, ApplyOptions, Engine

    def make_plan(desired: Any, provider: Any) -> Any:
        return Engine(desired, provider).plan()

    def apply(
        desired: Any,
        provider: Any,
        parallelism: int,
        time_limit: float | None = None,
        on_plan: Callable[[Any], None] | None = None,
    ) -> Any:
        options = ApplyOptions(parallelism=parallelism, time_limit=time_limit)
        return Engine(desired, provider).apply(options, ApplyEvents(on_plan=on_plan)).report

    return Measured(make_plan=make_plan, apply=apply)


def default_output() -> Path:
    """A new results file in the user's cache folder (never a tracked file)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return cache / "voltage-iac" / "benchmarks" / f"bench-{stamp}-{os.getpid()}.json"


# -- the world -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One organization with one environment and one line of credit."""

    name: str
    wallets: int  # wallets already in the emulator (and in the configuration)
    configured: int  # wallets in the configuration
    policies: bool = False

    @property
    def organization_id(self) -> str:
        return str(uuid.uuid5(BENCH_NAMESPACE, f"organization/{self.name}"))

    @property
    def environment_id(self) -> str:
        return str(uuid.uuid5(BENCH_NAMESPACE, f"environment/{self.name}"))

    @property
    def line_id(self) -> str:
        return str(uuid.uuid5(BENCH_NAMESPACE, f"line/{self.name}"))


def wallet_key(index: int) -> str:
    return f"w{index:05d}"


def user_metadata(index: int) -> dict[str, str]:
    return {"team": f"team-{index % 10}", "cost-center": f"cc-{index % 7}"}


def seed_document(scenario: Scenario) -> dict[str, Any]:
    """The emulator seed: wallets exactly as voltage-iac creates them (deterministic id,
    ownership labels in the metadata)."""
    org, env, line = scenario.organization_id, scenario.environment_id, scenario.line_id
    wallets = []
    for i in range(scenario.wallets):
        key = wallet_key(i)
        wallets.append(
            {
                "id": identity.wallet_id(org, env, STACK, key, 0),
                "environment_id": env,
                "line_of_credit_id": line,
                "name": f"Wallet {i:05d}",
                "limit": WALLET_LIMIT_MSATS,
                "network": NETWORK,
                "metadata": identity.with_labels(user_metadata(i), STACK, key, 0),
            }
        )
    return {
        "organization_id": org,
        "environments": [{"id": env, "name": scenario.name, "network": NETWORK}],
        "lines_of_credit": [
            {"id": line, "environment_id": env, "network": NETWORK, "limit": LINE_LIMIT_MSATS}
        ],
        "wallets": wallets,
    }


def write_config(scenario: Scenario, directory: Path) -> Path:
    """A configuration directory matching the seeded world (files of at most
    WALLETS_PER_FILE wallets, as a large configuration would be split)."""
    directory.mkdir(parents=True, exist_ok=True)
    head = {
        "version": 1,
        "stack": STACK,
        "provider": {"organization_id": scenario.organization_id},
        "environments": {"main": {"id": scenario.environment_id, "network": NETWORK}},
        "lines_of_credit": {"credit": scenario.line_id},
    }
    # JSON is valid YAML; it keeps generating 10,000 wallets fast and exact.
    (directory / "00-provider.yaml").write_text(json.dumps(head, indent=1), encoding="utf-8")
    for start in range(0, scenario.configured, WALLETS_PER_FILE):
        wallets: dict[str, Any] = {}
        for i in range(start, min(start + WALLETS_PER_FILE, scenario.configured)):
            wallet: dict[str, Any] = {
                "name": f"Wallet {i:05d}",
                "environment": "main",
                "line_of_credit": "credit",
                "limit": WALLET_LIMIT,
                "metadata": user_metadata(i),
            }
            if scenario.policies:
                wallet["policies"] = dict(POLICIES)
            wallets[wallet_key(i)] = wallet
        text = json.dumps({"version": 1, "wallets": wallets}, indent=1)
        (directory / f"10-wallets-{start // WALLETS_PER_FILE:03d}.yaml").write_text(
            text, encoding="utf-8"
        )
    return directory


# -- the served emulator ---------------------------------------------------------------


@dataclass
class Served:
    base_url: str  # ends in /v1
    origin: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def served_emulator(
    db: Path, key: str, *, latency_ms: int, visibility_delay: float, logs: Path
) -> Iterator[Served]:
    """`voltage-iac emulator serve` on 127.0.0.1 in a subprocess; always stopped on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path = logs / f"emulator-{latency_ms}ms.out"
    err_path = logs / f"emulator-{latency_ms}ms.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLTAGE_")}
    env[API_KEY_ENV] = key
    command = [
        sys.executable,
        "-m",
        "voltage_iac",
        "emulator",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        str(db),
        "--api-key-env",
        API_KEY_ENV,
        "--latency-ms",
        str(latency_ms),
        "--visibility-delay",
        str(visibility_delay),
    ]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        try:
            base_url = _wait_for_url(process, out_path, err_path)
            origin = base_url[: -len("/v1")]
            _wait_healthy(origin)
            yield Served(base_url, origin, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)


def _wait_for_url(process: subprocess.Popen[bytes], out_path: Path, err_path: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    marker = "listening on "
    while time.monotonic() < deadline:
        text = out_path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            if marker in line:
                return line.split(marker, 1)[1].strip()
        if process.poll() is not None:
            detail = err_path.read_text(encoding="utf-8", errors="replace").strip()
            raise BenchmarkError(f"the emulator exited with status {process.returncode}: {detail}")
        time.sleep(0.05)
    raise BenchmarkError(f"the emulator did not start within {START_TIMEOUT:g}s")


def _wait_healthy(origin: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{origin}/_emulator/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.05)
    raise BenchmarkError("the emulator did not answer its health check")


def seed(served: Served, scenario: Scenario) -> float:
    started = time.perf_counter()
    response = httpx.post(
        f"{served.origin}/_emulator/seed", json=seed_document(scenario), timeout=HTTP_TIMEOUT
    )
    if response.status_code != 200:
        raise BenchmarkError(f"seeding {scenario.name} failed: {response.text[:500]}")
    return time.perf_counter() - started


def open_provider(served: Served, key: str, organization_id: str) -> VoltageProvider:
    client = VoltageClient(served.base_url, Secret(key), timeout=HTTP_TIMEOUT)
    return VoltageProvider(client, organization_id, description="benchmark emulator")


# -- measurements ----------------------------------------------------------------------


def measure_plan(
    served: Served, key: str, desired: DesiredState, expected: int, repeat: int
) -> dict[str, Any]:
    """Time make_plan (read + diff) `repeat` times; every plan must be a no-op over
    exactly `expected` owned wallets."""
    seconds: list[float] = []
    requests: set[int] = set()
    make_plan = engine().make_plan
    for _ in range(repeat):
        provider = open_provider(served, key, desired.organization_id)
        try:
            started = time.perf_counter()
            plan = make_plan(desired, provider)
            seconds.append(time.perf_counter() - started)
            requests.add(provider.client.request_count)
        finally:
            provider.close()
        if plan.has_changes:
            raise BenchmarkError(f"the plan over {expected} wallets in sync has changes")
        if len(plan.owned) != expected:
            raise BenchmarkError(
                f"the plan saw {len(plan.owned)} owned wallets, expected {expected}"
            )
    if len(requests) != 1:
        raise BenchmarkError(f"repeated plans sent different request counts: {sorted(requests)}")
    return {
        "requests": requests.pop(),
        "seconds_median": statistics.median(seconds),
        "seconds_min": min(seconds),
        "repeats": len(seconds),
    }


def peer_state(scenario: Scenario, config: Path) -> list[refresh_peer.StateEntry]:
    """What a Terraform-style tool would refresh for the same YAML: every configured
    wallet, by the id its state file records (the id voltage-iac gave it)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    state = []
    for path in sorted(config.glob("10-wallets-*.yaml")):
        wallets = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)["wallets"]
        for key, wallet in wallets.items():
            wallet_id = identity.wallet_id(
                scenario.organization_id, scenario.environment_id, STACK, key, 0
            )
            state.append(refresh_peer.StateEntry(wallet_id, wallet["name"], WALLET_LIMIT_MSATS))
    if len(state) != scenario.configured:
        raise BenchmarkError(
            f"the peer's state has {len(state)} wallets, not {scenario.configured}"
        )
    return state


def measure_peer(
    served: Served, key: str, scenario: Scenario, config: Path, repeat: int
) -> dict[str, Any]:
    try:
        return refresh_peer.measure(
            served.base_url, key, scenario.organization_id, peer_state(scenario, config), repeat
        )
    except (refresh_peer.RefreshError, httpx.HTTPError) as exc:
        raise BenchmarkError(f"the peer's refresh of {scenario.wallets} wallets: {exc}") from None


def plan_process(
    served: Served, key: str, config: Path, *, tree: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a no-op `voltage-iac plan --detailed-exitcode` run
    as a new process against `served` (importing the package from `tree` if given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLTAGE_")}
    env[API_KEY_ENV] = key
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    command = [sys.executable, "-m", "voltage_iac", "plan", str(config)]
    return [*command, "--api-url", served.base_url, "--detailed-exitcode"], env


def measure_cli_plan(served: Served, key: str, config: Path, deadline: float) -> float:
    """Wall-clock time of `voltage-iac plan --detailed-exitcode` (a new process: start-up,
    configuration loading, reading, diffing and printing)."""
    command, env = plan_process(served, key, config)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            timeout=max(1.0, deadline - time.monotonic()),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError("voltage-iac plan did not finish before the time limit") from None
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = done.stdout.decode(errors="replace")[-400:] + done.stderr.decode(errors="replace")
        raise BenchmarkError(f"voltage-iac plan exited with {done.returncode}: {tail[-800:]}")
    return seconds


def measure_apply(
    served: Served, key: str, config: Path, count: int, parallelism: int, deadline: float
) -> dict[str, Any]:
    """Plan `count` creates, apply them at `parallelism`, then check a new plan is empty."""
    desired = load_config(config)
    measured = engine()
    provider = open_provider(served, key, desired.organization_id)
    marks: dict[str, float] = {}

    def planned(plan: Any) -> None:
        # The engine plans afresh before it applies: time and count from here on.
        if plan.counts()["create"] != count or len(plan.actionable) != count:
            raise BenchmarkError(f"expected {count} creates, the plan says {plan.summary_line()}")
        marks["requests"] = provider.client.request_count
        marks["started"] = time.perf_counter()

    try:
        report = measured.apply(
            desired,
            provider,
            parallelism,
            time_limit=max(0.0, deadline - time.monotonic()),
            on_plan=planned,
        )
        seconds = time.perf_counter() - marks["started"]
        apply_requests = provider.client.request_count - int(marks["requests"])
        if not report.ok:
            first = (report.failed or report.not_started)[:1]
            why = first[0].message if first else "interrupted"
            raise BenchmarkError(
                f"apply at parallelism {parallelism}: {len(report.failed)} failed, "
                f"{len(report.not_started)} not started ({why or 'time limit reached'})"
            )
        converged = not measured.make_plan(desired, provider).has_changes
    finally:
        provider.close()
    if not converged:
        raise BenchmarkError(f"after apply at parallelism {parallelism} the plan still has changes")
    return {
        "parallelism": parallelism,
        "wallets": count,
        "seconds": seconds,
        "requests": apply_requests,
        "requests_per_wallet": apply_requests / count if count else 0.0,
        "wallets_per_second": count / seconds if seconds > 0 else None,
        "converged": converged,
    }


def apply_policies(served: Served, key: str, desired: DesiredState) -> None:
    """Bring the seeded wallets' policies in line with the configuration (set-up only)."""
    provider = open_provider(served, key, desired.organization_id)
    try:
        report = engine().apply(desired, provider, 16)
    finally:
        provider.close()
    if not report.ok:
        raise BenchmarkError("setting up policies failed")


# -- machine and output ------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "voltage_iac": __version__,
    }


def render_table(results: dict[str, Any]) -> str:
    m = results["machine"]
    p = results["parameters"]
    lines = [
        f"voltage-iac {m['voltage_iac']} benchmark, {results['started_at']}",
        f"machine: {m['cpu_count']} CPU(s), {m['cpu_model']}; "
        f"{m['implementation']} {m['python']}; {m['os']}",
        f"emulator served on 127.0.0.1, visibility delay {p['visibility_delay']:g}s",
        "",
        f"(a) plan, every wallet already in sync (make_plan over HTTP; median of {p['repeat']})",
        f"{'wallets':>8} {'policies':>8} {'latency':>8} {'requests':>8} {'seconds':>9} "
        f"{'load cfg s':>10} {'CLI plan s':>10}",
    ]
    for row in results["plan"]:
        cli = f"{row['cli_seconds']:.2f}" if row.get("cli_seconds") is not None else "-"
        lines.append(
            f"{row['wallets']:>8} {'yes' if row['policies'] else 'no':>8} "
            f"{str(row['latency_ms']) + ' ms':>8} {row['requests']:>8} "
            f"{row['seconds_median']:>9.3f} {row['config_load_seconds']:>10.2f} {cli:>10}"
        )
    check = results["plan_requests_independent_of_wallets"]
    lines.append(
        "plan requests independent of the wallet count (no policies): " + ("yes" if check else "NO")
    )
    lines += [
        "",
        f"(b) apply {p['wallets_apply']} new wallets, {p['latency_ms']} ms added per request",
        f"{'parallelism':>11} {'seconds':>9} {'requests':>8} {'req/wallet':>10} {'wallets/s':>9} "
        f"{'bound s':>8} {'/ bound':>8}",
    ]
    for row in results["apply"]:
        rate = row["wallets_per_second"]
        ratio = row.get("bound_ratio")
        lines.append(
            f"{row['parallelism']:>11} {row['seconds']:>9.2f} {row['requests']:>8} "
            f"{row['requests_per_wallet']:>10.2f} {rate:>9.1f} "
            f"{row.get('bound_seconds', 0.0):>8.2f} "
            + (f"{ratio:>7.2f}x" if ratio is not None else f"{'-':>8}")
        )
    lines.append(
        "bound: wallets / parallelism x requests per wallet x latency (the requests actually "
        "sent, each round of them one latency)"
    )
    speedup = results.get("apply_speedup")
    if speedup is not None:
        verdict = "met" if speedup >= TARGET_SPEEDUP else "missed"
        lines.append(
            f"speed-up, parallelism 16 over 1: {speedup:.1f}x "
            f"(target {TARGET_SPEEDUP:g}x: {verdict})"
        )
    lines += [
        "",
        "(c) voltage-iac no-op plan vs peer refresh (Terraform-style: one GET per wallet,",
        f"    parallelism {refresh_peer.PARALLELISM}, same emulator and latency; "
        f"median of {p['repeat']})",
        f"{'wallets':>8} {'latency':>8} {'plan req':>8} {'plan s':>8} {'peer req':>8} "
        f"{'peer s':>8} {'peer / plan':>11}",
    ]
    for row in results["peer"]:
        lines.append(
            f"{row['wallets']:>8} {str(row['latency_ms']) + ' ms':>8} "
            f"{row['plan_requests']:>8} {row['plan_seconds_median']:>8.3f} "
            f"{row['requests']:>8} {row['seconds_median']:>8.3f} {row['ratio']:>10.1f}x"
        )
    for row in results["peer"]:
        lines.append(
            f"voltage-iac no-op plan vs peer refresh, {row['wallets']} wallets at "
            f"{row['latency_ms']} ms: {row['plan_seconds_median']:.3f} s vs "
            f"{row['seconds_median']:.3f} s (the refresh takes {row['ratio']:.1f}x as long)"
        )
    lines.append(f"total benchmark time: {results['total_seconds']:.1f}s")
    return "\n".join(lines) + "\n"


# -- the run -----------------------------------------------------------------------------


def plan_sizes(wallets_plan: int) -> list[int]:
    return sorted({n for n in (wallets_plan // 100, wallets_plan // 10, wallets_plan) if n > 0})


def run(args: argparse.Namespace, log: TextIO) -> dict[str, Any]:
    began = time.monotonic()
    deadline = began + args.max_seconds
    key = "bench-" + secrets.token_urlsafe(24)
    latencies = sorted({0, args.latency_ms})
    sizes = plan_sizes(args.wallets_plan)
    policy_size = min(1_000, max(1, args.wallets_plan // 10))
    plan_scenarios = [Scenario(f"plan-{n}", n, n) for n in sizes]
    policy_scenario = Scenario(f"policies-{policy_size}", policy_size, policy_size, True)
    apply_scenarios = {p: Scenario(f"apply-p{p}", 0, args.wallets_apply) for p in PARALLELISMS}

    def check_time(what: str) -> None:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"time limit of {args.max_seconds:g}s reached before {what}")

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:7.1f}s] {text}", file=log, flush=True)

    results: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "parameters": {
            "wallets_plan": args.wallets_plan,
            "plan_sizes": sizes,
            "policy_wallets": policy_size,
            "wallets_apply": args.wallets_apply,
            "latency_ms": args.latency_ms,
            "visibility_delay": args.visibility_delay,
            "repeat": args.repeat,
            "quick": args.quick,
        },
        "plan": [],
        "peer": [],
        "apply": [],
    }
    with tempfile.TemporaryDirectory(prefix="voltage-iac-bench-") as tmp:
        work = Path(tmp)
        db = work / "emulator.db"
        configs = {
            s.name: write_config(s, work / "config" / s.name)
            for s in [*plan_scenarios, policy_scenario, *apply_scenarios.values()]
        }
        loaded: dict[str, tuple[DesiredState, float]] = {}
        for s in [*plan_scenarios, policy_scenario]:
            started = time.perf_counter()
            desired = load_config(configs[s.name])
            loaded[s.name] = (desired, time.perf_counter() - started)
            say(f"loaded configuration of {s.configured} wallets in {loaded[s.name][1]:.2f}s")
        for latency in latencies:
            check_time(f"the plans at {latency} ms")
            with served_emulator(
                db,
                key,
                latency_ms=latency,
                visibility_delay=args.visibility_delay,
                logs=work / "logs",
            ) as served:
                say(f"emulator serving at {served.base_url} with {latency} ms added latency")
                if latency == latencies[0]:
                    # The database outlives the server: seed once, serve it at each latency.
                    for s in [*plan_scenarios, policy_scenario, *apply_scenarios.values()]:
                        say(f"seeded {s.wallets} wallets ({s.name}) in {seed(served, s):.2f}s")
                    apply_policies(served, key, loaded[policy_scenario.name][0])
                    say(f"policies set on the {policy_size} wallets of {policy_scenario.name}")
                rows = list(plan_scenarios)
                if latency == 0:
                    rows.append(policy_scenario)
                for s in rows:
                    check_time(f"the plan over {s.wallets} wallets")
                    desired, load_seconds = loaded[s.name]
                    row = {
                        "wallets": s.wallets,
                        "policies": s.policies,
                        "latency_ms": latency,
                        "config_load_seconds": load_seconds,
                        **measure_plan(served, key, desired, s.wallets, args.repeat),
                    }
                    if s is plan_scenarios[-1]:
                        row["cli_seconds"] = measure_cli_plan(
                            served, key, configs[s.name], deadline
                        )
                    results["plan"].append(row)
                    say(
                        f"plan over {s.wallets} wallets at {latency} ms: {row['requests']} "
                        f"requests, {row['seconds_median']:.3f}s"
                    )
                    if s.policies:
                        continue
                    check_time(f"the peer's refresh of {s.wallets} wallets")
                    peer = measure_peer(served, key, s, configs[s.name], args.repeat)
                    peer.update(
                        wallets=s.wallets,
                        latency_ms=latency,
                        plan_requests=row["requests"],
                        plan_seconds_median=row["seconds_median"],
                        ratio=peer["seconds_median"] / row["seconds_median"],
                    )
                    results["peer"].append(peer)
                    say(
                        f"peer refresh of {s.wallets} wallets at {latency} ms: "
                        f"{peer['requests']} requests, {peer['seconds_median']:.3f}s "
                        f"({peer['ratio']:.1f}x the plan)"
                    )
                if latency == latencies[-1]:
                    for p, s in apply_scenarios.items():
                        check_time(f"the apply at parallelism {p}")
                        row = measure_apply(served, key, configs[s.name], s.configured, p, deadline)
                        row["latency_ms"] = latency
                        # The round-trip bound with the requests actually sent: every
                        # round of `p` requests costs one latency.
                        row["bound_seconds"] = (
                            row["wallets"] / p * row["requests_per_wallet"] * latency / 1000
                        )
                        row["bound_ratio"] = (
                            row["seconds"] / row["bound_seconds"] if row["bound_seconds"] else None
                        )
                        results["apply"].append(row)
                        say(
                            f"apply of {s.configured} wallets at parallelism {p}: "
                            f"{row['seconds']:.2f}s, {row['requests']} requests"
                        )
    plain = [r for r in results["plan"] if not r["policies"]]
    per_latency: dict[int, set[int]] = {r["latency_ms"]: set() for r in plain}
    for r in plain:
        per_latency[r["latency_ms"]].add(r["requests"])
    results["plan_requests_independent_of_wallets"] = all(len(v) == 1 for v in per_latency.values())
    by_p = {r["parallelism"]: r for r in results["apply"]}
    if 1 in by_p and 16 in by_p and by_p[16]["seconds"] > 0:
        results["apply_speedup"] = by_p[1]["seconds"] / by_p[16]["seconds"]
        results["apply_speedup_target"] = TARGET_SPEEDUP
        results["apply_speedup_target_met"] = results["apply_speedup"] >= TARGET_SPEEDUP
    results["total_seconds"] = time.monotonic() - began
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark voltage-iac plan and apply against the emulator on loopback."
    )
    parser.add_argument(
        "--wallets-plan", type=int, help="wallets of the largest plan (500; --full: 10000)"
    )
    parser.add_argument(
        "--wallets-apply", type=int, help="wallets created per apply (64; --full: 1000)"
    )
    parser.add_argument("--latency-ms", type=int, default=50, help="added per request (50)")
    parser.add_argument(
        "--visibility-delay", type=float, default=0.02, help="seconds until a write shows (0.02)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="plans and refreshes timed per row; the median is shown (1; --full: 3)",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="small sizes (500 plan, 64 apply wallets): the default"
    )
    size.add_argument(
        "--full",
        action="store_true",
        help="10,000 plan and 1,000 apply wallets, 3 repeats (minutes: see docs/benchmarks.md)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--output",
        "--out",
        dest="output",
        type=Path,
        help="results file (default: a new file in ~/.cache/voltage-iac/benchmarks/)",
    )
    parser.add_argument(
        "--no-output",
        "--no-out",
        dest="no_output",
        action="store_true",
        help="do not write a results file",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=1800.0, help="give up after this long (1800)"
    )
    args = parser.parse_args(argv)
    args.quick = not args.full
    if args.wallets_plan is None:
        args.wallets_plan = 10_000 if args.full else 500
    if args.wallets_apply is None:
        args.wallets_apply = 1_000 if args.full else 64
    if args.repeat is None:
        args.repeat = 3 if args.full else 1
    if args.wallets_plan < 1 or args.wallets_apply < 1 or args.repeat < 1:
        parser.error("--wallets-plan, --wallets-apply and --repeat must be at least 1")
    if args.latency_ms < 0 or args.visibility_delay < 0 or args.max_seconds <= 0:
        parser.error("--latency-ms and --visibility-delay must be >= 0, --max-seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = sys.stderr
    try:
        results = run(args, log)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    table = render_table(results)
    if args.json:
        print(table, file=sys.stderr, end="")
        print(json.dumps(results, indent=2))
    else:
        print(table, end="")
    if not args.no_output:
        output = args.output or default_output()
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {output}", file=sys.stderr)
    if not results["plan_requests_independent_of_wallets"]:
        print(
            "benchmark failed: the plan request count depends on the wallet count", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
