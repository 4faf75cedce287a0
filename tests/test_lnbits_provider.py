"""Tests of the LNbits provider: identity rules (pure) and every operation against a real LNbits.

The server tests (marked `lnbits`) use the fixtures of `tests.lnbits_server`: one LNbits
per session, one fresh account per test. Nothing here is a hand-made fake of LNbits,
except `httpx.MockTransport` answers for the shapes a real server cannot be made to send.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.lnbits_server import LnbitsAccount, LnbitsServer, LnbitsSetupError, ensure_lnbits_venv
from voltage_iac.errors import (
    EXIT_AUTH,
    ApiError,
    AuthError,
    MalformedResponseError,
    SafetyError,
    UsageError,
    WriteOutcomeUnknown,
)
from voltage_iac.kinds.base import Operation
from voltage_iac.kinds.wallet import DesiredWallet
from voltage_iac.model import DesiredState, Ownership, frozen_map
from voltage_iac.providers.base import Backend
from voltage_iac.providers.lnbits import (
    LnbitsProvider,
    full_name,
    is_protected_name,
    marker,
    parse_name,
)
from voltage_iac.secret import Secret

STACK = "acme"


def desired_state(url: str, *wallets: DesiredWallet, stack: str = STACK) -> DesiredState:
    return DesiredState(
        stack=stack,
        organization_id="",
        provider_kind="lnbits",
        provider_options=frozen_map({"url": url}),
        resources=frozen_map({"wallet": frozen_map({w.key: w for w in wallets})}),
    )


def wallet(key: str, name: str) -> DesiredWallet:
    return DesiredWallet(key=key, name=name, environment="default")


def create_request(key: str, name: str, stack: str = STACK) -> Operation:
    return Operation(
        kind="wallet",
        verb="create",
        key=key,
        id=None,
        stack=stack,
        organization_id="",
        generation=0,
        desired=wallet(key, name),
    )


# --- identity (pure) ------------------------------------------------------------------------


def test_marker_round_trip() -> None:
    name = full_name("Tips", "acme", "tips")
    assert name == "Tips [iac:acme:tips]"
    assert parse_name(name) == ("Tips", Ownership("acme", "tips", 0))
    assert parse_name(full_name("Tips [x]", "acme", "tips", 3)) == (
        "Tips [x]",
        Ownership("acme", "tips", 3),
    )


def test_protection_is_kept_in_the_marker() -> None:
    name = full_name("Vault", "acme", "vault", 2, protected=True)
    assert name == "Vault [iac:acme:vault:2:protected]"
    assert parse_name(name) == ("Vault", Ownership("acme", "vault", 2))
    assert is_protected_name(name) and not is_protected_name(full_name("V", "acme", "v"))
    assert not is_protected_name("Vault :protected]")


@pytest.mark.parametrize(
    "name",
    [
        "Tips",
        "Tips[iac:acme:tips]",  # no space before the marker
        "Tips [iac:Acme:tips]",  # not a valid stack
        "Tips [iac:acme:tips:0]",  # generation 0 is never written
        "Tips [iac:acme:tips] ",  # marker not at the end
        "Tips [iac:acme]",
    ],
)
def test_names_without_a_well_formed_marker_are_unmanaged(name: str) -> None:
    assert parse_name(name) == (name, None)


def test_display_names_that_could_forge_a_marker_are_refused() -> None:
    with pytest.raises(UsageError):
        full_name("Tips [iac:other:x]", "acme", "tips")
    with pytest.raises(UsageError):
        marker("acme", "Not A Key")


def test_from_environment_needs_credentials_and_never_shows_them() -> None:
    desired = desired_state("http://127.0.0.1:1")
    with pytest.raises(AuthError) as caught:
        LnbitsProvider.from_environment(desired, {})
    assert caught.value.exit_code == EXIT_AUTH
    with pytest.raises(UsageError):
        LnbitsProvider.from_environment(
            desired, {"LNBITS_ACCESS_TOKEN": "t0ken-value", "LNBITS_USERNAME": "u"}
        )
    provider = LnbitsProvider.from_environment(desired, {"LNBITS_ACCESS_TOKEN": "t0ken-value"})
    try:
        assert isinstance(provider, Backend)
        assert "t0ken-value" not in repr(vars(provider))
        assert provider.describe() == "LNbits at http://127.0.0.1:1"
    finally:
        provider.close()


def test_malformed_listing_is_an_error_not_an_empty_account() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": None}))
    provider = LnbitsProvider("http://lnbits.test", Secret("tok"), transport=transport)
    with pytest.raises(MalformedResponseError):
        provider.read(desired_state("http://lnbits.test"))
    provider.close()


def _raw(wallet_id: str) -> dict[str, object]:
    return {"id": wallet_id, "name": wallet_id, "adminkey": "k" * 32, "balance_msat": 0}


def test_a_listing_that_shifts_while_paging_is_refused() -> None:
    def shifting(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        # every page repeats the last wallet of the one before: a wallet was inserted
        data = [_raw("a"), _raw("b")] if offset == 0 else [_raw("b")]
        return httpx.Response(200, json={"data": data, "total": 3})

    provider = LnbitsProvider(
        "http://lnbits.test",
        Secret("tok"),
        transport=httpx.MockTransport(shifting),
        page_size=2,
        sleep=lambda _: None,
    )
    with pytest.raises(ApiError, match="kept changing"):
        provider.read(desired_state("http://lnbits.test"))
    provider.close()


def test_a_listing_shorter_than_its_total_is_refused() -> None:
    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [_raw("a")], "total": 2})

    provider = LnbitsProvider(
        "http://lnbits.test", Secret("tok"), transport=httpx.MockTransport(short)
    )
    with pytest.raises(ApiError, match="kept changing"):
        provider.read(desired_state("http://lnbits.test"))
    provider.close()


def test_setup_errors_name_what_failed(tmp_path: Path) -> None:
    not_a_venv = tmp_path / "venv"
    not_a_venv.mkdir()
    (not_a_venv / "something").write_text("x")
    with pytest.raises(LnbitsSetupError, match="is not a virtualenv"):
        ensure_lnbits_venv(not_a_venv)
    with pytest.raises(LnbitsSetupError, match="package folder not found"):
        LnbitsServer(venv=tmp_path / "empty").start()


# --- against a real LNbits ------------------------------------------------------------------


@pytest.fixture
def provider(lnbits_account: LnbitsAccount) -> Iterator[LnbitsProvider]:
    p = LnbitsProvider(lnbits_account.url, lnbits_account.token, wait_timeout=10)
    yield p
    p.close()


def owned(provider: LnbitsProvider, url: str) -> dict[str, Ownership | None]:
    return {w.id: w.owner for w in provider.read(desired_state(url)).wallets}


@pytest.mark.lnbits
def test_read_of_an_empty_account_is_empty_and_creates_nothing(
    provider: LnbitsProvider, lnbits_account: LnbitsAccount
) -> None:
    live = provider.read(desired_state(lnbits_account.url))
    assert live.wallets == ()
    assert live.client_chosen_ids is False
    assert lnbits_account.wallets() == []
    assert provider.read(desired_state(lnbits_account.url)).wallets == ()


@pytest.mark.lnbits
def test_create_makes_exactly_one_owned_wallet(
    provider: LnbitsProvider, lnbits_account: LnbitsAccount
) -> None:
    wallet_id = provider.create_wallet(create_request("tips", "Tips"))
    raw = lnbits_account.wallets()
    assert [(w["id"], w["name"]) for w in raw] == [(wallet_id, "Tips [iac:acme:tips]")]
    (live,) = provider.read(desired_state(lnbits_account.url)).wallets
    assert (live.id, live.name, live.owner, live.environment_id) == (
        wallet_id,
        "Tips",
        Ownership(STACK, "tips", 0),
        None,
    )
    assert live.active and not live.has_funds


@pytest.mark.lnbits
def test_repeated_create_returns_the_same_wallet(
    provider: LnbitsProvider, lnbits_account: LnbitsAccount
) -> None:
    first = provider.create_wallet(create_request("tips", "Tips"))
    again = LnbitsProvider(lnbits_account.url, lnbits_account.token)
    try:
        assert again.create_wallet(create_request("tips", "Tips")) == first
    finally:
        again.close()
    assert [w["id"] for w in lnbits_account.wallets()] == [first]


class _DropCreateAnswer(httpx.HTTPTransport):
    """Forwards `POST /api/v1/wallet` (or not), then loses the answer: a crash mid-create."""

    def __init__(self, *, forward: bool) -> None:
        super().__init__()
        self.forward = forward

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/v1/wallet":
            if self.forward:
                super().handle_request(request).close()
            raise httpx.ReadTimeout("answer lost", request=request)
        return super().handle_request(request)


@pytest.mark.lnbits
def test_create_whose_answer_was_lost_finds_the_wallet_instead_of_making_another(
    lnbits_account: LnbitsAccount,
) -> None:
    lossy = LnbitsProvider(
        lnbits_account.url, lnbits_account.token, transport=_DropCreateAnswer(forward=True)
    )
    try:
        wallet_id = lossy.create_wallet(create_request("tips", "Tips"))
    finally:
        lossy.close()
    fresh = LnbitsProvider(lnbits_account.url, lnbits_account.token)
    try:
        assert fresh.create_wallet(create_request("tips", "Tips")) == wallet_id
    finally:
        fresh.close()
    assert [w["id"] for w in lnbits_account.wallets()] == [wallet_id]


@pytest.mark.lnbits
def test_create_that_never_reached_the_server_reports_an_unknown_outcome(
    lnbits_account: LnbitsAccount,
) -> None:
    lossy = LnbitsProvider(
        lnbits_account.url, lnbits_account.token, transport=_DropCreateAnswer(forward=False)
    )
    try:
        with pytest.raises(WriteOutcomeUnknown):
            lossy.create_wallet(create_request("tips", "Tips"))
    finally:
        lossy.close()
    assert lnbits_account.wallets() == []


@pytest.mark.lnbits
def test_rename_in_place_keeps_id_and_ownership(
    provider: LnbitsProvider, lnbits_account: LnbitsAccount
) -> None:
    wallet_id = provider.create_wallet(create_request("tips", "Tips"))
    provider.rename_wallet(wallet_id, "Tip Jar")
    (live,) = provider.read(desired_state(lnbits_account.url)).wallets
    assert (live.id, live.name, live.owner) == (wallet_id, "Tip Jar", Ownership(STACK, "tips"))
    assert lnbits_account.wallets()[0]["name"] == "Tip Jar [iac:acme:tips]"
    provider.rename_wallet(wallet_id, "Tip Jar")  # nothing to do


@pytest.mark.lnbits
def test_delete_is_final_and_repeatable(
    provider: LnbitsProvider, lnbits_account: LnbitsAccount
) -> None:
    keep = provider.create_wallet(create_request("keep", "Keep"))
    gone = provider.create_wallet(create_request("tips", "Tips"))
    provider.delete_wallet(gone)
    assert [w.id for w in provider.read(desired_state(lnbits_account.url)).wallets] == [keep]
    assert [w["id"] for w in lnbits_account.wallets()] == [keep]
    provider.delete_wallet(gone)  # already deleted: nothing to do, no error
    # a new create for the same entry makes a new wallet (the soft-deleted one stays gone)
    again = provider.create_wallet(create_request("tips", "Tips"))
    assert again not in (keep, gone)


@pytest.mark.lnbits
def test_wallets_not_made_by_this_stack_are_unmanaged_and_untouchable(
    provider: LnbitsProvider, lnbits_account: LnbitsAccount
) -> None:
    by_hand = lnbits_account.create_wallet("Savings")["id"]
    other = lnbits_account.create_wallet("Ops [iac:other:ops]")["id"]
    live = {w.id: w for w in provider.read(desired_state(lnbits_account.url)).wallets}
    assert (live[by_hand].name, live[by_hand].owner) == ("Savings", None)
    assert live[other].owner == Ownership("other", "ops")
    for wallet_id in (by_hand, other):
        with pytest.raises(SafetyError):
            provider.rename_wallet(wallet_id, "Mine now")
        with pytest.raises(SafetyError):
            provider.delete_wallet(wallet_id)
    names = sorted(w["name"] for w in lnbits_account.wallets())
    assert names == ["Ops [iac:other:ops]", "Savings"]


@pytest.mark.lnbits
def test_duplicate_markers_are_refused_not_guessed(
    provider: LnbitsProvider, lnbits_account: LnbitsAccount
) -> None:
    a = lnbits_account.create_wallet("Tips [iac:acme:tips]")["id"]
    b = lnbits_account.create_wallet("Tips copy [iac:acme:tips]")["id"]
    with pytest.raises(SafetyError) as caught:
        provider.read(desired_state(lnbits_account.url))
    assert a in str(caught.value) and b in str(caught.value)
    with pytest.raises(SafetyError):
        provider.create_wallet(create_request("tips", "Tips"))
    assert len(lnbits_account.wallets()) == 2
    # another stack reading the same account is not blocked by this stack's duplicates
    assert len(provider.read(desired_state(lnbits_account.url, stack="other")).wallets) == 2


@pytest.mark.lnbits
def test_wrong_token_is_an_auth_error_without_the_token(lnbits_account: LnbitsAccount) -> None:
    token = lnbits_account.token.reveal()
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    provider = LnbitsProvider(lnbits_account.url, Secret(wrong))
    try:
        with pytest.raises(AuthError) as caught:
            provider.read(desired_state(lnbits_account.url))
    finally:
        provider.close()
    assert caught.value.exit_code == EXIT_AUTH
    text = f"{caught.value} {caught.value!r} {caught.value.hint}"
    assert wrong not in text and token not in text


@pytest.mark.lnbits
def test_username_and_password_sign_in(lnbits_account: LnbitsAccount) -> None:
    env = {
        "LNBITS_USERNAME": lnbits_account.username,
        "LNBITS_PASSWORD": lnbits_account.password.reveal(),
    }
    provider = LnbitsProvider.from_environment(desired_state(lnbits_account.url), env)
    try:
        assert provider.read(desired_state(lnbits_account.url)).wallets == ()
    finally:
        provider.close()
    bad = {**env, "LNBITS_PASSWORD": "not-the-password"}
    with pytest.raises(AuthError) as caught:
        LnbitsProvider.from_environment(desired_state(lnbits_account.url), bad)
    assert "not-the-password" not in str(caught.value)


@pytest.mark.lnbits
def test_read_pages_through_every_wallet(lnbits_account: LnbitsAccount) -> None:
    small = LnbitsProvider(lnbits_account.url, lnbits_account.token, page_size=2)
    try:
        made = {small.create_wallet(create_request(f"w{i}", f"Wallet {i}")) for i in range(3)}
        made.add(lnbits_account.create_wallet("Hand 0")["id"])
        # four wallets: the last page is empty (LNbits then answers total=0)
        assert {w.id for w in small.read(desired_state(lnbits_account.url)).wallets} == made
        made.add(lnbits_account.create_wallet("Hand 1")["id"])
        live = small.read(desired_state(lnbits_account.url)).wallets
    finally:
        small.close()
    assert {w.id for w in live} == made
    assert len(live) == 5
    assert sorted(w.owner.key for w in live if w.owner) == ["w0", "w1", "w2"]


@pytest.mark.lnbits
def test_server_fixture_is_on_loopback(lnbits_server: LnbitsServer) -> None:
    assert lnbits_server.url.startswith("http://127.0.0.1:")
    assert lnbits_server.admin_token
