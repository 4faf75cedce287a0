"""A reviewed plan file that no longer says what was reviewed is refused, and nothing is written.

Each case takes a real plan file (`plan --out`, against the embedded emulator), edits it
the way a careless or hostile hand could, and runs `apply PATH --plan FILE --auto-approve`
and `apply FILE --auto-approve` (the self-contained form: the desired state comes from
the file) with every safety flag: the apply must exit 5 (3 for a file that is not a plan
of this version), say nothing was changed, and the emulator must hold exactly what it held.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend, config_doc, wallet
from voltage_iac.errors import EXIT_INVALID, EXIT_SAFETY
from voltage_iac.stale import checksum_of, file_checksum_of

Doc = dict[str, Any]


def _change(doc: Doc, key: str) -> Doc:
    return next(c for c in doc["changes"] if c["key"] == key)


def _edit_limit(doc: Doc) -> None:
    field = next(f for f in _change(doc, "b")["changes"] if f["field"] == "limit")
    field["after"] = field["after"] * 1000


def _edit_action(doc: Doc) -> None:
    _change(doc, "b")["action"] = "delete"


def _edit_new_id(doc: Doc) -> None:
    _change(doc, "b")["new_id"] = "00000000-0000-4000-8000-000000000001"


def _drop_change(doc: Doc) -> None:
    doc["changes"] = [c for c in doc["changes"] if c["key"] != "b"]


def _resealed(edit: Callable[[Doc], None]) -> Callable[[Doc], None]:
    """The edit, with the checksum and summary recomputed to match (a careful forger)."""

    def apply(doc: Doc) -> None:
        edit(doc)
        counts = {a: 0 for a in ("create", "update", "replace", "delete")}
        for change in doc["changes"]:
            counts[change["action"]] += 1
        doc["summary"] = counts
        doc["checksum"] = checksum_of(doc)
        doc["file_checksum"] = file_checksum_of(doc)

    return apply


def _edit_recorded_limit(doc: Doc) -> None:
    doc["desired"]["resources"]["wallet"]["b"]["limit"] *= 1000


def _drop_recorded_wallet(doc: Doc) -> None:
    del doc["desired"]["resources"]["wallet"]["a"]


def _edit_recorded_environment(doc: Doc) -> None:
    doc["desired"]["environments"]["staging"]["id"] = "11111111-1111-4111-8111-111111111111"


EDITS: dict[str, tuple[Callable[[Doc], None], int, str]] = {
    "limit": (_edit_limit, EXIT_SAFETY, "does not match its checksum"),
    "action": (_edit_action, EXIT_SAFETY, "does not match its checksum"),
    "new-id": (_edit_new_id, EXIT_SAFETY, "does not match its checksum"),
    "dropped-change": (_drop_change, EXIT_SAFETY, "does not match its checksum"),
    "stack": (lambda d: d.update(stack="other"), EXIT_SAFETY, "does not match its checksum"),
    "organization": (
        lambda d: d.update(organization_id="11111111-1111-4111-8111-111111111111"),
        EXIT_SAFETY,
        "does not match its checksum",
    ),
    "digest": (lambda d: d.update(config_digest="0" * 64), EXIT_SAFETY, "its checksum"),
    "targets": (lambda d: d.update(targets=["a"]), EXIT_SAFETY, "does not match its checksum"),
    "owned": (lambda d: d["owned"].append("wallet:x"), EXIT_SAFETY, "its checksum"),
    "summary": (
        lambda d: d["summary"].update(delete=3),
        EXIT_SAFETY,
        "does not count its changes",
    ),
    "checksum": (
        lambda d: d.update(checksum="sha256:" + "a" * 64),
        EXIT_SAFETY,
        "does not match its checksum",
    ),
    "overrides-without-force": (
        lambda d: d.update(overrides=["b: limit would grow 1000x"]),
        EXIT_SAFETY,
        "not made with --force",
    ),
    "force-not-a-flag": (lambda d: d.update(force="yes"), EXIT_SAFETY, "force record"),
    "resealed-limit": (_resealed(_edit_limit), EXIT_SAFETY, "is stale"),
    "resealed-action": (_resealed(_edit_action), EXIT_SAFETY, "is stale"),
    "resealed-stack": (
        _resealed(lambda d: d.update(stack="other")),
        EXIT_SAFETY,
        "does not belong to this run",
    ),
    "resealed-organization": (
        _resealed(lambda d: d.update(organization_id="11111111-1111-4111-8111-111111111111")),
        EXIT_SAFETY,
        "does not belong to this run",
    ),
    "resealed-digest": (
        _resealed(lambda d: d.update(config_digest="0" * 64)),
        EXIT_SAFETY,
        "the configuration changed since the plan was made",
    ),
    "format-v1": (lambda d: d.update(format_version=1), EXIT_INVALID, "reads format 2"),
    # The desired state the file records (what `apply FILE` applies from).
    "recorded-limit": (_edit_recorded_limit, EXIT_SAFETY, "does not match its file_checksum"),
    "recorded-wallet-dropped": (
        _drop_recorded_wallet,
        EXIT_SAFETY,
        "does not match its file_checksum",
    ),
    "recorded-environment": (
        _edit_recorded_environment,
        EXIT_SAFETY,
        "does not match its file_checksum",
    ),
    "recorded-backend": (
        lambda d: d.update(backend="Voltage API at https://example.com"),
        EXIT_SAFETY,
        "does not match its file_checksum",
    ),
    "recorded-state-removed": (
        lambda d: d.pop("desired"),
        EXIT_SAFETY,
        "recorded desired state or backend is missing",
    ),
    "file-checksum": (
        lambda d: d.update(file_checksum="sha256:" + "b" * 64),
        EXIT_SAFETY,
        "does not match its file_checksum",
    ),
    "resealed-recorded-limit": (
        _resealed(_edit_recorded_limit),
        EXIT_SAFETY,
        "its recorded desired state has digest",
    ),
    "resealed-recorded-wallet-dropped": (
        _resealed(_drop_recorded_wallet),
        EXIT_SAFETY,
        "its recorded desired state has digest",
    ),
    "resealed-recorded-environment": (
        _resealed(_edit_recorded_environment),
        EXIT_SAFETY,
        "its recorded desired state has digest",
    ),
}

#: Where the self-contained form (`apply FILE`, no configuration) words a refusal
#: differently: the configuration it checks against is the one the file records.
WITHOUT_CONFIG = {
    "resealed-digest": "its recorded desired state has digest",
}


@pytest.fixture
def reviewed(backend: Backend) -> tuple[Backend, Path, Doc]:
    """An applied wallet `a`, then a reviewed plan that renames it and creates `b`."""
    first = backend.write_config(config_doc({"a": wallet("Alpha")}))
    result = backend.run("apply", str(first), "--auto-approve")
    assert result.exit_code == 0, result.output
    path = backend.write_config(
        config_doc({"a": wallet("Alpha Prime"), "b": wallet("Bravo", limit="2000 sat")})
    )
    plan_file = backend.tmp / "reviewed.json"
    made = backend.run("plan", str(path), "--out", str(plan_file))
    assert made.exit_code == 0, made.output
    return backend, path, json.loads(plan_file.read_text(encoding="utf-8"))


def _world(backend: Backend) -> list[tuple[str, str, bool]]:
    return sorted((w["id"], w["name"], w["active"]) for w in backend.wallets())


@pytest.mark.parametrize("case", sorted(EDITS))
def test_an_edited_plan_file_is_refused_and_nothing_is_written(
    reviewed: tuple[Backend, Path, Doc], case: str
) -> None:
    _refused(reviewed, case, "with-config")


# The file alone takes the same path to the backend: once, with the embedded emulator.
@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
@pytest.mark.parametrize("case", sorted(EDITS))
def test_an_edited_plan_file_applied_on_its_own_is_refused_and_nothing_is_written(
    reviewed: tuple[Backend, Path, Doc], case: str
) -> None:
    _refused(reviewed, case, "self-contained")


def _refused(reviewed: tuple[Backend, Path, Doc], case: str, form: str) -> None:
    backend, path, original = reviewed
    edit, code, phrase = EDITS[case]
    doc = copy.deepcopy(original)
    edit(doc)
    assert doc != original
    edited = backend.tmp / f"edited-{case}.json"
    edited.write_text(json.dumps(doc), encoding="utf-8")
    before = _world(backend)
    given = [str(path), "--plan", str(edited)] if form == "with-config" else [str(edited)]
    if form == "self-contained":
        phrase = WITHOUT_CONFIG.get(case, phrase)
    result = backend.run(
        "apply", *given, "--auto-approve", "--allow-delete", "--allow-replace", "--force"
    )
    assert result.exit_code == code, result.output
    assert phrase in result.output, result.output
    if code == EXIT_SAFETY:
        assert "nothing was changed" in result.output
    assert _world(backend) == before


@pytest.mark.parametrize("form", ["with-config", "self-contained"])
def test_the_untouched_plan_file_applies(reviewed: tuple[Backend, Path, Doc], form: str) -> None:
    backend, path, _original = reviewed
    plan_file = backend.tmp / "reviewed.json"
    given = [str(path), "--plan", str(plan_file)] if form == "with-config" else [str(plan_file)]
    result = backend.run("apply", *given, "--auto-approve")
    assert result.exit_code == 0, result.output
    names = sorted(w["name"] for w in backend.wallets() if w["active"])
    assert "Alpha Prime" in names and "Bravo" in names


def test_a_wallet_made_since_the_review_is_named_in_one_line(
    backend: Backend, tmp_path: Path
) -> None:
    path = backend.write_config(config_doc({"a": wallet("Alpha"), "b": wallet("Bravo")}))
    plan_file = tmp_path / "reviewed.json"
    made = backend.run("plan", str(path), "--out", str(plan_file))
    assert made.exit_code == 0, made.output
    # a colleague's apply of the same configuration makes the wallets first
    assert backend.run("apply", str(path), "--auto-approve").exit_code == 0
    stale = backend.run("apply", str(path), "--plan", str(plan_file), "--auto-approve")
    assert stale.exit_code == EXIT_SAFETY, stale.output
    lines = [line for line in stale.stderr.splitlines() if line.startswith("  - a:")]
    assert len(lines) == 2, stale.stderr  # no longer needed; appeared (not one per field)
    assert "a: no longer needs to be created" in lines[0]
    assert "appeared since the plan was made" in lines[1]
    assert "field name changed" not in stale.stderr
