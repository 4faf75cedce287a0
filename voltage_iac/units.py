"""Amounts: parsing limits written with units, and formatting msats for people.

Imports only the model (for the u64 bound); pure functions used by the config loader and
renderers.
A limit is written either as an integer (msats) or as a string `"<number> <unit>"` with
unit msat(s), sat(s) or btc. Parsing is exact (Decimal): a value that is not a whole
number of msats is refused rather than rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from voltage_iac.model import U64_MAX

MSATS_PER_SAT = 1000
MSATS_PER_BTC = 100_000_000_000

_UNITS = {
    "msat": 1,
    "msats": 1,
    "sat": MSATS_PER_SAT,
    "sats": MSATS_PER_SAT,
    "btc": MSATS_PER_BTC,
}


class AmountError(ValueError):
    """A limit could not be parsed; the message says what is expected."""


def parse_limit(value: object) -> int:
    """Parse a limit from the config into msats.

    >>> parse_limit(1000)
    1000
    >>> parse_limit("0.001 btc")
    100000000
    >>> parse_limit("50000 sat")
    50000000
    """
    if isinstance(value, bool):
        raise AmountError("a limit must be a number of msats or a string like '0.001 btc'")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str):
        amount = _parse_string(value)
    elif isinstance(value, float):
        raise AmountError(
            f"{value!r} is a fraction without a unit; write msats as an integer "
            "or give a unit, e.g. '0.001 btc'"
        )
    else:
        raise AmountError("a limit must be a number of msats or a string like '0.001 btc'")
    if amount < 0:
        raise AmountError("a limit cannot be negative")
    if amount > U64_MAX:
        raise AmountError(f"a limit cannot exceed {U64_MAX} msats (the API's u64 maximum)")
    return amount


def _parse_string(text: str) -> int:
    parts = text.strip().split()
    if len(parts) == 1:
        number, unit = parts[0], "msat"
    elif len(parts) == 2:
        number, unit = parts
    else:
        raise AmountError(f"cannot read {text!r}: expected '<number> <unit>', e.g. '0.001 btc'")
    unit = unit.lower()
    if unit not in _UNITS:
        raise AmountError(f"unknown unit {parts[-1]!r}: use msat, sat or btc")
    try:
        quantity = Decimal(number.replace("_", ""))
    except InvalidOperation:
        raise AmountError(f"cannot read {number!r} as a number") from None
    if not quantity.is_finite():
        raise AmountError(f"cannot read {number!r} as a number")
    msats = quantity * _UNITS[unit]
    if msats != msats.to_integral_value():
        raise AmountError(f"{text!r} is not a whole number of msats")
    return int(msats)


def format_btc(msats: int) -> str:
    """Msats as BTC with trailing zeros trimmed: 100000000 -> '0.001 BTC'."""
    btc = Decimal(msats) / MSATS_PER_BTC
    text = format(btc, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} BTC"


def format_limit(msats: int | None) -> str:
    """A limit for people: '100000000 msats (0.001 BTC)'."""
    if msats is None:
        return "(none)"
    return f"{msats} msats ({format_btc(msats)})"
