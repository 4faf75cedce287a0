"""Step 2 of loading: the structure of each parsed file against the JSON Schema.

Flow: `loader.py` gives a `Doc` per file -> `schema_issues` checks it against the
schema shipped in the package (`schemas/config.v1.json`) -> each error becomes a
located issue in the user's terms (`_schema_issue`, the humaniser). Next: `merge.py`.

Two engines give the verdict. A compiled validator (fastjsonschema) answers first, in
microseconds per wallet; only when it finds a problem (or the file holds a value on
which it could disagree with the project's rules: an integral float, text with a line
break) does jsonschema run, with `$` in patterns meaning the end of the text and no
float counting as a whole number, to produce the messages. The two agree on every
document (tests/test_config_paths.py).

The shipped schema accepts `${VAR}` wherever the loader interpolates (so that editors
accept `organization_id: ${VOLTAGE_ORGANIZATION_ID}`); the loader checks values after
interpolation, so it validates against `loader_schema()`, the shipped schema with those
alternatives removed.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import json
import re
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from voltage_iac.config.checks import registry
from voltage_iac.config.document import Doc, Issues, Path_, is_integer, is_number

SCHEMA_PATH = resources.files("voltage_iac") / "schemas" / "config.v1.json"

_INTERPOLATED_REF = "#/$defs/interpolated"
_KEY_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_KEY_HINT = (
    "use 1-64 characters: lowercase letters, digits, '-', '_' or '.', "
    "starting with a letter or digit (e.g. payouts-eu)"
)
# Enum values a did-you-mean hint never offers: a typo must not lead to real money.
_NEVER_SUGGESTED = frozenset({"mainnet"})


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of configuration version 1, as shipped."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _without_interpolation(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_interpolation(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _without_interpolation(value) for key, value in node.items()}
    options = out.get("anyOf")
    if isinstance(options, list) and {"$ref": _INTERPOLATED_REF} in options:
        rest = [o for o in options if o != {"$ref": _INTERPOLATED_REF}]
        del out["anyOf"]
        if len(rest) == 1:
            out.update(rest[0])
        else:
            out["anyOf"] = rest
    return out


@lru_cache(maxsize=1)
def loader_schema() -> dict[str, Any]:
    """The shipped schema for values after interpolation: without the `${VAR}` options."""
    schema: dict[str, Any] = _without_interpolation(load_schema())
    schema.get("$defs", {}).pop("interpolated", None)
    return schema


# -- the reference engine: jsonschema with the project's rules


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
        import jsonschema

        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=1)
def _validator() -> Any:
    # Imported here: the fast engine decides most documents; jsonschema costs ~40 ms.
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine("integer", lambda _c, v: is_integer(v)).redefine(
        "number", lambda _c, v: is_number(v)
    )
    cls = jsonschema.validators.extend(
        base, validators={"pattern": _anchored_pattern}, type_checker=checker
    )
    return cls(loader_schema())


def reference_is_valid(data: Any) -> bool:
    """The verdict of jsonschema under the project's rules (the one that words errors)."""
    return bool(_validator().is_valid(data))


# -- the fast engine: a compiled validator


def _end_anchored(node: Any) -> Any:
    """Patterns ending in `$` rewritten to end in `\\Z`: Python's `$` also matches before a
    final newline, JSON Schema's does not."""
    if isinstance(node, list):
        return [_end_anchored(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _end_anchored(value) for key, value in node.items()}
    pattern = out.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
        out["pattern"] = pattern[:-1] + "\\Z"
    return out


@lru_cache(maxsize=1)
def _fast() -> Any:
    try:
        import fastjsonschema
    except ImportError:  # pragma: no cover - a dependency; the reference engine still works
        return None
    schema = _end_anchored(copy.deepcopy(loader_schema()))
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"  # the draft it compiles
    validate = fastjsonschema.compile(schema)
    error = fastjsonschema.JsonSchemaException

    def is_valid(data: Any) -> bool:
        try:
            validate(data)
        except error:
            return False
        return True

    return is_valid


def has_ambiguous_values(data: Any) -> bool:
    """True when `data` holds an integral float (1.0: an integer to JSON Schema, not to
    voltage-iac) or text with a line break (where pattern engines differ on `$`)."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
            stack.extend(value.keys())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, float):
            if value.is_integer():
                return True
        elif isinstance(value, str) and "\n" in value:
            return True
    return False


def fast_is_valid(data: Any) -> bool | None:
    """The compiled validator's verdict, or None when it cannot be trusted for `data`."""
    check = _fast()
    if check is None or has_ambiguous_values(data):
        return None
    return bool(check(data))


# -- schema errors -> issues


def schema_issues(doc: Doc, issues: Issues, *, fast: bool = True) -> None:
    """Report every structural problem of one file (nothing when it is valid)."""
    if fast and not doc.ambiguous:
        check = _fast()
        if check is not None and check(doc.data):
            return
    for error in _validator().iter_errors(doc.data):
        path: Path_ = tuple(error.absolute_path)
        if doc.is_broken(path):
            continue
        owner = registry.section(path[0]) if len(path) >= 2 and isinstance(path[0], str) else None
        if owner is not None and owner.explains and owner.explains(path[2:], error.validator):
            continue  # the section's checker says it better
        _schema_issue(doc, issues, error, path)


_EXPECTED = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "empty",
}


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


