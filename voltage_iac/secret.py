"""A secret value (API key, token) that never shows itself.

Imports nothing of the package. `repr()` and `str()` are redacted; the raw value is
reachable only through `reveal()`, which is called in exactly the places that put it
on the wire (HTTP headers). Every output path of the tool receives `Secret` objects,
never raw strings, so printing one by mistake prints `***`.
"""

from __future__ import annotations


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled or serialised")


def redact(text: str, *secrets: Secret | None) -> str:
    """Replace every occurrence of each secret's value in `text` with `***`."""
    for secret in secrets:
        if secret is not None and secret.reveal():
            text = text.replace(secret.reveal(), "***")
    return text
