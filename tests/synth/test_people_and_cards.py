"""Persons, households and cards: valid numbers, consistent flags, realistic shares."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

import pytest
from sqlalchemy import select

from yikatong.catalog.models import Bank
from yikatong.core import crypto
from yikatong.core.idnumber import parse_id_number
from yikatong.core.protect import reveal, search_hash
from yikatong.registry.models import Card, CardStatus, Household, Person
from yikatong.registry.service import refresh_card_flags
from yikatong.security.scope import within
from yikatong.synth.city import BUILD_STAMP, _jobs
from yikatong.synth.numbers import MOBILE_PREFIXES, luhn_valid
from yikatong.synth.people import BENEFICIARY_CARD_RATE, NO_CARD_REASONS, REFERENCE_DATE, generate_township
from yikatong.synth.regions import plan_city

# Other tests add people of their own little areas to the shared database: look at the city's only.
# The synthetic city's own people: tests of other domains add committed persons of their own
# (created on another day), which these counts must not see.
IN_CITY = within(Person.region_code, "511000000000") & (Person.created_at == BUILD_STAMP)
CITY_HOUSEHOLDS = within(Household.region_code, "511000000000") & (Household.created_at == BUILD_STAMP)


@pytest.fixture(scope="module")
def persons(city):
    from yikatong.core.db import new_session

    with new_session() as s:
        return s.scalars(select(Person).where(IN_CITY).order_by(Person.id)).all()


def _city_cards(db) -> list[Card]:
    return db.scalars(select(Card).join(Person, Person.id == Card.person_id).where(IN_CITY)).all()


def test_report_matches_the_database(city, db, persons):
    assert city.persons == len(persons) > 3000
    assert city.households == len(db.scalars(select(Household.id).where(CITY_HOUSEHOLDS)).all())
    assert city.cards == len(_city_cards(db))
    assert city.beneficiaries == sum(p.is_beneficiary for p in persons)
    assert city.beneficiaries_with_card == sum(p.is_beneficiary and p.has_active_card for p in persons)


def test_every_id_number_is_valid_unique_and_agrees_with_the_row(persons):
    seen = set()
    own_county = 0
    for p in persons:
        number = reveal(crypto.ID_NUMBER, p.id_number_enc)
        facts = parse_id_number(number)  # raises on a bad checksum or date
        assert facts.gender == p.gender and facts.birth_date == p.birth_date, p.id
        assert search_hash(crypto.ID_NUMBER, number) == p.id_number_hash
        assert p.id_number_masked == number[:6] + "*" * 8 + number[-4:]
        assert number not in seen
        seen.add(number)
        own_county += number[:6] == p.region_code[:6] or (number[:6] == "511028" and p.region_code[:6] == "511083")
    assert own_county / len(persons) > 0.85  # mostly the person's county; some moved in


def test_age_pyramid_of_an_ageing_sichuan_city(persons):
    ages = [REFERENCE_DATE.year - p.birth_date.year for p in persons]
    elderly = sum(a >= 60 for a in ages) / len(ages)
    children = sum(a < 15 for a in ages) / len(ages)
    assert 0.22 <= elderly <= 0.32  # Neijiang 2020: about 27% aged 60 and over
    assert 0.12 <= children <= 0.21
    assert max(ages) <= 105 and min(p.birth_date for p in persons) > date(1915, 1, 1)
    assert max(p.birth_date for p in persons) <= REFERENCE_DATE


def test_households_have_one_head_and_plausible_members(db, persons):
    members = defaultdict(list)
    for p in persons:
        members[p.household_id].append(p)
    households = {h.id: h for h in db.scalars(select(Household).where(CITY_HOUSEHOLDS))}
    assert set(members) == set(households)
    sizes = Counter(len(m) for m in members.values())
    assert set(sizes) <= set(range(1, 7))
    assert 2.3 <= len(persons) / len(households) <= 2.9
    for hid, group in members.items():
        assert [p.relation for p in group].count("户主") == 1
        household = households[hid]
        assert household.code.startswith(group[0].region_code) and len(household.code) == 17
        assert all(p.region_code == household.region_code for p in group)
        assert household.address.startswith("内江市")
    relations = Counter(p.relation for p in persons)
    assert {"户主", "配偶", "子", "女", "孙子", "孙女", "父亲", "母亲", "儿媳"} <= set(relations)


def test_phones_are_valid_mobile_numbers(persons):
    with_phone = [p for p in persons if p.phone_enc is not None]
    adults = [p for p in persons if 18 <= REFERENCE_DATE.year - p.birth_date.year < 70]
    assert sum(p.phone_enc is not None for p in adults) / len(adults) > 0.85
    for p in with_phone:
        phone = reveal(crypto.PHONE, p.phone_enc)
        assert len(phone) == 11 and phone.isdigit() and phone[:3] in MOBILE_PREFIXES
        assert p.phone_hash == search_hash(crypto.PHONE, phone) and p.phone_masked == phone[:3] + "****" + phone[-4:]


def test_beneficiaries_are_about_41_percent_and_skewed_to_the_elderly(persons):
    share = sum(p.is_beneficiary for p in persons) / len(persons)
    assert 0.37 <= share <= 0.46
    old = [p for p in persons if REFERENCE_DATE.year - p.birth_date.year >= 60]
    young = [p for p in persons if REFERENCE_DATE.year - p.birth_date.year < 60]
    assert sum(p.is_beneficiary for p in old) / len(old) > 2 * sum(p.is_beneficiary for p in young) / len(young)


def test_card_holding_rate_of_beneficiaries_is_99_28_percent(city, persons):
    beneficiaries = [p for p in persons if p.is_beneficiary]
    rate = sum(p.has_active_card for p in beneficiaries) / len(beneficiaries)
    # Systematic sampling per township keeps the rate within a handful of people of the target.
    assert abs(rate - BENEFICIARY_CARD_RATE) < 0.003, rate


def test_card_holding_rate_on_a_larger_sample_without_the_database():
    plan = plan_city(0.05, 3)
    jobs = _jobs(plan, {"households": 1, "persons": 1, "cards": 1}, dates_as_text=False)
    beneficiaries = with_card = 0
    for job in jobs[::6]:
        batch = generate_township(job)
        beneficiaries += batch.beneficiaries
        with_card += batch.beneficiaries_with_card
    assert beneficiaries > 10_000
    assert abs(with_card / beneficiaries - 0.9928) < 0.0008


def test_no_card_reason_is_given_exactly_when_there_is_no_active_card(persons):
    for p in persons:
        assert (p.no_card_reason is None) == p.has_active_card, p.id
        if p.no_card_reason:
            assert p.no_card_reason in NO_CARD_REASONS
    reasons = Counter(p.no_card_reason for p in persons if p.is_beneficiary and not p.has_active_card)
    assert sum(reasons.values()) > 0


def test_has_active_card_agrees_with_the_cards_table(db, persons):
    active = {c.person_id for c in _city_cards(db) if c.status == CardStatus.ACTIVE}
    assert {p.id for p in persons if p.has_active_card} == active
    # ... and with the registry's own recomputation (rolled back afterwards)
    before = dict(db.execute(select(Person.id, Person.has_active_card).where(IN_CITY)).all())
    refresh_card_flags(db, before)
    db.flush()
    after = dict(db.execute(select(Person.id, Person.has_active_card).where(IN_CITY)).all())
    assert after == before
    db.rollback()


def test_cards_numbers_accounts_and_dates(db, persons):
    prefixes = dict(db.execute(select(Bank.code, Bank.account_prefix)).all())
    births = {p.id: p.birth_date for p in persons}
    cards = _city_cards(db)
    assert len({c.card_number for c in cards}) == len(cards)
    accounts = set()
    per_person = Counter()
    for c in cards:
        assert len(c.card_number) == 9 and c.card_number[0].isalpha() and c.card_number[1:].isdigit()
        account = reveal(crypto.BANK_ACCOUNT, c.bank_account_enc)
        assert len(account) == 19 and luhn_valid(account) and account.startswith(prefixes[c.bank_code])
        assert search_hash(crypto.BANK_ACCOUNT, account) == c.bank_account_hash
        accounts.add(account)
        assert date(2010, 1, 1) <= c.issued_on <= date(2025, 12, 31) and c.issued_on >= births[c.person_id]
        assert c.status in {s.value for s in CardStatus}
        if c.status != CardStatus.ACTIVE:
            assert c.status_changed_on is not None and c.status_changed_on >= c.issued_on
        per_person[c.person_id] += c.status == CardStatus.ACTIVE
    assert len(accounts) == len(cards)
    assert max(per_person.values()) == 1  # never two active cards
    statuses = Counter(c.status for c in cards)
    assert statuses[CardStatus.ACTIVE] > 0.9 * len(cards) and statuses[CardStatus.CANCELLED] > 0
    adults = [p for p in persons if not p.is_beneficiary and REFERENCE_DATE.year - p.birth_date.year >= 18]
    assert 0.9 <= sum(p.has_active_card for p in adults) / len(adults) <= 0.99
