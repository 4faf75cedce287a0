"""Writes keep their connection: an accepted write's answer is read to its end (and
dropped), so the next request reuses the connection instead of opening a new one. An
apply of many creates depends on it (one new connection per create cost a round trip)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from voltage_iac.http import HttpCore


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API and the emulator do
    ports: ClassVar[set[int]] = set()
    senders: ClassVar[dict[str, set[int]]] = {}
    body = b'{"accepted": true}'

    def _answer(self, status: int) -> None:
        type(self).ports.add(self.client_address[1])
        sender = self.headers.get("x-sender")
        if sender is not None:
            type(self).senders.setdefault(sender, set()).add(self.client_address[1])
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self) -> None:
        self._answer(202)

    def do_GET(self) -> None:
        self._answer(200)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.ports = set()
    _Handler.senders = {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("body", [b"", b'{"accepted": true}'])
def test_writes_and_reads_share_one_connection(server: str, body: bytes) -> None:
    _Handler.body = body
    core = HttpCore(server, timeout=5.0, deadline=10.0)
    try:
        for n in range(5):
            answer = core.request(
                "POST", "/things", f"create thing {n}", write=True, content=b"{}", read_body=False
            )
            assert answer.status == 202 and answer.body is None  # nothing kept
            assert core.request("GET", "/things", "list things", write=False).status == 200
    finally:
        core.close()
    assert len(_Handler.ports) == 1, _Handler.ports


def test_each_thread_keeps_its_own_connection(server: str) -> None:
    """Threads of one run (an apply's workers) each send every request on a connection of
    their own: never one per request, and never one another thread used (a shared pool
    hands whichever connection is idle to whichever thread asks, and schedules every
    request over all of them)."""
    _Handler.body = b""
    core = HttpCore(server, timeout=5.0, deadline=10.0)
    threads, rounds = 4, 6
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait(timeout=5)
            for r in range(rounds):
                answer = core.request(
                    "POST",
                    "/things",
                    f"create {n}/{r}",
                    write=True,
                    content=b"{}",
                    headers={"x-sender": str(n)},
                )
                assert answer.status == 202
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=20)
    assert not failures and not any(t.is_alive() for t in workers)
    assert core.request_count == threads * rounds
    core.close()
    assert sorted(_Handler.senders) == [str(n) for n in range(threads)]
    assert all(len(ports) == 1 for ports in _Handler.senders.values()), _Handler.senders
    assert len(_Handler.ports) == threads, _Handler.ports  # one each, none shared
