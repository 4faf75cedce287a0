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
