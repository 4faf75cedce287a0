"""Positions of a directory's files: a valid configuration keeps only what it uses (where
each entry is written), yet every problem found in any file is still located exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from voltage_iac.config import load_config, load_config_string
from voltage_iac.errors import ConfigError
from voltage_iac.model import SourceRef

ORG = "123e4567-e89b-12d3-a456-426614174000"
STAGING = "7a68a525-9d11-4c1e-a3dd-1c2bf1378ba2"
MAIN = "7df75323-84f1-4699-97da-776380a0aa81"

HEAD = f"""\
version: 1
stack: acme
provider:
  organization_id: {ORG}
environments:
  staging: {{id: {STAGING}, network: mutinynet}}
lines_of_credit:
  main: {MAIN}
"""

FIRST = """\
version: 1
wallets:
  payouts:
    name: Payouts
    environment: staging
    line_of_credit: main
    limit: 1000
"""


def second(environment: str = "staging", name: str = "Refunds") -> str:
    return (
        "version: 1\n"
        "wallets:\n"
        "  # refunds go out from here\n"
        "  refunds:\n"
        f"    name: {name}\n"
        "    line_of_credit: main\n"
        f"    environment: {environment}\n"
        "    limit: 2000\n"
    )


def write(folder: Path, *texts: str) -> Path:
    for index, text in enumerate(texts):
        (folder / f"{index:02d}.yaml").write_text(text, encoding="utf-8")
    return folder


def test_each_entry_of_a_valid_directory_keeps_where_it_is_written(tmp_path: Path) -> None:
    state = load_config(write(tmp_path, HEAD, FIRST, second()), environ={})
    assert state.wallets["payouts"].source == SourceRef(str(tmp_path / "01.yaml"), 3, 3)
    assert state.wallets["refunds"].source == SourceRef(str(tmp_path / "02.yaml"), 4, 3)
    assert state.environments["staging"].source == SourceRef(str(tmp_path / "00.yaml"), 6, 3)


def test_a_meaning_problem_deep_in_a_later_file_is_located_at_its_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, HEAD, FIRST, second(environment="stagin")), environ={})
    [issue] = info.value.issues
    assert issue.file == str(tmp_path / "02.yaml")
    assert (issue.line, issue.column) == (7, 18)
    assert "unknown environment `stagin`" in issue.message
    assert issue.path == "wallets.refunds.environment"


def test_problems_across_files_are_located_as_in_one_file(tmp_path: Path) -> None:
    """The same problem gives the same line and column whether its file is read alone
    or as part of a directory whose other files are valid."""
    text = second(name="Payouts")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, HEAD, FIRST, text), environ={})
    [issue] = info.value.issues
    assert issue.file == str(tmp_path / "02.yaml")
    assert (issue.line, issue.column) == (5, 11)
    assert "display name `Payouts` is already used by wallet `payouts`" in issue.message
    # the other wallet's name is located too, in the other (valid) file
    assert issue.message.endswith(f"({tmp_path / '01.yaml'}:4)")
    # the same wallet, written in one file after the head: its lines shift by the head's
    alone = HEAD + FIRST.replace("version: 1\n", "") + text.split("wallets:\n", 1)[1]
    with pytest.raises(ConfigError) as one:
        load_config_string(alone, environ={})
    [same] = one.value.issues
    head_lines = HEAD.count("\n") + FIRST.count("\n") - 1 - 2
    assert (same.line, same.column) == (issue.line + head_lines, issue.column)
    assert same.message.split(" (")[0] == issue.message.split(" (")[0]
    assert same.message.endswith("(<string>:11)")


GOOD = Path(__file__).parent / "configs" / "good"
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize(
    "path",
    sorted([*GOOD.iterdir(), *EXAMPLES.glob("*.yaml")]),
    ids=lambda p: p.name,
)
def test_the_digest_is_the_hash_of_the_whole_canonical_document(path: Path) -> None:
    """The digest is hashed an entry at a time; it is the sha256 of the canonical JSON of
    the whole state, so digests recorded in plan files stay valid."""
    import hashlib
    import json

    from voltage_iac.config import build

    state = load_config(path, environ={"VOLTAGE_ORGANIZATION_ID": ORG, "REGION": "EU"})
    whole = json.dumps(
        build._canonical(state), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    assert state.digest == hashlib.sha256(whole.encode("ascii")).hexdigest()
    assert state.digest == build.state_digest(state)
