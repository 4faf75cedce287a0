"""Tests of the configuration loader: valid files become the expected `DesiredState`;
every broken input is refused with exit code 3, a located message and a fix."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import jsonschema
import pytest

from voltage_iac.config import (
    MAX_FILE_BYTES,
    MAX_ISSUES,
    SCHEMA_PATH,
    load_config,
    load_config_string,
    load_schema,
    state_digest,
    state_from_document,
    validate_document,
)
from voltage_iac.errors import EXIT_INVALID, ConfigError, ConfigIssue
from voltage_iac.kinds.wallet import DesiredWallet, Policies, ProcessingFee
from voltage_iac.model import DesiredState, Environment, Guards, LineOfCredit, SourceRef, frozen_map

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "configs"
GOOD = CONFIGS / "good"
BAD = CONFIGS / "bad"

ORG = "123e4567-e89b-12d3-a456-426614174000"
STAGING = "7a68a525-9d11-4c1e-a3dd-1c2bf1378ba2"
PROD = "0f3c2b1a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
MAIN = "7df75323-84f1-4699-97da-776380a0aa81"
PROD_LINE = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
ENVIRON = {"VOLTAGE_ORGANIZATION_ID": ORG, "REGION": "EU"}

MINIMAL = f"""\
version: 1
stack: acme
provider:
  organization_id: {ORG}
environments:
  staging: {{id: {STAGING}, network: mutinynet}}
lines_of_credit:
  main: {MAIN}
wallets:
  payouts:
    name: Payouts
    environment: staging
    line_of_credit: main
    limit: 100000000
