"""Loading, checking and evaluating the Rego policies; see the package's docstring."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voltage_iac.errors import ConfigError, ConfigIssue, UsageError, VoltageIacError
from voltage_iac.model import DesiredState
from voltage_iac.plan import VERDICT_TYPES, Plan, PolicyResult, Verdict

#: conftest's rule names: `deny`, `warn`, `violation`, optionally with a `_suffix`.
RULE_NAME = re.compile(r"^(deny|violation|warn)(_[A-Za-z0-9_]+)?$")

#: Names a reference may start with without being bound in the policies: the documents
#: and the namespaces of OPA's built-in functions.
KNOWN_HEADS = frozenset(
    {
        "input",
        "data",
        "future",
        "rego",
        "array",
        "base64",
        "base64url",
        "bits",
        "crypto",
        "glob",
        "graph",
        "graphql",
        "hex",
        "http",
        "io",
        "json",
        "jwt",
        "net",
        "numbers",
        "object",
        "opa",
        "providers",
        "rand",
        "regex",
        "semver",
        "strings",
        "time",
        "units",
        "urlquery",
        "uuid",
        "yaml",
    }
)

MAX_POLICY_BYTES = 1_000_000


@dataclass(frozen=True)
class PolicyModule:
    """One .rego file: its name as shown (file:line refers to it) and its source."""

    path: str
    source: str
    package: str
    rules: tuple[str, ...] = ()  # the verdict rules it defines at the top level


@dataclass(frozen=True)
class PolicyRun:
    """Everything one evaluation needs: the modules, the package to read, `data`, the
    time limit, and the overrides a reviewed plan records."""

    modules: tuple[PolicyModule, ...]
    namespace: str = "main"
    data: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = 10.0
    overrides: tuple[str, ...] = ()
    memory_bytes: int = 1 << 30  # the evaluation is stopped above this resident size

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(m.path for m in self.modules)

    def rule_file(self, rule: str) -> str:
        """The file defining `rule`; empty when several do (told apart by evaluation)."""
        files = [m.path for m in self.modules if m.package == self.namespace and rule in m.rules]
        return files[0] if len(files) == 1 else ""


# -- loading -------------------------------------------------------------------------------


def policy_run(
    desired: DesiredState,
    extra_paths: Sequence[str | os.PathLike[str]] = (),
    overrides: Sequence[str] = (),
) -> PolicyRun | None:
    """The policies of a run: `policies:` of the configuration, then `--policy` paths
    (relative to the working directory). None when there are none."""
    settings = desired.policies
    paths = _unique([*settings.paths, *(os.fspath(p) for p in extra_paths)])
    if not paths:
        if overrides:
            raise UsageError(
                "--override-policy names a policy verdict, but there are no policies",
                hint="add `policies:` to the configuration or pass --policy PATH",
            )
        return None
    return load_policies(
        paths,
        namespace=settings.namespace,
        data=settings.data,
        timeout=settings.timeout,
        overrides=overrides,
    )


def including(desired: DesiredState, extra_paths: Sequence[str | os.PathLike[str]]) -> DesiredState:
    """`desired` with the `--policy` paths of a run added to its policies, so that a
    plan file records every policy the plan was judged by (an apply from the file
    evaluates them again)."""
    if not extra_paths:
        return desired
    settings = desired.policies
    paths = _unique([*settings.paths, *(os.path.abspath(os.fspath(p)) for p in extra_paths)])
    return dataclasses.replace(desired, policies=dataclasses.replace(settings, paths=tuple(paths)))


def _unique(paths: Sequence[str]) -> list[str]:
    """The paths without repeats (the same file named twice is read once)."""
    seen: set[str] = set()
    out = []
    for path in paths:
        if os.path.abspath(path) not in seen:
            seen.add(os.path.abspath(path))
            out.append(path)
    return out


def load_policies(
    paths: Sequence[str | os.PathLike[str]],
    *,
    namespace: str = "main",
    data: Sequence[str | os.PathLike[str]] = (),
    timeout: float = 10.0,
    overrides: Sequence[str] = (),
) -> PolicyRun:
    """Read and check the policy files (files, or directories searched recursively for
    `*.rego`, test files `*_test.rego` left out) and the data files."""
    issues: list[ConfigIssue] = []
    modules: list[PolicyModule] = []
    seen: set[str] = set()
    for path in _policy_files(paths, issues):
        shown = _shown(path)
        if shown in seen:
            continue
        seen.add(shown)
        module = _read_module(path, shown, issues)
        if module is not None:
            modules.append(module)
    if not issues and not any(m.package == namespace for m in modules):
        found = sorted({m.package for m in modules})
        issues.append(
            ConfigIssue(
                ", ".join(m.path for m in modules) or "policies",
                None,
                None,
                f"no policy file declares `package {namespace}`, whose deny, warn and "
                "violation rules are read",
                f"the files declare: {', '.join(found) or 'no package'}; write `package "
                f"{namespace}` or set `policies: {{namespace: ...}}`",
            )
        )
    if not issues:
        issues.extend(unbound_references(modules))
    merged_data = _read_data(data, issues)
    if issues:
        raise ConfigError(issues)
    return PolicyRun(
        tuple(modules), namespace, merged_data, timeout, tuple(dict.fromkeys(overrides))
    )


def _shown(path: Path) -> str:
    """A policy file as messages and the plan name it: relative to the working directory
    when inside it (so the plan is the same on every machine of a checkout)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _policy_files(paths: Sequence[str | os.PathLike[str]], issues: list[ConfigIssue]) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*.rego")
                if p.is_file()
                and not p.name.endswith("_test.rego")
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                issues.append(
                    ConfigIssue(str(path), None, None, "the directory holds no .rego files")
                )
            files.extend(found)
        elif path.is_file():
            if path.suffix != ".rego":
                issues.append(
                    ConfigIssue(
                        str(path),
                        None,
                        None,
                        "a policy must be a .rego file",
                        "give .rego files or a directory of them; JSON or YAML read as "
                        "`data` goes in `policies.data` of the configuration",
                    )
                )
            else:
                files.append(path)
        else:
            issues.append(
                ConfigIssue(
                    str(path),
                    None,
                    None,
                    "no such policy file or directory",
                    "--policy paths are relative to the working directory, `policies:` "
                    "paths to the configuration file; a plan file's are relative to the "
                    "directory `plan` ran in: apply it from there",
                )
            )
    return files


