"""The fast path of the loader (libyaml's C parser, the compiled schema validator) gives
exactly what the pure path (pure-Python parser, jsonschema) gives: the same state for a
valid configuration, the same messages, lines and columns for a broken one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_config_fuzz import YAMLISH, document, mutated_valid_document
from voltage_iac.config import load_config, load_config_string, loader, schema
from voltage_iac.config.document import Doc, Issues
from voltage_iac.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "configs"
CORPUS = sorted(
    p for p in [*CONFIGS.rglob("*"), *(ROOT / "examples").glob("*.y*ml")] if p.is_file()
)
ENVIRON = {"VOLTAGE_ORGANIZATION_ID": "123e4567-e89b-12d3-a456-426614174000", "REGION": "EU"}
SETTINGS = settings(
    max_examples=int(os.environ.get("VOLTAGE_IAC_PATH_EXAMPLES", "150")),
    deadline=None,  # no timed assertion (benchmarks/bench_config.py measures speed)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def outcome(load: Any, *args: Any, fast: bool, **kwargs: Any) -> Any:
    """What the user sees: the state (with its digest), or every issue as printed."""
    try:
        state = load(*args, fast=fast, **kwargs)
    except ConfigError as exc:
        return [(i.file, i.line, i.column, i.path, i.message, i.hint) for i in exc.issues]
    return state


def test_the_corpus_is_there() -> None:
    names = {p.name for p in CORPUS}
    assert len(CORPUS) >= 60
    assert {"voltage.yaml", "deep-nesting.yaml", "alias-bomb.yaml", "quickstart.yaml"} <= names


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_corpus_file_gives_the_same_result_on_both_paths(path: Path) -> None:
    fast = outcome(load_config, path, fast=True, environ=ENVIRON)
    pure = outcome(load_config, path, fast=False, environ=ENVIRON)
    assert fast == pure


def test_split_directory_gives_the_same_state_on_both_paths() -> None:
    folder = CONFIGS / "good" / "split"
    assert load_config(folder, environ={}, fast=True) == load_config(folder, environ={}, fast=False)


@pytest.mark.skipif(loader.CBoundedLoader is None, reason="PyYAML was built without libyaml")
def test_a_valid_file_is_read_by_the_c_parser_only(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []
    real = loader._parse_with

    def spy(cls: Any, *args: Any) -> Any:
        used.append("c" if cls is loader.CBoundedLoader else "pure")
        return real(cls, *args)

    monkeypatch.setattr(loader, "_parse_with", spy)
    load_config(CONFIGS / "good" / "voltage.yaml", environ=ENVIRON)
    assert used == ["c"]
    used.clear()
    with pytest.raises(ConfigError, match="duplicate key"):
        load_config(CONFIGS / "bad" / "duplicate-key.yaml", environ={})
    assert used == ["c", "pure"], "a problem is worded by the pure-Python parser"


NON_ASCII = (
    "version: 1\nstack: acme\nprovider: {organization_id: '${ORG}'}\n"
    "environments: {stâging: {id: x, network: mütinynet}}\n"
    "wallets:\n  é: {name: 'Ünïcödé ✓', limit: 1, metadata: {naïve: 5, ß: [ü, 2]}}\n"
    '  b: &a {name: "Tab\\there", <<: {limit: 2}}\n  c: *a\n'
    "  d:\n    name: |\n      two\n      lines ✓\n    ignore: [x]\n"
)


@pytest.mark.skipif(loader.CBoundedLoader is None, reason="PyYAML was built without libyaml")
def test_both_parsers_record_the_same_positions() -> None:
    docs = []
    for cls in (loader.CBoundedLoader, loader.BoundedLoader):
        issues = Issues()
        doc = loader._parse_with(cls, NON_ASCII, "x.yaml", {"ORG": "é"}, issues)
        assert doc is not None and not issues.items
        docs.append(doc)
    c_doc, pure_doc = docs
    assert c_doc.data == pure_doc.data
    assert c_doc.locs == pure_doc.locs
    assert c_doc.locs[("wallets", "é", "metadata", "ß", 0)].column == 61
    assert c_doc.interpolated == pure_doc.interpolated
    assert c_doc.ambiguous is pure_doc.ambiguous is True  # the two-line name


def test_non_ascii_problems_have_the_same_columns_on_both_paths() -> None:
    fast = outcome(load_config_string, NON_ASCII, fast=True, environ={"ORG": "é"})
    assert fast == outcome(load_config_string, NON_ASCII, fast=False, environ={"ORG": "é"})
    assert isinstance(fast, list) and ("<string>", 4, 16, "environments.stâging") in [
        i[:4] for i in fast
    ]


WIDER = st.lists(
    st.sampled_from(
        [
            *["\r\n", "\r", "\x85", "\u2028", "\ufeff", "  ", "- ", "? ", ": ", "!!str "],
            *["%YAML 1.1\n", "...\n", '"\\x41"', "'a''b'", "|\n", ">-\n", "#c\n", "1.0"],
            *["0x1F", "1_000", "~", "2024-01-01", ".inf", "<<: *a", "\\", "\U0001f600", "ü"],
            *["version: 1\n", "stack: acme\n", "wallets:\n", "  w:\n", "    name: "],
        ]
    ),
    max_size=60,
).map("".join)


@SETTINGS
@given(st.one_of(YAMLISH, WIDER))
def test_yaml_like_text_gives_the_same_result_on_both_paths(text: str) -> None:
    fast = outcome(load_config_string, text, fast=True, environ={"ORG": "x"})
    assert fast == outcome(load_config_string, text, fast=False, environ={"ORG": "x"})


@SETTINGS
@given(st.one_of(document, mutated_valid_document()))
def test_structured_documents_give_the_same_result_on_both_paths(doc: Any) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True, default_flow_style=None)
    env = {"ORG": "123e4567-e89b-12d3-a456-426614174000", "EMPTY": ""}
    assert outcome(load_config_string, text, fast=True, environ=env) == outcome(
        load_config_string, text, fast=False, environ=env
    )


# -- the two schema engines give the same verdict


def corpus_documents() -> list[Any]:
    """Every document of the corpus the (bounded) loader can parse, as plain data."""
    docs = []
    for path in CORPUS:
        text = path.read_bytes().decode("utf-8", errors="replace")
        doc = loader.parse_text(text, path.name, ENVIRON, Issues(), fast=False)
        if doc is not None:
            docs.append(doc.data)
    return docs


EDGE_CASES: list[Any] = [
    {"version": 1},
    {"version": 1.0},
    {"version": True},
    {"version": "1"},
    {"version": 1, "stack": "acme\n"},
    {"version": 1, "stack": "acme"},
    {"version": 1, "lines_of_credit": {"main": "7df75323-84f1-4699-97da-776380a0aa81\n"}},
    {"version": 1, "wallets": {"a\n": {"name": "Abc"}}},
    {"version": 1, "guards": {"mass_change_min_wallets": 3.0}},
    {"version": 1, "guards": {"mass_change_share": True}},
    {"version": 1, "guards": {"mass_change_share": 0.5, "limit_increase_factor": 2}},
    {"version": 1, "wallets": {"a": {"name": "Abc", "policies": {"ofac_compliant": 1}}}},
    {"version": 1, "wallets": {"a": {"name": "Abc", "limit": 2**64}}},
    {"version": 1, "ignore": ["a:b", "${X}"]},
    {"version": 1, "provider": {"kind": "lnbits", "organization_id": "${ORG}"}},
]


def same_verdict(data: Any) -> None:
    reference = schema.reference_is_valid(data)
    fast = schema.fast_is_valid(data)
    assert fast is None or fast == reference, data
    # What the loader does with it: the same issues, with or without the fast engine.
    found = []
    for use_fast in (True, False):
        issues = Issues()
        doc = Doc("x.yaml", data, ambiguous=schema.has_ambiguous_values(data))
        schema.schema_issues(doc, issues, fast=use_fast)
        found.append(issues.items)
    assert found[0] == found[1]
    if reference:  # (an invalid value may be left to a meaning check to word)
        assert not found[1]


@pytest.mark.parametrize("data", EDGE_CASES, ids=lambda d: json.dumps(d)[:60])
def test_edge_cases_get_the_same_verdict_from_both_engines(data: Any) -> None:
    same_verdict(data)


def test_where_the_engines_disagree_the_fast_one_is_not_asked() -> None:
    assert schema.reference_is_valid({"version": 1.0}) is False
    assert schema.fast_is_valid({"version": 1.0}) is None
    assert schema.fast_is_valid({"version": 1, "stack": "acme\n"}) is None
    assert schema.fast_is_valid({"version": 1, "stack": "acme"}) is True


def test_corpus_documents_get_the_same_verdict_from_both_engines() -> None:
    docs = corpus_documents()
    verdicts = [schema.reference_is_valid(d) for d in docs]
    assert True in verdicts and False in verdicts
    for data in docs:
        same_verdict(data)


@SETTINGS
@given(st.one_of(document, mutated_valid_document()))
def test_generated_documents_get_the_same_verdict_from_both_engines(doc: Any) -> None:
    same_verdict(json.loads(json.dumps(doc)))


@pytest.mark.skipif(loader.CBoundedLoader is None, reason="PyYAML was built without libyaml")
@pytest.mark.parametrize("name", ["voltage.yaml", "lnbits.yaml"])
def test_windows_line_endings_read_the_same_on_both_parsers(name: str) -> None:
    text = (CONFIGS / "good" / name).read_text().replace("\n", "\r\n")
    docs = []
    for cls in (loader.CBoundedLoader, loader.BoundedLoader):
        issues = Issues()
        doc = loader._parse_with(cls, text, name, ENVIRON, issues)
        assert doc is not None and not issues.items
        docs.append(doc)
    assert docs[0].data == docs[1].data
    assert docs[0].locs == docs[1].locs


# -- the direct pass (no nodes) builds what the composer builds


def same_doc(text: str, environ: dict[str, str], reader: Any = None) -> bool:
    """When the direct pass accepts `text`, the pure path builds the same `Doc`; returns
    whether the direct pass accepted it."""
    if loader._PURE_ONLY.search(text):
        return False  # such text never reaches the fast path
    scratch = Issues()
    try:
        direct = (reader or loader._direct)(text, "x.yaml", environ, scratch)
    except Exception:  # the fast path gives up by raising too; the pure path then words it
        return False
    if direct is None or scratch.items:
        return False
    issues = Issues()
    pure = loader._parse_with(loader.BoundedLoader, text, "x.yaml", environ, issues)
    assert pure is not None and not issues.items
    assert direct.data == pure.data
    assert list(direct.data) == list(pure.data)
    assert direct.locs == pure.locs
    assert direct.interpolated == pure.interpolated
    assert direct.ambiguous == pure.ambiguous
    return True


@pytest.mark.skipif(loader.CBoundedLoader is None, reason="PyYAML was built without libyaml")
def test_the_direct_pass_builds_what_the_pure_path_builds_for_the_corpus() -> None:
    accepted = []
    for path in CORPUS:
        text = path.read_bytes().decode("utf-8", errors="replace")
        if same_doc(text, ENVIRON):
            accepted.append(path.name)
    assert {"lnbits.yaml", "quickstart.yaml", "10-wallets.yml"} <= set(accepted)
    plain = (
        NON_ASCII.replace("&a ", "")
        .replace("*a", "{name: Cee}")
        .replace("<<: {limit: 2}", "limit: 2")
    )
    assert same_doc(plain, {"ORG": "é"})


@pytest.mark.skipif(loader.CBoundedLoader is None, reason="PyYAML was built without libyaml")
@SETTINGS
@given(st.one_of(YAMLISH, WIDER))
def test_the_direct_pass_builds_what_the_pure_path_builds_for_any_text(text: str) -> None:
    same_doc(text, {"ORG": "x"})


@pytest.mark.skipif(loader.CBoundedLoader is None, reason="PyYAML was built without libyaml")
@SETTINGS
@given(st.one_of(document, mutated_valid_document()))
def test_the_direct_pass_builds_what_the_pure_path_builds_for_documents(doc: Any) -> None:
    for flow in (None, False, True):
        text = yaml.safe_dump(doc, allow_unicode=True, default_flow_style=flow)
        same_doc(text, {"ORG": "123e4567-e89b-12d3-a456-426614174000", "EMPTY": ""})


@pytest.mark.skipif(loader.CBoundedLoader is None, reason="PyYAML was built without libyaml")
@SETTINGS
@given(st.one_of(YAMLISH, WIDER))
def test_the_c_composer_builds_what_the_pure_path_builds_for_any_text(text: str) -> None:
    same_doc(text, {"ORG": "x"}, loader._composed)


@pytest.mark.skipif(loader.CBoundedLoader is None, reason="PyYAML was built without libyaml")
def test_the_c_composer_builds_what_the_pure_path_builds_for_anchors() -> None:
    text = (CONFIGS / "good" / "voltage.yaml").read_text()
    assert "<<:" in text and "&" in text
    assert same_doc(text, ENVIRON, loader._composed)
    assert not same_doc(text, ENVIRON, loader._direct), "anchors are left to the composer"
