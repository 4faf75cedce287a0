"""The text plan, in the style reviewers know from Terraform (`+`, `~`, `-/+`, `-`).

Pure: takes a Plan and a colour switch, returns a string. The CLI decides colour
(only on a terminal, never with NO_COLOR).
"""

from __future__ import annotations

from typing import Any

import click

from voltage_iac.plan import Action, Change, Plan, PolicyResult
from voltage_iac.render.values import ACTION_PHRASE, ACTION_SYMBOL, noun, show_value

_COLOURS = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "magenta",
    Action.DELETE: "red",
    Action.NOOP: None,
}


def render_text(plan: Plan, *, color: bool = False, backend: str = "") -> str:
    def paint(text: str, fg: str | None, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold) if color and (fg or bold) else text

    lines: list[str] = []
    what = noun({c.kind for c in plan.changes})
    head = f"Stack {plan.stack}"
    if plan.organization_id:
        head += f", organization {plan.organization_id}"
    if backend:
        head += f" ({backend})"
    lines.append(head)
    if plan.targets:
        lines.append(
            paint("Targeted plan: only ", "yellow")
            + ", ".join(plan.targets)
            + paint(f" (other {what} were not considered)", "yellow")
        )
    lines.append("")

    actionable = plan.actionable
    if not actionable:
        lines.append(f"No changes. The live {what} match the configuration.")
        lines.append("")
    else:
        lines.append("voltage-iac will perform the following actions:")
        lines.append("")
        for change in actionable:
            lines.extend(_change_lines(change, paint))
            lines.append("")

    if plan.unmanaged:
        kinds = {u.kind for u in plan.unmanaged}
        lines.append(
            f"Unmanaged {noun(kinds)} ({len(plan.unmanaged)}; not owned by stack {plan.stack}, "
            "never changed):"
        )
        for other in plan.unmanaged:
            owner = f", stack {other.owner_stack}" if other.owner_stack else ""
            what = "" if len(kinds) == 1 else f"{other.kind} "
            lines.append(f"    {what}{other.name} ({other.id}) in {other.environment}{owner}")
        lines.append("")

    for problem in plan.problems:
        lines.append(paint("Error: ", "red", bold=True) + f"{problem.subject}: {problem.message}")
    for warning in plan.warnings:
        lines.append(paint("Warning: ", "yellow", bold=True) + warning)
    mainnet = [c for c in actionable if c.mainnet]
    if mainnet:
        lines.append(
            paint("MAINNET: ", "red", bold=True)
            + f"{len(mainnet)} change(s) act on mainnet (real money): "
            + ", ".join(f"{c.kind} {c.key}" for c in mainnet)
        )
    overrides = plan.overrides()
    if overrides:
        lines.append(paint("Guards overridden with --force:", "red", bold=True))
        lines.extend(f"    - {item}" for item in overrides)
    if plan.problems or plan.warnings or mainnet or overrides:
        lines.append("")

    lines.append(paint(plan.summary_line(), None, bold=True))
    if plan.policy is not None:
        lines.append("")
        lines.extend(_policy_lines(plan.policy, paint))
    return "\n".join(lines) + "\n"


def _policy_lines(result: PolicyResult, paint: Any) -> list[str]:
    """The policies' verdicts: a block after the plan."""
    counts = result.counts()
    head = (
        f"Policy ({result.namespace}, {len(result.files)} file(s)): "
        f"{counts['deny']} deny, {counts['warn']} warn"
    )
    if counts["overridden"]:
        head += f", {counts['overridden']} deny overridden by the review"
    out = [paint(head, None, bold=True)]
    for verdict in result.verdicts:
        if result.overridden(verdict):
            label, colour = "OVERRIDDEN", "yellow"
        elif verdict.blocking:
            label, colour = verdict.type.upper(), "red"
        else:
            label, colour = "WARN", "yellow"
        about = f"{verdict.kind or 'resource'} {verdict.key}: " if verdict.key else ""
        where = f" ({verdict.file})" if verdict.file else ""
        out.append(
            "    "
            + paint(label, colour, bold=True)
            + f" {about}{verdict.message} [{verdict.id}]{where}"
        )
    for override in result.overrides:
        if not any(result.overridden(v) and override in (v.id, v.message) for v in result.verdicts):
            out.append(f"    Note: --override-policy {override} matches no deny verdict")
    if result.blocking():
        out.append(
            paint("apply refuses this plan while a deny verdict stands", "red", bold=True)
            + " (a reviewed override: plan --override-policy ID --out FILE)"
        )
    return out


def _change_lines(change: Change, paint: Any) -> list[str]:
    colour = _COLOURS[change.action]
    symbol = ACTION_SYMBOL[change.action.value]
    phrase = ACTION_PHRASE[change.action.value]
    title = f"{symbol} {change.kind} {change.key} ({change.environment}) {phrase}"
    if change.action is Action.REPLACE and change.reasons:
        title += f" ({'; '.join(change.reasons)})"
    if change.action is Action.DELETE and change.reasons:
        title += f" ({'; '.join(change.reasons)})"
    out = [paint(title, colour, bold=True)]
    notes = []
    if change.protected:
        notes.append("protected")
    if change.mainnet:
        notes.append("MAINNET")
    notes.extend(change.notes)
    if notes:
        out.append("    " + paint("! " + "; ".join(notes), "red"))
    for why in change.blocked:
        out.append("    " + paint("BLOCKED: " + why, "red", bold=True))
    if change.id and change.action is not Action.CREATE:
        out.append(f"    id: {change.id}")
    if change.new_id:
        label = "new id" if change.action is Action.REPLACE else "id"
        out.append(f"    {label}: {change.new_id}")
    width = max((len(c.field) for c in change.fields), default=0)
    for item in change.fields:
        name = item.field.ljust(width)
        if change.action is Action.CREATE:
            out.append(paint(f"    + {name} = {show_value(item.field, item.after)}", "green"))
        elif change.action is Action.DELETE:
            out.append(paint(f"    - {name} = {show_value(item.field, item.before)}", "red"))
        else:
            before = show_value(item.field, item.before)
            after = show_value(item.field, item.after)
            forces = ""
            if change.action is Action.REPLACE and item.forces_replacement:
                forces = paint("  # forces replacement", "magenta")
            out.append(paint(f"    ~ {name} = {before} -> {after}", "yellow") + forces)
    return out
