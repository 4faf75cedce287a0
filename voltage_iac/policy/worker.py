"""The Rego evaluation, run in a child process: `python -m voltage_iac.policy.worker`.

Reads one JSON request on standard input (`modules`: [[name, source], ...], `data`,
`input`, `query`, and optionally `groups`), answers one JSON object on the original
standard output: `{"result": ...}` (the query's value; absent when undefined; with
`groups`, also each group's own result), or `{"errors": [...]}`
(compile errors: `file`, `offset` in bytes, `message`), or `{"failure": text}`.

A child process, because the engine (rego-cpp, through regopy) has no time limit of
its own: the parent kills the child when the evaluation takes too long. The engine
writes its own diagnostics to the standard streams; they are sent to /dev/null, so the
answer channel carries the answer only.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def parse_error_sequence(text: str) -> list[dict[str, Any]]:
    """The errors of rego-cpp's error node text: `(error N:<file>|<offset>|<length>
    (errormsg N:<message>) ...)`, where each `N:` is the byte length of what follows."""
    raw = text.encode("utf-8", errors="replace")
    out: list[dict[str, Any]] = []
    position = 0
    while True:
        start = raw.find(b"(error", position)
        if start < 0:
            return out
        cursor = start + len(b"(error")
        if raw[cursor : cursor + 1] not in (b" ", b"\n"):
            position = cursor  # e.g. `(errormsg`, `(errorseq`
            continue
        while raw[cursor : cursor + 1] in (b" ", b"\n"):
            cursor += 1
        entry: dict[str, Any] = {"file": "", "offset": None, "message": ""}
        length, cursor = _length(raw, cursor)
        if length is not None:
            location = raw[cursor : cursor + length].decode("utf-8", errors="replace")
            cursor += length
            rest = raw[cursor : cursor + 40].decode("utf-8", errors="replace")
            entry["file"] = location
            parts = rest.split("|")
            if len(parts) >= 2 and parts[1].isdigit():
                entry["offset"] = int(parts[1])
        msg_at = raw.find(b"(errormsg ", cursor if length is not None else start)
        if msg_at >= 0:
            length, at = _length(raw, msg_at + len(b"(errormsg "))
            if length is not None:
                entry["message"] = raw[at : at + length].decode("utf-8", errors="replace")
                cursor = max(cursor, at + length)
        out.append(entry)
        position = max(cursor, start + 1)


def _length(raw: bytes, cursor: int) -> tuple[int | None, int]:
    digits = b""
    while cursor < len(raw) and raw[cursor : cursor + 1].isdigit():
        digits += raw[cursor : cursor + 1]
        cursor += 1
    if not digits or raw[cursor : cursor + 1] != b":":
        return None, cursor
    return int(digits), cursor + 1


def evaluate(request: dict[str, Any]) -> dict[str, Any]:
    import regopy
    from regopy import rego_shared

    interpreter = regopy.Interpreter()
    try:
        for name, source in request["modules"]:
            interpreter.add_module(name, source)
        if request.get("data"):
            interpreter.add_data(request["data"])
        interpreter.set_input(request["input"])
        handle = rego_shared.rego_query(interpreter._impl, request["query"])
    except regopy.RegoError as exc:
        errors = parse_error_sequence(str(exc))
        return {"errors": errors} if errors else {"failure": str(exc)}
    try:
        ok = rego_shared.rego_output_ok(handle)
        text = rego_shared.rego_output_string(handle)
    finally:
        rego_shared.rego_free_output(handle)
    if not ok:
        errors = parse_error_sequence(text)
        return {"errors": errors} if errors else {"failure": text.strip() or "evaluation failed"}
    if text.strip() == "undefined":
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        errors = parse_error_sequence(text)
        if errors:
            return {"errors": errors}
        return {"unreadable": text.strip()[:300]}
    results = value if isinstance(value, list) else [value]
    if not results:
        return {}
    bindings = results[0].get("bindings") if isinstance(results[0], dict) else None
    if not isinstance(bindings, dict) or "x" not in bindings:
        return {}
    return {"result": bindings["x"]}


def attribute(request: dict[str, Any]) -> dict[str, Any]:
    """Each group's own result (`groups`: [[label, [module index, ...]], ...]), for
    telling which file a verdict comes from when several files define the same rule.
    A group that does not evaluate on its own is left out."""
    out: dict[str, Any] = {}
    modules = request["modules"]
    for label, indices in request.get("groups") or []:
        part = {**request, "modules": [modules[i] for i in indices]}
        answer = evaluate(part)
        if "result" in answer:
            out[label] = answer["result"]
    return out


def main() -> int:
    answer_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    try:
        answer = evaluate(request)
        if "result" in answer and request.get("groups"):
            answer["groups"] = attribute(request)
    except Exception as exc:  # reported by the parent as a policy failure
        answer = {"failure": f"{type(exc).__name__}: {exc}"}
    with os.fdopen(answer_fd, "w", encoding="utf-8") as out:
        json.dump(answer, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
