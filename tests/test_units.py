"""Limits written with units, exactly, and formatted for people."""

from __future__ import annotations

import pytest

from voltage_iac.units import AmountError, format_btc, format_limit, parse_limit


@pytest.mark.parametrize(
    ("text", "msats"),
    [
        (0, 0),
        (1000, 1000),
        ("1000", 1000),
        ("1 msat", 1),
        ("50000 sat", 50_000_000),
        ("50_000 sats", 50_000_000),
        ("0.001 btc", 100_000_000),
        ("0.001 BTC", 100_000_000),
        ("1.5 sat", 1500),
    ],
)
def test_parse(text, msats):
    assert parse_limit(text) == msats


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1 eur", "unknown unit"),
        (-1, "negative"),
        ("0.0000000000001 btc", "whole number of msats"),
        (2**64, "u64"),
        (1.5, "fraction"),
        (True, "a limit must be"),
        ("nan btc", "cannot read"),
        ("1 2 3", "expected"),
    ],
)
def test_refused(value, message):
    with pytest.raises(AmountError, match=message):
        parse_limit(value)


def test_format():
    assert format_btc(100_000_000) == "0.001 BTC"
    assert format_btc(0) == "0 BTC"
    assert format_limit(100_000_000) == "100000000 msats (0.001 BTC)"
    assert format_limit(None) == "(none)"