"""


def refused(text: str, **kwargs: object) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_config_string(text, environ=kwargs.pop("environ", {}), **kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == EXIT_INVALID
    return info.value.issues


def messages(issues: list[ConfigIssue]) -> str:
    return "\n".join(str(issue) for issue in issues)


# -- valid configurations ---------------------------------------------------------------


def test_full_voltage_file_loads_into_the_expected_state() -> None:
    path = GOOD / "voltage.yaml"
    state = load_config(path, environ=ENVIRON)
    staging = Environment("staging", STAGING, "testnet3")
    prod = Environment("prod", PROD, "mainnet")
    main = LineOfCredit("main", MAIN)
    prod_line = LineOfCredit("prod-line", PROD_LINE)
    expected_wallets = {
        "payouts-eu": DesiredWallet(
            key="payouts-eu",
            name="Payouts EU",
            environment="staging",
            environment_id=STAGING,
            network="testnet3",
            line_of_credit="main",
            line_of_credit_id=MAIN,
            limit=100_000_000,
            metadata=frozen_map(
                {"team": "payouts", "cost-center": "4711", "note": "costs ${ per call"}
            ),
            policies=Policies(
                max_payment_size_sats=50000,
                transactions_per_minute=60,
                send_volume_limit_sats=2**64 - 1,
                template_id="3f2504e0-4f89-41d3-9a0c-0305e82c3301",
                ofac_compliant=True,
                processing_fee=ProcessingFee(100, 0),
            ),
            protect=True,
            ignore=("metadata.owner",),
        ),
        "refunds": DesiredWallet(
            key="refunds",
            name="Refunds (EU)",
            environment="staging",
            environment_id=STAGING,
            network="testnet3",
            line_of_credit="main",
            line_of_credit_id=MAIN,
            limit=50_000_000,
            policies=Policies(),
        ),
        "treasury": DesiredWallet(
            key="treasury",
            name="Treasury",
            environment="prod",
            environment_id=PROD,
            network="mainnet",
            line_of_credit="prod-line",
            line_of_credit_id=PROD_LINE,
            limit=0,
            policies=None,
            pinned_id="9b2e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
        ),
    }
    expected = DesiredState(
        stack="acme",
        organization_id=ORG,
        provider_kind="voltage",
        api_url="emulator",
        environments=frozen_map({"staging": staging, "prod": prod}),
        lines_of_credit=frozen_map({"main": main, "prod-line": prod_line}),
        resources=frozen_map({"wallet": frozen_map(expected_wallets), "webhook": frozen_map({})}),
        guards=Guards(mass_change_share=0.5, mass_change_min_wallets=4, limit_increase_factor=20.0),
        ignore=("*:metadata.external-*",),
        files=(str(path),),
        digest=state.digest,
    )
    assert state == expected
    assert dict(state.wallets) == expected_wallets
    assert list(state.wallets) == ["payouts-eu", "refunds", "treasury"]
    assert re.fullmatch(r"[0-9a-f]{64}", state.digest)


def test_wallet_source_points_at_its_key() -> None:
    state = load_config(GOOD / "voltage.yaml", environ=ENVIRON)
    lines = (GOOD / "voltage.yaml").read_text().splitlines()
    source = state.wallets["treasury"].source
    assert source is not None and source.line is not None
    assert source == SourceRef(str(GOOD / "voltage.yaml"), source.line, 3)
    assert lines[source.line - 1].strip() == "treasury:"


def test_lnbits_file_loads_without_voltage_fields() -> None:
    state = load_config(GOOD / "lnbits.yaml", environ={})
    assert state.provider_kind == "lnbits"
    assert state.organization_id == ""
    assert state.api_url is None
    assert dict(state.provider_options) == {"url": "http://127.0.0.1:5000"}
    assert dict(state.environments) == {} and dict(state.lines_of_credit) == {}
    assert dict(state.wallets) == {
        "savings": DesiredWallet(
            key="savings", name="Savings", environment="default", protect=True, ignore=("name",)
        ),
        "tips": DesiredWallet(key="tips", name="Tips", environment="default"),
    }
    tips = state.wallets["tips"]
    assert (tips.environment_id, tips.network, tips.limit, tips.policies) == (
        None,
        None,
        None,
        None,
    )


def test_directory_merges_its_yaml_files_in_name_order() -> None:
    folder = GOOD / "split"
    state = load_config(folder, environ={})
    assert state.files == tuple(
        str(folder / name)
        for name in ("00-provider.yaml", "10-wallets.yml", "20-more-wallets.yaml")
    )
    assert sorted(state.wallets) == ["payouts", "refunds"]
    assert state.wallets["refunds"].limit == 1000
    assert state.wallets["refunds"].source == SourceRef(str(folder / "20-more-wallets.yaml"), 3, 3)
    assert state.guards == Guards(mass_change_share=0.25)
    assert state.ignore == ("refunds:name",)
    # The same configuration in one file means the same thing: same digest.
    single = (folder / "00-provider.yaml").read_text() + (
        "wallets:\n"
        "  refunds: {name: Refunds, environment: staging, line_of_credit: main, limit: 1000}\n"
        "  payouts: {name: Payouts, environment: staging, line_of_credit: main,"
        " limit: 100000000}\n"
        "ignore: ['refunds:name']\n"
    )
    assert load_config_string(single, environ={}).digest == state.digest


def test_policies_absent_means_unmanaged_and_empty_means_managed() -> None:
    unmanaged = load_config_string(MINIMAL, environ={})
    managed = load_config_string(MINIMAL + "    policies: {}\n", environ={})
    assert unmanaged.wallets["payouts"].policies is None
    assert managed.wallets["payouts"].policies == Policies()
    assert unmanaged.digest != managed.digest


def test_digest_ignores_comments_layout_and_key_order() -> None:
    base = load_config_string(MINIMAL, environ={})
    reordered = f"""\
# comments and order do not matter
wallets:
  payouts: {{limit: "100000 sat", line_of_credit: main, environment: staging, name: Payouts}}
lines_of_credit: {{main: {MAIN.upper()}}}
environments:
  staging:
    network: mutinynet   # same environment, block style
    id: {STAGING}