_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([A-Za-z_][\w.]*)", re.MULTILINE)


def _read_module(path: Path, shown: str, issues: list[ConfigIssue]) -> PolicyModule | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        issues.append(ConfigIssue(shown, None, None, f"cannot read: {exc.strerror or exc}"))
        return None
    if len(raw) > MAX_POLICY_BYTES:
        issues.append(ConfigIssue(shown, None, None, f"larger than {MAX_POLICY_BYTES} bytes"))
        return None
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        issues.append(ConfigIssue(shown, line, None, "not UTF-8 text"))
        return None
    plain = strip_literals(source)
    match = _PACKAGE.search(plain)
    if match is None:
        issues.append(
            ConfigIssue(
                shown, 1, 1, "no `package` declaration", "start the file with `package main`"
            )
        )
        return None
    rules = tuple(
        dict.fromkeys(
            m.group(1)
            for m in re.finditer(r"^([A-Za-z_]\w*)", plain, re.MULTILINE)
            if RULE_NAME.match(m.group(1))
        )
    )
    return PolicyModule(shown, source, match.group(1), rules)


def _read_data(
    paths: Sequence[str | os.PathLike[str]], issues: list[ConfigIssue]
) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for item in paths:
        shown = os.fspath(item)
        try:
            text = Path(item).read_text(encoding="utf-8")
            value = json.loads(text) if shown.endswith(".json") else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            issues.append(ConfigIssue(shown, None, None, f"cannot read policy data: {exc}"))
            continue
        if not isinstance(value, dict):
            issues.append(ConfigIssue(shown, None, None, "policy data must be a mapping"))
            continue
        for key, part in value.items():
            if key in merged and merged[key] != part:
                issues.append(
                    ConfigIssue(shown, None, None, f"data key {key!r} is set by another file too")
                )
            merged[str(key)] = part
    try:
        json.dumps(merged)
    except (TypeError, ValueError) as exc:
        issues.append(ConfigIssue("policy data", None, None, f"not JSON data: {exc}"))
    return merged


