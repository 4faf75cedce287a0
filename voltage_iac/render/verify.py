"""Verify reports: text for people, JSON for tools, JUnit XML for CI systems.

Reads a `voltage_iac.verify.VerifyReport` (by its fields only). Invoices are not secret,
but a report shows only their prefix and amount: the payment id finds the rest.
"""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET
from typing import Any

from voltage_iac.units import format_btc


def render_verify(report: Any, fmt: str) -> str:
    if fmt == "json":
        return render_verify_json(report)
    if fmt == "junit":
        return render_verify_junit(report)
    return render_verify_text(report)


def _summary(report: Any) -> str:
    verified = len(report.results) - len(report.failed)
    return (
        f"Verify {'complete' if report.ok else 'FAILED'}: {verified} verified, "
        f"{len(report.failed)} failed ({report.seconds:.1f}s)."
    )


def render_verify_text(report: Any) -> str:
    lines = [
        f"Verify stack {report.stack} ({report.backend}): a receive invoice of "
        f"{report.amount_msats} msats per managed wallet; receive requests only, no funds move.",
        "",
    ]
    if not report.results:
        lines.append("No managed wallets to verify.")
    for r in report.results:
        if r.status == "verified":
            lines.append(
                f"  {r.key:<24} verified  {r.invoice_prefix} invoice, {r.invoice_msats} msats, "
                f"network {r.network or 'not checked'} ({r.seconds:.1f}s)"
            )
        else:
            lines.append(f"  {r.key:<24} FAILED    {r.error_type}: {r.message} ({r.seconds:.1f}s)")
            if r.payment_id:
                lines.append(f"      payment id {r.payment_id}")
            if r.hint:
                lines.append(f"      what to do: {r.hint}")
    lines += ["", _summary(report)]
    return "\n".join(lines) + "\n"


def _result_json(r: Any) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "key": r.key,
        "id": r.id,
        "status": r.status,
        "seconds": round(r.seconds, 3),
        "payment_id": r.payment_id,
        "network": r.network,
        "invoice_prefix": r.invoice_prefix,
        "invoice_msats": r.invoice_msats,
        "error_type": r.error_type,
        "message": r.message,
        "hint": r.hint,
    }


def render_verify_json(report: Any) -> str:
    doc = {
        "format_version": 1,
        "stack": report.stack,
        "backend": report.backend,
        "amount_msats": report.amount_msats,
        "amount": format_btc(report.amount_msats),
        "ok": report.ok,
        "verified": len(report.results) - len(report.failed),
        "failed": len(report.failed),
        "seconds": round(report.seconds, 3),
        "results": [_result_json(r) for r in report.results],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def render_verify_junit(report: Any, *, timestamp: datetime.datetime | None = None) -> str:
    when = (timestamp or datetime.datetime.now(datetime.timezone.utc)).replace(microsecond=0)
    suite = ET.Element(
        "testsuite",
        {
            "name": f"voltage-iac verify ({report.stack})",
            "tests": str(len(report.results)),
            "failures": str(len(report.failed)),
            "errors": "0",
            "skipped": "0",
            "time": f"{report.seconds:.3f}",
            "timestamp": when.isoformat(),
        },
    )
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"voltage-iac.{report.stack}.{r.kind}",
                "name": r.key,
                "time": f"{r.seconds:.3f}",
            },
        )
        if r.status != "verified":
            failure = ET.SubElement(
                case, "failure", {"message": r.message, "type": r.error_type or "failed"}
            )
            failure.text = "\n".join(
                p for p in (r.message, r.payment_id and f"payment id {r.payment_id}", r.hint) if p
            )
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
