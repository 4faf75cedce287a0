"""The secret type never shows its value."""

from __future__ import annotations

import pickle

import pytest

from voltage_iac.secret import FRAGMENT_CHARS, Secret, redact

KEY = "vk-live-Zq8Yh3Ld0pKe7Rw1Xc2Vb7Nn5s"


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


def test_a_fragment_of_eight_or_more_characters_is_masked_wherever_it_appears():
    key = Secret(KEY)
    assert redact(f"bad key {KEY[3:19]}!", key) == "bad key ***!"
    assert redact(f"{KEY[:8]}", key) == "***"
    assert redact(f"start {KEY[-8:]} end", key) == "start *** end"
    assert redact(f"a {KEY[2:12]} b {KEY[20:30]} c", key) == "a *** b *** c"
    assert redact(f"whole {KEY} key", key) == "whole *** key"


def test_runs_shorter_than_eight_characters_are_left_alone():
    key = Secret(KEY)
    seven = KEY[5:12]
    assert len(seven) == FRAGMENT_CHARS - 1
    assert redact(f"id {seven} here", key) == f"id {seven} here"
    assert redact("the wallet list is complete", key) == "the wallet list is complete"


def test_overlapping_and_adjacent_fragments_merge_into_one_mask():
    key = Secret(KEY)
    assert redact(KEY[0:12] + KEY[10:24], key) == "***"
    assert redact("x" + KEY[5:20] + KEY[5:20] + "y", key) == "x***y"


def test_short_secrets_keep_whole_value_masking():
    assert redact("dev key dev", Secret("dev")) == "*** key ***"
    assert redact("device", Secret("devices")) == "device"  # not whole: not masked
    assert redact("my devices", Secret("devices")) == "my ***"


def test_several_secrets_and_none_are_all_handled():
    token, password = Secret("lnbits-token-ABCDEFGHIJ"), Secret("pass-word-0123456789")
    text = f"token-ABCDEFG / word-01234567 / {None}"
    assert redact(text, token, None, password) == "*** / *** / None"


def test_special_characters_in_a_secret_are_taken_literally():
    key = Secret("a.b*c+d?e(f)g[h]i|j^k$")
    assert redact("x a.b*c+d?e(f) y", key) == "x *** y"
    assert redact("x aXbXcXdXeXf y", key) == "x aXbXcXdXeXf y"


def test_long_texts_are_scanned_once_per_secret():
    key = Secret(KEY)
    text = ("no secret here, just words. " * 40_000) + KEY[7:23]
    assert redact(text, key).endswith("just words. ***")
    assert key.fragments() is key.fragments()  # the pattern is built once per secret