# -- the reference check -------------------------------------------------------------------


def strip_literals(source: str) -> str:
    """The source with comments and string contents blanked (offsets and lines kept)."""
    out = list(source)
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "#":
            while i < n and source[i] != "\n":
                out[i] = " "
                i += 1
        elif char == '"':
            i += 1
            while i < n and source[i] not in '"\n':
                if source[i] == "\\" and i + 1 < n:
                    out[i] = " "
                    i += 1
                out[i] = " "
                i += 1
            i += 1
        elif char == "`":
            i += 1
            while i < n and source[i] != "`":
                if source[i] != "\n":
                    out[i] = " "
                i += 1
            i += 1
        else:
            i += 1
    return "".join(out)


_IDENT = re.compile(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)")
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w.\[\]\"]+)(?:[ \t]+as[ \t]+(\w+))?", re.MULTILINE)


def unbound_references(modules: Sequence[PolicyModule]) -> list[ConfigIssue]:
    """References whose head is a name bound nowhere in the policies (`chnage.key` for
    `change.key`). OPA refuses them when compiling (an unsafe variable); this check
    gives the same verdict here, where the engine would read them as undefined."""
    plain: dict[str, str] = {}
    bound: set[str] = set()
    for module in modules:
        text = strip_literals(module.source)

        def blank_import(match: re.Match[str]) -> str:
            target, alias = match.group(1), match.group(2)
            bound.add(alias or target.split(".")[-1])
            return " " * len(match.group(0))

        text = _IMPORT.sub(blank_import, text)
        text = _PACKAGE.sub(lambda m: " " * len(m.group(0)), text)
        plain[module.path] = text
        for match in _IDENT.finditer(text):
            start = match.start()
            rest = text[match.end() :].lstrip(" \t")
            at_line_start = start == 0 or text[start - 1] == "\n"
            if at_line_start or not rest[:1] or rest[0] not in ".[":
                bound.add(match.group(1))
    issues = []
    for path, text in plain.items():
        for match in _IDENT.finditer(text):
            name = match.group(1)
            if name in bound or name in KNOWN_HEADS:
                continue
            line = text.count("\n", 0, match.start()) + 1
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            issues.append(
                ConfigIssue(
                    path,
                    line,
                    column,
                    f"`{name}` is not defined: no rule, import or variable of the policies "
                    "binds it",
                    f"fix the spelling, or bind it first (e.g. `some {name} in ...`)",
                )
            )
    return issues


# -- evaluating ----------------------------------------------------------------------------


def evaluate(run: PolicyRun, document: Mapping[str, Any]) -> tuple[Verdict, ...]:
    """The verdicts of the policies on `document` (its `input`), in a stable order."""
    request = {
        "modules": [[m.path, m.source] for m in run.modules],
        "data": dict(run.data),
        "input": document,
        "query": f"x = data.{run.namespace}",
        "groups": _groups(run),
    }
    done = _run_worker(run, json.dumps(request).encode("utf-8"))
    returncode, stdout = done
    try:
        answer = json.loads(stdout.decode("utf-8"))
    except ValueError:
        answer = None
    if returncode != 0 or not isinstance(answer, dict):
        raise VoltageIacError(
            f"the policy engine failed (exit status {returncode})",
            hint="is regopy installed? (pip install regopy)",
        )
    if answer.get("errors"):
        raise ConfigError([_located(run, e) for e in answer["errors"]])
    if "unreadable" in answer:
        raise ConfigError(
            [
                ConfigIssue(
                    ", ".join(run.files),
                    None,
                    None,
                    "the policy engine gave a result it cannot read back: "
                    f"{answer['unreadable']}...",
                    "the embedded engine renders some sprintf arguments wrongly (a string "
                    "made by another built-in such as format_int, next to others): build "
                    "the message with concat instead (see docs/policy.md)",
                )
            ]
        )
    if "failure" in answer:
        raise ConfigError([_failure(run, str(answer["failure"]))])
    groups = answer.get("groups") if isinstance(answer.get("groups"), dict) else {}
    return _verdicts(run, answer.get("result"), groups)


