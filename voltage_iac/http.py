"""The HTTP core every backend speaks through: retries, time limits, back-pressure, errors.

Where it sits in the flow::

    VoltageClient (Voltage API) --+
                                  +--> HttpCore --> httpx --> the server
    LnbitsProvider (LNbits) ------+

It is the only module of the package that imports httpx. One `HttpCore` wraps one
`httpx.Client` and is shared by every thread of an apply; each thread keeps its own
kept-alive connection (`_PerThreadTransport`). It sends one logical request
at a time per caller and returns the final `Answer` (status, headers, capped body); the
backend layers turn answers into their own typed errors (each API has its own error
envelope), while every failure to get an answer is turned into a tool error here, by the
one map `EXCEPTION_MAP`.

What it guarantees:

- Retries: reads are retried on time-outs, dropped connections, 5xx and 429, with
  jittered exponential backoff (the step doubles from `backoff_base` to `backoff_cap`,
  the wait is between half and all of it). A write is retried only when the server
  cannot have acted on it: the connection could not be made (nothing was sent), or the
  answer was 429. Once a write may have reached the server, a failure raises
  `WriteOutcomeUnknown` at once.
- Time: every read of the socket has its own time-out (`timeout`, 30 s by default), and
  every logical request, retries and waits included, has a total `deadline` (60 s by
  default). The deadline bounds each socket operation too, so a server that trickles a
  byte now and then in its headers or its body cannot keep a request alive past it.
- Back-pressure: a 429 pauses every thread that uses the core until its wait has passed
  (`x-retry-after-ms`, else `Retry-After` in seconds or as an HTTP date, capped at
  `max_retry_after`; the backoff step when neither is usable). An optional cap,
  `max_requests_per_second`, spaces the requests of all threads evenly.
- Bodies: success bodies larger than `MAX_RESPONSE_BYTES` (or the caller's limit) are
  not read (`Answer.too_large`); error bodies are read up to 1 MiB for their detail.
- Secrets: the secrets the caller names are masked (whole or as any run of 8 or more of
  their characters) in every message and log line this module writes. No header or body
  is ever logged.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import logging
import math
import random as _random_module
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpcore
import httpx

from voltage_iac.errors import (
    ApiError,
    MalformedResponseError,
    RateLimitedError,
    TransportError,
    WriteOutcomeUnknown,
)
from voltage_iac.secret import FRAGMENT_CHARS, Secret, redact

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "EXCEPTION_MAP",
    "HTTP_EXCEPTIONS",
    "MAX_ERROR_BODY_BYTES",
    "MAX_RESPONSE_BYTES",
    "Answer",
    "BaseTransport",
    "Failure",
    "HttpCore",
    "classify",
]

#: Seconds each socket operation (connect, one read, one write, a free connection) may take.
DEFAULT_TIMEOUT = 30.0
#: Seconds one logical request may take in all: every attempt, every wait between them.
DEFAULT_DEADLINE = 60.0
#: Largest success body accepted; anything bigger is refused as malformed by the layers.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Largest error body worth reading to find the error's detail.
MAX_ERROR_BODY_BYTES = 1024 * 1024

WRITE_UNKNOWN_TAIL = (
    "the change may or may not have been made; voltage-iac reads the live state before trying again"
)

#: What a test or a caller may hand the core instead of the network (an httpx transport).
BaseTransport = httpx.BaseTransport

#: Every exception class a request through httpx can raise (for `except`).
HTTP_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.CookieConflict,
    httpx.StreamError,
)


# -- the one map from httpx exceptions to the tool's errors --------------------------------


class Failure(NamedTuple):
    """What an httpx exception means for the request that raised it.

    `sent`: whether the request may have reached the server (a write that may have is
    never re-sent blindly). `retry`: whether sending it again can help. `answer`: the
    server answered, but the answer could not be read. `reason`: a phrase for messages.
    """

    sent: bool
    retry: bool
    answer: bool
    reason: str


_NOT_SENT = Failure(sent=False, retry=True, answer=False, reason="")
_FATAL = Failure(sent=False, retry=False, answer=False, reason="")
_MAYBE_SENT = Failure(sent=True, retry=True, answer=False, reason="")
_BAD_ANSWER = Failure(sent=True, retry=False, answer=True, reason="")


def _entry(kind: Failure, reason: str) -> Failure:
    return kind._replace(reason=reason)


#: Every exception class httpx defines, each with a deliberate meaning. The test suite
#: checks that no class httpx exports is missing from this map.
EXCEPTION_MAP: dict[type[Exception], Failure] = {
    # Nothing reached the server: safe to try again, writes included.
    httpx.ConnectError: _entry(_NOT_SENT, "could not connect to {server}"),
    httpx.ConnectTimeout: _entry(_NOT_SENT, "connecting to {server} timed out"),
    httpx.PoolTimeout: _entry(_NOT_SENT, "no connection to {server} became free in time"),
    httpx.ProxyError: _entry(_NOT_SENT, "the proxy refused the connection to {server}"),
    # The request cannot be sent as it is: trying again cannot help.
    httpx.UnsupportedProtocol: _entry(_FATAL, "the request could not be sent"),
    httpx.LocalProtocolError: _entry(_FATAL, "the request could not be sent"),
    httpx.InvalidURL: _entry(_FATAL, "the request could not be sent"),
    httpx.CookieConflict: _entry(_FATAL, "the request could not be sent"),
    httpx.RequestNotRead: _entry(_FATAL, "the request could not be sent"),
    httpx.StreamConsumed: _entry(_FATAL, "the request could not be sent"),
    # The request may have reached the server: reads are retried, writes are unknown.
    httpx.ReadTimeout: _entry(_MAYBE_SENT, "no answer came in time"),
    httpx.WriteTimeout: _entry(_MAYBE_SENT, "sending the request timed out"),
    httpx.TimeoutException: _entry(_MAYBE_SENT, "the request timed out"),
    httpx.ReadError: _entry(_MAYBE_SENT, "the connection was dropped (ReadError)"),
    httpx.WriteError: _entry(_MAYBE_SENT, "the connection was dropped (WriteError)"),
    httpx.CloseError: _entry(_MAYBE_SENT, "the connection was dropped (CloseError)"),
    httpx.NetworkError: _entry(_MAYBE_SENT, "the connection was dropped (NetworkError)"),
    httpx.RemoteProtocolError: _entry(
        _MAYBE_SENT, "the connection was dropped (RemoteProtocolError)"
    ),
    httpx.ProtocolError: _entry(_MAYBE_SENT, "the connection was dropped (ProtocolError)"),
    httpx.TransportError: _entry(_MAYBE_SENT, "the connection was dropped (TransportError)"),
    httpx.RequestError: _entry(_MAYBE_SENT, "the request failed (RequestError)"),
    httpx.HTTPError: _entry(_MAYBE_SENT, "the request failed (HTTPError)"),
    httpx.StreamClosed: _entry(_MAYBE_SENT, "the connection was closed (StreamClosed)"),
    httpx.ResponseNotRead: _entry(_MAYBE_SENT, "the answer was not read (ResponseNotRead)"),
    httpx.StreamError: _entry(_MAYBE_SENT, "the connection failed (StreamError)"),
    # An answer came but cannot be used: not retried; a write's outcome is then unknown.
    httpx.DecodingError: _entry(_BAD_ANSWER, "the answer could not be read (DecodingError)"),
    httpx.TooManyRedirects: _entry(_BAD_ANSWER, "the answer redirected (TooManyRedirects)"),
    httpx.HTTPStatusError: _entry(_BAD_ANSWER, "the answer was an error (HTTPStatusError)"),
}


def classify(exc: BaseException) -> Failure:
    """The meaning of an httpx exception: its own class's entry, else its nearest base's."""
    for cls in type(exc).__mro__:
        found = EXCEPTION_MAP.get(cls)
        if found is not None:
            return found
    return EXCEPTION_MAP[httpx.HTTPError]


def tool_error(
    exc: BaseException,
    *,
    operation: str,
    write: bool,
    server: str = "the server",
    host: str = "",
    attempts: int = 1,
    deadline: float | None = None,
    hint: str = "check the server's URL and the network connection",
) -> ApiError:
    """The tool error for a request that ended with `exc` (no further retry is made).

    `deadline` is given when the request's total deadline is what ended it."""
    failure = classify(exc)
    reason = failure.reason.format(server=server)
    if deadline is not None:
        reason = f"no complete answer came within the {deadline:g} s request deadline"
    where = f" (host {host}, {_attempts(attempts)})" if host else f" ({_attempts(attempts)})"
    if failure.answer:
        if write:
            return WriteOutcomeUnknown(
                f"{operation}: the outcome is unknown: the request was sent but {reason}; "
                f"{WRITE_UNKNOWN_TAIL}"
            )
        return MalformedResponseError(f"{operation}: {reason}")
    if not failure.sent and not failure.retry:
        return TransportError(f"{operation}: {reason} ({type(exc).__name__})")
    if write and failure.sent:
        return WriteOutcomeUnknown(
            f"{operation}: the outcome is unknown: the request was sent but {reason}; "
            f"{WRITE_UNKNOWN_TAIL}"
        )
    return TransportError(f"{operation}: {reason}{where}", hint=hint)


