"""The secret type never shows its value."""

from __future__ import annotations

import pickle

import pytest

from voltage_iac.secret import Secret, redact


def test_repr_and_str_are_redacted():
    s = Secret("sk-live-DISTINCTIVE")
    assert "DISTINCTIVE" not in repr(s)
    assert "DISTINCTIVE" not in str(s)
    assert "DISTINCTIVE" not in f"{s} {s!r} {[s]}"
    assert s.reveal() == "sk-live-DISTINCTIVE"


def test_cannot_be_pickled():
    with pytest.raises(TypeError):
        pickle.dumps(Secret("x"))


def test_redact():
    assert redact("key=abc123 here", Secret("abc123")) == "key=*** here"
