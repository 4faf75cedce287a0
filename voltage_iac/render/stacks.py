"""Results of several stacks in one document, and the apply result document.

Pure: results -> string. A stack's entry is anything with `path`, `stack`, `code`,
`error` (None when it ran) and `value` (its plan, drift report or apply result); the
command line's `StackRun` is one. One stack given alone keeps its own output: these
wrap several.

- text: one section per stack headed `== Stack <name> (<path>) ==`, then a summary.
- Markdown: ONE comment (it starts with the plan marker, so CI finds and updates it)
  with a summary table (one row per stack), then one section per stack; the whole is
  kept under GitHub's comment limit by sharing the room between the stacks.
- JSON: `{"format_version": 1, "exit_code": N, "stacks": [{"path", "stack",
  "exit_code", "<plan|drift|apply>": <that stack's document> | "error": "message"}]}`
  (docs/formats.md).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any

from voltage_iac.render.jsonfmt import dump
from voltage_iac.render.markdown import DEFAULT_MAX_CHARS, MARKER, code

#: Version of the several-stacks wrapper and of the apply result document.
STACKS_FORMAT_VERSION = 1
APPLY_FORMAT_VERSION = 1

#: The status words of the apply result document, from the engine's.
_STATUS = {"done": "done", "failed": "failed", "not started": "skipped"}


# -- apply results ------------------------------------------------------------------------


def apply_result_dict(plan: Any, report: Any, exit_code: int) -> dict[str, Any]:
    """The machine-readable result of one stack's apply (`apply --format json`)."""
    changes = [
        {
            "kind": r.kind,
            "key": r.key,
            "action": r.action,
            "status": _STATUS.get(r.status, r.status),
            "id": r.id,
            "seconds": round(r.seconds, 3),
            "message": r.message,
        }
        for r in report.results
    ]
    totals = {"changes": len(changes), "done": 0, "failed": 0, "skipped": 0}
    for change in changes:
        totals[change["status"]] = totals.get(change["status"], 0) + 1
    return {
        "format_version": APPLY_FORMAT_VERSION,
        "stack": plan.stack,
        "organization_id": plan.organization_id,
        "plan_checksum": plan.checksum(),
        "plan_summary": plan.counts(),
        "interrupted": bool(report.interrupted),
        "exit_code": exit_code,
        "totals": totals,
        "changes": changes,
    }


def render_apply_json(plan: Any, report: Any, exit_code: int) -> str:
    return dump(apply_result_dict(plan, report, exit_code))


# -- several stacks -------------------------------------------------------------------------


def render_stacks_json(
    runs: Sequence[Any], name: str, document: Callable[[Any], dict[str, Any]], exit_code: int
) -> str:
    """The wrapper: each stack's own document (`document(run)`) under `name` ("plan",
    "drift", "apply")."""
    entries = []
    for run in runs:
        entry: dict[str, Any] = {"path": str(run.path), "stack": run.stack, "exit_code": run.code}
        if run.error is not None:
            entry["error"] = run.error
        if run.value is not None:
            entry[name] = document(run)
        entries.append(entry)
    return dump(
        {"format_version": STACKS_FORMAT_VERSION, "exit_code": exit_code, "stacks": entries}
    )


def section_title(run: Any) -> str:
    return f"== Stack {run.stack} ({run.path}) =="


def render_stacks_text(
    runs: Sequence[Any], body: Callable[[Any], str], summary: Callable[[Any], str]
) -> str:
    """One section per stack (`body(run)`), then one line per stack (`summary(run)`)."""
    parts = []
    for run in runs:
        text = body(run) if run.value is not None else ""
        if run.error is not None:
            text += f"Error: {run.error}\n"
        parts.append(f"{section_title(run)}\n{text}")
    width = max(len(run.stack) for run in runs)
    lines = [f"{len(runs)} stacks:"]
    for run in runs:
        lines.append(f"  {run.stack:<{width}}  {status_word(run, summary)}")
    return "\n".join(parts) + "\n" + "\n".join(lines) + "\n"


def status_word(run: Any, summary: Callable[[Any], str]) -> str:
    if run.error is not None and run.value is None:
        return f"failed (exit {run.code})"
    said = summary(run)
    return said if run.error is None else f"{said} - failed (exit {run.code})"


