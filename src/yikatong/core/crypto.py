"""Field encryption (AES-256-GCM) and searchable keyed hashes (HMAC-SHA256) for personal data.

ID numbers, phones and bank accounts are stored as ciphertext plus a keyed hash: the hash finds and
joins records without decrypting; only a user whose duty needs the clear value decrypts it, and that
read is audited. Both keys are derived from YKT_SECRET_KEY with HKDF, each for its own purpose.
The first byte of a ciphertext is the key version, so keys can be rotated (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from yikatong.core.settings import get_settings

KEY_VERSION = 1


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yikatong", info=purpose).derive(secret.encode())


class FieldCipher:
    def __init__(self, secret: str):
        self._aead = AESGCM(_derive(secret, b"field-encryption-v1"))
        self._hash_key = _derive(secret, b"field-search-hash-v1")

    def encrypt(self, field: str, value: str) -> bytes:
        """The field name is bound as associated data: an ID ciphertext cannot pass as a phone."""
        nonce = os.urandom(12)
        return bytes([KEY_VERSION]) + nonce + self._aead.encrypt(nonce, value.encode(), field.encode())

    def decrypt(self, field: str, blob: bytes) -> str:
        if not blob or blob[0] != KEY_VERSION:
            raise ValueError("unknown key version")
        return self._aead.decrypt(blob[1:13], blob[13:], field.encode()).decode()

    def search_hash(self, field: str, value: str) -> str:
        """Keyed hash for exact search and joins; same value and field -> same hash in every table."""
        digest = hmac.new(self._hash_key, f"{field}:{value}".encode(), hashlib.sha256).hexdigest()
        return digest[:32]


@lru_cache
def cipher() -> FieldCipher:
    return FieldCipher(get_settings().secret_key)


def reset_cipher() -> None:
    cipher.cache_clear()


# Field names: one per kind of secret, shared by every table that stores that kind.
ID_NUMBER = "id_number"
PHONE = "phone"
BANK_ACCOUNT = "bank_account"
