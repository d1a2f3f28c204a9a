"""Numbers that must look real and never collide: ID numbers, card numbers, bank accounts, phones.

Townships are generated independently (and possibly in parallel), so uniqueness comes from giving
each township its own part of every number space instead of from a shared "already used" set.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from yikatong.core.idnumber import make_id_number

# --- ID numbers --------------------------------------------------------------------------------
# The order code (顺序码, 3 digits) holds 500 sequences per gender for one region code and birth
# date; it once encoded the police station, so splitting it by township is also realistic.
OWN_SEQUENCES = 390  # split between the townships of the county that owns the region code
OTHER_BASE = 390  # 390..499: one sequence per township (110) for people with another region code


class IdAllocator:
    """Hands out unique ID numbers inside one township."""

    def __init__(self, own_codes: set[str], index_in_county: int, townships_in_county: int,
                 index_in_city: int, latest: date):
        self._own = own_codes
        size = max(1, OWN_SEQUENCES // townships_in_county)
        self._own_base, self._own_size = index_in_county * size, size
        self._other_base = OTHER_BASE + index_in_city % (500 - OTHER_BASE)
        self._used: dict[tuple[str, date, bool], int] = {}
        self._latest = latest

    def allocate(self, region6: str, birth: date, male: bool) -> tuple[str, date]:
        """An ID number for this region code, birth date and gender; when that day's sequences of
        the township are used up, the birth date moves by a day (returned with the number)."""
        own = region6 in self._own
        base, size = (self._own_base, self._own_size) if own else (self._other_base, 1)
        step = timedelta(days=1)
        while True:
            key = (region6, birth, male)
            n = self._used.get(key, 0)
            if n < size:
                self._used[key] = n + 1
                return make_id_number(region6, birth, base + n, male), birth
            birth = birth - step if birth + step > self._latest else birth + step


# --- card numbers and bank accounts ---------------------------------------------------------------
CARD_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CARD_SPACE = len(CARD_LETTERS) * 10**8
_CARD_MULT = 1_640_531_527  # coprime with 26 * 10**8, so x -> a*x + c is a permutation
_ACCOUNT_SPACE = 10**12
_ACCOUNT_MULT = 614_889_782_588_491  # odd and not a multiple of 5: a permutation of 10**12


def card_number(serial: int, seed: int) -> str:
    """社会保障卡号: a letter and 8 digits. Distinct serials give distinct numbers."""
    if not 0 <= serial < _CARD_SPACE:
        raise ValueError("card serial out of range")
    y = (_CARD_MULT * serial + seed * 7919 + 12345) % _CARD_SPACE
    return f"{CARD_LETTERS[y // 10**8]}{y % 10**8:08d}"


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # digit -> digit sum of twice the digit
# Luhn sum of every 4-digit group (its 1st and 3rd digits from the right doubled), so a number
# is summed four digits at a time.
_LUHN4 = tuple(_DOUBLED[n % 10] + n // 10 % 10 + _DOUBLED[n // 100 % 10] + n // 1000 for n in range(10_000))


def luhn_digit(body: str) -> str:
    """The Luhn check digit to append to body (ISO/IEC 7812, bank card numbers)."""
    n, total = int(body), 0
    while n:
        n, group = divmod(n, 10_000)
        total += _LUHN4[group]
    return str(-total % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) > 1 and luhn_digit(number[:-1]) == number[-1]


def bank_account(prefix: str, serial: int, seed: int) -> str:
    """A 19-digit card account: the bank's 6-digit BIN, 12 digits, Luhn check digit."""
    body = (_ACCOUNT_MULT * serial + seed * 104729 + 987654321) % _ACCOUNT_SPACE
    number = f"{prefix}{body:012d}"
    return number + luhn_digit(number)


# --- mobile phones ------------------------------------------------------------------------------
MOBILE_PREFIXES = (
    "134 135 136 137 138 139 147 150 151 152 157 158 159 178 182 183 184 187 188 195 198 "  # 移动
    "130 131 132 145 155 156 166 175 176 185 186 196 "  # 联通
    "133 149 153 173 177 180 181 189 190 191 193 199"  # 电信
).split()


def mobile_number(rng: random.Random) -> str:
    return MOBILE_PREFIXES[int(rng.random() * len(MOBILE_PREFIXES))] + f"{int(rng.random() * 10**8):08d}"
