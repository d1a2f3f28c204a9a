"""Masks for personal data shown in lists and public notices (个人信息保护法: publish only what is needed)."""

from __future__ import annotations


def mask_id_number(id_number: str) -> str:
    """511025199001011234 -> 511025********1234"""
    if len(id_number) < 10:
        return "*" * len(id_number)
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678"""
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_account(account: str) -> str:
    """6217001234567891234 -> 6217 **** **** 1234"""
    if len(account) < 8:
        return "*" * len(account)
    return f"{account[:4]} **** **** {account[-4:]}"


def mask_name(name: str) -> str:
    """张三 -> 张*, 张小明 -> 张*明, 欧阳小明 -> 欧**明"""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
