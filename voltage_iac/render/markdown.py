"""The Markdown plan for pull-request comments (GitHub-flavoured).

Pure: Plan -> string. A summary line and counts table, warning banners for what a
reviewer must not miss (deletes, replacements, protected wallets, limit increases,
mainnet), then one collapsible section per wallet with its field-level changes.
The whole stays under `max_chars` (GitHub's comment limit is 65,536): the largest
sections are collapsed first, and the comment says what was left out.
"""

from __future__ import annotations

from voltage_iac.plan import Action, Plan, WalletChange, describe_factor
from voltage_iac.render.values import ACTION_PHRASE, ACTION_SYMBOL, show_value

DEFAULT_MAX_CHARS = 60_000
MARKER = "<!-- voltage-iac plan -->"


def escape(text: str) -> str:
    """Make arbitrary text safe inside a table cell or summary line."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "&#124;")
        .replace("`", "&#96;")
        .replace("*", "&#42;")
        .replace("_", "&#95;")
        .replace("[", "&#91;")
        .replace("]", "&#93;")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def render_markdown(plan: Plan, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    head = _head(plan)
    sections = [_section(change) for change in plan.actionable]
    tail = _tail(plan)
    fixed = len(head) + len(tail)
    running = fixed + sum(len(s) for s in sections)
    if running <= max_chars:
        return head + "".join(sections) + tail

    # Too long: keep room for the notice, then collapse the largest sections to a
    # one-line stub until the comment fits; with thousands of wallets, drop stubs too.
    budget = max_chars - _NOTICE_ROOM
    omitted: list[str] = []
    order = sorted(range(len(sections)), key=lambda i: len(sections[i]), reverse=True)
    for index in order:
        if running <= budget:
            break
        stub = _stub(plan.actionable[index])
        running += len(stub) - len(sections[index])
        sections[index] = stub
        omitted.append(plan.actionable[index].key)
    dropped = 0
    while running > budget and sections:
        running -= len(sections.pop())
        dropped += 1
    if dropped:
        omitted.append(f"{dropped} more wallet section(s)")
    return head + "".join(sections) + _omitted_notice(omitted) + tail


_NOTICE_ROOM = 8_000


def _head(plan: Plan) -> str:
    counts = plan.counts()
    lines = [MARKER, "### voltage-iac plan", ""]
    scope = f"Stack `{escape(plan.stack)}`"
    if plan.organization_id:
        scope += f", organization `{plan.organization_id}`"
    lines.append(scope)
    lines.append("")
    if plan.targets:
        lines += [
            "> [!NOTE]",
            "> Targeted plan: only "
            + ", ".join(f"`{escape(t)}`" for t in plan.targets)
            + ". Other wallets were not considered.",
            "",
        ]
    lines.append(f"**{plan.summary_line()}**")
    lines.append("")
    lines += [
        "| add | change | replace | destroy |",
        "|----:|-------:|--------:|--------:|",
        f"| {counts['add']} | {counts['change']} | {counts['replace']} | {counts['destroy']} |",
        "",
    ]
    lines += _banners(plan)
    if not plan.has_changes:
        lines += ["No changes. The live wallets match the configuration.", ""]
    return "\n".join(lines) + "\n"


def _banners(plan: Plan) -> list[str]:
    out: list[str] = []

    def banner(kind: str, title: str, items: list[str]) -> None:
        if not items:
            return
        out.append(f"> [!{kind}]")
        out.append(f"> **{title}**")
        for item in items[:20]:
            out.append(f"> - {item}")
        if len(items) > 20:
            out.append(f"> - ... and {len(items) - 20} more")
        out.append("")

    changes = plan.actionable
    banner(
        "CAUTION",
        "Wallets will be deleted",
        [
            f"`{escape(c.key)}` ({escape(c.name)}, {c.wallet_id})"
            + (" - holds funds" if c.has_funds else "")
            for c in changes
            if c.action is Action.DELETE
        ],
    )
    banner(
        "WARNING",
        "Wallets will be replaced (a new wallet is created and the old one deleted)",
        [
            f"`{escape(c.key)}`: {escape('; '.join(c.reasons))}"
            for c in changes
            if c.action is Action.REPLACE
        ],
    )
    banner(
        "CAUTION",
        "Protected wallets are touched (apply will refuse)",
        [
            f"`{escape(c.key)}` would be {c.action.value}d"
            for c in changes
            if c.protected and c.action in (Action.REPLACE, Action.DELETE)
        ],
    )
    banner(
        "WARNING",
        "Limits increase",
        [
            f"`{escape(c.key)}`: {describe_factor(factor)} "
            f"({show_value('limit', _before(c))} -> "
            f"{show_value('limit', _after(c))})"
            for c in changes
            if (factor := c.limit_increase_factor()) is not None
        ],
    )
    banner(
        "CAUTION",
        "Guards overridden with --force",
        [escape(item) for item in plan.overrides()],
    )
    banner(
        "IMPORTANT",
        "Mainnet wallets change (real money)",
        [f"`{escape(c.key)}` ({c.action.value})" for c in changes if c.mainnet],
    )
    banner(
        "CAUTION",
        "Lines of credit cannot take this plan",
        [f"{escape(p.line_of_credit)}: {escape(p.message)}" for p in plan.capacity_problems],
    )
    banner("NOTE", "Warnings", [escape(w) for w in plan.warnings])
    return out


def _before(change: WalletChange) -> object:
    item = change.field("limit")
    return item.before if item else None


def _after(change: WalletChange) -> object:
    item = change.field("limit")
    return item.after if item else None


def _title(change: WalletChange) -> str:
    symbol = ACTION_SYMBOL[change.action.value]
    return (
        f"<code>{escape(symbol)}</code> <b>{escape(change.key)}</b> "
        f"({escape(change.environment)}) {ACTION_PHRASE[change.action.value]}"
    )


def _section(change: WalletChange) -> str:
    lines = ["<details>", f"<summary>{_title(change)}</summary>", ""]
    if change.wallet_id:
        lines.append(f"- wallet id: `{change.wallet_id}`")
    if change.new_wallet_id:
        lines.append(f"- new wallet id: `{change.new_wallet_id}`")
    if change.reasons:
        lines.append(f"- why: {escape('; '.join(change.reasons))}")
    lines += ["", "| field | before | after |", "|---|---|---|"]
    for item in change.fields:
        lines.append(
            f"| `{escape(item.field)}` | {escape(show_value(item.field, item.before))} | "
            f"{escape(show_value(item.field, item.after))} |"
        )
    lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def _stub(change: WalletChange) -> str:
    return (
        f"- {_title(change)}: {len(change.fields)} field change(s) not shown (see the JSON plan)\n"
    )


def _omitted_notice(omitted: list[str]) -> str:
    if not omitted:
        return ""
    shown = ", ".join(escape(o) for o in omitted[:50])
    more = f" and {len(omitted) - 50} more" if len(omitted) > 50 else ""
    return (
        "\n> [!NOTE]\n> This comment was shortened to fit: details of "
        f"{shown}{more} were left out. The JSON plan (`plan --format json`) has everything.\n\n"
    )


def _tail(plan: Plan) -> str:
    lines = []
    if plan.unmanaged:
        lines.append(
            f"<details><summary>{len(plan.unmanaged)} unmanaged wallet(s), never changed"
            "</summary>\n"
        )
        for wallet in plan.unmanaged[:200]:
            lines.append(f"- {escape(wallet.name)} (`{wallet.id}`) in {escape(wallet.environment)}")
        if len(plan.unmanaged) > 200:
            lines.append(f"- ... and {len(plan.unmanaged) - 200} more")
        lines.append("\n</details>\n")
    lines.append(f"<sub>Plan checksum: `{plan.checksum()}`</sub>")
    return "\n".join(lines) + "\n"
