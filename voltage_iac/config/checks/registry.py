"""The sections of a configuration and the checker of each: the one place a new
resource section is registered.

A section is a top-level mapping of named entries (`environments`, `lines_of_credit`,
`wallets`, and next `webhooks`). Registering one makes the merge (`merge.py`) collect
it across files with duplicate detection, the schema humaniser (`schema.py`) name its
keys and word its hints, the backend check (`build.py`) refuse it when the backend does
not declare it, its checker run, and the digest cover it. Adding a section is one
module in `checks/` that calls `register`, its import in `checks/__init__.py`, and its
entry in the JSON Schema; the loader, the merge and the humaniser are not edited.

Reference sections (`kind=None`) are checked before resource sections, so a resource
checker finds what it refers to in `Context.resolved`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voltage_iac.config.document import Doc, Issues, Path_

if TYPE_CHECKING:
    from voltage_iac.config.merge import Merged
    from voltage_iac.providers.registry import BackendSpec


@dataclass
class Context:
    """What a section checker works on: the merged files, the backend's declaration,
    and the entries of the sections checked before it."""

    merged: Merged
    issues: Issues
    backend: BackendSpec
    first: Doc  # the first file: where problems of the whole configuration are reported
    resolved: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # Set whenever something is left out of the state; the state is then never
    # returned, so nothing can silently go missing from a plan.
    dropped: bool = False


@dataclass(frozen=True)
class Section:
    """One top-level section of named entries and how it is checked."""

    name: str  # the top-level key, e.g. "wallets"
    label: str  # one entry in messages, e.g. "wallet"
    plural: str  # e.g. "wallets", "lines of credit"
    #: checks every entry; returns name -> checked entry (left out: `ctx.dropped = True`)
    check: Callable[[Context], dict[str, Any]]
    #: one checked entry -> its part of the digest (plain JSON values)
    canonical: Callable[[Any], Any]
    #: the resource kind in a backend declaration (`wallet`); None: a reference section
    kind: str | None = None
    #: how the schema humaniser names a key of this section
    key_label: str = "name"
    #: hints for a missing required field, by field name
    required_hints: Mapping[str, str] = field(default_factory=dict)
    #: hints for a value out of range, by field name
    range_hints: Mapping[str, str] = field(default_factory=dict)
    #: schema errors the checker words better itself: (path inside an entry, validator)
    explains: Callable[[Path_, str], bool] | None = None
    #: a configuration without this section is refused with this hint (when the backend
    #: declares the section)
    required: str | None = None
    #: keep `{}` in the digest when empty (the sections the digest always had)
    digest_when_empty: bool = False


_SECTIONS: dict[str, Section] = {}

#: hints by field name that are not a section's (top-level settings such as guards)
REQUIRED_HINTS: dict[str, str] = {}
RANGE_HINTS: dict[str, str] = {}


def register(section: Section) -> Section:
    if section.name in _SECTIONS:
        raise ValueError(f"section {section.name!r} is registered twice")
    _SECTIONS[section.name] = section
    return section


def add_hints(*, required: Mapping[str, str] = {}, ranges: Mapping[str, str] = {}) -> None:
    """Hints of a top-level setting that is not a section (e.g. `guards`)."""
    REQUIRED_HINTS.update(required)
    RANGE_HINTS.update(ranges)


def sections() -> tuple[Section, ...]:
    """Every section: reference sections first, then resources, each in registration order."""
    items = list(_SECTIONS.values())
    return tuple(s for s in items if s.kind is None) + tuple(s for s in items if s.kind)


def section(name: str) -> Section | None:
    return _SECTIONS.get(name)


def by_kind(kind: str) -> Section | None:
    return next((s for s in _SECTIONS.values() if s.kind == kind), None)


def plain_name(ctx: Context, entry: Any, value: Any) -> str | None:
    """A display name as written, trimmed; None (with an issue) when it holds a control
    character. Each section then checks its own length rules."""
    if not isinstance(value, str):
        return None
    name = value.strip()
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        ctx.issues.at(
            entry.doc,
            (*entry.path, "name"),
            f"the display name contains a control character (U+{ord(control):04X})",
            "remove it: a display name is plain text on one line",
        )
        return None
    return name
