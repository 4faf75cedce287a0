"""The `voltage-iac` executable: answers `--version` at once, else runs the command line.

A command needs the whole tool (configuration loader, engine, renderers); printing the
version needs none of it, so it is answered before anything else is imported.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> NoReturn:
    if sys.argv[1:] == ["--version"]:
        from voltage_iac import __version__

        print(f"voltage-iac, version {__version__}")
        raise SystemExit(0)
    from voltage_iac.cli import main as run

    run()
