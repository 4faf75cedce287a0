"""Running `voltage-iac emulator serve` in a child process on 127.0.0.1, for tests.

One place for starting, waiting on and stopping a served emulator; used by the
`served_emulator` fixture (conftest.py) and the reliability tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TEST_KEY = "vk-test-Zq8Yh3Ld0pKe7Rw1"  # a distinctive key, searched for in every output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServedEmulator:
    """`voltage-iac emulator serve` in a child process, steered over its admin endpoints."""

    base_url: str
    admin_url: str
    db_path: Path
    process: subprocess.Popen[bytes]
    admin: httpx.Client = field(repr=False)

    def state(self) -> dict[str, Any]:
        answer = self.admin.get(self.admin_url + "/state")
        answer.raise_for_status()
        return dict(answer.json())

    def faults(self, **settings: Any) -> None:
        self.admin.patch(self.admin_url + "/faults", json=settings).raise_for_status()


@contextmanager
def served_emulator(tmp: Path, *, latency_ms: int = 0) -> Iterator[ServedEmulator]:
    port = free_port()
    env = {**os.environ, "VOLTAGE_API_KEY": TEST_KEY}
    log_path = tmp / f"serve-{port}.log"
    db_path = tmp / f"served-{port}.db"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voltage_iac",
                "emulator",
                "serve",
                "--port",
                str(port),
                "--db",
                str(db_path),
                "--visibility-delay",
                "0.05",
                "--latency-ms",
                str(latency_ms),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        origin = f"http://127.0.0.1:{port}"
        admin = httpx.Client(timeout=10.0)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    admin.get(origin + "/_emulator/health", timeout=1.0)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            "emulator serve did not start: " + log_path.read_text()
                        ) from None
                    time.sleep(0.05)
            yield ServedEmulator(origin + "/v1", origin + "/_emulator", db_path, process, admin)
        finally:
            admin.close()
            stop_process(process)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """Terminate, then kill; always reaps the child."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