# -- the deadline, enforced on every socket operation ---------------------------------------

_local = threading.local()


def _bounded(timeout: float | None, exc: type[Exception]) -> float | None:
    """`timeout` shortened to what is left of the calling thread's request deadline."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise exc("the request deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


@contextlib.contextmanager
def _deadline(at: float) -> Iterator[None]:
    previous = getattr(_local, "deadline", None)
    _local.deadline = at
    try:
        yield
    finally:
        _local.deadline = previous


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Wraps httpcore's network backend so connections obey the request deadline."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _install_deadlines(client: httpx.Client) -> bool:
    """Put the deadline backend under every connection pool of `client`; True when the
    default transport got it (a test transport without a pool has no sockets to bound)."""
    installed = isinstance(client._transport, _PerThreadTransport)
    transports = [client._transport, *client._mounts.values()]
    for index, transport in enumerate(transports):
        if _bound_pool(transport) and index == 0:
            installed = True
    return installed


def _bound_pool(transport: object) -> bool:
    """Put the deadline backend under the connection pool of `transport`, if it has one."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.NetworkBackend):
        return False
    if not isinstance(backend, _DeadlineBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return True


class _PerThreadTransport(httpx.BaseTransport):
    """httpx's transport, one per thread, each with its own small connection pool.

    One pool shared by every thread of an apply hands each request to a connection by
    scanning every connection and every queued request, twice per request: with 16
    workers and their confirmations, that scan was a quarter of the client's CPU. A
    thread sends one request at a time, so its own pool of one kept-alive connection
    never waits and never scans. The TLS settings are made once and shared.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._transports: list[httpx.HTTPTransport] = []
        self._tls: Any = None
        self._closed = False

    def _own(self) -> httpx.HTTPTransport:
        transport: httpx.HTTPTransport | None = getattr(self._local, "transport", None)
        if transport is not None:
            return transport
        with self._lock:
            if self._closed:
                raise httpx.TransportError("the HTTP client is closed")
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            transport = httpx.HTTPTransport(
                verify=self._tls,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=1),
            )
            _bound_pool(transport)
            self._transports.append(transport)
        self._local.transport = transport
        return transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._own().handle_request(request)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()


class _DeadlinePassed(Exception):
    pass


class _BodyTooLarge(Exception):
    pass


_UNREADABLE_ERROR_BODY: tuple[type[Exception], ...] = (*HTTP_EXCEPTIONS, _DeadlinePassed)


# -- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its status, headers and (capped) body, and the attempts it took."""

    status: int
    headers: Mapping[str, str]
    body: bytes | None
    too_large: bool = False
    attempts: int = 1


class HttpCore:
    """One `httpx.Client` with the tool's retry, time, back-pressure and secrecy rules,
    shared by every thread of a run."""

    def __init__(
        self,
        base_url: str,
        *,
        server: str = "the server",
        secrets: Callable[[], Iterable[Secret | None]] = tuple,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_attempts: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 2.0,
        max_retry_after: float = 30.0,
        max_requests_per_second: float | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random_module.random,
        pause: Callable[[float, str, str], None] | None = None,
        logger: logging.Logger | None = None,
        transport_hint: str = "check the server's URL and the network connection",
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if timeout <= 0 or deadline <= 0:
            raise ValueError("timeout and deadline must be positive")
        if backoff_base < 0 or backoff_cap < 0 or max_retry_after < 0:
            raise ValueError("backoff_base, backoff_cap and max_retry_after must be >= 0")
        if max_requests_per_second is not None and not max_requests_per_second > 0:
            raise ValueError("max_requests_per_second must be positive (or None for no cap)")
        url = httpx.URL(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("base_url must be an http:// or https:// URL")
        self.base_url = str(url)
        self.base_path = url.path.rstrip("/")
        self.host = url.netloc.decode("ascii", "replace")
        self.server = server
        self.timeout = timeout
        self.deadline = deadline
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.max_requests_per_second = max_requests_per_second
        self._secrets = secrets
        self._sleep = sleep
        self._random = random
        self._pause_hook = pause
        self._transport_hint = transport_hint
        self._log = logger or logging.getLogger("voltage_iac.http")
        self._lock = threading.Lock()
        self._request_count = 0
        # Back-pressure shared by every thread: the monotonic time until which the server
        # asked everyone to wait, and the next free slot of the rate cap.
        self._paused_until = 0.0
        self._waited = threading.local()
        self._next_slot = 0.0
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            timeout=httpx.Timeout(timeout),
            transport=transport if transport is not None else _PerThreadTransport(),
            follow_redirects=False,
            headers=dict(headers or {}),
        )
        self.deadline_on_sockets = _install_deadlines(self._http)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Requests actually sent, retries included (attempts refused before anything was
        sent are not counted)."""
        with self._lock:
            return self._request_count

    def close(self) -> None:
        self._http.close()

    # -- secrets -----------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """`text` with every secret masked (whole, or any run of 8 or more characters)."""
        return redact(text, *self._secrets())

    def scrub_message(self, text: str) -> str:
        """Like `scrub`, for a whole message the tool wrote: a secret shorter than 8
        characters (a test key such as "dev") is left alone there, where masking it would
        garble ordinary words; server-sourced parts are scrubbed with `scrub` first."""
        long_enough = [s for s in self._secrets() if s and len(s.reveal()) >= FRAGMENT_CHARS]
        return redact(text, *long_enough)

    # -- the request loop --------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        write: bool,
        params: Sequence[tuple[str, str]] | Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        read_body: bool = True,
        max_body_bytes: int = MAX_RESPONSE_BYTES,
    ) -> Answer:
        """Send one logical request under the retry policy and return the final answer,
        whatever its status (a 429 or 5xx that outlived the retries included). Raises a
        tool error (`TransportError`, `WriteOutcomeUnknown`, `MalformedResponseError`,
        `RateLimitedError`) when no usable answer came."""
        deadline_at = time.monotonic() + self.deadline
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_others(operation, deadline_at, attempt)
            self._take_slot(operation)
            if time.monotonic() >= deadline_at:
                raise self._deadline_error(operation, attempt - 1)
            try:
                answer = self._attempt(
                    method,
                    path,
                    params,
                    content,
                    headers,
                    attempt,
                    deadline_at,
                    read_body=read_body,
                    max_body_bytes=max_body_bytes,
                )
            except HTTP_EXCEPTIONS as exc:
                failure = classify(exc)
                past_deadline = time.monotonic() >= deadline_at
                final = (
                    not failure.retry
                    or (write and failure.sent)
                    or attempt >= self.max_attempts
                    or past_deadline
                )
                if not final:
                    wait = self._backoff(attempt)
                    if time.monotonic() + wait < deadline_at:
                        self._pause(wait, operation, type(exc).__name__)
                        continue
                error = tool_error(
                    exc,
                    operation=operation,
                    write=write,
                    server=self.server,
                    host=self.host,
                    attempts=attempt,
                    deadline=self.deadline if past_deadline else None,
                    hint=self._transport_hint,
                )
                raise self._scrubbed(error) from None
            status = answer.status
            retry_status = status == 429 or (status >= 500 and not write)
            if not retry_status or attempt >= self.max_attempts:
                if status == 429:
                    self._announce_pause(self._retry_wait(answer, attempt))
                return _with_attempts(answer, attempt)
            announced = 0.0
            if status == 429:
                wait = self._retry_wait(answer, attempt)
                announced = self._announce_pause(wait)
                why = "429"
            else:
                wait = self._backoff(attempt)
                why = str(status)
            if time.monotonic() + wait >= deadline_at:
                return _with_attempts(answer, attempt)
            self._pause(wait, operation, why)
            # This thread has waited out the pause it announced (others wait at the gate).
            self._waited.until = max(getattr(self._waited, "until", 0.0), announced)

    def _attempt(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] | Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        attempt: int,
        deadline_at: float,
        *,
        read_body: bool,
        max_body_bytes: int,
    ) -> Answer:
        send_headers = dict(headers or {})
        if content is not None:
            send_headers.setdefault("content-type", "application/json")
        # The whole URL parsed once (a relative one is parsed, joined and parsed again).
        request = self._http.build_request(
            method,
            httpx.URL(f"{self.base_url}/{path.lstrip('/')}"),
            params=(params if isinstance(params, Mapping) else tuple(params)) if params else None,
            content=content,
            headers=send_headers,
        )
        started = time.perf_counter()
        with _deadline(deadline_at):
            try:
                response = self._http.send(request, stream=True)
            except HTTP_EXCEPTIONS as exc:
                failure = classify(exc)
                if failure.sent:
                    self._count()
                self._log_line(method, path, type(exc).__name__, started, attempt)
                raise
            finally:
                self._http.cookies.clear()  # no session state is ever kept between requests
            self._count()
            status = response.status_code
            body: bytes | None = None
            too_large = False
            try:
                if 200 <= status < 300:
                    if read_body:
                        body = _read_capped(response, max_body_bytes, deadline_at)
                    else:
                        # Read to its end and drop it, so that the connection is kept
                        # for the next request; the status already says what happened.
                        with contextlib.suppress(*_UNREADABLE_ERROR_BODY, _BodyTooLarge):
                            _read_capped(response, MAX_ERROR_BODY_BYTES, deadline_at)
                else:
                    try:
                        body = _read_capped(response, MAX_ERROR_BODY_BYTES, deadline_at)
                    except _UNREADABLE_ERROR_BODY:
                        body = None  # the status decides; the body only adds detail
            except _BodyTooLarge:
                too_large = True
            except _DeadlinePassed:
                self._log_line(method, path, f"{status} deadline", started, attempt)
                raise httpx.ReadTimeout("the request deadline passed", request=request) from None
            except HTTP_EXCEPTIONS as exc:
                self._log_line(method, path, f"{status} {type(exc).__name__}", started, attempt)
                raise
            finally:
                response.close()
        self._log_line(method, path, str(status), started, attempt)
        return Answer(status, response.headers, body, too_large, attempt)

    # -- back-pressure -----------------------------------------------------------------------

    def _announce_pause(self, seconds: float) -> float:
        """Every thread waits until `seconds` from now before sending its next request;
        returns that moment (monotonic clock)."""
        until = time.monotonic() + seconds
        with self._lock:
            self._paused_until = max(self._paused_until, until)
        return until

    def _wait_for_others(self, operation: str, deadline_at: float, attempt: int) -> None:
        """Wait out a pause the server asked of another request (each pause once)."""
        while True:
            with self._lock:
                until = self._paused_until
            waited = getattr(self._waited, "until", 0.0)
            if until <= waited:
                return
            self._waited.until = until
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            if time.monotonic() + remaining >= deadline_at:
                raise self._scrubbed(
                    RateLimitedError(
                        f"{operation}: {self.server} asked to wait {remaining:.1f} s, longer "
                        f"than what is left of the {self.deadline:g} s request deadline "
                        f"(host {self.host}, {_attempts(attempt - 1)})",
                        status=429,
                        hint="the server is rate limiting: wait a little and run the command again",
                    )
                )
            self._pause(remaining, operation, "429 to another request")

    def _take_slot(self, operation: str) -> None:
        """Space requests `1 / max_requests_per_second` apart, across every thread."""
        rate = self.max_requests_per_second
        if rate is None:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
        wait = slot - now
        if wait > 0:
            self._pause(wait, operation, "the request rate cap")

    def _pause(self, seconds: float, operation: str, why: str) -> None:
        if self._pause_hook is not None:
            self._pause_hook(seconds, operation, why)
            return
        self._log.debug("%s: waiting %.3f s (%s)", self.scrub_message(operation), seconds, why)
        self._sleep(seconds)

    # -- helpers -----------------------------------------------------------------------------

    def _count(self) -> None:
        with self._lock:
            self._request_count += 1

    def _log_line(self, method: str, path: str, outcome: str, started: float, attempt: int) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        shown = self.scrub_message(self.base_path + "/" + path.lstrip("/"))
        self._log.debug(
            "%s %s -> %s in %.0f ms (attempt %d)", method, shown, outcome, elapsed_ms, attempt
        )

    def _backoff(self, attempt: int) -> float:
        """Jittered exponential backoff after attempt number `attempt` (1-based)."""
        step = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 60))
        return step * (0.5 + 0.5 * self._random())

    def _retry_wait(self, answer: Answer, attempt: int) -> float:
        wait = retry_after(answer.headers, self.max_retry_after)
        return wait if wait is not None else self._backoff(attempt)

    def _deadline_error(self, operation: str, attempts: int) -> ApiError:
        return self._scrubbed(
            TransportError(
                f"{operation}: no complete answer came within the {self.deadline:g} s request "
                f"deadline (host {self.host}, {_attempts(attempts)})",
                hint=self._transport_hint,
            )
        )

    def _scrubbed(self, error: ApiError) -> ApiError:
        error.message = self.scrub_message(error.message)
        error.args = (error.message,)
        if error.hint:
            error.hint = self.scrub_message(error.hint)
        return error


def retry_after(headers: Mapping[str, str], cap: float) -> float | None:
    """The wait a 429 asks for: `x-retry-after-ms` wins over `Retry-After` (seconds or an
    HTTP date, measured from the answer's own `Date` when given); capped at `cap`. None
    when neither is usable."""
    wait: float | None = None
    raw_ms = headers.get("x-retry-after-ms")
    if raw_ms is not None:
        ms = _float(raw_ms)
        if ms is not None:
            wait = ms / 1000.0
    if wait is None:
        raw = headers.get("retry-after")
        if raw is not None:
            wait = _float(raw)
            if wait is None:
                wait = _seconds_until(raw, headers.get("date"))
    if wait is None:
        return None
    return min(max(wait, 0.0), cap)


def _with_attempts(answer: Answer, attempts: int) -> Answer:
    if answer.attempts == attempts:
        return answer
    return Answer(answer.status, answer.headers, answer.body, answer.too_large, attempts)


def _read_capped(response: httpx.Response, limit: int, deadline_at: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    # One growing buffer, handed out without a copy: a large listing is not held twice
    # (as chunks and as their join).
    buffer = io.BytesIO()
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > limit:
            raise _BodyTooLarge
        buffer.write(chunk)
        if time.monotonic() >= deadline_at:
            raise _DeadlinePassed
    return buffer.getvalue()


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def _float(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _seconds_until(http_date: str, server_date: str | None) -> float | None:
    try:
        target = email.utils.parsedate_to_datetime(http_date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    now = time.time()
    if server_date:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            now = email.utils.parsedate_to_datetime(server_date).timestamp()
    return target - now
