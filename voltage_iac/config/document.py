"""One parsed file and the list of problems found in it: what every step shares.

The loader (`loader.py`) fills a `Doc` with plain data and the position of every value;
the schema check (`schema.py`), the merge (`merge.py`) and the meaning checks
(`checks/`) report what they find through `Issues.at`, which turns a path inside the
document into a file, line and column. `Issues.error` makes the one `ConfigError`
(exit code 3) that lists them all.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from voltage_iac.errors import ConfigError, ConfigIssue

MAX_ISSUES = 100  # problems listed in one error; the rest are counted

Path_ = tuple[str | int, ...]

_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


class Loc(NamedTuple):
    """Where a value (and the key that names it) starts, 1-based."""

    line: int
    column: int
    key_line: int | None = None
    key_column: int | None = None
    raw: str | None = None  # source text of a scalar, for messages


@dataclasses.dataclass
class Doc:
    """One parsed file: plain data plus the position of every value in it."""

    file: str
    data: dict[str, Any]
    locs: dict[Path_, Loc] = dataclasses.field(default_factory=dict)
    broken: set[Path_] = dataclasses.field(default_factory=set)
    interpolated: dict[Path_, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: the loader saw a value on which fast schema engines and the project's rules may
    #: disagree (an integral float such as 1.0, text with a line break)
    ambiguous: bool = False

    def where(self, path: Path_, *, key: bool = False) -> tuple[int | None, int | None]:
        probe = path
        while True:
            loc = self.locs.get(probe)
            if loc is not None:
                if key and probe == path and loc.key_line is not None:
                    return loc.key_line, loc.key_column
                return loc.line, loc.column
            if not probe:
                return None, None
            probe = probe[:-1]

    def is_broken(self, path: Path_) -> bool:
        if not self.broken:
            return False
        return any(path[: len(b)] == b for b in self.broken)

    def show(self, path: Path_, value: Any) -> str:
        """The value as the user wrote it, for a message (never an interpolated value)."""
        names = self.interpolated.get(path)
        if names:
            return "the value of " + ", ".join(f"${{{n}}}" for n in names)
        if _may_be_a_secret(path) and not isinstance(value, (bool, int, float)):
            return "the value (not shown: it may be a signing secret)"
        loc = self.locs.get(path)
        if loc is not None and loc.raw is not None:
            text = loc.raw
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, default=str)
        if len(text) > 60:
            text = text[:57] + "..."
        return f"`{text}`"


#: the fields of a webhook's `secret` sink; any other value under `secret` is not shown
_SINK_FIELDS = ("file", "command")


def _may_be_a_secret(path: Path_) -> bool:
    """A value where a webhook's secret sink belongs, other than the sink's own file or
    command: a user may have written the signing secret itself there."""
    return (
        len(path) >= 3
        and path[0] == "webhooks"
        and path[2] == "secret"
        and (len(path) == 3 or path[3] not in _SINK_FIELDS)
    )


def dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


class Issues:
    """Every problem found so far, each located; made into one `ConfigError` at the end."""

    def __init__(self) -> None:
        self.items: list[ConfigIssue] = []

    def add(
        self,
        file: str,
        line: int | None,
        column: int | None,
        message: str,
        hint: str | None = None,
        path: Path_ = (),
    ) -> None:
        self.items.append(ConfigIssue(file, line, column, message, hint, dotted(path)))

    def at(
        self, doc: Doc, path: Path_, message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        if doc.is_broken(path):
            return
        line, column = doc.where(path, key=key)
        self.add(doc.file, line, column, message, hint, path)

    def error(self, files: list[str]) -> ConfigError:
        order = {name: i for i, name in enumerate(files)}
        unique = list(dict.fromkeys(self.items))
        unique.sort(
            key=lambda i: (order.get(i.file, -1), i.file, i.line or 0, i.column or 0, i.message)
        )
        if len(unique) > MAX_ISSUES:
            rest = len(unique) - MAX_ISSUES
            unique = unique[:MAX_ISSUES]
            unique.append(
                ConfigIssue(
                    unique[-1].file,
                    None,
                    None,
                    f"... and {rest} more problem{'s' if rest != 1 else ''} not listed",
                    "fix the problems above and run again",
                )
            )
        return ConfigError(unique)


class FileProblem(Exception):
    """A problem that stops the reading of one file (the others are still checked)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        line: int | None = None,
        column: int | None = None,
        mark: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        self.line = line
        self.column = column


# -- small value rules shared by the schema check and the meaning checks


def is_integer(value: Any) -> bool:
    """A whole number as the configuration means it: an int, never a bool or 1.0."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def canonical_uuid(value: Any) -> str | None:
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return value.lower()
    return None


def did_you_mean(value: str, names: list[str], plural: str) -> str:
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    listed = ", ".join(sorted(names))
    if close:
        return f"did you mean `{close[0]}`? defined {plural}: {listed}"
    return f"defined {plural}: {listed}"
