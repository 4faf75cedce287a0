"""Configuration loading: YAML files in, a validated `DesiredState` out.

The first step of the flow (YAML -> DesiredState -> diff -> plan -> apply). The CLI calls
`load_config`; nothing else here does I/O. Imports only `errors`, `model`, `units` and
`identity`.

Steps, each reporting every problem it finds (not just the first) as a located
`ConfigIssue`, all raised together as one `ConfigError` (exit code 3):

1. read each file: size bounded before reading, UTF-8 only (a BOM is fine), no NUL bytes;
2. parse it with a bounded `SafeLoader` subclass: depth, alias expansion and node count are
   capped so hostile input fails fast; duplicate keys are errors; the position of every
   key and value is recorded; `${VAR}` is interpolated in string values;
3. validate its structure against the JSON Schema shipped in the package
   (`schemas/config.v1.json`), each schema error mapped back to the file, line and column
   of the value it is about;
4. merge the files of a directory and check the meaning: references resolve, display
   names are unique per environment, limits parse, provider-specific fields are used
   only with the provider that has them;
5. build the frozen `DesiredState`, with a digest that changes exactly when the meaning
   of the configuration changes.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jsonschema
import yaml

from voltage_iac.errors import ConfigError, ConfigIssue
from voltage_iac.identity import LABEL_PREFIX, is_reserved_label
from voltage_iac.kinds.wallet import DesiredWallet, Policies, ProcessingFee
from voltage_iac.model import (
    DesiredState,
    Environment,
    Guards,
    LineOfCredit,
    SourceRef,
    frozen_map,
)
from voltage_iac.units import U64_MAX, AmountError, parse_limit

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_ISSUES",
    "MAX_NODES",
    "SCHEMA_PATH",
    "load_config",
    "load_config_string",
    "load_schema",
    "state_digest",
    "state_from_document",
    "validate_document",
]

# Limits of the loader (documented in docs/configuration.md).
# Environment variables that hold credentials: refused in ${VAR} interpolation, so that a
# key can never be written into a wallet name or metadata and shown in a plan.
SECRET_VARIABLES = frozenset(
    {
        "VOLTAGE_API_KEY",
        "VOLTAGE_API_KEY_FILE",
        "LNBITS_ACCESS_TOKEN",
        "LNBITS_PASSWORD",
    }
)
MAX_FILE_BYTES = 1024 * 1024  # per file, checked before parsing
MAX_DEPTH = 32  # nesting of mappings and lists (a real configuration needs 6)
MAX_NODES = 300_000  # values built per file, aliases expanded
MAX_ALIAS_NODES = 10_000  # values built through aliases and merge keys, per file
MAX_ISSUES = 100  # problems listed in one error; the rest are counted

SCHEMA_PATH = resources.files("voltage_iac") / "schemas" / "config.v1.json"

PROVIDER_KINDS = ("voltage", "lnbits")
SINGLE_KEYS = ("version", "stack", "provider", "guards")
SECTIONS = ("environments", "lines_of_credit", "wallets")
SECTION_LABELS = {
    "environments": "environment",
    "lines_of_credit": "line of credit",
    "wallets": "wallet",
}
NETWORK_ALIASES = {"testnet": "testnet3"}
LNBITS_UNSUPPORTED_WALLET_FIELDS = {
    "environment": "LNbits has no environments: remove it",
    "line_of_credit": "LNbits wallets are not credit-backed: remove it",
    "limit": "LNbits wallets have no credit limit: remove it",
    "metadata": "LNbits wallets carry no metadata, so it could never be applied: remove it",
    "policies": "LNbits has no wallet policies: remove them",
    "id": "LNbits chooses wallet ids itself; a wallet is matched by the ownership marker "
    "voltage-iac writes into its name (e.g. `Tips [iac:acme:tips]`): remove it",
}
LNBITS_MARKER_PREFIX = "[iac:"  # starts the ownership marker in an LNbits wallet name

_KEY_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_INTERPOLATION_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
_KEY_HINT = (
    "use 1-64 characters: lowercase letters, digits, '-', '_' or '.', "
    "starting with a letter or digit (e.g. payouts-eu)"
)
_ALLOWED_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

Path_ = tuple[str | int, ...]


# --------------------------------------------------------------------------------------
# Schema


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of configuration version 1, as shipped."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _anchored_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """`pattern` with JSON Schema's meaning of `$` (end of text, not before a newline)."""
    if not isinstance(instance, str):
        return
    core = pattern
    if core.startswith("^") and core.endswith("$"):
        matched = re.fullmatch(core[1:-1], instance) is not None
    else:
        matched = re.search(core, instance) is not None
    if not matched:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer(_checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(_checker: Any, value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@lru_cache(maxsize=1)
def _validator() -> Any:
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine("integer", _is_integer).redefine("number", _is_number)
    cls = jsonschema.validators.extend(
        base, validators={"pattern": _anchored_pattern}, type_checker=checker
    )
    return cls(load_schema())


# --------------------------------------------------------------------------------------
# Locations and issues


class _Loc(NamedTuple):
    """Where a value (and the key that names it) starts, 1-based."""

    line: int
    column: int
    key_line: int | None = None
    key_column: int | None = None
    raw: str | None = None  # source text of a scalar, for messages


@dataclasses.dataclass
class _Doc:
    """One parsed file: plain data plus the position of every value in it."""

    file: str
    data: dict[str, Any]
    locs: dict[Path_, _Loc] = dataclasses.field(default_factory=dict)
    broken: set[Path_] = dataclasses.field(default_factory=set)
    interpolated: dict[Path_, tuple[str, ...]] = dataclasses.field(default_factory=dict)

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
        return any(path[: len(b)] == b for b in self.broken)

    def show(self, path: Path_, value: Any) -> str:
        """The value as the user wrote it, for a message (never an interpolated value)."""
        names = self.interpolated.get(path)
        if names:
            return "the value of " + ", ".join(f"${{{n}}}" for n in names)
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


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


class _Issues:
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
        self.items.append(ConfigIssue(file, line, column, message, hint, _dotted(path)))

    def at(
        self, doc: _Doc, path: Path_, message: str, hint: str | None = None, *, key: bool = False
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


class _FileProblem(Exception):
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


# --------------------------------------------------------------------------------------
# Reading bytes


def _line_column(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", errors="replace")) + 1
    return line, column


def _decode(data: bytes) -> str:
    """UTF-8 text of a file, or a `_FileProblem` naming where it stops being text."""
    for bom, name in (
        (b"\x00\x00\xfe\xff", "UTF-32"),
        (b"\xff\xfe\x00\x00", "UTF-32"),
        (b"\xfe\xff", "UTF-16"),
        (b"\xff\xfe", "UTF-16"),
    ):
        if data.startswith(bom):
            raise _FileProblem(
                f"the file is encoded as {name}; configuration files must be UTF-8",
                "save the file as UTF-8 (most editors offer an encoding choice when saving)",
                line=1,
                column=1,
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        line, column = _line_column(data, nul)
        sample = data[:256]
        if sample.count(b"\x00") * 4 >= len(sample):
            raise _FileProblem(
                f"the file contains NUL bytes (first at byte offset {nul}, line {line}): "
                "it looks like UTF-16 or UTF-32 text; configuration files must be UTF-8",
                "save the file as UTF-8",
                line=line,
                column=column,
            )
        raise _FileProblem(
            f"the file contains a NUL byte at byte offset {nul} (line {line}, column {column}):"
            " it looks like a binary file, not YAML text",
            "point voltage-iac at the YAML configuration file (or directory of them)",
            line=line,
            column=column,
        )
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        line, column = _line_column(data, offset)
        raise _FileProblem(
            f"the file is not valid UTF-8: byte 0x{data[offset]:02x} at byte offset {offset} "
            f"(line {line}, column {column})",
            "save the file as UTF-8 (it may have been written as Latin-1 or Windows-1252)",
            line=line,
            column=column,
        ) from None


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _too_big(size)
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _FileProblem(
            f"cannot read the file: {exc.strerror or exc}",
            "check that the path exists and is readable",
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(len(data))
    return data


def _too_big(size: int) -> _FileProblem:
    return _FileProblem(
        f"the file is {size} bytes, over the limit of {MAX_FILE_BYTES} bytes (1 MiB) per file",
        "split the configuration into several files in one directory",
    )


# --------------------------------------------------------------------------------------
# Parsing YAML


class BoundedLoader(yaml.SafeLoader):
    """A `SafeLoader` that composes one document with bounded depth and no recursion.

    Events are turned into nodes with an explicit stack, so deep nesting is refused as
    soon as it is seen; aliases are kept as shared nodes (expanded, and counted, later).
    """

    def compose_single(self) -> yaml.Node | None:
        self.get_event()  # stream start
        if self.check_event(yaml.StreamEndEvent):
            return None
        self.get_event()  # document start
        root = self._compose_bounded()
        self.get_event()  # document end
        if not self.check_event(yaml.StreamEndEvent):
            event = self.peek_event()
            raise _FileProblem(
                "the file holds more than one YAML document (a second one starts here)",
                "keep one document per file: remove the `---` line, or move the rest "
                "into its own file in the same directory",
                mark=event.start_mark,
            )
        return root

    def _compose_bounded(self) -> yaml.Node:
        anchors: dict[str, yaml.Node] = {}
        stack: list[list[Any]] = []  # [collection node, pending mapping key]
        open_ids: set[int] = set()
        while True:
            event = self.get_event()
            node: yaml.Node
            if isinstance(event, yaml.AliasEvent):
                found = anchors.get(event.anchor or "")
                if found is None:
                    raise _FileProblem(
                        f"unknown alias *{event.anchor}",
                        f"define the anchor &{event.anchor} before using *{event.anchor}",
                        mark=event.start_mark,
                    )
                if id(found) in open_ids:
                    raise _FileProblem(
                        f"the alias *{event.anchor} refers to a value that contains it",
                        "an alias cannot be used inside the value it names",
                        mark=event.start_mark,
                    )
                node = found
            elif isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(
                    tag,
                    event.value,
                    event.start_mark,  # type: ignore[arg-type]
                    event.end_mark,  # type: ignore[arg-type]
                    style=event.style,
                )
                if event.anchor is not None:
                    anchors[event.anchor] = node
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                kind: type[yaml.SequenceNode] | type[yaml.MappingNode] = (
                    yaml.SequenceNode
                    if isinstance(event, yaml.SequenceStartEvent)
                    else yaml.MappingNode
                )
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(kind, None, event.implicit)
                node = kind(
                    tag,
                    [],
                    event.start_mark,  # type: ignore[arg-type]
                    event.end_mark,  # type: ignore[arg-type]
                    flow_style=event.flow_style,
                )
                if event.anchor is not None:
                    anchors[event.anchor] = node
                if len(stack) >= MAX_DEPTH:
                    raise _too_deep(event.start_mark)
                stack.append([node, None])
                open_ids.add(id(node))
                continue
            else:  # end of a sequence or mapping
                entry = stack.pop()
                node = entry[0]
                node.end_mark = event.end_mark
                open_ids.discard(id(node))
            if not stack:
                return node
            parent = stack[-1]
            if isinstance(parent[0], yaml.SequenceNode):
                parent[0].value.append(node)
            elif parent[1] is None:
                parent[1] = node
            else:
                parent[0].value.append((parent[1], node))
                parent[1] = None


def _too_deep(mark: Any) -> _FileProblem:
    return _FileProblem(
        f"values are nested more than {MAX_DEPTH} levels deep",
        "a configuration needs only a few levels of nesting: check the indentation",
        mark=mark,
    )


def _kind(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "a date"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Builder:
    """Turns composed nodes into plain data, recording positions, bounded in size."""

    def __init__(
        self, loader: BoundedLoader, doc: _Doc, environ: Mapping[str, str], issues: _Issues
    ) -> None:
        self.loader = loader
        self.doc = doc
        self.environ = environ
        self.issues = issues
        self.seen: set[int] = set()
        self.nodes = 0
        self.alias_nodes = 0

    def _count(self, node: yaml.Node, via_alias: bool) -> bool:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _FileProblem(
                f"the file holds more than {MAX_NODES} values",
                "split the configuration into several files",
                mark=node.start_mark,
            )
        via_alias = via_alias or id(node) in self.seen
        self.seen.add(id(node))
        if via_alias:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _FileProblem(
                    f"aliases expand to more than {MAX_ALIAS_NODES} values "
                    "(is this an alias bomb?)",
                    "use fewer or smaller aliases (*name), or write the values out",
                    mark=node.start_mark,
                )
        return via_alias

    def build(
        self,
        node: yaml.Node,
        path: Path_,
        depth: int,
        via_alias: bool,
        key_node: yaml.Node | None = None,
    ) -> Any:
        if depth > MAX_DEPTH:
            raise _too_deep(node.start_mark)
        via_alias = self._count(node, via_alias)
        start = node.start_mark
        raw = None
        if isinstance(node, yaml.ScalarNode) and start.line == node.end_mark.line:
            raw = node.value if not node.style else f"{node.style}{node.value}{node.style}"
        self.doc.locs[path] = _Loc(
            start.line + 1,
            start.column + 1,
            key_node.start_mark.line + 1 if key_node is not None else None,
            key_node.start_mark.column + 1 if key_node is not None else None,
            raw,
        )
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                return self._bad_tag(node, path, [])
            return [
                self.build(child, (*path, index), depth + 1, via_alias)
                for index, child in enumerate(node.value)
            ]
        if not isinstance(node, yaml.MappingNode) or node.tag != _MAP_TAG:
            return self._bad_tag(node, path, {})
        return self._mapping(node, path, depth, via_alias)

    def _bad_tag(self, node: yaml.Node, path: Path_, empty: Any) -> Any:
        self.issues.at(
            self.doc,
            path,
            f"unsupported YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')}",
            "remove the tag: values are plain text, numbers, booleans, lists and mappings",
        )
        self.doc.broken.add(path)
        return empty

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        if node.tag not in _ALLOWED_SCALAR_TAGS:
            return self._bad_tag(node, path, None)
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            if node.tag.endswith(":int"):
                problem = "the number is too long"
            self.issues.at(
                self.doc,
                path,
                f"cannot read this value: {problem}",
                "quote it to keep it as text",
            )
            self.doc.broken.add(path)
            return None
        if isinstance(value, str):
            return self._interpolate(value, path)
        return value

    def _interpolate(self, text: str, path: Path_) -> str:
        if "${" not in text:
            return text
        out: list[str] = []
        names: list[str] = []
        position = 0
        for match in _INTERPOLATION_RE.finditer(text):
            out.append(text[position : match.start()])
            position = match.end()
            name = match.group(1)
            if match.group(0) == "$${":
                out.append("${")
            elif name is not None:
                names.append(name)
                value = self.environ.get(name)
                if name in SECRET_VARIABLES:
                    self.issues.at(
                        self.doc,
                        path,
                        f"${{{name}}} holds a credential and cannot be used in the "
                        "configuration (it would be shown in plans and reports)",
                        f"remove ${{{name}}}; credentials are read from the environment "
                        "directly and never belong in the YAML",
                    )
                    self.doc.broken.add(path)
                elif value is None:
                    self.issues.at(
                        self.doc,
                        path,
                        f"environment variable {name} is not set",
                        f"export {name}=... before running, or write the value in the file",
                    )
                    self.doc.broken.add(path)
                else:
                    out.append(value)
            else:
                snippet = text[match.start() : match.start() + 24]
                self.issues.at(
                    self.doc,
                    path,
                    f"malformed interpolation `{snippet}`: expected ${{NAME}} where NAME is "
                    "letters, digits and '_', not starting with a digit",
                    "write ${NAME} to insert an environment variable, or $${ for a literal ${",
                )
                self.doc.broken.add(path)
        out.append(text[position:])
        if names:
            self.doc.interpolated[path] = tuple(dict.fromkeys(names))
        return "".join(out)

    def _mapping(
        self, node: yaml.MappingNode, path: Path_, depth: int, via_alias: bool
    ) -> dict[str, Any]:
        explicit: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                self.issues.add(
                    self.doc.file,
                    line,
                    column,
                    "a key must be plain text, not a list or mapping",
                    "write `name: value` with a plain name before the colon",
                    path,
                )
                continue
            self._count(key_node, via_alias)
            text = key_node.value
            if text in explicit:
                first = explicit[text][0].start_mark
                mark = key_node.start_mark
                self.issues.add(
                    self.doc.file,
                    mark.line + 1,
                    mark.column + 1,
                    f"duplicate key `{text}` (first defined at line {first.line + 1})",
                    "each key may appear once in a mapping: remove or merge one of them",
                    (*path, text),
                )
                continue
            explicit[text] = (key_node, value_node)
        entries = dict(explicit)
        for merge in merges:
            for key_node, value_node in self._merged_pairs(merge, depth, via_alias):
                entries.setdefault(key_node.value, (key_node, value_node))
        result: dict[str, Any] = {}
        for text, (key_node, value_node) in entries.items():
            result[text] = self.build(value_node, (*path, text), depth + 1, via_alias, key_node)
        return result

    def _merged_pairs(
        self, node: yaml.Node, depth: int, via_alias: bool
    ) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
        """Key/value pairs a merge key (`<<: *defaults`) brings in; earlier ones win."""
        if depth > MAX_DEPTH:
            raise _too_deep(node.start_mark)
        self._count(node, True)
        if isinstance(node, yaml.SequenceNode):
            pairs: list[tuple[yaml.ScalarNode, yaml.Node]] = []
            for item in node.value:
                if not isinstance(item, yaml.MappingNode):
                    raise _bad_merge(item)
                pairs.extend(self._merged_pairs(item, depth + 1, via_alias))
            return pairs
        if not isinstance(node, yaml.MappingNode):
            raise _bad_merge(node)
        own: list[tuple[yaml.ScalarNode, yaml.Node]] = []
        inherited: list[tuple[yaml.ScalarNode, yaml.Node]] = []
        for key_node, value_node in node.value:
            self._count(key_node, True)
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.tag == _MERGE_TAG:
                inherited.extend(self._merged_pairs(value_node, depth + 1, via_alias))
            else:
                own.append((key_node, value_node))
        return own + inherited


def _bad_merge(node: yaml.Node) -> _FileProblem:
    return _FileProblem(
        "a merge key `<<` takes a mapping or a list of mappings",
        "write e.g. `<<: *defaults` where &defaults names a mapping",
        mark=node.start_mark,
    )


def _yaml_problem(exc: yaml.MarkedYAMLError, text: str) -> _FileProblem:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    if "end of stream" in problem and exc.context_mark is not None:
        mark = exc.context_mark  # where the unfinished value starts, not the file's end
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        return _FileProblem(
            "YAML syntax error: a tab character cannot be used here (YAML indents with "
            "spaces only)",
            "replace the tab with spaces",
            mark=mark,
        )
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    elif exc.context:
        message += f" ({exc.context})"
    return _FileProblem(
        message,
        "check the indentation and quoting on this line and the lines just before it; "
        "quote values that contain ': ' or start with a special character",
        mark=mark,
    )


def _parse_text(text: str, file: str, environ: Mapping[str, str], issues: _Issues) -> _Doc | None:
    """Parse one file's text into a `_Doc`, or record why it cannot be read."""
    doc = _Doc(file=file, data={})
    loader: BoundedLoader | None = None
    try:
        try:
            loader = BoundedLoader(text)
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            raise _FileProblem(
                f"the character U+{code:04X} is not allowed in a YAML file "
                f"(line {line}, column {column})",
                "remove it; inside double quotes it can be written as an escape, e.g. \\u0007",
                line=line,
                column=column,
            ) from None
        try:
            root = loader.compose_single()
        except yaml.MarkedYAMLError as exc:
            raise _yaml_problem(exc, text) from None
        except yaml.YAMLError as exc:
            raise _FileProblem(f"YAML error: {exc}", "check the file's syntax") from None
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
            raise _FileProblem(
                "the file is empty",
                "a configuration starts with `version: 1`; see docs/configuration.md",
            )
        if not isinstance(root, yaml.MappingNode):
            raise _FileProblem(
                f"the top level must be a mapping of settings (version, stack, ...), not "
                f"{'a list' if isinstance(root, yaml.SequenceNode) else 'a single value'}",
                "start the file with `version: 1` followed by the other settings",
                mark=root.start_mark,
            )
        builder = _Builder(loader, doc, environ, issues)
        data = builder.build(root, (), 0, False)
        doc.data = data if isinstance(data, dict) else {}
    except _FileProblem as problem:
        issues.add(file, problem.line, problem.column, problem.message, problem.hint)
        return None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


# --------------------------------------------------------------------------------------
# Schema errors -> issues


_EXPECTED = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "empty",
}


def _type_hint(expected: list[str], value: Any, shown: str) -> str:
    if "string" in expected and isinstance(value, (bool, int, float, datetime.date)):
        return (
            f'put the value in quotes, e.g. "{shown.strip("`")}": YAML reads unquoted '
            "yes/no/on/off/true/false as booleans, digits as numbers and dates as dates"
        )
    if value is None:
        if "object" in expected:
            return "give a mapping after the colon, or `{}` for an empty one"
        if "array" in expected:
            return "give a list after the colon, or `[]` for an empty one"
        return "give a value after the colon"
    if "boolean" in expected:
        return "write true or false (without quotes)"
    if "integer" in expected:
        return "write a whole number without quotes, units or a decimal point"
    if "object" in expected:
        return "indent the fields under this key as `field: value` lines"
    if "array" in expected:
        return 'write a list, e.g. ["pattern"] or one `- item` per line'
    return f"write {' or '.join(_EXPECTED.get(t, t) for t in expected)}"


def _suggest_key(text: str) -> str | None:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._")[:64]
    if slug and _KEY_RE.fullmatch(slug) and slug != text:
        return slug
    return None


def _key_label(parent: Path_) -> str:
    if parent == ("wallets",):
        return "wallet key"
    if parent == ("environments",):
        return "environment name"
    if parent == ("lines_of_credit",):
        return "line of credit name"
    return "name"


def _schema_issues(doc: _Doc, issues: _Issues) -> None:
    for error in _validator().iter_errors(doc.data):
        path: Path_ = tuple(error.absolute_path)
        if doc.is_broken(path):
            continue
        if len(path) >= 3 and path[0] == "wallets" and path[2] == "limit":
            continue  # limits are read by units.parse_limit, which explains itself
        if (
            len(path) == 3
            and path[0] == "wallets"
            and path[2] == "name"
            and error.validator in ("minLength", "maxLength")
        ):
            continue  # checked after trimming, with the wallet's other name rules
        _schema_issue(doc, issues, error, path)


def _schema_issue(doc: _Doc, issues: _Issues, error: Any, path: Path_) -> None:
    validator = error.validator
    value = error.instance
    schema = error.schema
    in_names = "propertyNames" in error.relative_schema_path
    if in_names:
        key_path = (*path, value)
        if validator == "pattern":
            label = "stack name" if path == ("stack",) else _key_label(path)
            suggestion = _suggest_key(value)
            hint = schema.get("x-hint", _KEY_HINT)
            if suggestion:
                hint = f"did you mean `{suggestion}`? {hint}"
            issues.at(doc, key_path, f"`{value}` is not a valid {label}", hint, key=True)
        elif validator in ("maxLength", "minLength"):
            issues.at(
                doc,
                key_path,
                f"metadata key is {len(value)} characters; keys are 1-{schema.get('maxLength')}"
                " characters",
                "shorten the key",
                key=True,
            )
        else:
            issues.at(doc, key_path, f"invalid key: {error.message}", key=True)
        return
    shown = doc.show(path, value)
    if validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for extra in value:
            if extra in allowed or any(re.search(p, extra) for p in patterns):
                continue
            close = difflib.get_close_matches(extra.lower(), allowed, n=1, cutoff=0.6)
            if close:
                hint = f"did you mean `{close[0]}`?"
            else:
                hint = "the fields allowed here are: " + ", ".join(allowed)
                if patterns:
                    hint += " (keys starting with x- are ignored)"
            issues.at(doc, (*path, extra), f"unknown field `{extra}`", hint, key=True)
    elif validator == "required":
        for name in error.validator_value:
            if name in value:
                continue
            hint = {
                "version": "add `version: 1` at the top of the file",
                "name": "give the wallet a display name, e.g. `name: Payouts EU`",
                "id": "give the environment's UUID (from the Voltage dashboard)",
                "network": "give the environment's network: mainnet, testnet3 or mutinynet",
            }.get(name, "give both send_basis_points and receive_basis_points (0-10000)")
            issues.at(doc, path, f"missing required field `{name}`", hint, key=True)
    elif validator == "type":
        expected = error.validator_value
        expected = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_EXPECTED.get(t, t) for t in expected)
        issues.at(
            doc,
            path,
            f"must be {wanted}, not {_kind(value)}" + (f" ({shown})" if value is not None else ""),
            _type_hint(expected, value, shown),
        )
    elif validator == "const" and path == ("version",):
        if not _is_integer(None, value):
            return  # already reported as "must be a whole number"
        issues.at(
            doc,
            path,
            f"unsupported version {shown}: this release of voltage-iac reads version 1",
            "set `version: 1`",
        )
    elif validator == "enum":
        options = [o for o in error.validator_value if o != "testnet"]
        hint = "use one of: " + ", ".join(options)
        if isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), options, n=1, cutoff=0.5)
            if close:
                hint = f"did you mean `{close[0]}`? " + hint
        issues.at(doc, path, f"{shown} is not one of: {', '.join(options)}", hint)
    elif validator == "pattern":
        hint = schema.get("x-hint")
        if schema.get("pattern", "").startswith("^[0-9a-fA-F]{8}"):
            issues.at(doc, path, f"{shown} is not a UUID", hint)
        elif path == ("stack",):
            suggestion = _suggest_key(value)
            if suggestion:
                hint = f"did you mean `{suggestion}`? {hint}"
            issues.at(doc, path, f"{shown} is not a valid stack name", hint)
        elif path[:1] == ("ignore",):
            issues.at(doc, path, f"{shown} is not a drift-ignore pattern", hint)
        else:
            issues.at(doc, path, f"{shown} is not in the expected form", hint)
    elif validator in ("minLength", "maxLength"):
        limit = error.validator_value
        if validator == "maxLength":
            message = f"is {len(value)} characters long; at most {limit} are allowed"
        else:
            message = f"is {len(value)} characters long; at least {limit} are needed"
        issues.at(doc, path, message, "shorten it" if validator == "maxLength" else None)
    elif validator == "maxProperties":
        issues.at(
            doc,
            path,
            f"has {len(value)} keys; at most {error.validator_value} are allowed",
            "remove some keys: voltage-iac keeps wallet metadata to 64 keys at most",
        )
    elif validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = error.validator_value
        relation = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "greater than",
            "exclusiveMaximum": "less than",
        }[validator]
        issues.at(
            doc, path, f"{shown} is out of range: must be {relation} {bound}", _range_hint(path)
        )
    else:
        issues.at(doc, path, error.message)


def _range_hint(path: Path_) -> str | None:
    last = path[-1] if path else ""
    if last in ("send_basis_points", "receive_basis_points"):
        return "basis points run from 0 (no fee) to 10000 (100%); 100 is 1%"
    if last in ("max_payment_size_sats", "transactions_per_minute", "send_volume_limit_sats"):
        return f"policy values are whole numbers from 1 to {U64_MAX}"
    if last == "mass_change_share":
        return "a share between 0 (exclusive) and 1, e.g. 0.3 for 30%"
    if last == "mass_change_min_wallets":
        return "a whole number of wallets, 1 or more"
    if last == "limit_increase_factor":
        return "a factor above 1, e.g. 10"
    return None


# --------------------------------------------------------------------------------------
# Merging files and checking meaning


class _Entry(NamedTuple):
    value: Any
    doc: _Doc
    path: Path_


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(
        b, sort_keys=True, default=repr
    )


def _canonical_uuid(value: Any) -> str | None:
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return value.lower()
    return None


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(c.isspace() for c in value)
    )


def _misspelt(field_name: str, wallet: dict[str, Any]) -> bool:
    """True when an unknown field of the wallet looks like `field_name` (already reported
    as a typo with a did-you-mean hint, so "missing" would only repeat it)."""
    unknown = [k for k in wallet if k not in _wallet_fields()]
    return bool(difflib.get_close_matches(field_name, [k.lower() for k in unknown], cutoff=0.6))


@lru_cache(maxsize=1)
def _wallet_fields() -> frozenset[str]:
    return frozenset(load_schema()["$defs"]["wallet"]["properties"])


def _normal_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _normal_meta_key(key: str) -> str:
    return unicodedata.normalize("NFC", key).casefold()


def _where(entry: _Entry, sub: Path_ = ()) -> str:
    line, _ = entry.doc.where((*entry.path, *sub), key=True)
    return f"{entry.doc.file}:{line}" if line is not None else entry.doc.file


def _did_you_mean(value: str, names: list[str], plural: str) -> str:
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    listed = ", ".join(sorted(names))
    if close:
        return f"did you mean `{close[0]}`? defined {plural}: {listed}"
    return f"defined {plural}: {listed}"


class _Checker:
    """Merges the documents of one configuration and checks what they mean together."""

    def __init__(self, docs: list[_Doc], issues: _Issues) -> None:
        self.docs = docs
        self.issues = issues
        self.single: dict[str, _Entry] = {}
        self.sections: dict[str, dict[str, _Entry]] = {name: {} for name in SECTIONS}
        self.section_places: dict[str, list[_Entry]] = {name: [] for name in SECTIONS}
        self.ignores: list[_Entry] = []
        # Set whenever something is left out of the state; the state is then never
        # returned, so nothing can silently go missing from a plan.
        self.dropped = False

    def merge(self) -> None:
        for doc in self.docs:
            for key, value in doc.data.items():
                if key in SINGLE_KEYS:
                    self._merge_single(doc, key, value)
                elif key in SECTIONS:
                    self.section_places[key].append(_Entry(value, doc, (key,)))
                    if isinstance(value, dict):
                        self._merge_section(doc, key, value)
                elif key == "ignore" and isinstance(value, list):
                    self.ignores.extend(
                        _Entry(item, doc, ("ignore", index)) for index, item in enumerate(value)
                    )

    def _merge_single(self, doc: _Doc, key: str, value: Any) -> None:
        previous = self.single.get(key)
        if previous is None:
            self.single[key] = _Entry(value, doc, (key,))
        elif not _same(previous.value, value):
            self.issues.at(
                doc,
                (key,),
                f"`{key}` differs from the one at {_where(previous)}",
                f"every file that repeats `{key}` must say the same; or keep it in one file",
                key=True,
            )

    def _merge_section(self, doc: _Doc, section: str, value: dict[str, Any]) -> None:
        known = self.sections[section]
        for name, item in value.items():
            previous = known.get(name)
            if previous is not None:
                self.issues.at(
                    doc,
                    (section, name),
                    f"{SECTION_LABELS[section]} `{name}` is defined twice: here and at "
                    f"{_where(previous)}",
                    "keep one definition: names must be unique across all files",
                    key=True,
                )
            else:
                known[name] = _Entry(item, doc, (section, name))

    # -- top-level

    def check(self) -> DesiredState | None:
        self.merge()
        first = self.docs[0]
        stack = self.single.get("stack")
        if stack is None:
            self.issues.at(
                first,
                (),
                "missing `stack`",
                "add `stack: <name>` (e.g. stack: acme): the ownership label of the wallets "
                "this configuration manages",
            )
        provider_entry = self.single.get("provider")
        provider: dict[str, Any] = {}
        if provider_entry is None:
            self.issues.at(
                first,
                (),
                "missing `provider`",
                "add `provider: {organization_id: ${VOLTAGE_ORGANIZATION_ID}}` for Voltage, "
                "or `provider: {kind: lnbits, url: http://...}`",
            )
        elif isinstance(provider_entry.value, dict):
            provider = provider_entry.value
        kind = provider.get("kind", "voltage")
        if provider_entry is not None and not isinstance(provider_entry.value, dict):
            state = None
        elif provider_entry is not None and kind == "voltage":
            state = self._voltage(provider_entry, provider)
        elif provider_entry is not None and kind == "lnbits":
            state = self._lnbits(provider_entry, provider)
        else:
            state = None
        guards = self._guards()
        ignore = self._global_ignore()
        if state is None or stack is None or not isinstance(stack.value, str) or guards is None:
            return None
        if self.dropped:
            return None
        return dataclasses.replace(
            state,
            stack=stack.value,
            guards=guards,
            ignore=ignore,
            files=tuple(doc.file for doc in self.docs),
        )

    def _voltage(self, entry: _Entry, provider: dict[str, Any]) -> DesiredState | None:
        organization_id = _canonical_uuid(provider.get("organization_id"))
        if "organization_id" not in provider:
            self.issues.at(
                entry.doc,
                entry.path,
                "missing `organization_id` for the voltage provider",
                "add `organization_id: ${VOLTAGE_ORGANIZATION_ID}` (the organization UUID "
                "from the Voltage dashboard)",
                key=True,
            )
        if "url" in provider:
            self.issues.at(
                entry.doc,
                (*entry.path, "url"),
                "`url` is for the lnbits provider",
                "for Voltage, use `api_url` (or leave it out for https://voltageapi.com/v1)",
                key=True,
            )
        api_url = provider.get("api_url")
        if isinstance(api_url, str) and api_url != "emulator" and not _is_http_url(api_url):
            self.issues.at(
                entry.doc,
                (*entry.path, "api_url"),
                f"{entry.doc.show((*entry.path, 'api_url'), api_url)} is not an http(s) URL "
                "or `emulator`",
                "write e.g. https://voltageapi.com/v1, or `emulator` for the embedded emulator",
            )
        environments = self._environments()
        if not self.sections["environments"] and not any(
            not isinstance(p.value, dict) for p in self.section_places["environments"]
        ):
            self.issues.at(
                self.docs[0],
                (),
                "no environments are defined",
                "add e.g. `environments: {staging: {id: <uuid>, network: mutinynet}}`",
            )
        lines = self._lines_of_credit()
        wallets = self._wallets("voltage", environments, lines)
        if organization_id is None or not isinstance(api_url, (str, type(None))):
            return None
        return DesiredState(
            stack="",
            organization_id=organization_id,
            provider_kind="voltage",
            api_url=api_url,
            environments=frozen_map(environments),
            lines_of_credit=frozen_map(lines),
            resources=frozen_map({"wallet": frozen_map(wallets)}),
        )

    def _lnbits(self, entry: _Entry, provider: dict[str, Any]) -> DesiredState | None:
        url = provider.get("url")
        if "url" not in provider:
            self.issues.at(
                entry.doc,
                entry.path,
                "missing `url` for the lnbits provider",
                "add the server's base URL, e.g. `url: http://127.0.0.1:5000`",
                key=True,
            )
        elif isinstance(url, str) and not _is_http_url(url):
            self.issues.at(
                entry.doc,
                (*entry.path, "url"),
                f"{entry.doc.show((*entry.path, 'url'), url)} is not an http(s) URL",
                "write the server's base URL, e.g. http://127.0.0.1:5000",
            )
        for field_name in ("organization_id", "api_url"):
            if field_name in provider:
                self.issues.at(
                    entry.doc,
                    (*entry.path, field_name),
                    f"`{field_name}` is not supported by the lnbits provider",
                    "remove it; the lnbits provider takes `url`",
                    key=True,
                )
        for section in ("environments", "lines_of_credit"):
            for place in self.section_places[section]:
                self.issues.at(
                    place.doc,
                    place.path,
                    f"`{section}` is not supported by the lnbits provider",
                    "LNbits has no environments or lines of credit: remove this section",
                    key=True,
                )
        wallets = self._wallets("lnbits", {}, {})
        if not isinstance(url, str):
            return None
        return DesiredState(
            stack="",
            organization_id="",
            provider_kind="lnbits",
            api_url=None,
            resources=frozen_map({"wallet": frozen_map(wallets)}),
            provider_options=frozen_map({"url": url}),
        )

    def _environments(self) -> dict[str, Environment]:
        result: dict[str, Environment] = {}
        by_id: dict[str, str] = {}
        for name, entry in self.sections["environments"].items():
            value = entry.value
            if not isinstance(value, dict):
                continue
            env_id = _canonical_uuid(value.get("id"))
            network = value.get("network")
            if env_id is not None and env_id in by_id:
                self.issues.at(
                    entry.doc,
                    (*entry.path, "id"),
                    f"environment `{name}` has the same id as environment `{by_id[env_id]}`",
                    "give each environment its own entry: one name per environment id",
                )
            if env_id is None or not isinstance(network, str):
                self.dropped = True
                continue
            by_id.setdefault(env_id, name)
            line, column = entry.doc.where(entry.path, key=True)
            result[name] = Environment(
                name=name,
                id=env_id,
                network=NETWORK_ALIASES.get(network, network),
                source=SourceRef(entry.doc.file, line, column),
            )
        return result

    def _lines_of_credit(self) -> dict[str, LineOfCredit]:
        result: dict[str, LineOfCredit] = {}
        for name, entry in self.sections["lines_of_credit"].items():
            loc_id = _canonical_uuid(entry.value)
            if loc_id is None:
                self.dropped = True
                continue
            line, column = entry.doc.where(entry.path, key=True)
            result[name] = LineOfCredit(
                name=name, id=loc_id, source=SourceRef(entry.doc.file, line, column)
            )
        return result

    # -- wallets

    def _wallets(
        self,
        kind: str,
        environments: dict[str, Environment],
        lines: dict[str, LineOfCredit],
    ) -> dict[str, DesiredWallet]:
        result: dict[str, DesiredWallet] = {}
        names_seen: dict[tuple[str, str], tuple[str, _Entry]] = {}
        pinned: dict[str, str] = {}
        env_names = list(self.sections["environments"])
        line_names = list(self.sections["lines_of_credit"])
        for key, entry in self.sections["wallets"].items():
            wallet = entry.value
            if not isinstance(wallet, dict):
                self.dropped = True
                continue
            doc, path = entry.doc, entry.path
            ok = True
            name = self._wallet_name(entry, wallet)
            if kind == "lnbits":
                for field_name, hint in LNBITS_UNSUPPORTED_WALLET_FIELDS.items():
                    if field_name in wallet:
                        self.issues.at(
                            doc,
                            (*path, field_name),
                            f"`{field_name}` is not supported by the lnbits provider",
                            hint,
                            key=True,
                        )
                        ok = False
                if name is not None and LNBITS_MARKER_PREFIX in name:
                    self.issues.at(
                        doc,
                        (*path, "name"),
                        f"the display name `{name}` contains `{LNBITS_MARKER_PREFIX}`, which "
                        "starts the ownership marker voltage-iac adds to LNbits wallet names",
                        "write the display name only (e.g. `Tips`, not `Tips [iac:stack:key]`); "
                        "voltage-iac adds the marker itself",
                    )
                    ok = False
                group = "default"
            else:
                for field_name, hint in (
                    ("environment", "name one of `environments`, e.g. `environment: staging`"),
                    (
                        "line_of_credit",
                        "name one of `lines_of_credit`, e.g. `line_of_credit: main`",
                    ),
                    (
                        "limit",
                        "give the credit limit, e.g. `limit: 0.001 btc` or msats as an integer",
                    ),
                ):
                    if field_name not in wallet and not _misspelt(field_name, wallet):
                        self.issues.at(
                            doc, path, f"wallet `{key}` has no `{field_name}`", hint, key=True
                        )
                        ok = False
                env_name = wallet.get("environment")
                group = env_name if isinstance(env_name, str) else ""
            if name is not None:
                normal = _normal_name(name)
                other = names_seen.get((group, normal))
                if other is not None:
                    where = f" in environment `{group}`" if kind == "voltage" else ""
                    self.issues.at(
                        doc,
                        (*path, "name"),
                        f"display name `{name}` is already used by wallet `{other[0]}`{where} "
                        f"({_where(other[1], ('name',))})",
                        "display names must be unique within an environment, ignoring case, "
                        "spacing and Unicode form: rename one of them",
                    )
                    ok = False
                else:
                    names_seen[(group, normal)] = (key, entry)
            else:
                ok = False
            env: Environment | None = None
            line: LineOfCredit | None = None
            limit: int | None = None
            metadata: dict[str, str] = {}
            policies: Policies | None = None
            pinned_id: str | None = None
            if kind == "voltage":
                env = self._reference(entry, "environment", env_names, environments)
                line = self._reference(entry, "line_of_credit", line_names, lines)
                limit = self._limit(entry)
                metadata = self._metadata(entry)
                policies = self._policies(entry)
                if "id" in wallet:
                    pinned_id = _canonical_uuid(wallet["id"])
                    if pinned_id is not None and pinned_id in pinned:
                        self.issues.at(
                            doc,
                            (*path, "id"),
                            f"wallet id {pinned_id} is already pinned by wallet "
                            f"`{pinned[pinned_id]}`",
                            "a live wallet can belong to one entry only: remove one of the ids",
                        )
                    elif pinned_id is not None:
                        pinned[pinned_id] = key
                    ok = ok and pinned_id is not None
                ok = ok and env is not None and line is not None and limit is not None
                ok = ok and ("policies" not in wallet or policies is not None)
            protect = wallet.get("protect", False)
            ignore = wallet.get("ignore", [])
            if not ok or name is None or not isinstance(protect, bool):
                self.dropped = True
                continue
            if not isinstance(ignore, list) or not all(isinstance(i, str) for i in ignore):
                self.dropped = True
                continue
            line_no, column = doc.where(path, key=True)
            result[key] = DesiredWallet(
                key=key,
                name=name,
                environment=env.name if env else "default",
                environment_id=env.id if env else None,
                network=env.network if env else None,
                line_of_credit=line.name if line else None,
                line_of_credit_id=line.id if line else None,
                limit=limit,
                metadata=frozen_map(metadata),
                policies=policies,
                protect=protect,
                pinned_id=pinned_id,
                ignore=tuple(ignore),
                source=SourceRef(doc.file, line_no, column),
            )
        return dict(sorted(result.items()))

    def _wallet_name(self, entry: _Entry, wallet: dict[str, Any]) -> str | None:
        value = wallet.get("name")
        if not isinstance(value, str):
            return None
        path = (*entry.path, "name")
        name = value.strip()
        control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
        if control is not None:
            self.issues.at(
                entry.doc,
                path,
                f"the display name contains a control character (U+{ord(control):04X})",
                "remove it: a display name is plain text on one line",
            )
            return None
        if not 3 <= len(name) <= 256:
            self.issues.at(
                entry.doc,
                path,
                f"the display name is {len(name)} characters long (after trimming spaces); "
                "names are 3-256 characters",
                "lengthen it" if len(name) < 3 else "shorten it",
            )
            return None
        return name

    def _reference(
        self, entry: _Entry, field_name: str, names: list[str], resolved: Mapping[str, Any]
    ) -> Any:
        value = entry.value.get(field_name)
        if not isinstance(value, str):
            return None
        if value in resolved:
            return resolved[value]
        if value not in names:
            what = "environment" if field_name == "environment" else "line of credit"
            section = "environments" if field_name == "environment" else "lines_of_credit"
            plural = "environments" if field_name == "environment" else "lines of credit"
            hint = _did_you_mean(value, names, plural)
            if not names:
                hint = f"no {plural} are defined: add one under `{section}:`"
            self.issues.at(
                entry.doc,
                (*entry.path, field_name),
                f"unknown {what} `{value}`",
                hint,
            )
        return None

    def _limit(self, entry: _Entry) -> int | None:
        if "limit" not in entry.value:
            return None
        path = (*entry.path, "limit")
        try:
            return parse_limit(entry.value["limit"])
        except AmountError as exc:
            message = str(exc)
            if entry.doc.interpolated.get(path):
                message = f"cannot read {entry.doc.show(path, None)} as a limit"
            self.issues.at(
                entry.doc,
                path,
                message,
                "write a whole number of msats (e.g. 100000000) or a text with a unit: "
                'msat, sat or btc (e.g. "50000 sat", "0.001 btc")',
            )
            return None

    def _metadata(self, entry: _Entry) -> dict[str, str]:
        metadata = entry.value.get("metadata")
        if not isinstance(metadata, dict):
            return {}
        result: dict[str, str] = {}
        seen: dict[str, str] = {}
        for key, value in metadata.items():
            path = (*entry.path, "metadata", key)
            if is_reserved_label(key):
                self.issues.at(
                    entry.doc,
                    path,
                    f"metadata key `{key}` uses the prefix `{LABEL_PREFIX}`, which voltage-iac "
                    "reserves for its ownership labels",
                    "rename the key",
                    key=True,
                )
                continue
            normal = _normal_meta_key(key)
            if normal in seen:
                self.issues.at(
                    entry.doc,
                    path,
                    f"metadata key `{key}` collides with `{seen[normal]}` (keys must differ by "
                    "more than letter case or Unicode form)",
                    "rename or remove one of them",
                    key=True,
                )
                continue
            seen[normal] = key
            if isinstance(value, str):
                result[key] = value
        return result

    def _policies(self, entry: _Entry) -> Policies | None:
        value = entry.value.get("policies")
        if not isinstance(value, dict):
            return None

        def number(name: str) -> int | None:
            item = value.get(name)
            return item if _is_integer(None, item) else None

        fee = value.get("processing_fee")
        processing_fee = None
        if isinstance(fee, dict):
            send, receive = fee.get("send_basis_points"), fee.get("receive_basis_points")
            if isinstance(send, int) and isinstance(receive, int):
                processing_fee = ProcessingFee(send, receive)
        ofac = value.get("ofac_compliant", False)
        return Policies(
            max_payment_size_sats=number("max_payment_size_sats"),
            transactions_per_minute=number("transactions_per_minute"),
            send_volume_limit_sats=number("send_volume_limit_sats"),
            template_id=_canonical_uuid(value.get("template_id")),
            ofac_compliant=ofac if isinstance(ofac, bool) else False,
            processing_fee=processing_fee,
        )

    # -- guards and ignore

    def _guards(self) -> Guards | None:
        entry = self.single.get("guards")
        if entry is None:
            return Guards()
        if not isinstance(entry.value, dict):
            return None
        defaults = Guards()
        values: dict[str, Any] = {}
        ok = True
        for field_name in ("mass_change_share", "limit_increase_factor"):
            item = entry.value.get(field_name, getattr(defaults, field_name))
            if not _is_number(None, item):
                ok = False
            elif not math.isfinite(item):
                self.issues.at(
                    entry.doc,
                    (*entry.path, field_name),
                    "must be a finite number, not "
                    + entry.doc.show((*entry.path, field_name), item),
                    _range_hint((field_name,)),
                )
                ok = False
            else:
                values[field_name] = float(item)
        count = entry.value.get("mass_change_min_wallets", defaults.mass_change_min_wallets)
        if not _is_integer(None, count):
            ok = False
        values["mass_change_min_wallets"] = count
        return Guards(**values) if ok else None

    def _global_ignore(self) -> tuple[str, ...]:
        patterns = [entry.value for entry in self.ignores if isinstance(entry.value, str)]
        if len(patterns) != len(self.ignores):
            self.dropped = True
        return tuple(dict.fromkeys(patterns))


# --------------------------------------------------------------------------------------
# Digest


def _canonical(state: DesiredState) -> dict[str, Any]:
    return {
        "stack": state.stack,
        "organization_id": state.organization_id,
        "provider_kind": state.provider_kind,
        "api_url": state.api_url,
        "provider_options": dict(state.provider_options),
        "environments": {
            name: {"id": env.id, "network": env.network} for name, env in state.environments.items()
        },
        "lines_of_credit": {name: line.id for name, line in state.lines_of_credit.items()},
        "wallets": {
            key: {
                "name": w.name,
                "environment": w.environment,
                "environment_id": w.environment_id,
                "network": w.network,
                "line_of_credit": w.line_of_credit,
                "line_of_credit_id": w.line_of_credit_id,
                "limit": w.limit,
                "metadata": dict(w.metadata),
                "policies": w.policies.to_dict() if w.policies is not None else None,
                "protect": w.protect,
                "pinned_id": w.pinned_id,
                "ignore": list(w.ignore),
            }
            for key, w in state.wallets.items()
        },
        "guards": dataclasses.asdict(state.guards),
        "ignore": list(state.ignore),
    }


def state_digest(state: DesiredState) -> str:
    """sha256 (hex) over the canonical JSON of the desired state: sorted keys, no
    sources or file names, so comments, key order and file layout do not change it."""
    text = json.dumps(_canonical(state), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------------------
# Entry points


def _finish(docs: list[_Doc], files: list[str], issues: _Issues) -> DesiredState:
    for doc in docs:
        _schema_issues(doc, issues)
    state = _Checker(docs, issues).check() if docs else None
    if issues.items or state is None:
        if not issues.items:  # every gap is reported above; this is a safety net
            issues.add(files[0], None, None, "the configuration is incomplete")
        raise issues.error(files)
    return dataclasses.replace(state, digest=state_digest(state))


def _config_files(path: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    shown = os.fspath(path)
    target = Path(shown)
    if target.is_dir():
        names = sorted(
            entry.name
            for entry in target.iterdir()
            if entry.suffix in (".yaml", ".yml")
            and not entry.name.startswith(".")
            and not entry.is_dir()
        )
        if not names:
            raise ConfigError(
                [
                    ConfigIssue(
                        shown,
                        None,
                        None,
                        "the directory holds no *.yaml or *.yml files",
                        "put the configuration files directly in this directory, or give the "
                        "path of a single file",
                    )
                ]
            )
        return [(target / name, os.path.join(shown, name)) for name in names]
    if not target.exists():
        raise ConfigError(
            [
                ConfigIssue(
                    shown,
                    None,
                    None,
                    "no such file or directory",
                    "give the path of a configuration file or of a directory of them",
                )
            ]
        )
    return [(target, shown)]


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> DesiredState:
    """Load, validate and merge a configuration file, or every `*.yaml`/`*.yml` file
    directly inside a directory (in name order).

    `${VAR}` is taken from `environ` (default: `os.environ`). Raises `ConfigError`
    carrying every problem found, each located by file, line and column.
    """
    env = os.environ if environ is None else environ
    sources = _config_files(path)
    issues = _Issues()
    docs: list[_Doc] = []
    for file_path, shown in sources:
        try:
            text = _decode(_read_bytes(file_path))
        except _FileProblem as problem:
            issues.add(shown, problem.line, problem.column, problem.message, problem.hint)
            continue
        doc = _parse_text(text, shown, env, issues)
        if doc is not None:
            docs.append(doc)
    return _finish(docs, [shown for _, shown in sources], issues)


def load_config_string(
    text: str, *, file: str = "<string>", environ: Mapping[str, str] | None = None
) -> DesiredState:
    """Like `load_config`, for configuration text already in memory (one document)."""
    env = os.environ if environ is None else environ
    issues = _Issues()
    size = len(text.encode("utf-8", errors="surrogatepass"))
    docs: list[_Doc] = []
    if size > MAX_FILE_BYTES:
        problem = _too_big(size)
        issues.add(file, None, None, problem.message, problem.hint)
    else:
        doc = _parse_text(text.removeprefix("\ufeff"), file, env, issues)
        if doc is not None:
            docs.append(doc)
    return _finish(docs, [file], issues)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def state_from_document(document: Mapping[str, Any], *, file: str = "<document>") -> DesiredState:
    """Validate an already-parsed configuration (e.g. one about to be written out) and
    build its `DesiredState`. No interpolation; issues carry no line numbers."""
    issues = _Issues()
    doc = _Doc(file=file, data=_plain(document))
    return _finish([doc], [file], issues)


def validate_document(
    document: Mapping[str, Any], *, file: str = "<document>"
) -> list[ConfigIssue]:
    """Every problem of an already-parsed configuration; empty when it is valid."""
    try:
        state_from_document(document, file=file)
    except ConfigError as exc:
        return exc.issues
    return []