def _run_worker(run: PolicyRun, request: bytes) -> tuple[int, bytes]:
    """The worker's exit status and answer; stopped when it takes longer than the time
    limit or grows beyond the memory limit (both a ConfigError: the policy is at fault)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "voltage_iac.policy.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + run.timeout
    problem = hint = ""
    pending: bytes | None = request  # sent once; a retried communicate keeps sending it
    try:
        while True:
            try:
                stdout, _ = process.communicate(pending, timeout=_POLL_SECONDS)
                return process.returncode, stdout
            except subprocess.TimeoutExpired:
                pending = None
            if time.monotonic() >= deadline:
                problem = (
                    f"the policies took longer than {run.timeout:g}s to evaluate and were "
                    "stopped (a rule that loops, or searches a very large space?)"
                )
                hint = "simplify the rule, or raise `policies: {timeout: SECONDS}`"
            elif _resident_bytes(process.pid) > run.memory_bytes:
                problem = (
                    f"the policies used more than {run.memory_bytes >> 20} MiB of memory to "
                    "evaluate and were stopped (a rule that builds a very large collection?)"
                )
                hint = "simplify the rule: iterate over the input, not over large ranges"
            if problem:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    raise ConfigError(
        [
            ConfigIssue(
                ", ".join(run.files),
                None,
                None,
                problem,
                hint,
            )
        ]
    )


_POLL_SECONDS = 0.05


def _resident_bytes(pid: int) -> int:
    """The resident memory of a process (0 where /proc does not tell)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _groups(run: PolicyRun) -> list[list[Any]]:
    """When several files of the namespace define the same verdict rule: each such file
    with every file that defines none (its helpers), evaluated alone to tell which file
    a message comes from."""
    owners: dict[str, list[int]] = {}
    for index, module in enumerate(run.modules):
        if module.package == run.namespace:
            for rule in module.rules:
                owners.setdefault(rule, []).append(index)
    if all(len(files) == 1 for files in owners.values()):
        return []
    helpers = [i for i, m in enumerate(run.modules) if m.package != run.namespace or not m.rules]
    return [
        [module.path, [index, *helpers]]
        for index, module in enumerate(run.modules)
        if module.package == run.namespace and module.rules
    ]


def judge(plan: Plan, run: PolicyRun | None) -> Plan:
    """The plan with the policies' verdicts on its JSON document attached."""
    if run is None:
        return plan
    verdicts = evaluate(run, plan.to_dict())
    result = PolicyResult(run.namespace, run.files, verdicts, run.overrides)
    return dataclasses.replace(plan, policy=result)


def judge_document(run: PolicyRun, document: Mapping[str, Any]) -> PolicyResult:
    """The policies' verdicts on any document (e.g. the drift report's JSON)."""
    return PolicyResult(run.namespace, run.files, evaluate(run, document), run.overrides)


def _located(run: PolicyRun, error: Mapping[str, Any]) -> ConfigIssue:
    message = str(error.get("message") or "invalid Rego")
    name = str(error.get("file") or "")
    module = next((m for m in run.modules if m.path == name), None)
    offset = error.get("offset")
    if module is None or not isinstance(offset, int):
        return _failure(run, f"(errormsg {len(message)}:{message})")
    before = module.source.encode("utf-8")[:offset].decode("utf-8", errors="ignore")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return ConfigIssue(module.path, line, column, message, "see docs/policy.md for the syntax")


def _failure(run: PolicyRun, text: str) -> ConfigIssue:
    """An evaluation error (rego-cpp reports no place for these): the message, placed at
    the first use of the name it is about when there is one."""
    messages = re.findall(r"\(errormsg \d+:([^\n]*)\)", text)
    message = messages[0] if messages else text.strip()[:500]
    missing = re.match(r"Function not found: ([\w.]+)", message)
    if missing:
        name = missing.group(1)
        pattern = re.compile(r"(?<![\w.])" + re.escape(name) + r"\s*\(")
        for module in run.modules:
            plain = strip_literals(module.source)
            found = pattern.search(plain)
            if found:
                line = plain.count("\n", 0, found.start()) + 1
                column = found.start() - (plain.rfind("\n", 0, found.start()) + 1) + 1
                return ConfigIssue(
                    module.path,
                    line,
                    column,
                    f"`{name}` is not defined (no such built-in or function)",
                    "fix the spelling; the built-ins are OPA's",
                )
    return ConfigIssue(
        ", ".join(run.files), None, None, f"the policies could not be evaluated: {message}"
    )


