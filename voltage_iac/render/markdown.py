"""The Markdown plan for pull-request comments (GitHub-flavoured).

Pure: Plan -> string. A summary line and counts table, warning banners for what a
reviewer must not miss (blocked changes, deletes, replacements, protected resources,
what the guards watch, mainnet), then one collapsible section per change with its
field-level changes. Kind-neutral: each change names its kind.
The whole stays under `max_chars` (GitHub's comment limit is 65,536): the largest
sections are collapsed first, and the comment says what was left out.
"""

from __future__ import annotations

from voltage_iac.plan import Action, Change, Plan, PolicyResult, Verdict
from voltage_iac.render.values import ACTION_PHRASE, ACTION_SYMBOL, noun, show_value

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


def code(text: str) -> str:
    """`text` as a code span that GitHub shows literally, also inside a table cell.

    Entities are not decoded inside code spans, so nothing is entity-escaped here: a
    backtick in the text gets a longer fence, and a pipe is backslash-escaped (GFM
    removes that backslash when it splits table cells)."""
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_markdown(plan: Plan, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    head = _head(plan)
    actionable = plan.actionable
    sections = [_section(change, plan) for change in actionable]
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
        stub = _stub(actionable[index], plan)
        running += len(stub) - len(sections[index])
        sections[index] = stub
        omitted.append(actionable[index].key)
    dropped = 0
    while running > budget and sections:
        running -= len(sections.pop())
        dropped += 1
    if dropped:
        omitted.append(f"{dropped} more section(s)")
    return head + "".join(sections) + _omitted_notice(omitted) + tail


_NOTICE_ROOM = 8_000


def _head(plan: Plan) -> str:
    counts = plan.counts()
    lines = [MARKER, "### voltage-iac plan", ""]
    scope = f"Stack {code(plan.stack)}"
    if plan.organization_id:
        scope += f", organization {code(plan.organization_id)}"
    lines.append(scope)
    lines.append("")
    if plan.targets:
        lines += [
            "> [!NOTE]",
            "> Targeted plan: only "
            + ", ".join(code(t) for t in plan.targets)
            + f". Other {noun({c.kind for c in plan.changes})} were not considered.",
            "",
        ]
    lines.append(f"**{plan.summary_line()}**")
    lines.append("")
    lines += [
        "| add | change | replace | destroy |",
        "|----:|-------:|--------:|--------:|",
        f"| {counts['create']} | {counts['update']} | {counts['replace']} | {counts['delete']} |",
        "",
    ]
    lines += _policy_banner(plan)
    lines += _banners(plan)
    if not plan.has_changes:
        what = noun({c.kind for c in plan.changes})
        lines += [f"No changes. The live {what} match the configuration.", ""]
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

    def noun(action: Action | None = None, protected: bool = False) -> str:
        """`Wallets` when the banner is about one kind only, else `Resources`."""
        names = {
            c.kind
            for c in changes
            if (action is None or c.action is action) and (not protected or c.protected)
        }
        return f"{names.pop().capitalize()}s" if len(names) == 1 else "Resources"

    banner(
        "CAUTION",
        "Blocked: these changes cannot be applied as planned",
        [f"{_who(c)}: {escape(why)}" for c in changes for why in c.blocked],
    )
    banner(
        "CAUTION",
        f"{noun(Action.DELETE)} will be deleted",
        [
            f"{_who(c)} ({escape(c.name)}, {c.id})" + (" - holds funds" if c.has_funds else "")
            for c in changes
            if c.action is Action.DELETE
        ],
    )
    banner(
        "WARNING",
        f"{noun(Action.REPLACE)} will be replaced (a new one is created and the old one deleted)",
        [
            f"{_who(c)}: {escape('; '.join(c.reasons))}"
            for c in changes
            if c.action is Action.REPLACE
        ],
    )
    banner(
        "CAUTION",
        f"Protected {noun(protected=True).lower()} are touched (apply will refuse)",
        [
            f"{_who(c)} would be {c.action.value}d"
            for c in changes
            if c.protected and c.action in (Action.REPLACE, Action.DELETE)
        ],
    )
    banner(
        "WARNING",
        "Review closely",
        [f"{_who(c)}: {escape(note)}" for c in changes for note in c.notes],
    )
    banner(
        "CAUTION",
        "Guards overridden with --force",
        [escape(item) for item in plan.overrides()],
    )
    banner(
        "IMPORTANT",
        f"Mainnet {noun().lower()} change (real money)",
        [f"{_who(c)} ({c.action.value})" for c in changes if c.mainnet],
    )
    banner(
        "CAUTION",
        "This plan cannot be applied",
        [f"{escape(p.subject)}: {escape(p.message)}" for p in plan.problems],
    )
    banner("NOTE", "Warnings", [escape(w) for w in plan.warnings])
    return out


def _verdicts_of(plan: Plan, change: Change) -> list[Verdict]:
    if plan.policy is None:
        return []
    return [v for v in plan.policy.verdicts if v.about(change)]


def _verdict_line(result: PolicyResult, verdict: Verdict) -> str:
    overridden = result.overridden(verdict)
    label = f"OVERRIDDEN {verdict.type}" if overridden else verdict.type.upper()
    where = f", {code(verdict.file)}" if verdict.file else ""
    return f"**{label}** {escape(verdict.message)} ({code(verdict.id)}{where})"


def _policy_banner(plan: Plan) -> list[str]:
    """The policies' counts on top; each verdict about a change is shown in that change's
    section, the others (about no change of this plan) here."""
    result = plan.policy
    if result is None:
        return []
    counts = result.counts()
    blocking = result.blocking()
    kind = "CAUTION" if blocking else ("WARNING" if counts["warn"] else "NOTE")
    title = f"Policy: {counts['deny']} deny, {counts['warn']} warn"
    if counts["overridden"]:
        title += f" ({counts['overridden']} deny overridden by the review)"
    out = [f"> [!{kind}]", f"> **{title}**"]
    if blocking:
        out.append(">")
        out.append(f"> apply refuses this plan while a deny verdict stands ({len(blocking)}).")
    shown = {id(v) for c in plan.actionable for v in _verdicts_of(plan, c)}
    others = [v for v in result.verdicts if id(v) not in shown]
    if others:
        out.append(">")
    for verdict in others[:50]:
        about = f"{escape(verdict.kind or 'resource')} {code(verdict.key)}: " if verdict.key else ""
        out.append(f"> - {about}{_verdict_line(result, verdict)}")
    if len(others) > 50:
        out.append(f"> - ... and {len(others) - 50} more (see the JSON plan)")
    if len(shown):
        out.append(">")
        out.append(f"> {len(shown)} verdict(s) are shown with the change they name, below.")
    out.append("")
    return out


def _who(change: Change) -> str:
    return f"{escape(change.kind)} {code(change.key)}"


def _title(change: Change) -> str:
    symbol = ACTION_SYMBOL[change.action.value]
    return (
        f"<code>{escape(symbol)}</code> {escape(change.kind)} <b>{escape(change.key)}</b> "
        f"({escape(change.environment)}) {ACTION_PHRASE[change.action.value]}"
    )


def _policy_mark(verdicts: list[Verdict]) -> str:
    if not verdicts:
        return ""
    deny = sum(1 for v in verdicts if v.blocking)
    warn = len(verdicts) - deny
    parts = [f"{deny} deny"] if deny else []
    parts += [f"{warn} warn"] if warn else []
    return f" - policy: {', '.join(parts)}"


def _section(change: Change, plan: Plan | None = None) -> str:
    verdicts = _verdicts_of(plan, change) if plan is not None else []
    lines = ["<details>", f"<summary>{_title(change)}{_policy_mark(verdicts)}</summary>", ""]
    if plan is not None and plan.policy is not None:
        for verdict in verdicts:
            lines.append(f"- policy: {_verdict_line(plan.policy, verdict)}")
        if verdicts:
            lines.append("")
    if change.id:
        lines.append(f"- {escape(change.kind)} id: {code(change.id)}")
    if change.new_id:
        lines.append(f"- new {escape(change.kind)} id: {code(change.new_id)}")
    if change.reasons:
        lines.append(f"- why: {escape('; '.join(change.reasons))}")
    lines += ["", "| field | before | after |", "|---|---|---|"]
    for item in change.fields:
        lines.append(
            f"| {code(item.field)} | {escape(show_value(item.field, item.before))} | "
            f"{escape(show_value(item.field, item.after))} |"
        )
    lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def _stub(change: Change, plan: Plan | None = None) -> str:
    verdicts = _verdicts_of(plan, change) if plan is not None else []
    return (
        f"- {_title(change)}{_policy_mark(verdicts)}: {len(change.fields)} field change(s) "
        "not shown (see the JSON plan)\n"
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
            f"<details><summary>{len(plan.unmanaged)} unmanaged "
            f"{noun({u.kind for u in plan.unmanaged}, plural=False)}(s), never changed"
            "</summary>\n"
        )
        for other in plan.unmanaged[:200]:
            lines.append(
                f"- {escape(other.kind)} {escape(other.name)} ({code(other.id)}) in "
                f"{escape(other.environment)}"
            )
        if len(plan.unmanaged) > 200:
            lines.append(f"- ... and {len(plan.unmanaged) - 200} more")
        lines.append("\n</details>\n")
    lines.append(f"<sub>Plan checksum: {code(plan.checksum())}</sub>")
    return "\n".join(lines) + "\n"
