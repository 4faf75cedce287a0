"""The engine with a backend that leaves the wait for a change to show for later
(`providers.base.Deferring`, as the Voltage provider does for wallet creates): at most
`parallelism` changes send writes at a time, waits overlap the next sends, and a change
counts as done only once its wait succeeded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tests.factories import desired, live, want
from tests.fakes import FakeProvider
from voltage_iac.engine import ApplyOptions, Engine
from voltage_iac.errors import VoltageIacError
from voltage_iac.kinds.base import Operation
from voltage_iac.providers.base import Deferring


class DeferringProvider(FakeProvider):
    """Creates are sent by `begin` (a short pause) and show after `wait` seconds."""

    def __init__(self, *, send: float, wait: float, **kwargs: object) -> None:
        super().__init__(lines=live().lines_of_credit, **kwargs)
        self.send = send
        self.wait = wait
        self.sending = 0
        self.max_sending = 0
        self.waiting = 0
        self.max_busy = 0  # changes sending or waiting at the same time
        self.never_shows: set[str] = set()
        self.finished: list[str] = []
        self._count = threading.Lock()

    def execute(self, op: Operation) -> str | None:
        """As the contract says: the same as `begin(op)()`."""
        if op.verb == "create":
            return self.begin(op)()
        return super().execute(op)

    def begin(self, op: Operation) -> Callable[[], str | None]:
        if op.verb != "create":
            result = super().execute(op)
            return lambda: result
        with self._count:
            self.sending += 1
            self.max_sending = max(self.max_sending, self.sending)
            self.max_busy = max(self.max_busy, self.sending + self.waiting)
        try:
            time.sleep(self.send)
            created = self.create_wallet(op)  # FakeProvider's: the write itself
        finally:
            with self._count:
                self.sending -= 1

        def finish() -> str | None:
            with self._count:
                self.waiting += 1
                self.max_busy = max(self.max_busy, self.sending + self.waiting)
            try:
                time.sleep(self.wait)
                if created in self.never_shows:
                    raise VoltageIacError(f"timed out waiting for wallet {created}")
                self.finished.append(created)
                return created
            finally:
                with self._count:
                    self.waiting -= 1

        return finish


def test_the_fake_is_a_deferring_backend() -> None:
    assert isinstance(DeferringProvider(send=0, wait=0), Deferring)
    assert not isinstance(FakeProvider(), Deferring)


def test_sends_are_bounded_by_parallelism_while_waits_overlap() -> None:
    state = desired(*(want(f"w{i:02d}") for i in range(24)))
    provider = DeferringProvider(send=0.01, wait=0.15)
    report = Engine(state, provider).apply(ApplyOptions(parallelism=3)).report
    assert report.ok and len(report.results) == 24
    assert 1 < provider.max_sending <= 3
    # while the first creates wait to show, the next ones are being sent
    assert provider.max_busy > 3
    assert sorted(provider.finished) == sorted(r.id for r in report.results)
    # each result counts its wait: none can be quicker than the wait itself
    assert all(r.seconds >= 0.15 for r in report.results)
    assert not Engine(state, provider).plan().has_changes


def test_a_wait_that_fails_fails_its_change_only_and_a_rerun_finishes() -> None:
    state = desired(want("a"), want("b"), want("c"))
    provider = DeferringProvider(send=0.0, wait=0.02)
    plan = Engine(state, provider).plan()
    b_id = next(c.new_id for c in plan.actionable if c.key == "b")
    provider.never_shows.add(str(b_id))
    report = Engine(state, provider).apply(ApplyOptions(parallelism=2)).report
    assert [(r.key, r.status) for r in report.results] == [
        ("a", "done"),
        ("b", "failed"),
        ("c", "done"),
    ]
    assert "timed out waiting for wallet" in report.failed[0].message
    # the create was sent once; the re-run sees the wallet and sends nothing again
    assert [c for c in provider.calls if c == ("create", b_id)] == [("create", b_id)]
    provider.never_shows.clear()
    assert not Engine(state, provider).plan().has_changes


def test_a_replacement_deletes_the_old_wallet_only_after_the_new_one_shows() -> None:
    provider = DeferringProvider(send=0.0, wait=0.05)
    assert Engine(desired(want("a", limit=1)), provider).apply(ApplyOptions()).report.ok
    old_id = next(iter(provider.wallets))
    provider.calls.clear()
    provider.finished.clear()
    report = (
        Engine(desired(want("a", limit=2)), provider).apply(ApplyOptions(allow_replace=True)).report
    )
    assert report.ok
    assert [c[0] for c in provider.calls] == ["create", "delete"]
    assert provider.calls[1] == ("delete", old_id)
    # the create's wait ran (and succeeded) before the delete was sent
    assert provider.finished == [provider.calls[0][1]]