def _verdicts(
    run: PolicyRun, package: Any, groups: Mapping[str, Any] | None = None
) -> tuple[Verdict, ...]:
    if not isinstance(package, dict):
        return ()
    groups = groups or {}
    out: list[Verdict] = []
    problems: list[ConfigIssue] = []
    for rule, value in sorted(package.items()):
        match = RULE_NAME.match(rule)
        if match is None:
            continue
        kind = match.group(1)
        where = run.rule_file(rule)
        if value is True:
            items: list[Any] = [rule]
        elif value is False or value is None:
            items = []
        elif isinstance(value, str) or (isinstance(value, dict) and "msg" in value):
            items = [value]
        elif isinstance(value, list):
            items = value
        else:
            problems.append(_bad_message(where or ", ".join(run.files), rule, value))
            continue
        for item in items:
            source = next(
                (
                    label
                    for label, result in groups.items()
                    if isinstance(result, dict) and _gives(result.get(rule), item, rule)
                ),
                where,
            )
            verdict = _verdict(kind, rule, item, source)
            if verdict is None:
                problems.append(_bad_message(where or ", ".join(run.files), rule, item))
            else:
                out.append(verdict)
    if problems:
        raise ConfigError(problems)
    order = {name: i for i, name in enumerate(VERDICT_TYPES)}
    unique = {(v.type, v.rule, v.message, v.kind, v.key): v for v in out}
    return tuple(
        sorted(
            unique.values(),
            key=lambda v: (order[v.type], v.file, v.rule, v.message, v.kind or "", v.key or ""),
        )
    )


def _gives(value: Any, item: Any, rule: str) -> bool:
    """A group's value of `rule` holds the message `item` (a boolean rule's is its name)."""
    if isinstance(value, list):
        return item in value
    return bool(value == item or (value is True and item == rule))


def _verdict(kind: str, rule: str, item: Any, where: str) -> Verdict | None:
    meta: Mapping[str, Any] = {}
    if isinstance(item, str):
        message = item
    elif isinstance(item, dict) and isinstance(item.get("msg"), str):
        message, meta = item["msg"], item
    else:
        return None
    about_kind = meta.get("kind") if isinstance(meta.get("kind"), str) else None
    about_key = meta.get("key") if isinstance(meta.get("key"), str) else None
    given = meta.get("id")
    if isinstance(given, str) and given:
        vid = given
    else:
        digest = hashlib.sha256(
            "\0".join([kind, rule, message, about_kind or "", about_key or ""]).encode()
        ).hexdigest()
        vid = f"{rule}-{digest[:8]}"
    return Verdict(kind, rule, message, vid, where, about_kind, about_key)


def _bad_message(where: str, rule: str, value: Any) -> ConfigIssue:
    shown = json.dumps(value)[:200]
    return ConfigIssue(
        where,
        None,
        None,
        f"rule `{rule}` gave {shown}: each message must be a string or an object with `msg`",
        f"write `{rule} contains msg if {{ ... }}` with msg a string, or "
        '{"msg": ..., "key": ..., "kind": ...}',
    )


# -- text ------------------------------------------------------------------------------------


def render_verdicts(result: PolicyResult) -> str:
    """The verdicts as text lines (for the drift command's standard error)."""
    counts = result.counts()
    lines = [
        f"Policy ({result.namespace}, {len(result.files)} file(s)): "
        f"{counts['deny']} deny, {counts['warn']} warn"
    ]
    for verdict in result.verdicts:
        about = f"{verdict.kind or 'resource'} {verdict.key}: " if verdict.key else ""
        lines.append(f"  {verdict.type.upper()} {about}{verdict.message} [{verdict.id}]")
    return "\n".join(lines) + "\n"
