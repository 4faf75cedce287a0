"""Property tests of the configuration loader against arbitrary and hostile input.

Whatever the bytes, `load_config` either returns a `DesiredState` or raises
`ConfigError` (exit code 3) with located issues; it never lets another exception out,
and no call runs away (a generous bound against a hang; speed is measured in
benchmarks/bench_config.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voltage_iac.config import load_config
from voltage_iac.errors import EXIT_INVALID, ConfigError
from voltage_iac.model import DesiredState

SETTINGS = settings(
    max_examples=200,
    deadline=None,  # no timed assertion; HANG_SECONDS bounds each call
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HANG_SECONDS = 30.0  # a hang, not a measure of speed
ENVIRON = {"ORG": "123e4567-e89b-12d3-a456-426614174000", "EMPTY": ""}
SAFETY_NET = "the configuration is incomplete"


def _load(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    started = time.perf_counter()
    try:
        state = load_config(path, environ=ENVIRON)
    except ConfigError as exc:
        assert exc.exit_code == EXIT_INVALID
        assert exc.issues, "a ConfigError must carry at least one issue"
        for issue in exc.issues:
            assert issue.message
            assert issue.message != SAFETY_NET, "every rejection must say what is wrong"
            assert issue.line is None or issue.line >= 1
            assert issue.column is None or issue.column >= 1
        str(exc)  # the message can always be rendered
    else:
        assert isinstance(state, DesiredState)
        assert len(state.digest) == 64
    assert time.perf_counter() - started < HANG_SECONDS


@SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_config_error(tmp_path: Path, data: bytes) -> None:
    _load(tmp_path, data)


YAML_PIECES = st.sampled_from(
    [
        *"abcz019 \n\t-:,[]{}&*!|>'\"#%@`?<=~.$_\\",
        *["${", "$${", "${ORG}", "${UNSET}", "<<: ", "&a ", "*a", "---\n", "\ufeff", "é"],
        *["version: 1\n", "stack: acme\n", "wallets:\n", "  w:\n", "    name: ", "\x00"],
    ]
)
YAMLISH = st.lists(YAML_PIECES, max_size=120).map("".join)


@SETTINGS
@given(YAMLISH)
def test_yaml_like_text_only_raises_config_error(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text.encode("utf-8", errors="surrogatepass"))


ORG = "123e4567-e89b-12d3-a456-426614174000"
ENV_ID = "7a68a525-9d11-4c1e-a3dd-1c2bf1378ba2"
LOC_ID = "7df75323-84f1-4699-97da-776380a0aa81"

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["${ORG}", "${UNSET}", "${EMPTY}", "$${X}", "${1}", "0.001 btc", "5 sat"]),
)
values = st.recursive(
    junk,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, values)


wallet = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(st.sampled_from(["Payouts", "payouts", " Payouts ", "ab", "x" * 300])),
        "environment": maybe(st.sampled_from(["staging", "prod"])),
        "line_of_credit": maybe(st.just("main")),
        "limit": maybe(st.sampled_from([0, 1000, "0.001 btc", "1.5 msat", 2**64, -1, 1.5])),
        "metadata": maybe(
            st.dictionaries(st.sampled_from(["team", "Team", "voltage-iac.k"]), junk)
        ),
        "policies": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "max_payment_size_sats": maybe(st.sampled_from([1, 0, 2**64])),
                    "processing_fee": maybe(
                        st.fixed_dictionaries(
                            {"send_basis_points": junk, "receive_basis_points": junk}
                        )
                    ),
                    "ofac_compliant": junk,
                },
            )
        ),
        "protect": junk,
        "id": maybe(st.just(ENV_ID)),
        "ignore": maybe(st.lists(st.text(max_size=8), max_size=2)),
    },
)
document = st.fixed_dictionaries(
    {},
    optional={
        "version": maybe(st.just(1)),
        "stack": maybe(st.sampled_from(["acme", "Acme", ""])),
        "provider": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "kind": maybe(st.sampled_from(["voltage", "lnbits"])),
                    "organization_id": maybe(st.sampled_from([ORG, "${ORG}"])),
                    "api_url": maybe(st.sampled_from(["emulator", "http://x", "x"])),
                    "url": maybe(st.sampled_from(["http://127.0.0.1:5000", "nope"])),
                },
            )
        ),
        "environments": maybe(
            st.dictionaries(
                st.sampled_from(["staging", "prod", "Bad"]),
                maybe(st.fixed_dictionaries({"id": maybe(st.just(ENV_ID)), "network": junk})),
                max_size=2,
            )
        ),
        "lines_of_credit": maybe(st.dictionaries(st.just("main"), maybe(st.just(LOC_ID)))),
        "wallets": maybe(
            st.dictionaries(st.sampled_from(["a", "b", "B", "c.d"]), wallet, max_size=3)
        ),
        "guards": maybe(st.dictionaries(st.sampled_from(["mass_change_share", "x"]), junk)),
        "ignore": maybe(st.lists(st.text(max_size=10), max_size=2)),
    },
)


valid_wallet = st.fixed_dictionaries(
    {
        "environment": st.just("staging"),
        "line_of_credit": st.just("main"),
        "limit": st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(["0.001 btc", "50 sat"])),
    },
    optional={
        "metadata": st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text()),
        "policies": st.fixed_dictionaries(
            {}, optional={"transactions_per_minute": st.integers(1, 2**64 - 1)}
        ),
        "protect": st.booleans(),
    },
)


@st.composite
def mutated_valid_document(draw: st.DrawFn) -> dict[str, Any]:
    """A valid configuration, then up to two values replaced by arbitrary ones."""
    keys = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), max_size=4))
    wallets = {}
    for index, key in enumerate(dict.fromkeys(keys)):
        wallets[key] = {"name": f"Wallet {index}", **draw(valid_wallet)}
    doc: dict[str, Any] = {
        "version": 1,
        "stack": "acme",
        "provider": {"organization_id": "${ORG}"},
        "environments": {"staging": {"id": ENV_ID, "network": "mutinynet"}},
        "lines_of_credit": {"main": LOC_ID},
        "wallets": wallets,
    }
    for _ in range(draw(st.integers(0, 2))):
        target = doc
        while True:
            key = draw(st.sampled_from(sorted(target)))
            if isinstance(target[key], dict) and target[key] and draw(st.booleans()):
                target = target[key]
                continue
            target[key] = draw(values)
            break
    return doc


@SETTINGS
@given(st.one_of(document, mutated_valid_document()))
def test_structured_documents_load_or_raise_config_error(tmp_path: Path, doc: Any) -> None:
    _load(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass"))
