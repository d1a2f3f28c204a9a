"""Protect a piece of personal data for storage: ciphertext, searchable hash and display mask."""

from __future__ import annotations

from typing import NamedTuple

from yikatong.core import crypto, masking


class Protected(NamedTuple):
    enc: bytes
    hash: str
    masked: str


_MASKS = {
    crypto.ID_NUMBER: masking.mask_id_number,
    crypto.PHONE: masking.mask_phone,
    crypto.BANK_ACCOUNT: masking.mask_account,
}


def protect(field: str, value: str) -> Protected:
    c = crypto.cipher()
    return Protected(c.encrypt(field, value), c.search_hash(field, value), _MASKS[field](value))


def search_hash(field: str, value: str) -> str:
    return crypto.cipher().search_hash(field, value)


def reveal(field: str, blob: bytes) -> str:
    """Decrypt. Callers that show the result to a user must audit it (registry.service.reveal)."""
    return crypto.cipher().decrypt(field, blob)
