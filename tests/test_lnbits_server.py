"""The test LNbits server keeps its data, its server secret included, out of the checkout."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.lnbits_server import LnbitsServer, ensure_lnbits_venv

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.lnbits
def test_checking_the_install_writes_nothing_into_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing LNbits writes `data/.lnbits_auth_key` under the current folder unless told
    # otherwise; the check must run elsewhere.
    monkeypatch.chdir(tmp_path)
    ensure_lnbits_venv()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.lnbits
def test_the_server_secret_lives_in_the_servers_temporary_folder(
    lnbits_server: LnbitsServer,
) -> None:
    assert lnbits_server.workdir is not None
    workdir = lnbits_server.workdir.resolve()
    assert workdir.is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert (workdir / "data" / ".lnbits_auth_key").is_file()
    assert not (REPO / "data" / ".lnbits_auth_key").exists()
