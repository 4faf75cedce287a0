"""A Terraform-style refresh of Voltage wallets: the side-by-side peer of the benchmark.

Terraform (and tools built the same way) plan by refreshing every resource of their
state: one read per resource, by id, `-parallelism=10` at a time, then a diff. This
module does exactly that over the Voltage API with httpx directly, and nothing of
voltage-iac: for each wallet of the state (its id, and the name and limit the YAML
configures), one `GET /organizations/{org}/wallets/{id}`, ten at a time, each answer
compared with the configuration.

It stands for the cost of that design, not for any particular tool: voltage-iac reads
a whole environment with one listing instead (see docs/benchmarks.md).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

PARALLELISM = 10  # Terraform's default -parallelism


class RefreshError(Exception):
    """A read failed, or a wallet did not match its configuration."""


@dataclass(frozen=True)
class StateEntry:
    """One wallet as a state file records it, with what the configuration says."""

    wallet_id: str
    name: str
    limit_msats: int


@dataclass
class Refresh:
    seconds: float
    requests: int
    in_sync: int  # wallets whose live name and limit match the configuration


def refresh(
    base_url: str,
    api_key: str,
    organization_id: str,
    state: Sequence[StateEntry],
    *,
    parallelism: int = PARALLELISM,
    timeout: float = 120.0,
) -> Refresh:
    """Read every wallet of `state` by id, `parallelism` at a time, and compare."""
    requests = 0
    counter = threading.Lock()
    limits = httpx.Limits(max_connections=parallelism, max_keepalive_connections=parallelism)
    headers = {"x-api-key": api_key, "accept": "application/json"}
    with httpx.Client(base_url=base_url, headers=headers, limits=limits, timeout=timeout) as http:

        def read(entry: StateEntry) -> bool:
            nonlocal requests
            answer = http.get(f"/organizations/{organization_id}/wallets/{entry.wallet_id}")
            with counter:
                requests += 1
            if answer.status_code != 200:
                raise RefreshError(f"GET wallet {entry.wallet_id}: HTTP {answer.status_code}")
            live: dict[str, Any] = answer.json()
            return bool(live.get("name") == entry.name and live.get("limit") == entry.limit_msats)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            matches = list(pool.map(read, state))
        seconds = time.perf_counter() - started
    return Refresh(seconds, requests, sum(matches))


def measure(
    base_url: str,
    api_key: str,
    organization_id: str,
    state: Sequence[StateEntry],
    repeat: int,
    *,
    parallelism: int = PARALLELISM,
) -> dict[str, Any]:
    """`repeat` refreshes; every one must send one request per wallet and find all in sync."""
    seconds = []
    for _ in range(repeat):
        done = refresh(base_url, api_key, organization_id, state, parallelism=parallelism)
        if done.requests != len(state):
            raise RefreshError(f"{done.requests} requests for {len(state)} wallets")
        if done.in_sync != len(state):
            raise RefreshError(f"{len(state) - done.in_sync} wallet(s) not in sync")
        seconds.append(done.seconds)
    return {
        "parallelism": parallelism,
        "requests": len(state),
        "seconds_median": statistics.median(seconds),
        "seconds_min": min(seconds),
        "repeats": len(seconds),
    }
