"""A secret value (API key, token, password) that never shows itself.

Imports nothing of the package. `repr()` and `str()` are redacted; the raw value is
reachable only through `reveal()`, which is called in exactly the places that put it
on the wire (HTTP headers, a sign-in body). Every output path of the tool receives
`Secret` objects, never raw strings, so printing one by mistake prints `***`.

`redact()` masks secrets in text that came from elsewhere (a server's error answer, an
id pasted into the wrong field): not only the whole value, but any run of
`FRAGMENT_CHARS` or more consecutive characters of it, so a server that echoes part of
a key does not print that part.
"""

from __future__ import annotations

import re

#: The shortest run of a secret's characters that is masked wherever it appears.
#: Secrets shorter than this are masked only where they appear whole.
FRAGMENT_CHARS = 8

MASK = "***"


class Secret:
    __slots__ = ("_pattern", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._pattern: re.Pattern[str] | None = None

    def reveal(self) -> str:
        return self._value

    def fragments(self) -> re.Pattern[str]:
        """A pattern that finds, at each position, a run of `FRAGMENT_CHARS` characters of
        the secret (a zero-width look-ahead, so overlapping runs are all found). Built once
        per secret: one alternative per distinct window of the value."""
        if self._pattern is None:
            windows = sorted(
                {
                    self._value[i : i + FRAGMENT_CHARS]
                    for i in range(len(self._value) - FRAGMENT_CHARS + 1)
                }
            )
            self._pattern = re.compile(
                "(?=(?:" + "|".join(re.escape(w) for w in windows) + "))", re.DOTALL
            )
        return self._pattern

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
    """`text` with each secret masked as `***`: every run of `FRAGMENT_CHARS` or more of a
    secret's consecutive characters (overlapping runs merge into one mask), or, for a
    secret shorter than that, every occurrence of the whole value.

    Linear in the length of `text` for each secret (one scan with a pattern built once
    per secret)."""
    for secret in secrets:
        if secret is None:
            continue
        value = secret.reveal()
        if not value:
            continue
        if len(value) < FRAGMENT_CHARS:
            text = text.replace(value, MASK)
            continue
        if len(text) < FRAGMENT_CHARS:
            continue
        spans: list[list[int]] = []
        for match in secret.fragments().finditer(text):
            start = match.start()
            end = start + FRAGMENT_CHARS
            if spans and start <= spans[-1][1]:
                spans[-1][1] = end
            else:
                spans.append([start, end])
        if not spans:
            continue
        parts: list[str] = []
        position = 0
        for start, end in spans:
            parts.append(text[position:start])
            parts.append(MASK)
            position = end
        parts.append(text[position:])
        text = "".join(parts)
    return text
