"""Applies of the same configuration at the same time converge with no duplicate.

Two (three with VOLTAGE_IAC_SLOW=1) applies start together, each with its own client:
threads of this process through the engine against an embedded emulator (many rounds,
with latency and lost answers), and two `voltage-iac apply` processes against a served
emulator. Between rounds the configuration changes at random, so the applies race on
creates, renames, policy updates, replacements and deletes. Every apply must succeed,
no key may ever have more live wallets than one plus its planned replacements, and the
state afterwards must equal the configuration.
"""

from __future__ import annotations

import random
import subprocess
import threading
from collections import Counter
from pathlib import Path

from tests.conftest import TEST_KEY
from tests.reliability_helpers import (
    KEYS,
    SLOW,
    Config,
    Run,
    budget,
    check_converged,
    check_no_extra,
    cli_apply_argv,
    cli_env,
    engine_apply,
    engine_provider,
    eventual_view,
    policies_reader,
    random_edit,
    random_spec,
    replacement_keys,
    wait_settled,
    write_config,
)
from tests.served import served_emulator, stop_process
from voltage_iac.config import load_config
from voltage_iac.emulator import EmbeddedEmulator, Faults
from voltage_iac.emulator.seed import DEMO_SEED
from voltage_iac.engine import Engine
from voltage_iac.secret import Secret

THREAD_ROUNDS = budget(8, 60)  # VOLTAGE_IAC_SLOW=1: the large budget
PROCESS_ROUNDS = budget(2, 10)
APPLIES = 3 if SLOW else 2
JOIN_TIMEOUT = 60.0


def expect_replacements(base_url: str, config_path: Path, allowance: Counter[str]) -> None:
    """Raise the allowance of each key the coming applies replace: however many applies
    race, a replacement has one new id, so it adds one wallet at most."""
    with engine_provider(base_url, wait_timeout=5.0) as provider:
        for key in replacement_keys(Engine(load_config(config_path), provider).plan()):
            allowance[key] += 1


def race(base_url: str, config_path: Path) -> list[Run]:
    """APPLIES engine applies of one configuration, released at the same moment, each on
    its own client."""
    barrier = threading.Barrier(APPLIES, timeout=JOIN_TIMEOUT)
    runs: list[Run] = []
    lock = threading.Lock()

    def one_apply() -> None:
        with engine_provider(base_url, wait_timeout=5.0) as provider:
            barrier.wait()
            run = engine_apply(config_path, provider, parallelism=4)
        with lock:
            runs.append(run)

    threads = [threading.Thread(target=one_apply) for _ in range(APPLIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "an apply did not finish"
    assert len(runs) == APPLIES, "an apply raised"
    return runs


def test_concurrent_engine_applies_converge(tmp_path: Path) -> None:
    rng = random.Random(4242)
    config: Config = {key: random_spec(rng, key) for key in KEYS[:3]}
    config_path = tmp_path / "wallets.yaml"
    allowance: Counter[str] = Counter({key: 1 for key in KEYS})
    figures: Counter[str] = Counter()
    db = tmp_path / "emulator.db"
    with (
        EmbeddedEmulator(
            db, seed=DEMO_SEED, api_key=Secret(TEST_KEY), visibility_delay=0.03
        ) as emu,
        eventual_view(db) as eventual,
    ):
        for number in range(THREAD_ROUNDS):
            for _ in range(rng.choice([1, 2]) if number else 0):
                what, config = random_edit(rng, config)
                figures[what.split()[0]] += 1
            write_config(config_path, config)
            # Latency keeps operations overlapping; lost answers force reads before resends.
            emu.faults.replace(
                Faults(
                    seed=number,
                    visibility_delay=0.03,
                    latency_ms=rng.choice([0, 5, 20]),
                    drop_after_commit=rng.choice([0.0, 0.2]),
                    fail_after_commit=rng.choice([0.0, 0.2]),
                )
            )
            expect_replacements(emu.base_url, config_path, allowance)
            runs = race(emu.base_url, config_path)
            for run in runs:
                assert run.ok, (number, config, run.error, run.report)
                assert run.report is not None
                figures["operations"] += len(run.report.results)
            check_no_extra(emu.store.snapshot(), allowance, f"round {number}")
            check_converged(
                eventual.snapshot(), config, f"round {number}", policies_reader(eventual)
            )
        emu.faults.clear()
        wait_settled(emu.store.snapshot, 5.0)
        with engine_provider(emu.base_url, wait_timeout=5.0) as provider:
            assert not Engine(load_config(config_path), provider).plan().has_changes
    print(
        f"concurrency (threads): {THREAD_ROUNDS} rounds of {APPLIES} applies at once; "
        + ", ".join(f"{k} {v}" for k, v in sorted(figures.items()))
    )


def test_concurrent_cli_applies_converge(tmp_path: Path) -> None:
    rng = random.Random(77)
    config: Config = {key: random_spec(rng, key) for key in KEYS[:4]}
    config_path = tmp_path / "wallets.yaml"
    allowance: Counter[str] = Counter({key: 1 for key in KEYS})
    with served_emulator(tmp_path, latency_ms=10) as emu, eventual_view(emu.db_path) as eventual:
        for number in range(PROCESS_ROUNDS):
            if number:
                _what, config = random_edit(rng, config)
            write_config(config_path, config)
            expect_replacements(emu.base_url, config_path, allowance)
            argv = cli_apply_argv(config_path, emu.base_url, "--parallelism", "4")
            logs = [(tmp_path / f"apply-{number}-{i}.log").open("w") for i in range(APPLIES)]
            processes = [
                subprocess.Popen(argv, env=cli_env(), stdout=log, stderr=subprocess.STDOUT)
                for log in logs
            ]
            try:
                codes = [p.wait(JOIN_TIMEOUT) for p in processes]
            finally:
                for process in processes:
                    stop_process(process)
                for log in logs:
                    log.close()
            outputs = [log.name for log in logs]
            for code, name in zip(codes, outputs, strict=True):
                assert code == 0, Path(name).read_text(encoding="utf-8")
            check_no_extra(emu.state(), allowance, f"round {number}")
            check_converged(
                eventual.snapshot(), config, f"round {number}", policies_reader(eventual)
            )
        with engine_provider(emu.base_url, wait_timeout=5.0) as provider:
            assert not Engine(load_config(config_path), provider).plan().has_changes
    print(f"concurrency (processes): {PROCESS_ROUNDS} rounds of {APPLIES} CLI applies at once")
