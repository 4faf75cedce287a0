"""Tests of the HTTP core (voltage_iac.http) every backend speaks through.

They pin what users rely on: every httpx failure becomes a deliberate tool error (never a
traceback, never a write re-sent after it may have been done); a request ends by its
deadline even against a server that trickles bytes or never answers, and the CLI then
exits 1 naming the server without writing anything; a 429 pauses every worker thread,
not only the one that got it; the optional rate cap spaces requests across threads; the
polling loop used by the providers is bounded.

Servers are real sockets on 127.0.0.1 (tests/slow_servers.py, a ThreadingHTTPServer),
stopped at the end of each test; the time bounds asserted are upper bounds on how long a
request may hang, with generous margins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import config_doc, wallet
from tests.served import TEST_KEY
from tests.slow_servers import SlowServer
from tests.test_lnbits_provider import desired_state
from voltage_iac.client import VoltageClient
from voltage_iac.errors import (
    ApiError,
    MalformedResponseError,
    RateLimitedError,
    TransportError,
    WriteOutcomeUnknown,
)
from voltage_iac.http import EXCEPTION_MAP, HTTP_EXCEPTIONS, HttpCore, classify
from voltage_iac.providers.lnbits import LnbitsProvider
from voltage_iac.secret import Secret
from voltage_iac.waiting import poll_until

ORG = "0b9c1e7e-55a2-4f2b-9a53-0f6a3f1f0a01"
WALLET = "7a68a525-9d11-4c1e-a3dd-1c2bf1378ba2"
REPO = Path(__file__).resolve().parents[1]


# -- the exception map -------------------------------------------------------------------


def _httpx_exception_classes() -> list[type[BaseException]]:
    found = {
        value
        for name in dir(httpx)
        if isinstance(value := getattr(httpx, name), type) and issubclass(value, BaseException)
    }
    return sorted(found, key=lambda cls: cls.__name__)


def _instance(cls: type[BaseException]) -> BaseException:
    request = httpx.Request("GET", "http://127.0.0.1/")
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=request, response=httpx.Response(500, request=request))
    try:
        return cls("boom")
    except TypeError:
        return cls()


def test_every_httpx_exception_class_has_its_own_deliberate_entry() -> None:
    classes = _httpx_exception_classes()
    assert len(classes) >= 25  # the introspection did find httpx's exceptions
    missing = [cls.__name__ for cls in classes if cls not in EXCEPTION_MAP]
    assert missing == [], f"httpx exceptions without a deliberate mapping: {missing}"
    uncaught = [cls.__name__ for cls in classes if not issubclass(cls, HTTP_EXCEPTIONS)]
    assert uncaught == [], f"httpx exceptions the core would not catch: {uncaught}"


# Written out independently of the map: what each well-known failure must mean.
_NOT_SENT = {httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout}
_MAYBE_SENT = {
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.NetworkError,
}


@pytest.mark.parametrize("cls", _httpx_exception_classes(), ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_each_httpx_exception_ends_in_a_tool_error_through_the_core(
    cls: type[BaseException], write: bool
) -> None:
    calls: list[str] = []

    def fail(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise _instance(cls)

    core = HttpCore(
        "http://127.0.0.1:1/v1",
        transport=httpx.MockTransport(fail),
        max_attempts=3,
        sleep=lambda _seconds: None,
    )
    try:
        with pytest.raises(ApiError) as caught:
            core.request("POST" if write else "GET", "/things", "do a thing", write=write)
    finally:
        core.close()
    err = caught.value
    assert type(err) in (TransportError, WriteOutcomeUnknown, MalformedResponseError)
    assert err.__cause__ is None and err.message.startswith("do a thing: ")
    failure = classify(_instance(cls))
    if cls in _NOT_SENT:
        assert not failure.sent and failure.retry
    if cls in _MAYBE_SENT:
        assert failure.sent and failure.retry
    if write and failure.sent:
        # It may have been done: never re-sent, and the caller must read first.
        assert isinstance(err, WriteOutcomeUnknown)
        assert len(calls) == 1
    elif failure.retry and not failure.answer:
        assert isinstance(err, TransportError)
        assert len(calls) == 3
    else:
        assert len(calls) == 1


def test_the_core_puts_the_deadline_under_the_default_transport() -> None:
    core = HttpCore("http://127.0.0.1:1")
    try:
        assert core.deadline_on_sockets
    finally:
        core.close()


# -- deadlines against servers that trickle or stay silent -------------------------------


@pytest.fixture(params=["trickle-headers", "trickle-body", "silent"])
def slow(request: pytest.FixtureRequest) -> Iterator[SlowServer]:
    with SlowServer(request.param, interval=0.5) as server:
        yield server


def test_a_read_ends_by_its_deadline_however_the_server_stalls(slow: SlowServer) -> None:
    client = VoltageClient(slow.origin + "/v1", Secret(TEST_KEY), deadline=1.5, timeout=30)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as caught:
            client.list_wallets(ORG, WALLET, inactive=True)
    finally:
        client.close()
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 3.0, f"the read took {elapsed:.1f} s"
    assert "1.5 s request deadline" in caught.value.message
    assert f"127.0.0.1:{slow.port}" in caught.value.message
    assert slow.methods == ["GET"]


@pytest.mark.parametrize("mode", ["trickle-headers", "silent"])
def test_a_write_past_its_deadline_has_an_unknown_outcome_and_is_not_resent(mode: str) -> None:
    # (A trickled body does not matter to a write: its status already said it was done.)
    with SlowServer(mode, interval=0.5) as slow:
        client = VoltageClient(slow.origin + "/v1", Secret(TEST_KEY), deadline=1.5)
        started = time.monotonic()
        try:
            with pytest.raises(WriteOutcomeUnknown) as caught:
                client.update_wallet(ORG, WALLET, "new name")
        finally:
            client.close()
        methods = slow.methods
    assert time.monotonic() - started < 1.5 + 3.0
    assert "deadline" in caught.value.message
    assert methods == ["PATCH"]


def _write_config(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "wallets.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _run_cli(*argv: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, float]:
    """Run `voltage-iac` in a child process; (exit code, stdout+stderr, seconds taken)."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "voltage_iac", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "NO_COLOR": "1", "VOLTAGE_API_URL": "", **env},
            cwd=REPO,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"voltage-iac {' '.join(argv)} still ran after {timeout:.0f} s")
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.mark.parametrize("command", [["plan"], ["apply", "--auto-approve"]])
def test_cli_against_a_stalling_server_exits_1_by_the_deadline_without_writing(
    slow: SlowServer, tmp_path: Path, command: list[str]
) -> None:
    config = _write_config(tmp_path, config_doc({"pay": wallet("Payouts")}))
    code, output, elapsed = _run_cli(
        command[0],
        str(config),
        *command[1:],
        "--api-url",
        slow.origin + "/v1",
        env={"VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_IAC_REQUEST_DEADLINE": "2"},
    )
    assert code == 1, output
    # 2 s deadline, plus the start of a Python process on a busy machine.
    assert elapsed < 2 + 10, f"took {elapsed:.1f} s"
    assert f"127.0.0.1:{slow.port}" in output
    assert "deadline" in output
    assert "Traceback" not in output
    assert set(slow.methods) == {"GET"}, "a write was sent after the read failed"


