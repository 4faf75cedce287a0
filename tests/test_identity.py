"""Deterministic ids and ownership labels."""

from __future__ import annotations

import uuid

from tests.factories import ENV, ORG
from voltage_iac import identity
from voltage_iac.model import Ownership


def test_ids_are_deterministic_and_distinct_per_input():
    a = identity.wallet_id(ORG, ENV, "acme", "payouts", 0)
    assert a == identity.wallet_id(ORG.upper(), ENV, "acme", "payouts", 0)
    assert uuid.UUID(a).version == 5
    others = {
        identity.wallet_id(ORG, ENV, "acme", "payouts", 1),
        identity.wallet_id(ORG, ENV, "other", "payouts", 0),
        identity.wallet_id(ORG, ENV, "acme", "payroll", 0),
    }
    assert a not in others and len(others) == 3


def test_labels_round_trip_and_user_metadata_is_separated():
    meta = identity.with_labels({"team": "payouts"}, "acme", "payouts", 2)
    user, owner = identity.split_labels(meta)
    assert user == {"team": "payouts"}
    assert owner == Ownership("acme", "payouts", 2)


def test_missing_or_partial_labels_mean_unowned():
    assert identity.split_labels({"team": "x"})[1] is None
    assert identity.split_labels({identity.LABEL_STACK: "acme"})[1] is None


def test_reserved_prefix_is_case_insensitive():
    assert identity.is_reserved_label("Voltage-IAC.stack")
    assert not identity.is_reserved_label("voltage")


# Golden ids: wallets already created carry these ids. A change of the namespace, the
# join format, the canonical spelling of its parts or the generation counting would give
# existing wallets other ids, so the next plan would create them again: it must not pass.
GOLDEN = [
    # (organization, environment, stack, key, generation) -> id
    (
        ("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "5a0c7e9e-2b1d-4f3a-9c8e-1d2e3f4a5b6c"),
        ("quickstart", "payouts-eu", 0),
        "28d5445a-a791-584e-bf50-4c1a2fe0b79e",
    ),
    (
        ("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "5a0c7e9e-2b1d-4f3a-9c8e-1d2e3f4a5b6c"),
        ("quickstart", "payroll", 0),
        "48e1cd72-0f05-5def-ae38-85a06735f74a",
    ),
    (
        ("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "5a0c7e9e-2b1d-4f3a-9c8e-1d2e3f4a5b6c"),
        ("quickstart", "treasury", 0),
        "39b59710-a6e3-5955-bdba-1cc72ce7c469",
    ),
]


def test_golden_wallet_ids_never_change():
    for (org, env), (stack, key, generation), expected in GOLDEN:
        assert identity.wallet_id(org, env, stack, key, generation) == expected
        # the same wallet named with upper-case UUIDs is still the same wallet
        assert identity.wallet_id(org.upper(), env.upper(), stack, key, generation) == expected
    assert str(identity.WALLET_NAMESPACE) == "8f4f2a3e-6c1b-5d0e-9a57-3b2f0c9d1e64"


def test_golden_ids_of_later_generations():
    org, env = GOLDEN[0][0]
    ids = [identity.wallet_id(org, env, "quickstart", "payouts-eu", g) for g in range(3)]
    assert ids[0] == "28d5445a-a791-584e-bf50-4c1a2fe0b79e"
    assert len(set(ids)) == 3
    assert ids[1] == str(
        uuid.uuid5(identity.WALLET_NAMESPACE, f"{org}/{env}/quickstart/payouts-eu/1")
    )


def test_protection_is_a_reserved_label_that_never_reads_as_user_metadata():
    meta = identity.with_labels({"team": "vault"}, "acme", "vault", 0, protect=True)
    assert meta[identity.LABEL_PROTECT] == "true"
    user, owner = identity.split_labels(meta)
    assert user == {"team": "vault"} and owner == Ownership("acme", "vault", 0)
    assert identity.is_protected(meta)
    assert not identity.is_protected(identity.with_labels({}, "acme", "vault", 0))
