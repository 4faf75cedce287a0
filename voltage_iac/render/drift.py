"""Drift reports as text, JSON, Markdown and JUnit XML (one test case per entry).

Pure: DriftReport -> string. JUnit lets CI systems show drift natively: every entry
examined is a test case, each drifted one carries one failure listing its findings, and
what is reported but not drift (ignored findings, unmanaged and other stacks' objects)
appears as skipped.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET

from voltage_iac.drift import DriftItem, DriftReport
from voltage_iac.plan import PolicyResult
from voltage_iac.render.jsonfmt import dump
from voltage_iac.render.markdown import code, escape
from voltage_iac.render.values import show_value


def render_drift_text(report: DriftReport) -> str:
    lines = [f"Drift report for stack {report.stack}: {len(report.subjects)} resource(s) checked."]
    if report.in_sync:
        lines.append("In sync: no drift found.")
    for kind, subject in _drifted_subjects(report):
        items = report.items_for(kind, subject)
        where = f" ({items[0].environment})" if items[0].environment else ""
        lines.append(f"  ! {kind} {subject}{where}")
        for item in items:
            lines.append(f"      {_line(item)}")
    if report.notices:
        lines.append(f"Not drift ({len(report.notices)}; never changed):")
        for item in report.notices:
            where = f" in {item.environment}" if item.environment else ""
            lines.append(f"    {item.kind} {item.subject} [{item.id}]{where}: {item.describe()}")
    if report.ignored:
        lines.append(f"{len(report.ignored)} finding(s) ignored by ignore rules.")
    if not report.in_sync:
        lines.append(
            f"Drift: {len(report.items)} finding(s) in "
            f"{len(_drifted_subjects(report))} resource(s)."
        )
    return "\n".join(lines) + "\n"


def _line(item: DriftItem) -> str:
    if item.finding == "changed":
        return (
            f"{item.field}: configured {show_value(item.field, item.expected)}, "
            f"live {show_value(item.field, item.actual)}"
        )
    text = item.describe()
    return f"{text} [{item.id}]" if item.id and item.finding != "conflict" else text


def _drifted_subjects(report: DriftReport) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for item in report.items:
        if (item.kind, item.subject) not in seen:
            seen.append((item.kind, item.subject))
    return seen


def render_drift_json(report: DriftReport) -> str:
    return dump(report.to_dict())


def render_drift_markdown(report: DriftReport) -> str:
    lines = ["### voltage-iac drift report", ""]
    lines.append(
        f"Stack {code(report.stack)}: {len(report.subjects)} resource(s) checked, "
        + ("**in sync**." if report.in_sync else f"**{len(report.items)} finding(s)**.")
    )
    lines.append("")
    if not report.in_sync:
        lines += ["| resource | finding | configured | live |", "|---|---|---|---|"]
        for item in report.items:
            who = f"{escape(item.kind)} {code(item.subject)}"
            if item.finding == "changed":
                lines.append(
                    f"| {who} | {code(item.field)} changed | "
                    f"{escape(show_value(item.field, item.expected))} | "
                    f"{escape(show_value(item.field, item.actual))} |"
                )
            else:
                lines.append(f"| {who} | {escape(_line(item))} | | |")
        lines.append("")
    if report.notices:
        lines.append(f"{len(report.notices)} resource(s) reported but not drift:")
        lines.append("")
        for item in report.notices:
            lines.append(f"- {escape(item.kind)} {code(item.subject)}: {escape(item.describe())}")
        lines.append("")
    if report.ignored:
        lines.append(f"{len(report.ignored)} finding(s) ignored by ignore rules.")
        lines.append("")
    return "\n".join(lines)


def render_drift_junit(
    report: DriftReport,
    *,
    seconds: float = 0.0,
    timestamp: datetime.datetime | None = None,
    verdicts: PolicyResult | None = None,
) -> str:
    """One test case per resource (a failure per drifted one, skipped for what is reported
    but not drift) and, when policies judged the report, one per verdict (a failure per
    deny, so a CI test report shows why the check failed)."""
    failures = len(_drifted_subjects(report))
    skipped_items = {(i.kind, i.subject): i for i in (*report.notices, *report.ignored)}
    subjects = list(report.subjects)
    for key in skipped_items:
        if key not in subjects:
            subjects.append(key)
    skipped = sum(1 for key in subjects if key in skipped_items and not report.items_for(*key))
    when = (timestamp or datetime.datetime.now(datetime.timezone.utc)).replace(microsecond=0)
    suite = ET.Element(
        "testsuite",
        {
            "name": f"voltage-iac drift ({report.stack})",
            "tests": str(len(subjects)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "time": f"{seconds:.3f}",
            "timestamp": when.isoformat(),
        },
    )
    for kind, subject in subjects:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"voltage-iac.{report.stack}.{kind}", "name": subject, "time": "0"},
        )
        items = report.items_for(kind, subject)
        if items:
            failure = ET.SubElement(
                case,
                "failure",
                {"message": f"{len(items)} drift finding(s)", "type": "drift"},
            )
            failure.text = "\n".join(_line(i) for i in items)
        elif (kind, subject) in skipped_items:
            item = skipped_items[(kind, subject)]
            reason = "ignored by an ignore rule" if item in report.ignored else item.describe()
            ET.SubElement(case, "skipped", {"message": reason})
    judged = verdicts.verdicts if verdicts is not None else ()
    for verdict in judged:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"voltage-iac.{report.stack}.policy",
                "name": f"{verdict.type} {verdict.id}",
                "time": "0",
            },
        )
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        if verdicts is not None and verdict.blocking and not verdicts.overridden(verdict):
            failures += 1
            failure = ET.SubElement(case, "failure", {"message": verdict.message, "type": "policy"})
            failure.text = f"{verdict.message} ({verdict.file})"
        else:
            ET.SubElement(case, "system-out").text = verdict.message
    suite.set("failures", str(failures))
    suites = ET.Element(
        "testsuites",
        {
            "tests": suite.get("tests", "0"),
            "failures": str(failures),
            "skipped": str(skipped),
            "time": f"{seconds:.3f}",
        },
    )
    suites.append(suite)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