def suggest_key(text: str) -> str | None:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._")[:64]
    if slug and _KEY_RE.fullmatch(slug) and slug != text:
        return slug
    return None


def _key_label(parent: Path_) -> str:
    owner = registry.section(parent[0]) if len(parent) == 1 and isinstance(parent[0], str) else None
    return owner.key_label if owner is not None else "name"


def range_hint(path: Path_) -> str | None:
    """The hint for an out-of-range value, by the name of its field."""
    last = path[-1] if path else ""
    owner = registry.section(path[0]) if path and isinstance(path[0], str) else None
    if owner is not None and isinstance(last, str) and last in owner.range_hints:
        return owner.range_hints[last]
    return registry.RANGE_HINTS.get(last) if isinstance(last, str) else None


def _required_hint(path: Path_, name: str) -> str:
    if not path and name == "version":
        return "add `version: 1` at the top of the file"
    owner = registry.section(path[0]) if path and isinstance(path[0], str) else None
    if owner is not None and name in owner.required_hints:
        return owner.required_hints[name]
    return registry.REQUIRED_HINTS.get(name, f"add `{name}`")


def _enum_hint(value: Any, options: list[str]) -> str:
    hint = "use one of: " + ", ".join(options)
    if not isinstance(value, str):
        return hint
    written = value.lower()
    if any(difflib.get_close_matches(written, [o], n=1, cutoff=0.6) for o in _NEVER_SUGGESTED):
        return hint  # close to a value never suggested: list the names, suggest none
    offered = [o for o in options if o not in _NEVER_SUGGESTED]
    close = difflib.get_close_matches(written, offered, n=1, cutoff=0.5)
    if close:
        return f"did you mean `{close[0]}`? " + hint
    return hint


def _schema_issue(doc: Doc, issues: Issues, error: Any, path: Path_) -> None:
    validator = error.validator
    value = error.instance
    schema = error.schema
    in_names = "propertyNames" in error.relative_schema_path
    if in_names:
        key_path = (*path, value)
        if validator == "pattern":
            label = "stack name" if path == ("stack",) else _key_label(path)
            suggestion = suggest_key(value)
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
            hint = _required_hint(path, name)
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
        if not is_integer(value):
            return  # already reported as "must be a whole number"
        issues.at(
            doc,
            path,
            f"unsupported version {shown}: this release of voltage-iac reads version 1",
            "set `version: 1`",
        )
    elif validator == "enum":
        options = [o for o in error.validator_value if o != "testnet"]
        issues.at(
            doc, path, f"{shown} is not one of: {', '.join(options)}", _enum_hint(value, options)
        )
    elif validator == "pattern":
        hint = schema.get("x-hint")
        if schema.get("pattern", "").startswith("^[0-9a-fA-F]{8}"):
            issues.at(doc, path, f"{shown} is not a UUID", hint)
        elif path == ("stack",):
            suggestion = suggest_key(value)
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
    elif validator == "minItems":
        count = error.validator_value
        issues.at(
            doc,
            path,
            f"is empty; at least {count} item{'' if count == 1 else 's'} needed",
            range_hint(path) or f"give at least {count}",
        )
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
            doc, path, f"{shown} is out of range: must be {relation} {bound}", range_hint(path)
        )
    else:
        issues.at(doc, path, error.message)


@cache
def entry_fields(section: str) -> frozenset[str]:
    """The fields the schema knows for one entry of a section (empty if it has none)."""
    schema = load_schema()
    node: Any = schema.get("properties", {}).get(section, {}).get("additionalProperties", {})
    while isinstance(node, dict) and "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return frozenset(node.get("properties", {})) if isinstance(node, dict) else frozenset()