provider: {{organization_id: {ORG}, kind: voltage}}
stack: acme
version: 1
guards: {{mass_change_share: 0.3}}
"""
    assert load_config_string(reordered, environ={}).digest == base.digest
    assert state_digest(base) == base.digest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("limit: 100000000", "limit: 100000001"),
        ("name: Payouts", "name: Payouts 2"),
        ("stack: acme", "stack: acme2"),
        ("network: mutinynet", "network: mainnet"),
    ],
)
def test_digest_changes_when_the_meaning_changes(old: str, new: str) -> None:
    base = load_config_string(MINIMAL, environ={})
    changed = load_config_string(MINIMAL.replace(old, new), environ={})
    assert changed.digest != base.digest


def test_digest_changes_with_metadata_and_protect() -> None:
    base = load_config_string(MINIMAL, environ={}).digest
    assert load_config_string(MINIMAL + "    protect: true\n", environ={}).digest != base
    assert load_config_string(MINIMAL + "    metadata: {a: b}\n", environ={}).digest != base


def test_interpolation_inside_strings_and_escape() -> None:
    text = MINIMAL.replace("name: Payouts", 'name: "Pay ${WHO} $${WHO} ${WHO}s"').replace(
        f"organization_id: {ORG}", "organization_id: ${ORG_ID}"
    )
    state = load_config_string(text, environ={"WHO": "Bob", "ORG_ID": ORG})
    assert state.wallets["payouts"].name == "Pay Bob ${WHO} Bobs"
    assert state.organization_id == ORG


def test_interpolated_text_is_never_parsed_as_yaml() -> None:
    text = MINIMAL.replace("name: Payouts", "name: ${NAME}").replace(
        "limit: 100000000", "limit: ${LIMIT}"
    )
    state = load_config_string(text, environ={"NAME": "[a, b]: {c}", "LIMIT": "5 sat"})
    assert state.wallets["payouts"].name == "[a, b]: {c}"
    assert state.wallets["payouts"].limit == 5000
    # A value from the environment that YAML would read as a boolean stays text.
    yes = load_config_string(text, environ={"NAME": "yes", "LIMIT": "1"})
    assert yes.wallets["payouts"].name == "yes"


def test_keys_are_not_interpolated() -> None:
    issues = refused(MINIMAL.replace("  payouts:", "  ${KEY}:"), environ={"KEY": "payouts"})
    assert "`${KEY}` is not a valid wallet key" in messages(issues)


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLTAGE_IAC_TEST_ORG", ORG)
    text = MINIMAL.replace(f"organization_id: {ORG}", "organization_id: ${VOLTAGE_IAC_TEST_ORG}")
    assert load_config_string(text).organization_id == ORG
    monkeypatch.delenv("VOLTAGE_IAC_TEST_ORG")
    with pytest.raises(ConfigError, match="VOLTAGE_IAC_TEST_ORG is not set"):
        load_config_string(text)


def test_interpolated_values_are_not_echoed_in_messages() -> None:
    text = MINIMAL.replace(f"organization_id: {ORG}", "organization_id: ${ORG_ID}")
    issues = refused(text, environ={"ORG_ID": "s3cr3t-value"})
    assert "the value of ${ORG_ID} is not a UUID" in messages(issues)
    assert "s3cr3t" not in messages(issues)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(path, environ={}).stack == "acme"


def test_guard_numbers_become_floats_and_defaults_fill_in() -> None:
    state = load_config_string(MINIMAL + "guards: {limit_increase_factor: 3}\n", environ={})
    assert state.guards == Guards(limit_increase_factor=3.0)
    assert isinstance(state.guards.limit_increase_factor, float)


def test_state_from_document_and_validate_document() -> None:
    document = {
        "version": 1,
        "stack": "acme",
        "provider": {"kind": "lnbits", "url": "https://lnbits.example"},
        "wallets": {"tips": {"name": "Tips"}},
    }
    assert validate_document(document) == []
    assert state_from_document(document).wallets["tips"].name == "Tips"
    broken = {**document, "wallets": {"tips": {"name": "Tips", "limit": 5}}}
    issues = validate_document(broken, file="generated")
    assert [(i.file, i.line, i.path) for i in issues] == [("generated", None, "wallets.tips.limit")]
    assert "not supported by the lnbits provider" in issues[0].message


# -- broken inputs: one file per failure mode -------------------------------------------

HEADER = re.compile(r"# expect: (?P<expect>.+)\n# line: (?P<line>none|\d+)\n")
BAD_TEXT = sorted(p for p in BAD.glob("*.yaml") if HEADER.match(p.read_text("utf-8", "replace")))
# Inputs that cannot carry a comment: (expected text, line of the problem).
BAD_RAW = {
    "binary-nul.bin": ("contains a NUL byte at byte offset 23 (line 3, column 1)", 3),
    "latin1.yaml": ("not valid UTF-8: byte 0xe9 at byte offset", 11),
    "utf16.yaml": ("encoded as UTF-16; configuration files must be UTF-8", 1),
    "utf16-no-bom.yaml": ("looks like UTF-16 or UTF-32 text", 1),
}


def test_the_bad_corpus_is_complete() -> None:
    on_disk = {p.name for p in BAD.iterdir()}
    assert on_disk == {p.name for p in BAD_TEXT} | set(BAD_RAW)
    assert len(on_disk) >= 45


def check_refused(path: Path, expect: str, line: int | None) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    error = info.value
    assert error.exit_code == EXIT_INVALID
    matching = [issue for issue in error.issues if expect in str(issue)]
    assert matching, f"{expect!r} not in:\n{error}"
    assert any(issue.line == line for issue in matching), f"line {line} expected:\n{error}"
    assert all(issue.file == str(path) for issue in error.issues)
    assert all(issue.hint for issue in error.issues), "every problem says how to fix it"
    assert "Traceback" not in str(error)


@pytest.mark.parametrize("path", BAD_TEXT, ids=lambda p: p.stem)
def test_bad_config_is_refused_with_location(path: Path) -> None:
    match = HEADER.match(path.read_text("utf-8", "replace"))
    assert match is not None
    line = None if match["line"] == "none" else int(match["line"])
    check_refused(path, match["expect"], line)


@pytest.mark.parametrize("name", sorted(BAD_RAW))
def test_bad_bytes_are_refused_with_location(name: str) -> None:
    expect, line = BAD_RAW[name]
    check_refused(BAD / name, expect, line)


def test_file_over_one_mib_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    filler = "# " + "x" * 78 + "\n"
    path.write_text(MINIMAL + filler * (MAX_FILE_BYTES // len(filler) + 1))
    assert path.stat().st_size > MAX_FILE_BYTES

    def no_parse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the file was parsed")

    import voltage_iac.config as config_package
    import voltage_iac.config.loader as loader

    with pytest.MonkeyPatch.context() as patch:
        for module in (config_package, loader):
            patch.setattr(module, "parse_text", no_parse)
            patch.setattr(module, "decode", no_parse)
        with pytest.raises(ConfigError, match=r"over the limit of 1048576 bytes \(1 MiB\)"):
            load_config(path, environ={})


def test_alias_bomb_fails_fast() -> None:
    # Expanded, the bomb is billions of values (hours and all the memory there is); the
    # loader stops counting at its bound. The bound on time only guards against a hang.
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases expand to more than"):
        load_config(BAD / "alias-bomb.yaml", environ={})
    assert time.perf_counter() - started < 30


def test_aliases_in_moderation_are_fine() -> None:
    state = load_config_string(
        MINIMAL.replace("  payouts:\n", "  payouts: &w\n")
        + "  refunds:\n    <<: *w\n    name: Refunds\n",
        environ={},
    )
    assert state.wallets["refunds"].limit == state.wallets["payouts"].limit == 100_000_000
    assert state.wallets["refunds"].name == "Refunds"


def test_several_problems_in_one_file_are_all_reported() -> None:
    text = (
        MINIMAL.replace("version: 1", "version: 2")
        .replace("stack: acme", "stack: Acme")
        .replace("network: mutinynet", "network: regtest")
        .replace("    limit: 100000000", "    limt: 100000000")
        + "  refunds: {name: Payouts, environment: staging, line_of_credit: mian, limit: -1}\n"
    )
    issues = refused(text)
    found = [(issue.line, issue.message) for issue in issues]
    assert [line for line, _ in found] == sorted(line or 0 for line, _ in found)
    expected = [
        (1, "unsupported version `2`"),
        (2, "`Acme` is not a valid stack name"),
        (6, "`regtest` is not one of"),
        (14, "unknown field `limt`"),
        (15, "display name `Payouts` is already used by wallet `payouts`"),
        (15, "unknown line of credit `mian`"),
        (15, "a limit cannot be negative"),
    ]
    for line, text_part in expected:
        assert any(ln == line and text_part in msg for ln, msg in found), (line, text_part)
    assert len(issues) == len(expected)
    assert str(ConfigError(issues)).startswith(f"invalid configuration: {len(expected)} problems")


def test_problems_in_several_files_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 2\n")
    (tmp_path / "b.yaml").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "c.yaml").write_text(MINIMAL.replace("limit: 100000000", "limit: lots"))
    issues = refused_path(tmp_path)
    assert list(dict.fromkeys(issue.file for issue in issues)) == [
        str(tmp_path / "a.yaml"),
        str(tmp_path / "b.yaml"),
        str(tmp_path / "c.yaml"),
    ]


def test_issue_list_is_capped(tmp_path: Path) -> None:
    text = MINIMAL + "".join(f"    extra{i}: 1\n" for i in range(MAX_ISSUES + 20))
    issues = refused(text)
    assert len(issues) == MAX_ISSUES + 1
    assert issues[-1].message == "... and 20 more problems not listed"


def refused_path(path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.exit_code == EXIT_INVALID
    return info.value.issues


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a config")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.yaml").write_text(MINIMAL)
    issues = refused_path(tmp_path)
    assert len(issues) == 1
    assert "holds no *.yaml or *.yml files" in issues[0].message


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    issues = refused_path(tmp_path / "nope.yaml")
    assert issues[0].message == "no such file or directory"


def test_same_wallet_in_two_files_names_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text(
        "version: 1\nwallets:\n  payouts: {name: Other, environment: staging,"
        " line_of_credit: main, limit: 1}\n"
    )
    issues = refused_path(tmp_path)
    assert len(issues) == 1
    issue = issues[0]
    assert (issue.file, issue.line) == (str(tmp_path / "b.yaml"), 3)
    assert f"wallet `payouts` is defined twice: here and at {tmp_path / 'a.yaml'}:10" in (
        issue.message
    )


def test_repeated_settings_must_agree_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text("version: 1\nstack: other\n")
    issues = refused_path(tmp_path)
    assert len(issues) == 1
    assert (issues[0].file, issues[0].line) == (str(tmp_path / "b.yaml"), 2)
    assert f"`stack` differs from the one at {tmp_path / 'a.yaml'}:2" in issues[0].message


def test_every_file_of_a_directory_declares_the_version(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text("wallets: {}\n")
    issues = refused_path(tmp_path)
    assert [(i.file, i.message) for i in issues] == [
        (str(tmp_path / "b.yaml"), "missing required field `version`")
    ]


# -- the schema ------------------------------------------------------------------------


def test_packaged_schema_and_editor_copy_are_identical() -> None:
    packaged = (ROOT / "voltage_iac" / "schemas" / "config.v1.json").read_bytes()
    assert (ROOT / "schemas" / "config.v1.json").read_bytes() == packaged
    assert SCHEMA_PATH.read_bytes() == packaged


def test_schema_is_valid_draft_2020_12_and_validates_the_good_files() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    document = json.loads(json.dumps({"version": 1, "stack": "acme", "wallets": {}}))
    assert jsonschema.Draft202012Validator(schema).is_valid(document)
    assert not jsonschema.Draft202012Validator(schema).is_valid({**document, "limt": 1})


def test_error_example_in_the_docs_is_real_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    section = doc[doc.index("## Errors") :]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)
    yaml_text = next(body for lang, body in blocks if lang == "yaml")
    shown = next(body for lang, body in blocks if body.startswith("invalid configuration"))
    (tmp_path / "wallets.yaml").write_text(yaml_text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("wallets.yaml", environ={})
    assert str(info.value) == shown.rstrip("\n")


EXAMPLES = sorted((ROOT / "examples").glob("*.y*ml"))


@pytest.mark.parametrize("path", EXAMPLES or [None], ids=lambda p: p.name if p else "none")
def test_examples_are_valid(path: Path | None) -> None:
    if path is None:
        pytest.skip("no examples/*.yaml yet")
    # Any variable an example uses gets a UUID: valid for ids, and text for names.
    env = {name: ORG for name in re.findall(r"\$\{(\w+)\}", path.read_text())}
    assert isinstance(load_config(path, environ=env), DesiredState)


# -- did-you-mean never leads to mainnet ----------------------------------------------


@pytest.mark.parametrize("written", ["signet", "mainet", "main", "Mainnet", "mainnet3"])
def test_mainnet_is_never_suggested(written: str) -> None:
    issues = refused(MINIMAL.replace("network: mutinynet", f"network: {written}"))
    (issue,) = [i for i in issues if "is not one of" in i.message]
    assert issue.line == 6
    assert issue.hint == "use one of: mainnet, testnet3, mutinynet"


@pytest.mark.parametrize(("written", "meant"), [("testnet4", "testnet3"), ("mutiny", "mutinynet")])
def test_other_networks_are_still_suggested(written: str, meant: str) -> None:
    issues = refused(MINIMAL.replace("network: mutinynet", f"network: {written}"))
    (issue,) = [i for i in issues if "is not one of" in i.message]
    assert issue.hint is not None and issue.hint.startswith(f"did you mean `{meant}`?")


# -- the organization from the environment ----------------------------------------------

NO_ORG = MINIMAL.replace(f"provider:\n  organization_id: {ORG}\n", "provider: {}\n")


def test_organization_id_falls_back_to_the_environment_variable() -> None:
    assert "organization_id" not in NO_ORG
    upper = ORG.upper()
    state = load_config_string(NO_ORG, environ={"VOLTAGE_ORGANIZATION_ID": upper})
    assert state.organization_id == ORG
    written = load_config_string(MINIMAL, environ={"VOLTAGE_ORGANIZATION_ID": PROD})
    assert written.organization_id == ORG, "the file wins over the environment"
    assert state.digest == written.digest


def test_organization_id_missing_everywhere_names_both_places() -> None:
    (issue,) = refused(NO_ORG, environ={})
    assert issue.line == 3
    assert "missing `organization_id`" in issue.message
    assert "VOLTAGE_ORGANIZATION_ID is not set" in issue.message
    assert issue.hint is not None and "export VOLTAGE_ORGANIZATION_ID=" in issue.hint


def test_organization_id_from_the_environment_must_be_a_uuid() -> None:
    (issue,) = refused(NO_ORG, environ={"VOLTAGE_ORGANIZATION_ID": "secret-ish-value"})
    assert "the value of ${VOLTAGE_ORGANIZATION_ID}" in issue.message
    assert "is not a UUID" in issue.message
    assert "secret-ish-value" not in str(issue)


def test_organization_id_is_still_refused_for_lnbits() -> None:
    text = (
        "version: 1\nstack: acme\nprovider: {kind: lnbits, url: 'http://127.0.0.1:5000', "
        f"organization_id: {ORG}}}\nwallets: {{tips: {{name: Tips}}}}\n"
    )
    (issue,) = refused(text, environ={"VOLTAGE_ORGANIZATION_ID": ORG})
    assert issue.message == "`organization_id` is not supported by the lnbits provider"


# -- backend support comes from the declaration ------------------------------------------


def test_every_declared_reason_is_the_hint_of_its_refusal() -> None:
    from voltage_iac.providers import registry

    lnbits = registry.spec("lnbits")
    base = "version: 1\nstack: acme\nprovider: {kind: lnbits, url: 'http://127.0.0.1:5000'}\n"
    values = {
        "environment": "staging",
        "line_of_credit": "main",
        "limit": 5,
        "metadata": {"a": "b"},
        "policies": {},
        "id": STAGING,
    }
    fields = [w.split(".", 1)[1] for w in lnbits.reasons if w.startswith("wallet.")]
    assert sorted(fields) == sorted(values)
    for name in fields:
        text = (
            base
            + "wallets:\n  tips:\n    name: Tips\n    "
            + f"{name}: {json.dumps(values[name])}\n"
        )
        (issue,) = refused(text)
        assert issue.message == f"`{name}` is not supported by the lnbits provider"
        assert issue.hint == lnbits.reason(f"wallet.{name}")
        assert (issue.line, issue.column) == (7, 5)


def test_a_field_the_backend_stops_declaring_is_refused_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses
    from types import MappingProxyType

    from voltage_iac.providers import registry

    voltage = registry.spec("voltage")
    narrowed = dataclasses.replace(
        voltage,
        kinds=MappingProxyType({"wallet": voltage.kinds["wallet"] - {"metadata", "limit"}}),
        reasons={**voltage.reasons, "wallet.metadata": "metadata is switched off here"},
    )
    monkeypatch.setitem(registry._SPECS, "voltage", narrowed)
    issues = refused(MINIMAL + "    metadata: {team: a}\n")
    assert [(i.line, i.message, i.hint) for i in issues] == [
        (14, "`limit` is not supported by the voltage provider", voltage.reason("wallet.limit")),
        (
            15,
            "`metadata` is not supported by the voltage provider",
            "metadata is switched off here",
        ),
    ]
    # A field the backend does not support is no longer required either.
    assert load_config_string(MINIMAL.replace("    limit: 100000000\n", ""), environ={}).wallets


def test_a_kind_the_backend_does_not_declare_refuses_its_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses
    from types import MappingProxyType

    from voltage_iac.providers import registry

    voltage = registry.spec("voltage")
    no_wallets = dataclasses.replace(
        voltage, kinds=MappingProxyType({}), reasons={"wallet": "no wallets on this backend"}
    )
    monkeypatch.setitem(registry._SPECS, "voltage", no_wallets)
    (issue,) = refused(MINIMAL)
    assert (issue.line, issue.column, issue.path) == (9, 1, "wallets")
    assert issue.message == "`wallets` is not supported by the voltage provider"
    assert issue.hint == "no wallets on this backend"


# -- the schema for editors ---------------------------------------------------------------


def doc_examples() -> list[tuple[str, str]]:
    """The YAML documents of docs/configuration.md (a fragment gets `version: 1`) and
    examples/*.yaml, outside the section that shows an error on purpose."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    text = text[: text.index("## Errors")] + text[text.index("## Editor support") :]
    found = []
    for index, body in enumerate(re.findall(r"```yaml\n(.*?)```", text, flags=re.S)):
        if "<" in body.replace("<<:", "") or not body.strip() or body.startswith(" "):
            continue  # placeholders such as <environment UUID>, or an indented excerpt
        if body.lstrip().startswith("#") and len(body.strip().splitlines()) == 1:
            continue  # a comment line only (the editor modeline)
        if not body.startswith("version:"):
            body = "version: 1\n" + body
        found.append((f"configuration.md block {index}", body))
    for path in EXAMPLES:
        found.append((path.name, path.read_text()))
    return found


def test_the_docs_and_examples_validate_against_the_shipped_schema_uninterpolated() -> None:
    import yaml

    schema = json.loads((ROOT / "schemas" / "config.v1.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    examples = doc_examples()
    assert len(examples) >= 5
    interpolated = [name for name, body in examples if "${" in body]
    assert len(interpolated) >= 2
    for name, body in examples:
        data = yaml.safe_load(body)
        errors = [e.message for e in validator.iter_errors(data)]
        assert not errors, (name, errors)


@pytest.mark.parametrize(
    "path",
    [
        ("provider", "organization_id"),
        ("environments", "staging", "id"),
        ("environments", "staging", "network"),
        ("lines_of_credit", "main"),
        ("wallets", "payouts", "id"),
        ("wallets", "payouts", "policies", "template_id"),
        ("stack",),
    ],
)
def test_the_shipped_schema_takes_variables_where_they_are_interpolated(
    path: tuple[str, ...],
) -> None:
    import copy

    validator = jsonschema.Draft202012Validator(load_schema())
    document = {
        "version": 1,
        "stack": "acme",
        "provider": {"organization_id": ORG},
        "environments": {"staging": {"id": STAGING, "network": "mutinynet"}},
        "lines_of_credit": {"main": MAIN},
        "wallets": {"payouts": {"name": "Payouts", "id": PROD, "policies": {"template_id": ORG}}},
    }
    assert validator.is_valid(document)
    for value, valid in (("${SOME_VAR}", True), ("pre-${A}-post", True), ("Not an id!", False)):
        changed = copy.deepcopy(document)
        target = changed
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        assert validator.is_valid(changed) is valid, (path, value)


def test_a_literal_dollar_brace_is_not_taken_for_a_variable() -> None:
    text = MINIMAL.replace(f"organization_id: {ORG}", 'organization_id: "$${ORG}"')
    (issue,) = refused(text, environ={"ORG": ORG})
    assert issue.message == '`"$${ORG}"` is not a UUID'
