"""The pull-request Markdown: parsed with a real Markdown parser, bounded in size."""

from __future__ import annotations

from markdown_it import MarkdownIt

from tests.factories import desired, live, live_of, want
from voltage_iac.diff import diff
from voltage_iac.render.markdown import render_markdown


def _tokens(text):
    return MarkdownIt("commonmark").enable("table").parse(text)


def _plan():
    return diff(
        desired(
            want("new", limit=100_000_000, env="production"),
            want("renamed", name="After | <b>pipe</b>"),
            want("bigger", limit=20_000),
            want("vault", limit=7, protect=True),
        ),
        live(
            live_of(want("renamed", name="Before")),
            live_of(want("bigger", limit=1000)),
            live_of(want("vault", limit=5, protect=True)),
            live_of(want("removed"), has_funds=True),
        ),
    )


def test_summary_counts_table_and_banners():
    text = render_markdown(_plan())
    assert "**Plan: 1 to add, 1 to change, 2 to replace, 1 to destroy.**" in text
    assert "| 1 | 1 | 2 | 1 |" in text
    assert "> [!CAUTION]\n> **Wallets will be deleted**" in text
    assert "holds funds" in text
    assert "Wallets will be replaced" in text
    assert "Protected wallets are touched" in text
    assert "wallet `bigger`: limit grows 20x (" in text
    assert "Mainnet wallets change" in text
    tables = [t for t in _tokens(text) if t.type == "table_open"]
    assert len(tables) >= 1 + 5  # counts table + one per wallet section


def test_each_wallet_is_a_collapsible_section_and_cells_are_escaped():
    text = render_markdown(_plan())
    assert text.count("<details>") == 5
    assert text.count("</details>") == 5
    # a pipe or HTML in a name cannot break the table or inject markup
    assert "After &#124; &lt;b&gt;pipe&lt;/b&gt;" in text
    rows = [t for t in _tokens(text) if t.type == "tr_open"]
    cells = [t for t in _tokens(text) if t.type in ("td_open", "th_open")]
    assert len(cells) == 4 * 1 + 4 * 1 + 3 * (len(rows) - 2)


def test_limits_in_msats_and_btc():
    assert "100000000 msats (0.001 BTC)" in render_markdown(_plan())


def test_large_plans_stay_under_the_limit_and_say_what_was_left_out():
    plan = diff(
        desired(*(want(f"w{i:04d}", metadata={"k": "v" * 200}) for i in range(2000))), live()
    )
    text = render_markdown(plan, max_chars=60_000)
    assert len(text) <= 60_000
    assert "This comment was shortened to fit" in text
    assert "**Plan: 2000 to add" in text
    assert text.count("<details>") == text.count("</details>")
    _tokens(text)  # parses


def test_targeted_plan_says_so():
    plan = diff(desired(want("a"), want("b")), live(), targets=["a"])
    assert "Targeted plan: only `a`" in render_markdown(plan)


def _code_spans(text):
    spans = []
    for token in _tokens(text):
        for child in token.children or []:
            if child.type == "code_inline":
                spans.append(child.content)
    return spans


def test_code_spans_read_as_written_inside_and_outside_tables():
    """Entities are not decoded inside code spans: what a reader sees must be the text."""
    from voltage_iac.render.markdown import code

    plan = diff(
        desired(want("odd_key", line_of_credit="main", metadata={"cost_centre": "a|b`c"})),
        live(),
    )
    text = render_markdown(plan)
    spans = _code_spans(text)
    assert "line_of_credit" in spans and "metadata.cost_centre" in spans
    assert not any("&#" in span or "&amp;" in span for span in spans), spans
    # a pipe and a backtick survive a table cell and a code span
    rendered = (
        MarkdownIt("commonmark").enable("table").render(f"| a |\n|---|\n| {code('x|y`z')} |\n")
    )
    assert "<code>x|y`z</code>" in rendered