def test_cli_against_a_stalling_lnbits_exits_1_by_the_deadline(tmp_path: Path) -> None:
    with SlowServer("trickle-headers", interval=0.5) as server:
        doc = {
            "version": 1,
            "stack": "acme",
            "provider": {"kind": "lnbits", "url": server.origin},
            "wallets": {"tips": {"name": "Tips"}},
        }
        config = _write_config(tmp_path, doc)
        code, output, elapsed = _run_cli(
            "plan",
            str(config),
            env={
                "LNBITS_ACCESS_TOKEN": "tok-Zq8Yh3Ld0pKe7Rw1",
                "VOLTAGE_IAC_REQUEST_DEADLINE": "2",
            },
        )
        methods = server.methods
    assert code == 1, output
    assert elapsed < 2 + 10
    assert f"LNbits at {server.origin}" in output and "deadline" in output
    assert "tok-Zq8Yh3Ld0pKe7Rw1" not in output
    assert set(methods) == {"GET"}


def test_a_bad_deadline_setting_is_a_usage_error(tmp_path: Path) -> None:
    config = _write_config(tmp_path, config_doc({"pay": wallet("Payouts")}))
    code, output, _ = _run_cli(
        "plan",
        str(config),
        "--api-url",
        "http://127.0.0.1:9/v1",
        env={"VOLTAGE_API_KEY": TEST_KEY, "VOLTAGE_IAC_REQUEST_DEADLINE": "soon"},
    )
    assert code == 3, output
    assert "VOLTAGE_IAC_REQUEST_DEADLINE" in output and "Traceback" not in output


