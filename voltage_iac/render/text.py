"""The text plan, in the style reviewers know from Terraform (`+`, `~`, `-/+`, `-`).

Pure: takes a Plan and a colour switch, returns a string. The CLI decides colour
(only on a terminal, never with NO_COLOR).
"""

from __future__ import annotations

from typing import Any

import click

from voltage_iac.plan import Action, Plan, WalletChange, describe_factor
from voltage_iac.render.values import ACTION_PHRASE, ACTION_SYMBOL, show_value

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
            + paint(" (other wallets were not considered)", "yellow")
        )
    lines.append("")

    actionable = plan.actionable
    if not actionable:
        lines.append("No changes. The live wallets match the configuration.")
        lines.append("")
    else:
        lines.append("voltage-iac will perform the following actions:")
        lines.append("")
        for change in actionable:
            lines.extend(_change_lines(change, paint))
            lines.append("")

    if plan.unmanaged:
        lines.append(
            f"Unmanaged wallets ({len(plan.unmanaged)}; not owned by stack {plan.stack}, "
            "never changed):"
        )
        for wallet in plan.unmanaged:
            owner = f", stack {wallet.owner_stack}" if wallet.owner_stack else ""
            lines.append(f"    {wallet.name} ({wallet.id}) in {wallet.environment}{owner}")
        lines.append("")

    for problem in plan.capacity_problems:
        lines.append(
            paint("Error: ", "red", bold=True)
            + f"line of credit {problem.line_of_credit}: {problem.message}"
        )
    for warning in plan.warnings:
        lines.append(paint("Warning: ", "yellow", bold=True) + warning)
    mainnet = [c for c in actionable if c.mainnet]
    if mainnet:
        lines.append(
            paint("MAINNET: ", "red", bold=True)
            + f"{len(mainnet)} change(s) act on mainnet wallets (real money): "
            + ", ".join(c.key for c in mainnet)
        )
    overrides = plan.overrides()
    if overrides:
        lines.append(paint("Guards overridden with --force:", "red", bold=True))
        lines.extend(f"    - {item}" for item in overrides)
    if plan.capacity_problems or plan.warnings or mainnet or overrides:
        lines.append("")

    lines.append(paint(plan.summary_line(), None, bold=True))
    return "\n".join(lines) + "\n"


def _change_lines(change: WalletChange, paint: Any) -> list[str]:
    colour = _COLOURS[change.action]
    symbol = ACTION_SYMBOL[change.action.value]
    phrase = ACTION_PHRASE[change.action.value]
    title = f"{symbol} {change.key} ({change.environment}) {phrase}"
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
    if change.has_funds and change.action in (Action.DELETE, Action.REPLACE):
        notes.append("holds funds: the API refuses to delete a funded wallet")
    factor = change.limit_increase_factor()
    if factor is not None:
        notes.append(f"limit grows {describe_factor(factor)}")
    if notes:
        out.append("    " + paint("! " + "; ".join(notes), "red"))
    if change.wallet_id and change.action is not Action.CREATE:
        out.append(f"    id: {change.wallet_id}")
    if change.new_wallet_id:
        label = "new id" if change.action is Action.REPLACE else "id"
        out.append(f"    {label}: {change.new_wallet_id}")
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
            if change.action is Action.REPLACE and not (
                item.field == "name" or item.field.startswith("policies.")
            ):
                forces = paint("  # forces replacement", "magenta")
            out.append(paint(f"    ~ {name} = {before} -> {after}", "yellow") + forces)
    return out
