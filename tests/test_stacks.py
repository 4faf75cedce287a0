"""Several stacks in one command: `plan a b`, `apply a b --auto-approve`, `drift a b`.

Over the emulator served on 127.0.0.1: each stack is a real configuration in a directory
of its own; every stack's result is shown, one failure never hides another, and the exit
code is the most severe of the stacks'.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Backend, config_doc, wallet
from tests.served import TEST_KEY, served_emulator
from voltage_iac.errors import (
    EXIT_AUTH,
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_SAFETY,
)
from voltage_iac.locking import stack_lock
from voltage_iac.render.markdown import MARKER
from voltage_iac.stacks import most_severe

served = pytest.mark.parametrize("backend", ["served"], indirect=True)


def _stack(backend: Backend, name: str, wallets: dict[str, Any]) -> Path:
    folder = backend.tmp / "stacks" / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "wallets.yaml"
    path.write_text(yaml.safe_dump(config_doc(wallets, stack=name), sort_keys=False))
    return folder


def _two(backend: Backend) -> tuple[Path, Path]:
    payments = _stack(backend, "payments", {"pay-eu": wallet("Pay EU"), "pay-us": wallet("Pay US")})
    treasury = _stack(backend, "treasury", {"reserve": wallet("Reserve")})
    return payments, treasury


def _owned(backend: Backend, stack: str) -> dict[str, dict[str, Any]]:
    return {
        (w.get("metadata") or {}).get("voltage-iac.key", w["name"]): w
        for w in backend.wallets()
        if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack") == stack
    }


def test_most_severe_exit_code_order() -> None:
    # 130 > 3 > 4 > 5 > 1 > 2 > 0; an unknown code counts as an error.
    assert most_severe([]) == EXIT_OK
    assert most_severe([EXIT_OK, EXIT_CHANGES]) == EXIT_CHANGES
    assert most_severe([EXIT_CHANGES, EXIT_ERROR]) == EXIT_ERROR
    assert most_severe([EXIT_ERROR, EXIT_SAFETY, EXIT_CHANGES]) == EXIT_SAFETY
    assert most_severe([EXIT_SAFETY, EXIT_AUTH]) == EXIT_AUTH
    assert most_severe([EXIT_AUTH, EXIT_INVALID, EXIT_OK]) == EXIT_INVALID
    assert most_severe([EXIT_INVALID, EXIT_INTERRUPTED]) == EXIT_INTERRUPTED
    assert most_severe([EXIT_CHANGES, 77]) == EXIT_ERROR


@served
def test_plan_of_two_stacks_has_a_section_each_and_one_exit_code(backend: Backend) -> None:
    payments, treasury = _two(backend)
    result = backend.run("plan", str(payments), str(treasury), "--detailed-exitcode")
    assert result.exit_code == EXIT_CHANGES, result.output
    out = result.stdout
    first = out.index(f"== Stack payments ({payments}) ==")
    second = out.index(f"== Stack treasury ({treasury}) ==")
    assert first < second
    assert "wallet pay-eu" in out[first:second] and "wallet reserve" in out[second:]
    assert "Plan: 2 to add" in out[first:second] and "Plan: 1 to add" in out[second:]
    assert out.count("Plan checksum: sha256:") == 2
    assert "2 stacks:" in out
    # Without --detailed-exitcode, changes are not an exit code (as for one stack).
    assert backend.run("plan", str(payments), str(treasury)).exit_code == EXIT_OK


@served
def test_plan_json_of_several_stacks_wraps_each_stacks_own_plan(backend: Backend) -> None:
    payments, treasury = _two(backend)
    alone = backend.run("plan", str(payments), "--format", "json")
    assert alone.exit_code == 0, alone.output
    single = json.loads(alone.stdout)
    # One path: today's plan document itself, no wrapper.
    assert single["format_version"] == 2 and "stacks" not in single

    both = backend.run("plan", str(payments), str(treasury), "--format", "json")
    assert both.exit_code == 0, both.output
    doc = json.loads(both.stdout)
    assert doc["format_version"] == 1 and doc["exit_code"] == 0
    assert [(s["stack"], s["path"]) for s in doc["stacks"]] == [
        ("payments", str(payments)),
        ("treasury", str(treasury)),
    ]
    assert doc["stacks"][0]["plan"] == single  # the same plan, checksum included
    assert doc["stacks"][1]["plan"]["summary"]["create"] == 1


@served
def test_plan_markdown_of_several_stacks_is_one_comment_with_a_summary_table(
    backend: Backend,
) -> None:
    payments, treasury = _two(backend)
    result = backend.run("plan", str(payments), str(treasury), "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(MARKER + "\n") and text.count(MARKER) == 1
    assert text.count("### voltage-iac plan") == 1
    table = text[: text.index("#### Stack")]
    assert f"| `payments` | `{payments}` | 2 | 0 | 0 | 0 |" in table
    assert f"| `treasury` | `{treasury}` | 1 | 0 | 0 | 0 |" in table
    assert "#### Stack `payments`" in text and "#### Stack `treasury`" in text
    assert text.count("Plan checksum:") == 2


@served
def test_an_invalid_stack_does_not_hide_the_others_plan(backend: Backend) -> None:
    payments, _ = _two(backend)
    broken = backend.tmp / "stacks" / "broken"
    broken.mkdir(parents=True)
    (broken / "wallets.yaml").write_text("version: 1\nstack: broken\nwallets: [nope\n")
    result = backend.run("plan", str(broken), str(payments), "--detailed-exitcode")
    assert result.exit_code == EXIT_INVALID, result.output  # 3 beats 2
    assert "Traceback" not in result.output
    section = result.stdout[result.stdout.index(f"== Stack payments ({payments}) ==") :]
    assert "Plan: 2 to add" in section
    assert f"== Stack {broken} ({broken}) ==" in result.stdout
    assert "failed (exit 3)" in result.stdout

    as_json = backend.run("plan", str(broken), str(payments), "--format", "json")
    assert as_json.exit_code == EXIT_INVALID
    doc = json.loads(as_json.stdout)
    assert doc["exit_code"] == EXIT_INVALID
    bad, good = doc["stacks"]
    assert bad["exit_code"] == EXIT_INVALID and bad["error"] and "plan" not in bad
    assert good["exit_code"] == 0 and good["plan"]["summary"]["create"] == 2
    assert f"Error: stack {broken} ({broken})" in as_json.stderr


@served
def test_apply_of_two_stacks_applies_both_under_their_own_locks(backend: Backend) -> None:
    payments, treasury = _two(backend)
    result = backend.run("apply", str(payments), str(treasury), "--auto-approve")
    assert result.exit_code == 0, result.output
    assert set(_owned(backend, "payments")) == {"pay-eu", "pay-us"}
    assert set(_owned(backend, "treasury")) == {"reserve"}
    out = result.stdout
    results = out[out.rindex(f"== Stack payments ({payments}) ==") :]
    assert "Apply complete: 2 done, 0 failed, 0 not started." in results
    assert "Apply complete: 1 done, 0 failed, 0 not started." in results
    again = backend.run("plan", str(payments), str(treasury), "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@served
def test_one_stack_refused_does_not_stop_or_hide_the_other(backend: Backend) -> None:
    payments, treasury = _two(backend)
    assert backend.run("apply", str(payments), str(treasury), "--auto-approve").exit_code == 0
    # payments now drops a wallet (a delete, refused without --allow-delete); treasury
    # gets a new one.
    _stack(backend, "payments", {"pay-eu": wallet("Pay EU")})
    _stack(backend, "treasury", {"reserve": wallet("Reserve"), "float": wallet("Float")})
    result = backend.run(
        "apply", str(payments), str(treasury), "--auto-approve", "--format", "json"
    )
    assert result.exit_code == EXIT_SAFETY, result.output
    doc = json.loads(result.stdout)
    refused, applied = doc["stacks"]
    assert refused["stack"] == "payments" and refused["exit_code"] == EXIT_SAFETY
    assert "refused by safety rules" in refused["error"] and "--allow-delete" in refused["error"]
    assert applied["stack"] == "treasury" and applied["exit_code"] == 0
    assert [(c["key"], c["status"]) for c in applied["apply"]["changes"]] == [("float", "done")]
    assert set(_owned(backend, "payments")) == {"pay-eu", "pay-us"}  # nothing changed there
    assert set(_owned(backend, "treasury")) == {"reserve", "float"}


@served
def test_a_busy_stack_fails_alone_the_other_is_applied(backend: Backend) -> None:
    payments, treasury = _two(backend)
    scope = "stack payments (voltage " + config_doc({})["provider"]["organization_id"] + ")"
    with stack_lock(scope, wait=1):  # another apply of payments holds its lock
        result = backend.run(
            "apply", str(payments), str(treasury), "--auto-approve", "--lock-wait", "0.2"
        )
    assert result.exit_code == EXIT_ERROR, result.output
    assert "another apply of stack payments" in result.stdout
    assert set(_owned(backend, "treasury")) == {"reserve"}
    assert _owned(backend, "payments") == {}
    assert "treasury  Apply complete: 1 done" in result.stdout


@served
def test_several_stacks_refuse_what_names_one_stack(backend: Backend) -> None:
    payments, treasury = _two(backend)
    two = (str(payments), str(treasury))
    cases = [
        (("apply", *two), "needs --auto-approve"),
        (("plan", *two, "--out", str(backend.tmp / "p.json")), "--out applies to one stack"),
        (("plan", *two, "--target", "pay-eu"), "--target applies to one stack"),
        (("apply", *two, "--auto-approve", "--checksum", "sha256:00"), "--checksum"),
        (("apply", *two, "--auto-approve", "--verify"), "--verify"),
        (("plan", str(payments), str(payments)), "is given twice"),
        (("plan",), "plan needs at least one configuration path"),
        (("apply", "--auto-approve"), "apply needs a configuration or a reviewed plan file"),
        (("drift",), "drift needs at least one configuration path"),
    ]
    for argv, message in cases:
        result = backend.run(*argv)
        assert result.exit_code == EXIT_INVALID, (argv, result.output)
        assert message in result.stderr, (argv, result.output)
        assert "Traceback" not in result.output
    assert backend.wallets() == [w for w in backend.wallets() if not _is_ours(w)]
    # Two paths of one stack name are refused too (they would share its lock).
    copy = _stack(backend, "copy", {"x": wallet("X")})
    (copy / "wallets.yaml").write_text(
        (payments / "wallets.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = backend.run("plan", str(payments), str(copy))
    assert result.exit_code == EXIT_INVALID and "same stack 'payments'" in result.stderr


def _is_ours(w: dict[str, Any]) -> bool:
    return bool((w.get("metadata") or {}).get("voltage-iac.stack"))


@served
def test_drift_of_two_stacks_reports_each_and_exits_2(backend: Backend) -> None:
    payments, treasury = _two(backend)
    assert backend.run("apply", str(payments), str(treasury), "--auto-approve").exit_code == 0
    assert backend.api is not None
    reserve = _owned(backend, "treasury")["reserve"]
    backend.api.patch(
        f"/organizations/{reserve['organization_id']}/wallets/{reserve['id']}",
        json={"name": "Renamed by hand"},
    ).raise_for_status()

    text = backend.run("drift", str(payments), str(treasury))
    assert text.exit_code == EXIT_CHANGES, text.output
    out = text.stdout
    assert "In sync" in out[out.index("== Stack payments") : out.index("== Stack treasury")]
    assert "Renamed by hand" in out[out.index("== Stack treasury") :]

    markdown = backend.run("drift", str(payments), str(treasury), "--format", "markdown")
    assert markdown.exit_code == EXIT_CHANGES
    assert f"| `payments` | `{payments}` | 2 | in sync |" in markdown.stdout
    assert f"| `treasury` | `{treasury}` | 1 | **1 finding(s)** |" in markdown.stdout

    report = backend.tmp / "drift.xml"
    junit = backend.run(
        "drift", str(payments), str(treasury), "--format", "junit", "--output", str(report)
    )
    assert junit.exit_code == EXIT_CHANGES, junit.output
    root = ET.fromstring(report.read_text(encoding="utf-8"))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "voltage-iac drift (payments)",
        "voltage-iac drift (treasury)",
    ]
    assert root.get("failures") == "1"
    assert root.get("tests") == str(sum(int(s.get("tests", "")) for s in suites))
    [failure] = root.iter("failure")
    assert "Renamed by hand" in (failure.text or "")

    as_json = backend.run("drift", str(payments), str(treasury), "--format", "json")
    doc = json.loads(as_json.stdout)
    assert [s["drift"]["in_sync"] for s in doc["stacks"]] == [True, False]
    assert doc["exit_code"] == EXIT_CHANGES


#: enough creates that sending them takes longer than the deadline (at 150 ms a request,
#: one at a time), whatever the waits for them to show
PER_STACK = 40


def test_a_deadline_stops_every_stack_and_a_rerun_finishes_them(tmp_path: Path) -> None:
    """In a child process (the deadline signals the main thread, as Ctrl-C does): the
    stacks' running changes finish, the rest are reported not started, exit 1; a re-run
    completes both stacks with every wallet created once."""
    folders = []
    for stack in ("payments", "treasury"):
        folder = tmp_path / stack
        folder.mkdir()
        doc = config_doc(
            {f"{stack[0]}{n:02d}": wallet(f"{stack} {n}") for n in range(PER_STACK)},
            stack=stack,
        )
        (folder / "wallets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        folders.append(str(folder))
    env = {**os.environ, "NO_COLOR": "1", "VOLTAGE_API_URL": "", "VOLTAGE_API_KEY": TEST_KEY}
    with served_emulator(tmp_path, latency_ms=150) as emu:
        argv = [sys.executable, "-m", "voltage_iac", "apply", *folders, "--auto-approve"]
        argv += ["--api-url", emu.base_url, "--parallelism", "1"]
        done = subprocess.run(
            [*argv, "--deadline", "3"], capture_output=True, text=True, env=env, timeout=90
        )
        output = done.stdout + done.stderr
        assert done.returncode == EXIT_ERROR, output
        assert "--deadline of 3s passed" in output and "Traceback" not in output
        for stack in ("payments", "treasury"):  # each stack's results, none hidden
            assert f"\n  {stack}  Apply interrupted: " in done.stdout, output
        assert "not started" in output
        again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=90)
        assert again.returncode == 0, again.stdout + again.stderr
        keys = Counter(
            (w["metadata"]["voltage-iac.stack"], w["metadata"]["voltage-iac.key"])
            for w in emu.state()["wallets"]
            if w["active"] and (w.get("metadata") or {}).get("voltage-iac.stack")
        )
    assert sorted(keys.values()) == [1] * (2 * PER_STACK) and len(keys) == 2 * PER_STACK


def test_the_markdown_comment_of_many_large_stacks_fits_githubs_limit() -> None:
    # 120 stacks of 40 new wallets each: past one comment even with every section
    # shortened, so the comment keeps the table and each stack's summary and checksum.
    from tests.factories import desired, live, want
    from voltage_iac.diff import diff
    from voltage_iac.render.markdown import render_markdown
    from voltage_iac.render.stacks import render_plans_markdown
    from voltage_iac.stacks import StackRun

    runs = []
    for n in range(120):
        state = dataclasses.replace(
            desired(*(want(f"w{i:02d}") for i in range(40))), stack=f"stack-{n:03d}"
        )
        plan = diff(state, live())
        runs.append(StackRun(Path(f"stacks/stack-{n:03d}"), desired=state, value=plan))
    text = render_plans_markdown(runs, lambda r, room: render_markdown(r.value, max_chars=room))
    assert len(text) <= 65_536
    assert text.startswith(MARKER + "\n") and text.count(MARKER) == 1
    assert "too long for one comment" in text
    for run in runs:
        assert f"| `{run.stack}` | `{run.path}` | 40 | 0 | 0 | 0 |" in text
        assert run.value.checksum() in text

    # Two such stacks fit: each gets its own (shortened) section.
    two = render_plans_markdown(runs[:2], lambda r, room: render_markdown(r.value, max_chars=room))
    assert len(two) <= 65_536 and two.count("#### Stack") == 2
    assert "too long for one comment" not in two and "wallet <b>w00</b>" in two
