"""A killed apply (SIGKILL at a random point) followed by a re-run converges, no duplicate.

`voltage-iac apply --auto-approve` runs in a child process against a served emulator
(another process, with added latency so that an apply takes a while) and is killed after
a random delay (from just before its first operation starts to just after a whole
apply's length), sometimes twice in a row. After each kill the emulator's state must
hold no extra wallet, pending changes included; a re-run must then finish the job
(exit 0), leave the state equal to the configuration, and a new plan must have no
changes. Between trials the configuration changes at random
(renames, replacements, policy changes, removals, additions), so kills land in every
kind of operation.

Default budget: a few trials. VOLTAGE_IAC_SLOW=1: many more.
"""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from pathlib import Path

from tests.reliability_helpers import (
    KEYS,
    Child,
    Config,
    budget,
    check_converged,
    check_no_extra,
    cli_apply_argv,
    cli_env,
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
from voltage_iac.engine import Engine

TRIALS = budget(5, 30)  # VOLTAGE_IAC_SLOW=1: the large budget
LATENCY_MS = 25
RUN_TIMEOUT = 60.0


def run_apply(argv: list[str], log: Path, kill_after: float | None) -> tuple[int | None, str]:
    """Run an apply; SIGKILL it after `kill_after` seconds unless it finished first.
    Returns (exit code or None when killed, its output)."""
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=cli_env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                code: int | None = process.wait(
                    kill_after if kill_after is not None else RUN_TIMEOUT
                )
            except subprocess.TimeoutExpired:
                if kill_after is None:
                    raise
                process.kill()
                process.wait(10)
                code = None
        finally:
            stop_process(process)
    return code, log.read_text(encoding="utf-8")


def test_killed_apply_then_rerun_converges_without_duplicates(tmp_path: Path) -> None:
    rng = random.Random(20261004)
    config: Config = {key: random_spec(rng, key) for key in KEYS[:4]}
    config_path = tmp_path / "wallets.yaml"
    allowance: Counter[str] = Counter({key: 1 for key in KEYS})
    figures: Counter[str] = Counter()
    with (
        served_emulator(tmp_path, latency_ms=LATENCY_MS) as emu,
        eventual_view(emu.db_path) as eventual,
    ):

        def planned_replacements() -> None:
            with engine_provider(emu.base_url, wait_timeout=5.0) as provider:
                plan = Engine(load_config(config_path), provider).plan()
            for key in replacement_keys(plan):
                allowance[key] += 1

        # An untouched apply first: when its first operation starts and how long it takes
        # set the range of kill points (most kills land among the operations).
        write_config(config_path, config)
        argv = cli_apply_argv(config_path, emu.base_url, "--parallelism", "2", "-v")
        calibration = Child(argv)
        first_code, lines = calibration.finish()
        assert first_code == 0, "\n".join(lines)
        full_run = calibration.times[-1]
        first_start = next(
            t for t, x in zip(calibration.times, lines, strict=True) if x.endswith(" started")
        )
        check_converged(
            eventual.snapshot(), config, "after the first apply", policies_reader(eventual)
        )

        for trial in range(TRIALS):
            what, config = random_edit(rng, config)
            if rng.random() < 0.5:
                what2, config = random_edit(rng, config)
                what += ", " + what2
            write_config(config_path, config)
            planned_replacements()
            for kill in range(rng.choice([1, 1, 2])):
                delay = rng.uniform(first_start * 0.8, full_run * 1.05)
                where = f"trial {trial} ({what}), kill {kill} after {delay:.2f}s"
                code, output = run_apply(argv, tmp_path / f"kill-{trial}-{kill}.log", delay)
                if code is not None:
                    assert code == 0, f"{where}: {output}"
                    figures["finished before the kill"] += 1
                else:
                    started_ops = output.count(" started")
                    finished_ops = output.count(" done (") + output.count(" FAILED")
                    if started_ops == 0:
                        figures["killed before any operation started"] += 1
                    elif finished_ops < started_ops:
                        figures["killed with operations in flight"] += 1
                    else:
                        figures["killed between operations"] += 1
                check_no_extra(emu.state(), allowance, where)
                # Pending changes of the killed run are counted as well.
                check_no_extra(eventual.snapshot(), allowance, where + " (eventually)")
            code, output = run_apply(argv, tmp_path / f"rerun-{trial}.log", None)
            assert code == 0, f"trial {trial} ({what}): the re-run failed:\n{output}"
            figures["re-runs that converged"] += 1
            snapshot = wait_settled(emu.state, 5.0)
            check_converged(
                snapshot,
                config,
                f"trial {trial} ({what}) after the re-run",
                policies_reader(eventual),
            )
            with engine_provider(emu.base_url, wait_timeout=5.0) as provider:
                assert not Engine(load_config(config_path), provider).plan().has_changes

    print(
        f"kill test: {TRIALS} trials, whole apply {full_run:.2f}s (first operation at "
        f"{first_start:.2f}s), kills: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.items()))
    )
