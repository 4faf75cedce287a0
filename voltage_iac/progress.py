"""How far an apply has got, for a person at a terminal and for a CI log.

A display of the command line (it writes to the stream it is given, normally standard
error, and never decides anything): fed by the engine's `ApplyEvents` callbacks, so the
engine stays free of output.

- On a terminal (a TTY, and not `CI=true`): a live display drawn by `rich` - one bar per
  stack with done/total, failures, rate and time left - redrawn in place; lines written
  meanwhile (`Board.echo`) appear above it.
- Elsewhere (a CI log, a pipe, a file): a compact count line every tenth of the changes,
  and every few seconds while a stack is still running (also when no change finished:
  a slow change still shows the apply is alive), and one at the end:
  `apply: 120/200, 118 done, 2 failed, 14.2/s, ETA 6s`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from voltage_iac.engine import Phase

#: Modes of a board: a live redraw, count lines, or nothing.
LIVE, LINES, OFF = "live", "lines", "off"

#: Seconds between two count lines while changes keep finishing.
LINE_INTERVAL = 5.0


def choose_mode(stream: TextIO, environ: Mapping[str, str] | None = None) -> str:
    """LIVE on a terminal, LINES in CI (CI=true) or when the stream is not a terminal."""
    env = os.environ if environ is None else environ
    if env.get("CI", "").strip().lower() in ("true", "1", "yes"):
        return LINES
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return LIVE if tty else LINES


def count_line(label: str, total: int, done: int, failed: int, seconds: float) -> str:
    """`apply: 120/200, 118 done, 2 failed, 14.2/s, ETA 6s` (rate and ETA once known)."""
    finished = done + failed
    line = f"{label}: {finished}/{total}, {done} done, {failed} failed"
    if finished and seconds > 0:
        rate = finished / seconds
        line += f", {rate:.1f}/s"
        if finished < total:
            line += f", ETA {_duration((total - finished) / rate)}"
        else:
            line += f", in {_duration(seconds)}"
    return line


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def describe_phase(phase: Phase) -> str:
    """A line of -v: `read 1,000 wallets in 0.4s (2 requests)`."""
    n = phase.requests
    requests = "" if n is None else f" ({n:,} request{'' if n == 1 else 's'})"
    if phase.name == "read":
        what = ", ".join(
            f"{count:,} {kind}{'' if count == 1 else 's'}" for kind, count in phase.per_kind
        )
        return f"read {what or f'{phase.count:,} objects'} in {phase.seconds:.1f}s{requests}"
    changes = f"{phase.count:,} change{'' if phase.count == 1 else 's'}"
    if phase.name == "diff":
        return f"diff: {changes} planned in {phase.seconds:.2f}s"
    return f"{phase.name}: {changes} in {phase.seconds:.1f}s{requests}"


class Board:
    """The progress of one command: one tracker per stack, written to one stream."""

    def __init__(
        self,
        stream: TextIO,
        mode: str,
        *,
        color: bool = False,
        interval: float = LINE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.mode = mode
        self.color = color
        self.interval = interval
        self.clock = clock
        self._lock = threading.RLock()
        self._progress: Any = None  # rich.progress.Progress while live
        self._console: Any = None
        # LINES: trackers still running, and the thread that writes their count line when
        # no result came for `interval` seconds (a slow change still shows life).
        self._running: list[Tracker] = []
        self._ticker: threading.Thread | None = None
        self._closed = threading.Event()

    # -- output ------------------------------------------------------------------------------
    def echo(self, text: str) -> None:
        """Write a line; on a live display, above the bars."""
        with self._lock:
            if self._progress is not None:
                from rich.text import Text

                self._console.print(Text.from_ansi(text), soft_wrap=True)
            else:
                self.stream.write(text + "\n")
                self.stream.flush()

    def tracker(self, label: str) -> Tracker:
        return Tracker(self, label)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._running.clear()
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- count lines when nothing finishes -----------------------------------------------------
    def _watch(self, tracker: Tracker) -> None:
        with self._lock:
            self._running.append(tracker)
            if self._ticker is None and not self._closed.is_set():
                self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
                self._ticker.start()

    def _unwatch(self, tracker: Tracker) -> None:
        with self._lock:
            if tracker in self._running:
                self._running.remove(tracker)

    def _tick(self) -> None:
        while not self._closed.wait(self.interval / 2):
            with self._lock:
                running = list(self._running)
            for tracker in running:
                tracker._heartbeat()

    # -- the live display ----------------------------------------------------------------------
    def _live_task(self, label: str, total: int) -> Any:
        with self._lock:
            if self._progress is None:
                self._progress = _rich_progress(self.stream, self.color)
                self._console = self._progress.console
                self._progress.start()
            return self._progress.add_task(label, total=total, failed=0)

    def _live_update(self, task: Any, finished: int, failed: int) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.update(task, completed=finished, failed=failed)


class Tracker:
    """The progress of one stack's apply: `begin(total)`, then one `advance` per result."""

    def __init__(self, board: Board, label: str) -> None:
        self.board = board
        self.label = label
        self.total = 0
        self.done = 0
        self.failed = 0
        self._started = 0.0
        self._last_line = 0.0
        self._last_count = 0
        self._task: Any = None
        self._ended = False  # the last count line was written
        self._lock = threading.Lock()

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def begin(self, total: int) -> None:
        with self._lock:
            self.total = total
            self._started = self._last_line = self.board.clock()
        if self.board.mode == LIVE and total:
            self._task = self.board._live_task(self.label, total)
        elif self.board.mode == LINES and total:
            self.board._watch(self)

    def advance(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.done += 1
            else:
                self.failed += 1
            now = self.board.clock()
            step = max(1, self.total // 10)
            due = self.finished - self._last_count >= step or now - self._last_line >= (
                self.board.interval
            )
            line = None
            last = self.finished >= self.total
            if self.board.mode == LINES and (due or last) and not self._ended:
                line = self._line(now)
                self._last_line, self._last_count = now, self.finished
                self._ended = last
            finished, failed = self.finished, self.failed
        if self._ended:
            self.board._unwatch(self)
        if line is not None:
            self.board.echo(line)
        if self._task is not None:
            self.board._live_update(self._task, finished, failed)

    def end(self) -> None:
        """The last count line, unless the last result wrote it (LINES mode; the live
        bar keeps its last state). An interrupted apply ends short of its total."""
        with self._lock:
            if self.board.mode != LINES or not self.total or self._ended:
                return
            self._ended = True
            line = self._line(self.board.clock())
        self.board._unwatch(self)
        self.board.echo(line)

    def _heartbeat(self) -> None:
        """The count line, when none was written for the board's interval."""
        with self._lock:
            now = self.board.clock()
            if self._ended or now - self._last_line < self.board.interval:
                return
            self._last_line = now
            line = self._line(now)
        self.board.echo(line)

    def _line(self, now: float) -> str:
        return count_line(self.label, self.total, self.done, self.failed, now - self._started)


def _rich_progress(stream: TextIO, color: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f}/s" if speed else "-/s")

    console = Console(file=stream, no_color=not color, highlight=False)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        # Standard output may be a file or a pipe (the results): never drawn over. Lines
        # written to standard error meanwhile (log lines of -v) appear above the bars.
        redirect_stdout=False,
        redirect_stderr=True,
    )
