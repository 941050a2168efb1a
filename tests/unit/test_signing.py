"""Signer: HMAC-SHA256 of the session id, secret rotation, constant-time comparison."""

from __future__ import annotations

import hmac

import pytest

from redis_sessions._signing import MAX_SIGNED_LENGTH
from redis_sessions.engine import Signer, new_id

NEW = "n" * 32
OLD = "o" * 32
OLDER = "p" * 32


def _flip(text: str, index: int) -> str:
    """`text` with the character at `index` replaced by a different URL-safe character."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def test_signed_value_unsigns_to_the_original_id_and_first_secret():
    sid = new_id()
    signed = Signer(NEW).sign(sid)
    assert signed.startswith(sid + ".")
    assert Signer(NEW).unsign(signed) == (sid, 0)


def test_signature_is_43_url_safe_characters_and_deterministic():
    sid = new_id()
    signature = Signer(NEW).sign(sid).rpartition(".")[2]
    assert len(signature) == 43
    assert Signer(NEW).sign(sid) == Signer(NEW).sign(sid)
    assert Signer(NEW).sign(sid) != Signer(OLD).sign(sid)


def test_bytes_secret_signs_like_the_same_str_secret():
    sid = new_id()
    assert Signer(NEW.encode()).sign(sid) == Signer(NEW).sign(sid)


@pytest.mark.parametrize("position", [0, 10, 42])
def test_flipped_character_in_the_id_is_rejected(position):
    sid = new_id()
    signed = Signer(NEW).sign(sid)
    assert Signer(NEW).unsign(_flip(signed, position)) is None


@pytest.mark.parametrize("position", [-43, -20, -1])
def test_flipped_character_in_the_signature_is_rejected(position):
    signed = Signer(NEW).sign(new_id())
    assert Signer(NEW).unsign(_flip(signed, len(signed) + position)) is None


def test_truncated_signature_is_rejected():
    signed = Signer(NEW).sign(new_id())
    assert Signer(NEW).unsign(signed[:-1]) is None


def test_signature_from_another_secret_is_rejected():
    signed = Signer(OLD).sign(new_id())
    assert Signer(NEW).unsign(signed) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "no-separator-at-all-in-this-value-aaaaaaaaaaaa",
        ".only-a-signature-no-id-aaaaaaaaaaaaaaaaaaaaaa",
        "id-without-signature.",
    ],
)
def test_malformed_value_is_rejected(value):
    assert Signer(NEW).unsign(value) is None


def test_id_without_separator_but_correct_signature_is_rejected():
    sid = new_id()
    signed = Signer(NEW).sign(sid)
    assert Signer(NEW).unsign(signed.replace(".", "")) is None


def test_non_ascii_value_is_rejected_without_error():
    signed = Signer(NEW).sign(new_id())
    assert Signer(NEW).unsign(signed[:-1] + "é") is None
    assert Signer(NEW).unsign("é" + signed) is None


def test_validly_signed_over_long_value_is_rejected():
    long_id = "a" * 200
    signed = Signer(NEW).sign(long_id)
    assert len(signed) > MAX_SIGNED_LENGTH
    assert Signer(NEW).unsign(signed) is None


def test_longest_accepted_id_still_verifies():
    long_id = "a" * 128
    signed = Signer(NEW).sign(long_id)
    assert len(signed) == MAX_SIGNED_LENGTH
    assert Signer(NEW).unsign(signed) == (long_id, 0)


def test_first_of_several_secrets_signs():
    sid = new_id()
    assert Signer([NEW, OLD]).sign(sid) == Signer(NEW).sign(sid)


def test_old_listed_secret_still_verifies_with_its_index():
    sid = new_id()
    signer = Signer([NEW, OLD, OLDER])
    assert signer.unsign(Signer(NEW).sign(sid)) == (sid, 0)
    assert signer.unsign(Signer(OLD).sign(sid)) == (sid, 1)
    assert signer.unsign(Signer(OLDER).sign(sid)) == (sid, 2)


def test_secret_removed_from_the_list_no_longer_verifies():
    signed_with_old = Signer([OLD]).sign(new_id())
    assert Signer([NEW, OLD]).unsign(signed_with_old) is not None
    assert Signer([NEW]).unsign(signed_with_old) is None


@pytest.mark.parametrize("secrets", ["x" * 15, b"x" * 15, ["y" * 32, "short"], [], ""])
def test_short_or_missing_secret_raises_value_error(secrets):
    with pytest.raises(ValueError, match="secret"):
        Signer(secrets)


def test_sixteen_byte_secret_is_accepted():
    assert Signer("x" * 16).unsign(Signer("x" * 16).sign("abc")) == ("abc", 0)


def test_verification_uses_hmac_compare_digest(monkeypatch):
    real = hmac.compare_digest
    calls: list[tuple[object, object]] = []

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("redis_sessions._signing.hmac.compare_digest", spy)
    sid = new_id()
    signed = Signer(NEW).sign(sid)
    signature = signed.rpartition(".")[2]

    assert Signer(NEW).unsign(signed) == (sid, 0)
    assert calls == [(signature, signature)]

    calls.clear()
    tampered = _flip(signed, len(signed) - 1)
    assert Signer([NEW, OLD]).unsign(tampered) is None
    assert len(calls) == 2  # one constant-time comparison per secret
    assert all(tampered.rpartition(".")[2] in pair for pair in calls)
