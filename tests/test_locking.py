"""One apply per stack at a time: the second waits, plans afresh and re-sends nothing.

Two applies of the same 30 wallets start together through the engine, each on its own
client, against one served emulator (real HTTP on 127.0.0.1); every POST is counted.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.reliability_helpers import Spec, engine_provider, write_config
from tests.served import served_emulator
from voltage_iac.config import load_config
from voltage_iac.engine import ApplyEvents, ApplyOptions, Engine
from voltage_iac.errors import EXIT_ERROR
from voltage_iac.locking import StackBusy, stack_lock

WALLETS = 30
JOIN_TIMEOUT = 120.0


def test_two_applies_of_one_stack_send_each_create_once(tmp_path: Path) -> None:
    config = {f"w{i:02d}": Spec(f"Wallet {i}", 1000) for i in range(WALLETS)}
    path = write_config(tmp_path / "wallets.yaml", config)
    posts: list[str] = []
    notices: list[str] = []
    results: list[object] = []
    guard = threading.Lock()
    with served_emulator(tmp_path, latency_ms=5) as emu:
        barrier = threading.Barrier(2, timeout=JOIN_TIMEOUT)

        def one_apply() -> None:
            with engine_provider(emu.base_url, wait_timeout=10.0) as provider:
                create = provider.client.create_wallet

                def counted(org: str, body: dict) -> None:
                    with guard:
                        posts.append(body["id"])
                    create(org, body)

                provider.client.create_wallet = counted  # type: ignore[method-assign]
                engine = Engine(load_config(path), provider)
                barrier.wait()
                outcome = engine.apply(
                    ApplyOptions(parallelism=8), ApplyEvents(on_notice=notices.append)
                )
            with guard:
                results.append(outcome)

        threads = [threading.Thread(target=one_apply) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(t.is_alive() for t in threads), "an apply did not finish"

    assert len(results) == 2
    assert len(posts) == WALLETS and len(set(posts)) == WALLETS  # never twice
    done = sorted(len(o.report.results) for o in results)  # type: ignore[attr-defined]
    assert done == [0, WALLETS]  # the second one found nothing left to do
    [notice] = notices
    assert "another apply of stack" in notice and "waiting up to" in notice


def test_a_second_apply_that_waits_too_long_changes_nothing_and_names_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOLTAGE_IAC_LOCK_DIR", str(tmp_path / "locks"))
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with stack_lock("stack acme (voltage org)"):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(10)
        with pytest.raises(StackBusy) as busy, stack_lock("stack acme (voltage org)", wait=0.3):
            pytest.fail("the lock was taken twice")
        assert "still running (pid" in str(busy.value) and "nothing was changed" in str(busy.value)
        assert busy.value.exit_code == EXIT_ERROR
        with stack_lock("stack other (voltage org)", wait=0.3):
            pass  # another stack is not held up
    finally:
        release.set()
        thread.join(10)
    with stack_lock("stack acme (voltage org)", wait=0.3):
        pass  # released
