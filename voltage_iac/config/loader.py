"""Step 1 of loading: files in, one parsed `Doc` per file out.

Flow: `config_files` lists the files of a path -> `read_bytes` reads one, bounded in
size -> `decode` makes it UTF-8 text -> `parse_text` composes its YAML under
`_BoundedCompose` (bounded depth, alias expansion and node count; duplicate keys are
errors) and `_Builder` turns the nodes into plain data, recording the position of every
key and value and interpolating `${VAR}` in text values. Next: `schema.py` checks the
structure of each `Doc`.

Speed: libyaml's C parser composes the nodes when PyYAML has it (ten times faster than
the pure-Python parser); any problem is then read again with the pure-Python parser so
that what the user sees does not depend on which parser ran.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from voltage_iac.config.document import Doc, FileProblem, Issues, Loc, Path_
from voltage_iac.errors import ConfigError, ConfigIssue

# Limits of the loader (documented in docs/configuration.md).
MAX_FILE_BYTES = 1024 * 1024  # per file, checked before parsing
MAX_DEPTH = 32  # nesting of mappings and lists (a real configuration needs 6)
MAX_NODES = 300_000  # values built per file, aliases expanded
MAX_ALIAS_NODES = 10_000  # values built through aliases and merge keys, per file

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

_INTERPOLATION_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
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


# --------------------------------------------------------------------------------------
# Which files


def config_files(path: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """The files of a configuration path, each with the name shown in messages: the
    file itself, or the `*.yaml`/`*.yml` files directly inside a directory, in name order."""
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


# --------------------------------------------------------------------------------------
# Reading bytes


def _line_column(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", errors="replace")) + 1
    return line, column


def decode(data: bytes) -> str:
    """UTF-8 text of a file, or a `FileProblem` naming where it stops being text."""
    for bom, name in (
        (b"\x00\x00\xfe\xff", "UTF-32"),
        (b"\xff\xfe\x00\x00", "UTF-32"),
        (b"\xfe\xff", "UTF-16"),
        (b"\xff\xfe", "UTF-16"),
    ):
        if data.startswith(bom):
            raise FileProblem(
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
            raise FileProblem(
                f"the file contains NUL bytes (first at byte offset {nul}, line {line}): "
                "it looks like UTF-16 or UTF-32 text; configuration files must be UTF-8",
                "save the file as UTF-8",
                line=line,
                column=column,
            )
        raise FileProblem(
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
        raise FileProblem(
            f"the file is not valid UTF-8: byte 0x{data[offset]:02x} at byte offset {offset} "
            f"(line {line}, column {column})",
            "save the file as UTF-8 (it may have been written as Latin-1 or Windows-1252)",
            line=line,
            column=column,
        ) from None


def read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise too_big(size)
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise FileProblem(
            f"cannot read the file: {exc.strerror or exc}",
            "check that the path exists and is readable",
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise too_big(len(data))
    return data


def too_big(size: int) -> FileProblem:
    return FileProblem(
        f"the file is {size} bytes, over the limit of {MAX_FILE_BYTES} bytes (1 MiB) per file",
        "split the configuration into several files in one directory",
    )


# --------------------------------------------------------------------------------------
# Parsing YAML


class _GiveUp(Exception):
    """The fast path met something it leaves to the next reader (at last the pure path)."""


class _BoundedCompose:
    """Composes one document with bounded depth and no recursion, from the events of
    either parser (the pure-Python `SafeLoader` or libyaml's `CSafeLoader`).

    Events are turned into nodes with an explicit stack, so deep nesting is refused as
    soon as it is seen; aliases are kept as shared nodes (expanded, and counted, later).
    Both parsers give the same events with the same marks, so the nodes are the same.
    """

    #: give up on values whose position libyaml reports differently (the C parser)
    exact_marks_only = False
    # provided by the parser and resolver classes this is mixed into
    get_event: Any
    check_event: Any
    peek_event: Any
    resolve: Any

    def compose_single(self) -> yaml.Node | None:
        self.get_event()  # stream start
        if self.check_event(yaml.StreamEndEvent):
            return None
        self.get_event()  # document start
        root = self._compose_bounded()
        self.get_event()  # document end
        if not self.check_event(yaml.StreamEndEvent):
            event = self.peek_event()
            raise FileProblem(
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
                    raise FileProblem(
                        f"unknown alias *{event.anchor}",
                        f"define the anchor &{event.anchor} before using *{event.anchor}",
                        mark=event.start_mark,
                    )
                if id(found) in open_ids:
                    raise FileProblem(
                        f"the alias *{event.anchor} refers to a value that contains it",
                        "an alias cannot be used inside the value it names",
                        mark=event.start_mark,
                    )
                node = found
            elif isinstance(event, yaml.ScalarEvent):
                if self.exact_marks_only and not event.value and event.implicit[0]:
                    # An empty value (or key): libyaml places it elsewhere than the
                    # pure-Python parser, and no setting may be empty anyway.
                    raise _GiveUp
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


class BoundedLoader(_BoundedCompose, yaml.SafeLoader):
    """The pure-Python parser: slower, and the one whose errors voltage-iac words."""


_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)
CBoundedLoader: Any = None  # None when PyYAML was built without libyaml
if _CSafeLoader is not None:

    class _CBoundedLoader(_BoundedCompose, _CSafeLoader):
        """libyaml's C parser under the same composer: used first, for speed."""

        exact_marks_only = True

    CBoundedLoader = _CBoundedLoader


def _too_deep(mark: Any) -> FileProblem:
    return FileProblem(
        f"values are nested more than {MAX_DEPTH} levels deep",
        "a configuration needs only a few levels of nesting: check the indentation",
        mark=mark,
    )


class _Builder:
    """Turns composed nodes into plain data, recording positions, bounded in size."""

    def __init__(self, loader: Any, doc: Doc, environ: Mapping[str, str], issues: Issues) -> None:
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
            raise FileProblem(
                f"the file holds more than {MAX_NODES} values",
                "split the configuration into several files",
                mark=node.start_mark,
            )
        via_alias = via_alias or id(node) in self.seen
        self.seen.add(id(node))
        if via_alias:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise FileProblem(
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
        self.doc.locs[path] = Loc(
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
            value = self._interpolate(value, path)
            if "\n" in value:
                self.doc.ambiguous = True
        elif isinstance(value, float) and value.is_integer():
            self.doc.ambiguous = True
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


def _bad_merge(node: yaml.Node) -> FileProblem:
    return FileProblem(
        "a merge key `<<` takes a mapping or a list of mappings",
        "write e.g. `<<: *defaults` where &defaults names a mapping",
        mark=node.start_mark,
    )


def _yaml_problem(exc: yaml.MarkedYAMLError, text: str) -> FileProblem:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    if "end of stream" in problem and exc.context_mark is not None:
        mark = exc.context_mark  # where the unfinished value starts, not the file's end
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        return FileProblem(
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
    return FileProblem(
        message,
        "check the indentation and quoting on this line and the lines just before it; "
        "quote values that contain ': ' or start with a special character",
        mark=mark,
    )


def parse_text(
    text: str, file: str, environ: Mapping[str, str], issues: Issues, *, fast: bool = True
) -> Doc | None:
    """Parse one file's text into a `Doc`, or record why it cannot be read.

    With `fast` (the default) libyaml's C parser is tried first. On any problem at all -
    a syntax error, a bound, a duplicate key, an unset variable - its result is thrown
    away and the pure-Python parser reads the file again, solely so that the messages,
    lines and columns are the ones the pure-Python parser gives: the two parsers report
    some errors at a different moment and in other words.
    """
    if fast and CBoundedLoader is not None and not _PURE_ONLY.search(text):
        # 1. The common case in one pass over libyaml's events: no anchors, aliases,
        #    merge keys or tags. 2. Otherwise libyaml's events under the bounded composer.
        for attempt in (_direct, _composed):
            scratch = Issues()
            try:
                doc = attempt(text, file, environ, scratch)
            except Exception:  # any failure of the fast path: the pure path words it
                doc = None
            if doc is not None and not scratch.items:
                return doc
    return _parse_with(BoundedLoader, text, file, environ, issues)


def _composed(text: str, file: str, environ: Mapping[str, str], issues: Issues) -> Doc | None:
    return _parse_with(CBoundedLoader, text, file, environ, issues)


def _direct(text: str, file: str, environ: Mapping[str, str], issues: Issues) -> Doc | None:
    """Plain data and positions straight from libyaml's events, without nodes.

    Only for the common case: a single document whose root is a mapping, with no anchor,
    alias, merge key or explicit tag, no duplicate key, within the bounds. Anything else
    raises `_GiveUp` and the composer reads the file. What it builds is what the composer
    and `_Builder` build for the same text (tests/test_config_paths.py compares them).
    """
    loader = CBoundedLoader(text)
    try:
        doc = Doc(file=file, data={})
        builder = _Builder(loader, doc, environ, issues)
        locs = doc.locs
        resolve = loader.resolve
        construct = loader.construct_object
        scalar_events = yaml.ScalarEvent
        mapping_start = yaml.MappingStartEvent
        sequence_start = yaml.SequenceStartEvent
        ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
        scalar_node = yaml.ScalarNode
        str_tag = "tag:yaml.org,2002:str"
        allowed = _ALLOWED_SCALAR_TAGS
        plain_tags: dict[str, str] = {}
        get_event = loader.get_event
        if type(get_event()) is not yaml.StreamStartEvent:
            raise _GiveUp
        if type(get_event()) is not yaml.DocumentStartEvent:
            raise _GiveUp
        # frames: [container, path, pending key (mappings), its mark]
        stack: list[list[Any]] = []
        nodes = 0
        root: Any = None
        while True:
            event: Any = get_event()
            kind = type(event)
            if kind in ends:
                value, path = stack.pop()[:2]
                if not stack:
                    root = value
                    break
            else:
                if event.anchor is not None or event.tag is not None:
                    raise _GiveUp
                nodes += 1
                if nodes > MAX_NODES:
                    raise _GiveUp
                start = event.start_mark
                if stack:
                    frame = stack[-1]
                    container = frame[0]
                    if type(container) is dict:
                        if frame[2] is None:  # this event is a key
                            if kind is not scalar_events:
                                raise _GiveUp
                            key = event.value
                            if key in container or (
                                event.implicit[0]
                                and resolve(scalar_node, key, (True, False)) == _MERGE_TAG
                            ):
                                raise _GiveUp
                            frame[2] = key
                            frame[3] = start
                            continue
                        key = frame[2]
                        key_mark = frame[3]
                        frame[2] = None
                        path = (*frame[1], key)
                        key_line, key_column = key_mark.line + 1, key_mark.column + 1
                    else:
                        path = (*frame[1], len(container))
                        key_line = key_column = None
                else:
                    if kind is not mapping_start:
                        raise _GiveUp
                    container = None
                    path = ()
                    key_line = key_column = None
                if kind is scalar_events:
                    raw_text: str = event.value
                    style = event.style
                    if not raw_text and event.implicit[0]:
                        raise _GiveUp  # an empty value: see _BoundedCompose
                    if event.implicit[0]:
                        tag = plain_tags.get(raw_text)
                        if tag is None:
                            tag = plain_tags[raw_text] = resolve(
                                scalar_node,
                                raw_text,
                                (True, False),
                            )
                    else:
                        tag = str_tag
                    raw = None
                    if start.line == event.end_mark.line:
                        raw = raw_text if not style else f"{style}{raw_text}{style}"
                    locs[path] = Loc(start.line + 1, start.column + 1, key_line, key_column, raw)
                    if tag == str_tag:
                        value = (
                            builder._interpolate(raw_text, path) if "${" in raw_text else raw_text
                        )
                        if "\n" in value:
                            doc.ambiguous = True
                    elif tag in allowed:
                        value = construct(
                            scalar_node(tag, raw_text, start, event.end_mark, style=style)
                        )
                        if isinstance(value, float) and value.is_integer():
                            doc.ambiguous = True
                    else:
                        raise _GiveUp
                else:
                    if kind is not mapping_start and kind is not sequence_start:
                        raise _GiveUp
                    if len(stack) >= MAX_DEPTH:
                        raise _GiveUp
                    locs[path] = Loc(start.line + 1, start.column + 1, key_line, key_column)
                    stack.append([{} if kind is mapping_start else [], path, None, None])
                    continue
            frame = stack[-1]
            container = frame[0]
            if type(container) is dict:
                container[path[-1]] = value
            else:
                container.append(value)
        if type(get_event()) is not yaml.DocumentEndEvent:
            raise _GiveUp
        if type(get_event()) is not yaml.StreamEndEvent:
            raise _GiveUp
        doc.data = root
        return doc
    except _GiveUp:
        return None
    finally:
        loader.dispose()


# Text the two parsers read differently always takes the pure path: characters the
# pure-Python reader refuses (libyaml accepts a few of them); tabs, which libyaml accepts
# in places the pure-Python parser refuses them (`a\tb: 1`); a byte-order mark after the
# start, which libyaml skips and the pure-Python parser keeps as text; and the line
# breaks other than CR and LF.
_PURE_ONLY = re.compile(yaml.reader.Reader.NON_PRINTABLE.pattern + "|[\t\ufeff\x85\u2028\u2029]")


def _parse_with(
    loader_class: Any, text: str, file: str, environ: Mapping[str, str], issues: Issues
) -> Doc | None:
    doc = Doc(file=file, data={})
    loader: Any = None
    try:
        try:
            loader = loader_class(text)
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            raise FileProblem(
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
            raise FileProblem(f"YAML error: {exc}", "check the file's syntax") from None
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
            raise FileProblem(
                "the file is empty",
                "a configuration starts with `version: 1`; see docs/configuration.md",
            )
        if not isinstance(root, yaml.MappingNode):
            raise FileProblem(
                f"the top level must be a mapping of settings (version, stack, ...), not "
                f"{'a list' if isinstance(root, yaml.SequenceNode) else 'a single value'}",
                "start the file with `version: 1` followed by the other settings",
                mark=root.start_mark,
            )
        builder = _Builder(loader, doc, environ, issues)
        data = builder.build(root, (), 0, False)
        doc.data = data if isinstance(data, dict) else {}
    except FileProblem as problem:
        issues.add(file, problem.line, problem.column, problem.message, problem.hint)
        return None
    finally:
        if loader is not None:
            loader.dispose()
    return doc
