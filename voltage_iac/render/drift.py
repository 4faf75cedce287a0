"""Drift reports as text, JSON, Markdown and JUnit XML (one test case per wallet).

Pure: DriftReport -> string. JUnit lets CI systems show drift natively: every wallet
examined is a test case, and each drifted wallet carries one failure listing its findings.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from voltage_iac.drift import DriftItem, DriftReport
from voltage_iac.render.jsonfmt import dump
from voltage_iac.render.markdown import escape
from voltage_iac.render.values import show_value


def render_drift_text(report: DriftReport) -> str:
    lines = [f"Drift report for stack {report.stack}: {len(report.subjects)} wallet(s) checked."]
    if report.in_sync:
        lines.append("In sync: no drift found.")
    for subject in _drifted_subjects(report):
        items = report.items_for(subject)
        where = f" ({items[0].environment})" if items[0].environment else ""
        lines.append(f"  ! {subject}{where}")
        for item in items:
            lines.append(f"      {_line(item)}")
    if report.ignored:
        lines.append(f"{len(report.ignored)} finding(s) ignored by ignore rules.")
    if not report.in_sync:
        lines.append(
            f"Drift: {len(report.items)} finding(s) in {len(_drifted_subjects(report))} wallet(s)."
        )
    return "\n".join(lines) + "\n"


def _line(item: DriftItem) -> str:
    if item.kind == "changed":
        return (
            f"{item.field}: configured {show_value(item.field, item.expected)}, "
            f"live {show_value(item.field, item.actual)}"
        )
    text = item.describe()
    return f"{text} [{item.wallet_id}]" if item.wallet_id else text


def _drifted_subjects(report: DriftReport) -> list[str]:
    seen: list[str] = []
    for item in report.items:
        if item.subject not in seen:
            seen.append(item.subject)
    return seen


def render_drift_json(report: DriftReport) -> str:
    return dump(report.to_dict())


def render_drift_markdown(report: DriftReport) -> str:
    lines = ["### voltage-iac drift report", ""]
    lines.append(
        f"Stack `{escape(report.stack)}`: {len(report.subjects)} wallet(s) checked, "
        + ("**in sync**." if report.in_sync else f"**{len(report.items)} finding(s)**.")
    )
    lines.append("")
    if not report.in_sync:
        lines += ["| wallet | finding | configured | live |", "|---|---|---|---|"]
        for item in report.items:
            if item.kind == "changed":
                lines.append(
                    f"| `{escape(item.subject)}` | `{escape(item.field)}` changed | "
                    f"{escape(show_value(item.field, item.expected))} | "
                    f"{escape(show_value(item.field, item.actual))} |"
                )
            else:
                lines.append(f"| `{escape(item.subject)}` | {escape(_line(item))} | | |")
        lines.append("")
    if report.ignored:
        lines.append(f"{len(report.ignored)} finding(s) ignored by ignore rules.")
        lines.append("")
    return "\n".join(lines)


def render_drift_junit(report: DriftReport) -> str:
    failures = len(_drifted_subjects(report))
    suite = ET.Element(
        "testsuite",
        {
            "name": f"voltage-iac drift ({report.stack})",
            "tests": str(len(report.subjects)),
            "failures": str(failures),
            "errors": "0",
            "skipped": "0",
        },
    )
    for subject in report.subjects:
        case = ET.SubElement(
            suite, "testcase", {"classname": f"voltage-iac.{report.stack}", "name": subject}
        )
        items = report.items_for(subject)
        if items:
            failure = ET.SubElement(
                case,
                "failure",
                {"message": f"{len(items)} drift finding(s)", "type": "drift"},
            )
            failure.text = "\n".join(_line(i) for i in items)
    suites = ET.Element("testsuites", {"tests": suite.get("tests", "0"), "failures": str(failures)})
    suites.append(suite)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
