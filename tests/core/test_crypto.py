import pytest
from cryptography.exceptions import InvalidTag

from yikatong.core.crypto import FieldCipher


def test_round_trip_and_fresh_nonce():
    c = FieldCipher("k1")
    a = c.encrypt("id_number", "511025199001011234")
    b = c.encrypt("id_number", "511025199001011234")
    assert a != b  # random nonce: equal values do not give equal ciphertexts
    assert b"511025" not in a
    assert c.decrypt("id_number", a) == c.decrypt("id_number", b) == "511025199001011234"


def test_ciphertext_is_bound_to_its_field_and_key():
    c = FieldCipher("k1")
    blob = c.encrypt("id_number", "511025199001011234")
    with pytest.raises(InvalidTag):
        c.decrypt("phone", blob)
    with pytest.raises(InvalidTag):
        FieldCipher("another key").decrypt("id_number", blob)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(InvalidTag):
        c.decrypt("id_number", tampered)


def test_search_hash_is_deterministic_keyed_and_field_separated():
    c = FieldCipher("k1")
    assert c.search_hash("id_number", "x") == c.search_hash("id_number", "x")
    assert c.search_hash("id_number", "x") != c.search_hash("phone", "x")
    assert c.search_hash("id_number", "x") != FieldCipher("k2").search_hash("id_number", "x")
    assert len(c.search_hash("id_number", "x")) == 32
