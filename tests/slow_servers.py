"""Misbehaving HTTP servers on 127.0.0.1 for the time-limit tests (test support only).

`SlowServer(mode)` accepts connections on a free loopback port and, for each request,
records its request line, then:

- `"silent"`: never answers (keeps the connection open);
- `"trickle-headers"`: sends a status line and headers one byte every `interval` seconds,
  never finishing them;
- `"trickle-body"`: sends complete headers announcing a large JSON body, then the body
  one byte every `interval` seconds.

Every thread it starts ends within a second of `stop()` (or leaving the `with` block).
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

MODES = ("silent", "trickle-headers", "trickle-body")


class SlowServer:
    def __init__(self, mode: str, *, interval: float = 0.5) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.interval = interval
        self.request_lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.origin = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SlowServer:
        self._accepter.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._accepter.join(5)
        for thread in list(self._threads):
            thread.join(5)
        self._sock.close()

    def __enter__(self) -> SlowServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def methods(self) -> list[str]:
        with self._lock:
            return [line.split(" ", 1)[0] for line in self.request_lines]

    # -- serving -----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.1)
            head = b""
            deadline = time.monotonic() + 10
            while b"\r\n\r\n" not in head and time.monotonic() < deadline:
                if self._stop.is_set():
                    return
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            with self._lock:
                self.request_lines.append(line)
            if self.mode == "silent":
                self._stop.wait(60)
                return
            if self.mode == "trickle-headers":
                payload = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-pad: " + (
                    b"a" * 100_000
                )
            else:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: 100000\r\n\r\n"
                )
                payload = b"[" + b" " * 99_998 + b"]"
            for index in range(len(payload)):
                if self._stop.wait(self.interval):
                    return
                try:
                    conn.sendall(payload[index : index + 1])
                except OSError:
                    return
