"""A wallet listing parsed one wallet at a time (`VoltageClient.scan_wallets`) gives what
the whole-answer parse (`list_wallets`) gives: the same wallets in the same order, and
for a bad answer the same error message, however the text falls across the pieces it is
decoded in. The provider's read of a large environment relies on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voltage_iac import client as client_module
from voltage_iac.client import VoltageClient
from voltage_iac.errors import MalformedResponseError
from voltage_iac.secret import Secret

ORG = "0b9c1e7e-55a2-4f2b-9a53-0f6a3f1f0a01"
ENV = "123e4567-e89b-12d3-a456-426614174000"


class Serve:
    body = b"[]"


@pytest.fixture
def served() -> Iterator[tuple[Serve, VoltageClient]]:
    serve = Serve()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=serve.body)

    client = VoltageClient(
        "https://api.voltage.test/v1",
        Secret("sk-test-listing-scan"),
        transport=httpx.MockTransport(handler),
        max_attempts=1,
    )
    yield serve, client
    client.close()


@pytest.fixture(params=[1, 3, 7, 64, 1 << 20], ids=lambda n: f"piece{n}")
def piece(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(client_module._Window, "PIECE", request.param)
    return int(request.param)


def both(client: VoltageClient) -> tuple[Any, Any]:
    """(what list_wallets gives, what scan_wallets gives): a list or the error message."""
    try:
        whole: Any = client.list_wallets(ORG, ENV, inactive=True)
    except MalformedResponseError as exc:
        whole = ("error", exc.message)
    seen: list[dict[str, Any]] = []
    try:
        count = client.scan_wallets(ORG, ENV, seen.append, inactive=True)
        scanned: Any = seen
        assert count == len(seen)
    except MalformedResponseError as exc:
        scanned = ("error", exc.message)
    return whole, scanned


WALLETS = [
    {"id": "a", "name": "Zahlungen \u00fcber \u20ac", "limit": 12345678901234567890},
    {"id": "b", "name": "emoji \U0001f600", "metadata": {"k": "v"}, "balances": []},
    {"id": "c", "ratio": 1.5e-3, "flags": [True, False, None], "nested": {"a": [1, {"b": 2}]}},
]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(WALLETS).encode(),
        json.dumps(WALLETS, indent=3).encode(),
        json.dumps(WALLETS, ensure_ascii=False).encode(),
        b"\xef\xbb\xbf" + json.dumps(WALLETS, ensure_ascii=False).encode(),
        json.dumps(WALLETS, ensure_ascii=False).encode("utf-16"),
        b"  [ ]  ",
        b"[]",
        b"\n[\n{}\n]\n",
    ],
    ids=["compact", "indented", "utf8", "utf8-bom", "utf16", "empty-spaced", "empty", "one"],
)
def test_valid_listings_give_the_same_wallets(
    served: tuple[Serve, VoltageClient], piece: int, body: bytes
) -> None:
    serve, client = served
    serve.body = body
    whole, scanned = both(client)
    assert isinstance(whole, list)
    assert scanned == whole


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>",
        b'{"a": 1}',
        b'"text"',
        b"[1, 2]",
        b'[{"id": "a"}, 12345]',
        b'[{"id": "a"}, "x", {"id": "b"}]',
        b'[{"id": "a"},]',
        b'[{"id": "a"} {"id": "b"}]',
        b'[{"id": "a"}',
        b'[{"id": "a"}] extra',
        b'[{"id": "a"}][]',
        b'[{"id": "a", "name": "cut',
        b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]",
        b'[{"id": "\xff"}]',
        b"[NaN]",
        b"[0.0]",
        b"[1e5, -0.25, 12345678901234567890.5e-3]",
        b'[{"id": "a"}, -Infinity]',
    ],
)
def test_bad_listings_give_the_same_error(
    served: tuple[Serve, VoltageClient], piece: int, body: bytes
) -> None:
    serve, client = served
    serve.body = body
    whole, scanned = both(client)
    assert whole[0] == "error"
    assert scanned == whole


def test_the_first_error_of_a_wallet_waits_for_the_whole_answer(
    served: tuple[Serve, VoltageClient],
) -> None:
    """A bad answer is refused as such even when a wallet before the fault fails to
    parse; then the wallet's own error is raised, and nothing after it is handed on."""
    serve, client = served
    seen: list[str] = []

    def take(item: dict[str, Any]) -> None:
        if item["id"] == "bad":
            raise MalformedResponseError("wallet bad: no name")
        seen.append(item["id"])

    serve.body = b'[{"id": "ok"}, {"id": "bad"}, {"id": "after"}, 7]'
    with pytest.raises(MalformedResponseError) as caught:
        client.scan_wallets(ORG, ENV, take, inactive=True)
    assert "item 3 of the answer is a number" in caught.value.message
    serve.body = b'[{"id": "ok"}, {"id": "bad"}, {"id": "after"}'
    with pytest.raises(MalformedResponseError) as caught:
        client.scan_wallets(ORG, ENV, take, inactive=True)
    assert "is not JSON" in caught.value.message
    seen.clear()
    serve.body = b'[{"id": "ok"}, {"id": "bad"}, {"id": "after"}]'
    with pytest.raises(MalformedResponseError) as caught:
        client.scan_wallets(ORG, ENV, take, inactive=True)
    assert caught.value.message == "wallet bad: no name"
    assert seen == ["ok"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
items = st.lists(
    st.dictionaries(st.text(max_size=4), json_values, max_size=4) | json_values, max_size=6
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=items,
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
    size=st.integers(min_value=1, max_value=40),
)
def test_any_answer_gives_what_the_whole_parse_gives(
    served: tuple[Serve, VoltageClient],
    monkeypatch: pytest.MonkeyPatch,
    data: list[Any],
    indent: int | None,
    ascii_only: bool,
    cut: int | None,
    size: int,
) -> None:
    serve, client = served
    monkeypatch.setattr(client_module._Window, "PIECE", size)
    body = json.dumps(data, indent=indent, ensure_ascii=ascii_only).encode()
    if cut is not None:
        body = body[:cut]
    serve.body = body
    whole, scanned = both(client)
    assert scanned == whole
