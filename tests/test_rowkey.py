"""The Rij-ID (docs/workbook.md): keyed, stable, per municipality, in Crockford base32."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agii_sync.domain.row import ROW_ID_PATTERN
from agii_sync.domain.rowkey import CROCKFORD_ALPHABET, row_key

SECRET = b"test-rowkey-secret-0123456789abcdef"


def reference_key(secret: bytes, nis: str, dossier: str) -> str:
    """The same key computed another way: RFC 4648 base32 re-lettered as Crockford."""
    digest = hmac.new(secret, f"{nis}:{dossier}".encode(), hashlib.sha256).digest()
    rfc = base64.b32encode(digest).decode()[:10]  # 10 characters = the first 50 bits
    crockford = rfc.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD_ALPHABET))
    return f"{crockford[:5]}-{crockford[5:]}"


def test_key_format_matches_the_workbook_pattern() -> None:
    for n in range(200):
        assert re.fullmatch(ROW_ID_PATTERN, row_key(SECRET, "23077", f"A{n:07d}"))


def test_key_is_hmac_sha256_of_nis_and_dossier() -> None:
    assert row_key(SECRET, "23077", "A1234567") == reference_key(SECRET, "23077", "A1234567")


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.text(alphabet="AZ09-/.", min_size=1, max_size=32))
def test_every_key_is_the_reference_key(secret: bytes, dossier: str) -> None:
    assert row_key(secret, "12025", dossier) == reference_key(secret, "12025", dossier)


def test_key_is_stable() -> None:
    assert row_key(SECRET, "23077", "A1234567") == row_key(SECRET, "23077", "A1234567")
    assert row_key(b"k", "23077", "A1234567") == "EACSZ-B4KQ3"  # pinned: never change silently


def test_dossier_is_normalised_before_hashing() -> None:
    assert row_key(SECRET, "23077", "  a1234567 ") == row_key(SECRET, "23077", "A1234567")


def test_same_person_in_two_municipalities_has_unrelated_keys() -> None:
    first = row_key(SECRET, "23077", "A1234567")
    second = row_key(SECRET, "12025", "A1234567")
    assert first != second
    shared = sum(
        a == b for a, b in zip(first.replace("-", ""), second.replace("-", ""), strict=True)
    )
    assert shared <= 4  # no common structure beyond chance


def test_key_depends_on_the_secret_and_hides_the_dossier() -> None:
    assert row_key(SECRET, "23077", "A1234567") != row_key(b"other", "23077", "A1234567")
    assert "1234567" not in row_key(SECRET, "23077", "A1234567")


def test_keys_do_not_collide_in_a_realistic_file() -> None:
    keys = {row_key(SECRET, "23077", f"A{n:07d}") for n in range(20_000)}
    assert len(keys) == 20_000


@pytest.mark.parametrize("nis", ["2307", "230777", "2307:", "２３０７７", ""])
def test_nis_must_be_five_digits(nis: str) -> None:
    with pytest.raises(ValueError):
        row_key(SECRET, nis, "A1")


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        row_key(b"", "23077", "A1")