# -- shared back-pressure and the rate cap -----------------------------------------------


class _Recording(BaseHTTPRequestHandler):
    """Answers `{}` after `latency` seconds; the first request (when asked) gets a 429
    with Retry-After: 1 at once."""

    server: _RecordingServer

    def do_GET(self) -> None:
        now = time.monotonic()
        with self.server.lock:
            limited = self.server.limit_first and not self.server.limited_at
            if limited:
                self.server.limited_at = now
            self.server.arrivals.append(now)
        if limited:
            body = json.dumps({"error": {"type": "rate_limited", "detail": "slow down"}})
            status, headers = 429, {"retry-after": "1"}
        else:
            body, status, headers = "{}", 200, {}
            time.sleep(self.server.latency)
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    limit_first = False
    limited_at = 0.0
    latency = 0.0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recording)
        self.lock = threading.Lock()
        self.arrivals: list[float] = []


@pytest.fixture
def recording() -> Iterator[_RecordingServer]:
    server = _RecordingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _url(server: _RecordingServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_a_429_pauses_every_worker_until_its_retry_after_has_passed(
    recording: _RecordingServer,
) -> None:
    recording.limit_first = True
    recording.latency = 0.03  # so the workers' requests, without a pause, span over 1 s
    client = VoltageClient(_url(recording), Secret(TEST_KEY))
    workers, each = 4, 40

    def work(_index: int) -> int:
        for _ in range(each):
            assert client.get_wallet(ORG, WALLET) == {}
        return each

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = sum(pool.map(work, range(workers)))
    finally:
        client.close()
    assert done == workers * each
    at = recording.limited_at
    assert at, "the server never sent its 429"
    arrivals = sorted(recording.arrivals)
    assert len(arrivals) == workers * each + 1  # every request once, plus the one retry
    # Requests already on the wire when the 429 was sent may land just after it; from
    # then on, nothing is sent until Retry-After (1 s) has passed.
    inside = [t - at for t in arrivals if at + 0.25 < t < at + 0.95]
    assert inside == [], f"{len(inside)} requests sent inside the Retry-After window"
    assert any(t >= at + 0.95 for t in arrivals)


@pytest.mark.parametrize("threads", [1, 4])
def test_the_rate_cap_spaces_requests_across_threads(
    recording: _RecordingServer, threads: int
) -> None:
    rate, total = 20.0, 16
    client = VoltageClient(_url(recording), Secret(TEST_KEY), max_requests_per_second=rate)

    def work(count: int) -> None:
        for _ in range(count):
            client.get_wallet(ORG, WALLET)

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(work, [total // threads] * threads))
    finally:
        client.close()
    arrivals = sorted(recording.arrivals)
    assert len(arrivals) == total
    # By the time the k-th request (0-based) arrived, k+1 slots 1/rate apart had begun.
    for k, arrived in enumerate(arrivals):
        assert arrived - started >= k / rate - 0.005, (k, arrived - started)


def test_no_rate_cap_by_default_and_a_bad_one_is_refused() -> None:
    core = HttpCore("http://127.0.0.1:1")
    core.close()
    assert core.max_requests_per_second is None
    with pytest.raises(ValueError):
        HttpCore("http://127.0.0.1:1", max_requests_per_second=0)
    with pytest.raises(ValueError):
        HttpCore("http://127.0.0.1:1", deadline=0)


# -- LNbits through the same core --------------------------------------------------------

TOKEN = "lnb-token-Zq8Yh3Ld0pKe7Rw1Xc2Vb7"


def _lnbits(handler: Any, **kwargs: Any) -> LnbitsProvider:
    kwargs.setdefault("sleep", lambda _seconds: None)
    return LnbitsProvider(
        "http://lnbits.test", Secret(TOKEN), transport=httpx.MockTransport(handler), **kwargs
    )


def _page(*wallets: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": list(wallets), "total": len(wallets)})


def test_lnbits_reads_are_retried_after_429_and_5xx() -> None:
    answers = [
        httpx.Response(429, headers={"retry-after": "0"}),
        httpx.Response(503),
        _page(),
    ]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return answers.pop(0)

    provider = _lnbits(handler)
    try:
        assert provider.read(desired_state("http://lnbits.test")).wallets == ()
    finally:
        provider.close()
    assert seen == ["GET", "GET", "GET"]


def test_lnbits_write_that_may_have_reached_the_server_is_not_resent() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if request.method == "DELETE":
            raise httpx.ReadTimeout("lost", request=request)
        return _page()

    provider = _lnbits(handler)
    try:
        with pytest.raises(WriteOutcomeUnknown):
            provider._request("DELETE", "/api/v1/wallet/w1", write=True)
    finally:
        provider.close()
    assert seen == ["DELETE"]


def test_lnbits_write_that_could_not_connect_is_retried() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={})

    provider = _lnbits(handler)
    try:
        provider._request("DELETE", "/api/v1/wallet/w1", write=True)
    finally:
        provider.close()
    assert seen == ["DELETE"] * 3


def test_lnbits_error_detail_with_a_fragment_of_the_token_is_masked() -> None:
    fragment = TOKEN[4:20]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"detail": f"token {fragment} is not valid here"})

    provider = _lnbits(handler)
    try:
        with pytest.raises(ApiError) as caught:
            provider._request("GET", "/api/v1/wallet/paginated")
    finally:
        provider.close()
    assert fragment not in str(caught.value)
    assert "token *** is not valid here" in str(caught.value)


def test_lnbits_rate_limited_beyond_the_budget_is_rate_limited() -> None:
    provider = _lnbits(lambda request: httpx.Response(429, headers={"retry-after": "0"}))
    try:
        with pytest.raises(RateLimitedError, match="3 attempts"):
            provider._request("GET", "/api/v1/wallet/paginated")
    finally:
        provider.close()


# -- the polling loop ----------------------------------------------------------------------


class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_poll_until_backs_off_to_its_maximum_and_stops_within_the_budget() -> None:
    fake = _FakeTime()
    checks: list[float] = []

    def never() -> bool:
        checks.append(fake.now)
        return False

    assert not poll_until(never, 5.0, initial=0.1, maximum=1.0, clock=fake.clock, sleep=fake.sleep)
    assert fake.sleeps[:5] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    assert max(fake.sleeps) == 1.0
    assert fake.now <= 5.0


def test_poll_until_returns_as_soon_as_the_check_holds() -> None:
    fake = _FakeTime()
    answers = iter([False, False, True])
    assert poll_until(lambda: next(answers), 10.0, clock=fake.clock, sleep=fake.sleep)
    assert fake.sleeps == pytest.approx([0.05, 0.1])
