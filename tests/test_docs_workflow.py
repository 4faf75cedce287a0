"""docs/workflow.md shows real output: its story is replayed and every console block compared.

The doc walks a team through plan, apply, drift, import, review, stale plans and targets,
on the embedded emulator, in a directory holding `examples/quickstart.yaml` as
`wallets.yaml`. This test runs the same `voltage-iac` commands as child processes (as a
user would, standard error merged where it appears), with the same edits between them,
and compares each block's output with what the doc shows. Only what differs from run to
run is normalised: durations, and the order of lines of operations running at once.
A `console` block is a whole session (every line real); excerpts are `text` blocks.

After a deliberate change of output, rewrite the blocks from a real run:
`VOLTAGE_IAC_WRITE_DOCS=1 pytest tests/test_docs_workflow.py`, then review the diff.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "workflow.md"
BLOCK = re.compile(r"^```console\n(?P<body>.*?)^```\n", re.M | re.S)
CHECKSUM = re.compile(r"sha256:[0-9a-f]{64}")
DURATION = re.compile(r"\(\d+(\.\d+)?s\)")
#: the rate and time figures of apply's count lines (`2.5/s, ETA 1s`, `in 1s`)
RATE = re.compile(r"\d+(\.\d+)?/s, (ETA|in) \d+(\.\d+)?s")
CONCURRENT = re.compile(r"^(wallet|webhook) \S+: \w+ (started|done|FAILED)")


@dataclass
class Block:
    command: str
    output: str
    code: int
    span: tuple[int, int]


def read_blocks(text: str) -> list[Block]:
    """Every command shown in a console block (a block may show several in a row), with
    the output under it and its `[exit N]`."""
    blocks = []
    for match in BLOCK.finditer(text):
        body, offset = match.group("body"), match.start("body")
        starts = [m.start() for m in re.finditer(r"^\$ voltage-iac ", body, re.M)]
        assert starts and starts[0] == 0, f"console block at {offset} has no command first"
        for start, end in zip(starts, [*starts[1:], len(body)], strict=True):
            lines = body[start:end].splitlines()
            code = re.fullmatch(r"\[exit (\d+)\]", lines[-1])
            assert code, f"`{lines[0]}` does not end with [exit N]"
            output = "\n".join(lines[1:-1])
            blocks.append(
                Block(lines[0][2:], output, int(code.group(1)), (offset + start, offset + end))
            )
    return blocks


def normalise(text: str) -> str:
    """Durations out; runs of concurrent operation lines in a stable order."""
    lines = RATE.sub("N/s, N s", DURATION.sub("(N s)", text)).splitlines()
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, None]:
        if line is not None and CONCURRENT.match(line):
            run.append(line)
            continue
        out.extend(sorted(run, key=lambda x: (x.split(": ")[1].split()[-1] != "started", x)))
        run = []
        if line is not None:
            out.append(line)
    return "\n".join(out)


class Story:
    """A fresh directory with `wallets.yaml`, and the CLI run in it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        (tmp / "wallets.yaml").write_text(
            (REPO / "examples" / "quickstart.yaml").read_text(encoding="utf-8"), encoding="utf-8"
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("VOLTAGE_")},
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "120",
            "VOLTAGE_IAC_LOCK_DIR": str(tmp / "locks"),
        }

    def run(self, command: str) -> tuple[str, int]:
        argv = command.split()
        assert argv[0] == "voltage-iac"
        done = subprocess.run(
            [sys.executable, "-m", "voltage_iac", *argv[1:]],
            cwd=self.tmp,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        return done.stdout.rstrip("\n"), done.returncode

    def config(self) -> dict:
        return yaml.safe_load((self.tmp / "wallets.yaml").read_text(encoding="utf-8"))

    def write(self, doc: dict, name: str = "wallets.yaml") -> None:
        (self.tmp / name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    def colleague_applies_people_payroll(self) -> None:
        """A colleague applies a copy of the original configuration naming payroll
        "People payroll" (how the doc makes drift and a stale plan)."""
        doc = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
        doc["wallets"]["payroll"]["name"] = "People payroll"
        self.write(doc, "colleague.yaml")
        output, code = self.run("voltage-iac apply colleague.yaml --auto-approve")
        assert code == 0, output

    def rename_payroll(self, name: str) -> None:
        doc = self.config()
        doc["wallets"]["payroll"]["name"] = name
        self.write(doc)

    def undo_rename_and_apply(self) -> None:
        self.rename_payroll("Payroll")
        output, code = self.run("voltage-iac apply wallets.yaml --auto-approve")
        assert code == 0, output

    def apply_and_ignore_legacy(self) -> None:
        output, code = self.run("voltage-iac apply wallets.yaml --auto-approve")
        assert code == 0, output
        doc = self.config()
        doc["ignore"] = ["Legacy treasury:unmanaged"]
        self.write(doc)

    def rename_payroll_and_raise_payouts(self) -> None:
        doc = self.config()
        doc["wallets"]["payroll"]["name"] = "Payroll EU"
        doc["wallets"]["payouts-eu"]["limit"] = "0.005 btc"
        self.write(doc)


def test_every_console_block_of_the_workflow_doc_is_real_output(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = read_blocks(text)
    assert len(blocks) == 17, "the story below follows the doc's 17 commands"
    story = Story(tmp_path)
    actual: dict[int, tuple[str, str, int]] = {}  # block index -> (command, output, exit)
    checksums: list[str] = []

    def run(index: int, command: str | None = None) -> None:
        command = command or blocks[index].command
        output, code = story.run(command)
        actual[index] = (command, output, code)
        checksums.extend(CHECKSUM.findall(output))

    steps: list[Callable[[], None]] = [
        lambda: run(0),  # plan --out plan.json
        lambda: run(1),  # apply --plan plan.json
        lambda: story.rename_payroll("People payroll"),
        lambda: run(2),  # plan --out plan.json
        lambda: run(3),  # show plan.json
        lambda: run(4),  # apply plan.json
        lambda: run(5),  # apply plan.json again: stale
        story.undo_rename_and_apply,
        story.colleague_applies_people_payroll,
        lambda: run(6),  # drift
        lambda: run(7),  # drift --format junit --output drift.xml
        lambda: run(8),  # drift --format markdown
        story.apply_and_ignore_legacy,
        lambda: run(9),  # drift: in sync, one finding ignored
        lambda: run(10),  # import
        story.rename_payroll_and_raise_payouts,
        lambda: run(11),  # plan --format markdown
        lambda: run(12),  # plan --out plan.json (the reviewed plan)
        story.colleague_applies_people_payroll,
        lambda: run(13),  # apply --plan plan.json: stale
        # apply --checksum with the reviewed plan's checksum: refused, names the new one
        lambda: run(14, _with_checksum(blocks[14].command, _last_plan_checksum(actual[12][1]))),
        lambda: run(16),  # plan --target payroll (captured before the apply below)
        lambda: run(15, _with_checksum(blocks[15].command, _new_checksum(actual[14][1]))),
    ]
    for step in steps:
        step()

    if os.environ.get("VOLTAGE_IAC_WRITE_DOCS") == "1":
        _rewrite(text, blocks, actual)
        text = DOC.read_text(encoding="utf-8")
        blocks = read_blocks(text)

    for index, block in enumerate(blocks):
        command, output, code = actual[index]
        where = f"docs/workflow.md block {index + 1} (`{block.command[:60]}`)"
        assert block.command == command, f"{where}: the doc shows another command"
        assert code == block.code, f"{where}: exit {code}, the doc shows {block.code}"
        assert normalise(output) == normalise(block.output), (
            f"{where} differs from a real run; after a deliberate change, rewrite it with "
            "VOLTAGE_IAC_WRITE_DOCS=1"
        )


def _last_plan_checksum(output: str) -> str:
    match = re.search(r"^Plan checksum: (sha256:[0-9a-f]{64})$", output, re.M)
    assert match, output
    return match.group(1)


def _new_checksum(output: str) -> str:
    match = re.search(r"the new plan's checksum (sha256:[0-9a-f]{64})", output)
    assert match, output
    return match.group(1)


def _with_checksum(command: str, checksum: str) -> str:
    return CHECKSUM.sub(checksum, command)


def _rewrite(text: str, blocks: list[Block], actual: dict[int, tuple[str, str, int]]) -> None:
    pieces, last = [], 0
    for index, block in enumerate(blocks):
        command, output, code = actual[index]
        start, end = block.span
        pieces.append(text[last:start])
        body = f"$ {command}\n" + (f"{output}\n" if output else "") + f"[exit {code}]\n"
        pieces.append(body)
        last = end
    pieces.append(text[last:])
    DOC.write_text("".join(pieces), encoding="utf-8")
