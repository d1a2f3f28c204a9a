"""Chinese personal names drawn from Faker's zh_CN lists, sampled with our own seeded RNG.

Calling Faker once per person is far too slow for 3 million people, so its lists are read once and
sampled with `random.Random`: surnames by Faker's frequency weights, given names from its male and
female lists. Most given names get a second character, as most real Chinese names have three
characters (surname + two).
"""

from __future__ import annotations

import random
from bisect import bisect_left
from functools import lru_cache
from itertools import accumulate

from faker.providers.person.zh_CN import Provider as _ZhCN


def _single_chars(names: list[str]) -> list[str]:
    return sorted({c for n in names for c in n})


@lru_cache
def _lists() -> tuple[list[str], list[float], list[str], list[str], list[str], list[str]]:
    surnames = list(_ZhCN.last_names)  # an OrderedDict name -> frequency (percent)
    weights = list(accumulate(float(_ZhCN.last_names[s]) for s in surnames))
    male = list(_ZhCN.first_names_male)
    female = list(_ZhCN.first_names_female)
    return surnames, weights, male, female, _single_chars(male), _single_chars(female)


class NamePicker:
    def __init__(self, rng: random.Random):
        self._rng = rng
        (self._surnames, self._cum, self._male, self._female,
         self._male_chars, self._female_chars) = _lists()
        self._total = self._cum[-1]

    def surname(self) -> str:
        return self._surnames[bisect_left(self._cum, self._rng.random() * self._total)]

    def given_name(self, male: bool) -> str:
        rng = self._rng
        pool = self._male if male else self._female
        name = pool[int(rng.random() * len(pool))]
        if len(name) == 1 and rng.random() < 0.72:
            chars = self._male_chars if male else self._female_chars
            second = chars[int(rng.random() * len(chars))]
            if second != name:
                # Either order reads like a name (建华 / 华建 are both seen); keep Faker's char first.
                name = name + second
        return name

    def full_name(self, male: bool, surname: str | None = None) -> str:
        return (surname or self.surname()) + self.given_name(male)
