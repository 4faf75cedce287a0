"""Configuration loading: YAML files in, a validated `DesiredState` out.

The first step of the flow (YAML -> DesiredState -> diff -> plan -> apply). The CLI calls
`load_config`; nothing else here does I/O. Every step reports every problem it finds
(not just the first) as a located `ConfigIssue`, all raised together as one
`ConfigError` (exit code 3):

1. `loader.py`: read each file (size bounded, UTF-8 only, no NUL bytes) and parse it with
   a bounded loader (depth, aliases and node count capped; duplicate keys are errors; the
   position of every key and value recorded; `${VAR}` interpolated in text values).
   libyaml's C parser runs first; any problem is worded by the pure-Python parser.
2. `schema.py`: check each file's structure against the shipped JSON Schema
   (`schemas/config.v1.json`), each error mapped back to its file, line and column. A
   compiled validator answers first; jsonschema words the errors.
3. `merge.py`: merge the files of a directory (duplicates across files are errors).
4. `build.py` with `checks/`: check the meaning, section by section (a registry:
   `checks/registry.py`), against what the backend declares it supports
   (`providers/registry.py`).
5. `build.py`: the frozen `DesiredState`, with a digest that changes exactly when the
   meaning of the configuration changes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voltage_iac.config.build import check, state_digest
from voltage_iac.config.document import MAX_ISSUES, Doc, FileProblem, Issues
from voltage_iac.config.loader import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
    config_files,
    decode,
    parse_text,
    read_bytes,
    too_big,
)
from voltage_iac.config.schema import SCHEMA_PATH, load_schema, schema_issues
from voltage_iac.errors import ConfigError, ConfigIssue
from voltage_iac.stale import is_plan_document

if TYPE_CHECKING:
    from voltage_iac.model import DesiredState
    from voltage_iac.stale import ReviewedPlan

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
    "state_from_plan",
    "validate_document",
]


def _finish(
    docs: list[Doc],
    files: list[str],
    issues: Issues,
    environ: Mapping[str, str],
    *,
    fast: bool = True,
    schema_checked: bool = False,
) -> DesiredState:
    if not schema_checked:
        for doc in docs:
            schema_issues(doc, issues, fast=fast)
    state = check(docs, issues, environ) if docs else None
    if issues.items or state is None:
        if not issues.items:  # every gap is reported above; this is a safety net
            issues.add(files[0], None, None, "the configuration is incomplete")
        raise issues.error(files)
    return dataclasses.replace(state, digest=state_digest(state))


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    fast: bool = True,
) -> DesiredState:
    """Load, validate and merge a configuration file, or every `*.yaml`/`*.yml` file
    directly inside a directory (in name order).

    `${VAR}` is taken from `environ` (default: `os.environ`). Raises `ConfigError`
    carrying every problem found, each located by file, line and column. `fast=False`
    uses only the pure-Python parser and jsonschema (same result, slower).
    """
    env = os.environ if environ is None else environ
    sources = config_files(path)
    files = [shown for _, shown in sources]
    issues = Issues()
    docs: list[Doc] = []
    slimmed = False
    for file_path, shown in sources:
        doc = _read(file_path, shown, env, issues, fast=fast)
        if doc is None:
            continue
        schema_issues(doc, issues, fast=fast)
        if not issues.items:
            # While every file so far is valid, a file keeps only the positions a valid
            # configuration uses (where each entry is written): a large configuration
            # then never holds the position of every value of every file at once.
            _slim(doc)
            slimmed = True
        docs.append(doc)
    if not slimmed:
        return _finish(docs, files, issues, env, fast=fast, schema_checked=True)
    if not issues.items:
        state = check(docs, issues, env)
        if state is not None and not issues.items:
            return dataclasses.replace(state, digest=state_digest(state))
    del docs
    # Something is wrong: read every file again keeping every position, so that each
    # problem is located exactly (a second reading, on errors only).
    return _load_located(sources, env, fast=fast)


def _slim(doc: Doc) -> None:
    """Drop the positions below a section's entries (`wallets.KEY.name`, ...): only the
    positions of the file, its sections and their entries are read when nothing is
    wrong (each entry's `source`)."""
    doc.locs = {path: loc for path, loc in doc.locs.items() if len(path) <= 2}


def _read(
    file_path: Path, shown: str, env: Mapping[str, str], issues: Issues, *, fast: bool
) -> Doc | None:
    """One configuration file parsed, or None with its problems in `issues` (unreadable,
    not YAML, or a plan file)."""
    try:
        text = decode(read_bytes(file_path))
    except FileProblem as problem:
        issues.add(shown, problem.line, problem.column, problem.message, problem.hint)
        return None
    doc = parse_text(text, shown, env, issues, fast=fast)
    if doc is None or _is_plan_file(doc, shown, issues):
        return None
    return doc


def _is_plan_file(doc: Doc, shown: str, issues: Issues) -> bool:
    """A saved plan where a configuration belongs: one problem that says so (rather than
    every field of the plan as an unknown setting)."""
    if not is_plan_document(doc.data):
        return False
    issues.add(
        shown,
        1,
        1,
        "this is a plan file (from `plan --out`), not a configuration",
        f"print it with `voltage-iac show {shown}`; apply it on its own with "
        f"`voltage-iac apply {shown}` (it records its configuration)",
    )
    return True


def _load_located(
    sources: list[tuple[Path, str]], env: Mapping[str, str], *, fast: bool
) -> DesiredState:
    """`load_config` keeping the position of every value of every file."""
    issues = Issues()
    docs: list[Doc] = []
    for file_path, shown in sources:
        doc = _read(file_path, shown, env, issues, fast=fast)
        if doc is not None:
            docs.append(doc)
    return _finish(docs, [shown for _, shown in sources], issues, env, fast=fast)


def load_config_string(
    text: str,
    *,
    file: str = "<string>",
    environ: Mapping[str, str] | None = None,
    fast: bool = True,
) -> DesiredState:
    """Like `load_config`, for configuration text already in memory (one document)."""
    env = os.environ if environ is None else environ
    issues = Issues()
    size = len(text.encode("utf-8", errors="surrogatepass"))
    docs: list[Doc] = []
    if size > MAX_FILE_BYTES:
        problem = too_big(size)
        issues.add(file, None, None, problem.message, problem.hint)
    else:
        doc = parse_text(text.removeprefix("\ufeff"), file, env, issues, fast=fast)
        if doc is not None:
            docs.append(doc)
    return _finish(docs, [file], issues, env, fast=fast)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def state_from_document(
    document: Mapping[str, Any],
    *,
    file: str = "<document>",
    environ: Mapping[str, str] | None = None,
) -> DesiredState:
    """Validate an already-parsed configuration (e.g. one about to be written out) and
    build its `DesiredState`. No interpolation; issues carry no line numbers. `environ`
    (default `os.environ`) only supplies VOLTAGE_ORGANIZATION_ID when `provider` has no
    `organization_id`."""
    from voltage_iac.config.schema import has_ambiguous_values

    env = os.environ if environ is None else environ
    issues = Issues()
    data = _plain(document)
    doc = Doc(file=file, data=data, ambiguous=has_ambiguous_values(data))
    return _finish([doc], [file], issues, env)


def validate_document(
    document: Mapping[str, Any],
    *,
    file: str = "<document>",
    environ: Mapping[str, str] | None = None,
) -> list[ConfigIssue]:
    """Every problem of an already-parsed configuration; empty when it is valid."""
    try:
        state_from_document(document, file=file, environ=environ)
    except ConfigError as exc:
        return exc.issues
    return []


def state_from_plan(reviewed: ReviewedPlan) -> DesiredState:
    """The desired state a checked, self-contained plan file records, with its digest
    computed afresh: a record that does not hash to the plan's `config_digest` (an
    edit, or a file made by another version) is refused, exit 5; so is, exit 3, a file
    whose recorded paths (policies, webhook secret sinks of planned creates) do not exist
    relative to the current directory (`planfile.check_recorded_paths`)."""
    from voltage_iac.errors import StalePlanError
    from voltage_iac.planfile import check_recorded_paths, desired_from_plan

    state = desired_from_plan(reviewed)
    digest = state_digest(state)
    if digest != reviewed.config_digest:
        raise StalePlanError(
            f"the reviewed plan {reviewed.source} was changed after it was made; "
            "nothing was changed",
            [
                f"its recorded desired state has digest {digest}, but the plan was made "
                f"from {reviewed.config_digest}",
                "make a new plan (plan --out FILE) and have it reviewed again",
            ],
        )
    check_recorded_paths(reviewed, state)
    return dataclasses.replace(state, digest=digest)