def render_plans_markdown(
    runs: Sequence[Any],
    section: Callable[[Any, int], str],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """One pull-request comment for several stacks' plans: marker, summary table, one
    section per stack. `section(plan, room)` renders one plan's Markdown in `room`."""
    lines = [MARKER, f"### voltage-iac plan: {len(runs)} stacks", ""]
    lines += [
        "| stack | path | add | change | replace | destroy |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for run in runs:
        who = f"| {code(run.stack)} | {code(str(run.path))} |"
        if run.value is None:
            lines.append(f"{who} **failed (exit {run.code})** | | | |")
        else:
            c = run.value.counts()
            lines.append(f"{who} {c['create']} | {c['update']} | {c['replace']} | {c['delete']} |")
    lines.append("")
    head = "\n".join(lines) + "\n"
    room = max(2_000, (max_chars - len(head)) // max(1, len(runs)) - 200)
    parts = [head]
    for run in runs:
        parts.append(f"#### Stack {code(run.stack)} ({code(str(run.path))})\n\n")
        if run.value is not None:
            parts.append(_without_head(section(run, room), MARKER, "### voltage-iac plan"))
        if run.error is not None:
            parts.append(_error_block(run, room))
        parts.append("\n")
    text = "".join(parts)
    if len(text) <= max_chars:
        return text
    # Too many stacks for their sections to fit even shortened: the table, and each
    # stack's summary and checksum (what a reviewer approves).
    lines = [
        "> [!NOTE]",
        "> These plans are too long for one comment: each stack's summary is below; its "
        "details are in `plan PATH --format markdown` of that stack alone (in CI, the job "
        "summary).",
        "",
    ]
    for run in runs:
        if run.value is None:
            lines.append(f"- {code(run.stack)}: failed (exit {run.code})")
        else:
            lines.append(
                f"- {code(run.stack)}: {run.value.summary_line()} "
                f"Checksum {code(run.value.checksum())}"
            )
    short = head + "\n".join(lines) + "\n"
    return short if len(short) <= max_chars else short[: max_chars - 40] + "\n\n(cut to fit)\n"


def render_drifts_markdown(runs: Sequence[Any], section: Callable[[Any], str]) -> str:
    """One Markdown report for several stacks' drift: summary table, then each stack
    (`section(run)`)."""
    lines = [f"### voltage-iac drift report: {len(runs)} stacks", ""]
    lines += ["| stack | path | checked | drift |", "|---|---|--:|---|"]
    for run in runs:
        who = f"| {code(run.stack)} | {code(str(run.path))} |"
        report = run.value
        if report is None:
            lines.append(f"{who} | **failed (exit {run.code})** |")
        else:
            found = "in sync" if report.in_sync else f"**{len(report.items)} finding(s)**"
            lines.append(f"{who} {len(report.subjects)} | {found} |")
    lines.append("")
    parts = ["\n".join(lines) + "\n"]
    for run in runs:
        parts.append(f"#### Stack {code(run.stack)} ({code(str(run.path))})\n\n")
        if run.value is not None:
            parts.append(_without_head(section(run), "### voltage-iac drift report"))
        if run.error is not None:
            parts.append(_error_block(run, 4_000))
        parts.append("\n")
    return "".join(parts)


def _without_head(text: str, *heads: str) -> str:
    """A stack's own document without its title lines (the combined one has one)."""
    lines = text.split("\n")
    while lines and (lines[0] in heads or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines)


def render_drifts_junit(runs: Sequence[Any], suite: Callable[[Any], str]) -> str:
    """One JUnit document for several stacks: each stack's test suite (`suite(run)`, a
    whole JUnit document); a stack that could not be checked is a suite with one test
    case in error."""
    suites = ET.Element("testsuites")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    for run in runs:
        if run.value is not None:
            for one in ET.fromstring(suite(run)).iter("testsuite"):
                suites.append(one)
        else:
            one = ET.SubElement(
                suites,
                "testsuite",
                {
                    "name": f"voltage-iac drift ({run.stack})",
                    "tests": "1",
                    "failures": "0",
                    "errors": "1",
                    "skipped": "0",
                    "time": f"{run.seconds:.3f}",
                },
            )
            case = ET.SubElement(
                one, "testcase", {"classname": f"voltage-iac.{run.stack}", "name": str(run.path)}
            )
            error = ET.SubElement(case, "error", {"message": f"failed (exit {run.code})"})
            error.text = str(run.error)
    for one in suites.iter("testsuite"):
        for name in totals:
            totals[name] += int(one.get(name, "0") or 0)
        seconds += float(one.get("time", "0") or 0)
    for name, value in totals.items():
        suites.set(name, str(value))
    suites.set("time", f"{seconds:.3f}")
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _error_block(run: Any, room: int) -> str:
    message = str(run.error)
    if len(message) > room:
        message = message[:room] + " ..."
    fence = "````" if "```" in message else "```"
    return f"Failed (exit {run.code}):\n\n{fence}\n{message}\n{fence}\n"


__all__ = [
    "APPLY_FORMAT_VERSION",
    "STACKS_FORMAT_VERSION",
    "apply_result_dict",
    "render_apply_json",
    "render_drifts_junit",
    "render_drifts_markdown",
    "render_plans_markdown",
    "render_stacks_json",
    "render_stacks_text",
    "section_title",
    "status_word",
]
