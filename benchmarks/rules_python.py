"""The 20 built-in interception rules in plain Python, one application at a time (逐条比对).

This is the way a legacy system checks claims: load the tables once into per-key indexes (a dict by
person id, by ID-number hash, by household, by bank account, by card number), then for each
application look up its related rows and test every rule in turn. It exists only to be measured
against the set-based DuckDB rules (benchmarks/interception.py) and to check them: for every
application it must name exactly the rules whose SQL in src/yikatong/interception/rules/*.sql hits it
(the evidence text is not rebuilt; which applications are hit is what is compared, and for the rules
in FACTS the fact key of each hit too).

Inputs are plain Python tuples fetched from the same snapshot the rules run on
(`interception.snapshot.city_snapshot` or `focus_snapshot`). The rule parameters ($pension_limit_fen,
...) and each rule's item scope (`-- items:`) are read from the rule files, so changing a default in a
file changes both sides.

SQL's NULL logic is followed where a column may be NULL (a NULL comparison is not a hit; a NULL key
joins nothing). The engine also drops a hit whose evidence text is NULL; with these rules that only
happens when a required column of a shared data set is NULL, which the import refuses, so it is not
repeated here.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from yikatong.interception.rulefile import ItemScope, RuleSpec, builtin_rules

# DuckDB's trim() removes the Unicode space separators (category Zs) at both ends, not tabs or newlines.
_SPACES = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_STATUS_RANK = {"注销": 4, "冻结": 3, "挂失": 2}  # anything else (正常) ranks 1, as in the SQL's CASE
FETCH = 100_000


def trim(value: str) -> str:
    return value.strip(_SPACES)


# ---------------------------------------------------------------- rows (only the columns the rules read)


class App(NamedTuple):
    application_id: int
    item_code: str
    person_id: int
    household_id: int | None
    region_code: str
    period_start: date
    period_end: date
    basis: str
    quantity_centi: int
    amount_fen: int
    period_standard_fen: int | None  # the standard in force for the period (the snapshot works it out)


class Person(NamedTuple):
    person_id: int
    id_hash: str | None
    name: str | None
    birth_date: date | None
    household_id: int | None


class Item(NamedTuple):
    item_code: str
    name: str
    basis: str
    standard_fen: int
    means_tested: bool | None
    min_age: int | None
    max_age: int | None


class Card(NamedTuple):
    card_number: str
    person_id: int
    account_hash: str | None
    status: str | None


class Proxy(NamedTuple):
    holder_id_hash: str | None
    valid_from: date | None
    valid_until: date | None


class Hukou(NamedTuple):
    name: str | None
    region_code: str | None
    status: str | None
    moved_out_on: date | None


class Span(NamedTuple):  # payroll (start_on, end_on), prisoners (custody_from, custody_to)
    start: date | None
    end: date | None


class Dated(NamedTuple):  # deaths, real_estate: one date
    on: date | None


class Valued(NamedTuple):  # retirees (pension_fen, retired_on), vehicles (value_fen, registered_on)
    value: int | None
    on: date | None


class Business(NamedTuple):
    status: str | None
    registered_on: date | None


class Cadre(NamedTuple):
    region_code: str | None


class RegistryRow(NamedTuple):
    id_hash: str | None
    status: str | None
    changed_on: date | None
    snapshot_id: int


class OtherPayment(NamedTuple):
    item_code: str | None
    period_start: date | None
    period_end: date | None


# ---------------------------------------------------------------- the world: tables loaded once, indexed by key


@dataclass
class World:
    applications: list[App]
    persons: dict[int, Person]
    items: dict[str, Item]
    apps_by_person: dict[int, list[App]]
    apps_by_household: dict[int, list[App]]
    cards_by_person: dict[int, list[Card]]
    cards_by_account: dict[str, list[Card]]
    proxies_by_person: dict[int, list[Proxy]]
    exclusive: dict[str, set[str]]  # item -> items it excludes (both directions)
    hukou: dict[str, list[Hukou]]
    hukou_counties: set[str]  # six-digit county codes the hukou delivery covers
    deaths: dict[str, list[Dated]]
    payroll: dict[str, list[Span]]
    retirees: dict[str, list[Valued]]
    vehicles: dict[str, list[Valued]]
    businesses: dict[str, list[Business]]
    real_estate: dict[str, list[Dated]]
    prisoners: dict[str, list[Span]]
    village_cadres: dict[str, list[Cadre]]
    card_registry: dict[str, list[RegistryRow]]
    other_payments: dict[str, list[OtherPayment]]
    params: dict[str, int] = field(default_factory=dict)
    scopes: dict[str, ItemScope] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows loaded


def _fetch(con, sql: str) -> Iterator[tuple]:
    """Rows of a DuckDB query in batches (the whole result is consumed before the next query)."""
    cursor = con.execute(sql)
    while True:
        batch = cursor.fetchmany(FETCH)
        if not batch:
            return
        yield from batch


def _index(rows: Iterable[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    """{key: [value, ...]} from (key, value) pairs; a NULL key joins nothing and is left out."""
    out: dict[Any, list[Any]] = {}
    for key, value in rows:
        if key is None:
            continue
        bucket = out.get(key)
        if bucket is None:
            out[key] = [value]
        else:
            bucket.append(value)
    return out


def load_world(con, specs: list[RuleSpec] | None = None) -> World:
    """Read the snapshot's tables (DuckDB connection `con`) into Python tuples and per-key indexes.
    Repeated values (codes, names, statuses, dates) are shared, not copied per row, so a city of
    millions fits in memory; ID-number hashes and ids are kept as they come."""
    specs = specs if specs is not None else builtin_rules()
    intern = sys.intern
    dates: dict[date, date] = {}
    day = dates.setdefault

    def s(value: str | None) -> str | None:
        return value if value is None else intern(value)

    def d(value: date | None) -> date | None:
        return value if value is None else day(value, value)

    rows: dict[str, int] = {}
    applications = [
        App(i, intern(item), person, household, intern(region), day(start, start), day(end, end), intern(basis),
            quantity, amount, standard)
        for i, item, person, household, region, start, end, basis, quantity, amount, standard in _fetch(
            con, "SELECT application_id, item_code, person_id, household_id, region_code, period_start, period_end, "
                 "basis, quantity_centi, amount_fen, period_standard_fen FROM applications")]
    persons = {pid: Person(pid, id_hash, s(name), d(born), household) for pid, id_hash, name, born, household in _fetch(
        con, "SELECT person_id, id_hash, name, birth_date, household_id FROM persons")}
    items = {r[0]: Item._make(r) for r in _fetch(
        con, "SELECT item_code, name, basis, standard_fen, means_tested, min_age, max_age FROM items")}
    exclusive: dict[str, set[str]] = {}
    for a, b in _fetch(con, "SELECT item_code, other_code FROM item_exclusions"):
        if a is not None and b is not None:
            exclusive.setdefault(a, set()).add(b)
            exclusive.setdefault(b, set()).add(a)
    cards = [Card(number, person, account, s(status)) for number, person, account, status
             in _fetch(con, "SELECT card_number, person_id, account_hash, status FROM cards")]
    rows.update(applications=len(applications), persons=len(persons), cards=len(cards))
    counties = {r[0] for r in _fetch(con, "SELECT DISTINCT left(region_code, 6) FROM hukou") if r[0] is not None}

    def by_hash(sql: str, make: Callable[..., Any], *kinds: Callable[[Any], Any]) -> dict[str, list[Any]]:
        """{first column: [make(other columns, each through its kind: s, d or keep)]}"""
        return _index((r[0], make(*(kind(v) for kind, v in zip(kinds, r[1:], strict=True)))) for r in _fetch(con, sql))

    def keep(value: Any) -> Any:
        return value

    world = World(
        applications=applications,
        persons=persons,
        items=items,
        apps_by_person=_index((a.person_id, a) for a in applications),
        apps_by_household=_index((a.household_id, a) for a in applications),
        cards_by_person=_index((c.person_id, c) for c in cards),
        cards_by_account=_index((c.account_hash, c) for c in cards),
        proxies_by_person=by_hash("SELECT person_id, holder_id_hash, valid_from, valid_until FROM proxy_holdings",
                                  Proxy, keep, d, d),
        exclusive=exclusive,
        hukou=by_hash("SELECT id_hash, name, region_code, status, moved_out_on FROM hukou", Hukou, s, s, s, d),
        hukou_counties=counties,
        deaths=by_hash("SELECT id_hash, death_date FROM deaths", Dated, d),
        payroll=by_hash("SELECT id_hash, start_on, end_on FROM payroll", Span, d, d),
        retirees=by_hash("SELECT id_hash, pension_fen, retired_on FROM retirees", Valued, keep, d),
        vehicles=by_hash("SELECT id_hash, value_fen, registered_on FROM vehicles", Valued, keep, d),
        businesses=by_hash("SELECT id_hash, status, registered_on FROM businesses", Business, s, d),
        real_estate=by_hash("SELECT id_hash, registered_on FROM real_estate", Dated, d),
        prisoners=by_hash("SELECT id_hash, custody_from, custody_to FROM prisoners", Span, d, d),
        village_cadres=by_hash("SELECT id_hash, region_code FROM village_cadres", Cadre, s),
        card_registry=by_hash("SELECT card_number, id_hash, status, changed_on, snapshot_id FROM card_registry",
                              RegistryRow, keep, s, d, keep),
        other_payments=by_hash("SELECT id_hash, item_code, period_start, period_end FROM other_payments",
                               OtherPayment, s, d, d),
        params={name: value for spec in specs for name, value in spec.params.items()},
        scopes={spec.code: spec.items for spec in specs},
        rows=rows,
    )
    for name in ("hukou", "deaths", "payroll", "retirees", "vehicles", "businesses", "real_estate", "prisoners",
                 "village_cadres", "card_registry", "other_payments"):
        rows[name] = sum(len(v) for v in getattr(world, name).values())
    rows["proxy_holdings"] = sum(len(v) for v in world.proxies_by_person.values())
    return world


# ---------------------------------------------------------------- helpers with SQL's NULL logic


def _le(x: date | int | None, y: date | int | None) -> bool:
    return x is not None and y is not None and x <= y


def _overlaps(start: date | None, end: date | None, a: App) -> bool:
    """start <= a.period_end AND (end IS NULL OR end >= a.period_start)"""
    return _le(start, a.period_end) and (end is None or end >= a.period_start)


def _both_overlap(b: App, a: App) -> bool:
    """b.period_start <= a.period_end AND b.period_end >= a.period_start"""
    return b.period_start <= a.period_end and b.period_end >= a.period_start


def _rows(index: dict[str, list[Any]], p: Person | None) -> list[Any]:
    if p is None or p.id_hash is None:
        return []
    return index.get(p.id_hash, [])


def _latest(rows: list[RegistryRow]) -> RegistryRow:
    """The first row by changed_on DESC, snapshot_id DESC, status rank DESC, id_hash (NULLs last each)."""
    return min(rows, key=lambda r: (r.changed_on is None, -r.changed_on.toordinal() if r.changed_on else 0,
                                    -r.snapshot_id, -_STATUS_RANK.get(r.status, 1), r.id_hash is None,
                                    r.id_hash or ""))


def _in_scope(scope: ItemScope, item: Item) -> bool:
    if scope.kind == "all":
        return True
    if scope.kind == "means_tested":
        return bool(item.means_tested)
    if scope.kind == "basis":
        return item.basis in scope.values
    return item.item_code in scope.values


# ---------------------------------------------------------------- the rules: (world, application, person, item) -> hit


def id_not_in_hukou(w: World, a: App, p: Person | None, item: Item) -> bool:
    if a.region_code[:6] not in w.hukou_counties or p is None:
        return False
    rows = _rows(w.hukou, p)
    if not rows:
        return True  # no hukou record for this ID number
    statuses = [r.status for r in rows if r.status is not None]
    if not statuses or any(s != "注销" for s in statuses):
        return False  # a live record (bool_or over only NULLs is NULL: no hit either)
    cancelled = [r.moved_out_on for r in rows if r.status == "注销" and r.moved_out_on is not None]
    return not cancelled or max(cancelled) <= a.period_end


def hukou_moved_out(w: World, a: App, p: Person | None, item: Item) -> bool:
    return any(r.status == "迁出" and (r.moved_out_on is None or r.moved_out_on <= a.period_end)
               for r in _rows(w.hukou, p))


def name_mismatch(w: World, a: App, p: Person | None, item: Item) -> bool:
    if p is None or p.name is None:
        return False
    names = [trim(r.name) for r in _rows(w.hukou, p) if r.name is not None]
    return bool(names) and trim(p.name) not in names  # a record under another name, none under theirs


def deceased(w: World, a: App, p: Person | None, item: Item) -> bool:
    return any(_le(d.on, a.period_end) for d in _rows(w.deaths, p))


def payroll_means_tested(w: World, a: App, p: Person | None, item: Item) -> bool:
    return any(_overlaps(s.start, s.end, a) for s in _rows(w.payroll, p))


def retiree_pension_means_tested(w: World, a: App, p: Person | None, item: Item) -> bool:
    limit = w.params["pension_limit_fen"]
    return any(r.value is not None and r.value > limit and _le(r.on, a.period_end) for r in _rows(w.retirees, p))


def vehicle_means_tested(w: World, a: App, p: Person | None, item: Item) -> bool:
    limit = w.params["vehicle_value_limit_fen"]
    return any(v.value is not None and v.value > limit and _le(v.on, a.period_end) for v in _rows(w.vehicles, p))


def business_means_tested(w: World, a: App, p: Person | None, item: Item) -> bool:
    return any(b.status == "存续" and _le(b.registered_on, a.period_end) for b in _rows(w.businesses, p))


def properties_means_tested(w: World, a: App, p: Person | None, item: Item) -> bool:
    held = sum(1 for r in _rows(w.real_estate, p) if _le(r.on, a.period_end))
    return held > w.params["max_properties"]


def in_custody(w: World, a: App, p: Person | None, item: Item) -> bool:
    return any(_overlaps(c.start, c.end, a) for c in _rows(w.prisoners, p))


def age_out_of_range(w: World, a: App, p: Person | None, item: Item) -> bool:
    if p is None or p.birth_date is None or (item.min_age is None and item.max_age is None):
        return False
    born, start = p.birth_date, a.period_start
    age = start.year - born.year - (1 if (start.month, start.day) < (born.month, born.day) else 0)
    return (item.min_age is not None and age < item.min_age) or (item.max_age is not None and age > item.max_age)


def duplicate_payment(w: World, a: App, p: Person | None, item: Item) -> bool:
    for o in _rows(w.other_payments, p):
        if o.item_code == a.item_code and _le(o.period_start, a.period_end) and _le(a.period_start, o.period_end):
            return True  # paid by another system
    return any(b.item_code == a.item_code and b.application_id < a.application_id and _both_overlap(b, a)
               for b in w.apps_by_person.get(a.person_id, ()))  # the later of two claims here


def two_regions(w: World, a: App, p: Person | None, item: Item) -> bool:
    if a.basis not in ("人", "户"):
        return False
    return any(b.basis in ("人", "户") and b.region_code != a.region_code and _both_overlap(b, a)
               for b in w.apps_by_person.get(a.person_id, ()))


def exclusive_items(w: World, a: App, p: Person | None, item: Item) -> bool:
    others = w.exclusive.get(a.item_code)
    if not others:
        return False
    return any(b.item_code in others and b.item_code in w.items and _both_overlap(b, a)
               for b in w.apps_by_person.get(a.person_id, ()))


def over_standard(w: World, a: App, p: Person | None, item: Item) -> bool:
    if a.basis in ("人", "户") and a.quantity_centi != 100:
        return True
    if a.period_standard_fen is None:
        return False
    due = (a.period_standard_fen * a.quantity_centi + 50) // 100
    return a.amount_fen > due


def shared_account(w: World, a: App, p: Person | None, item: Item) -> bool:
    if p is None:
        return False
    mine = p.household_id if p.household_id is not None else -p.person_id  # no household: one of their own
    for card in w.cards_by_person.get(a.person_id, ()):
        if card.account_hash is None:
            continue
        others = set()
        for other in w.cards_by_account.get(card.account_hash, ()):
            q = w.persons.get(other.person_id)
            if q is not None and (q.household_id if q.household_id is not None else -q.person_id) != mine:
                others.add(q.person_id)
        if len(others) > w.params["max_other_people"]:
            return True
    return False


def _card_status(w: World, card: Card) -> str | None:
    registered = w.card_registry.get(card.card_number)
    if registered:
        status = _latest(registered).status
        if status is not None:
            return status
    return card.status


def card_not_active(w: World, a: App, p: Person | None, item: Item) -> bool:
    return not any(_card_status(w, c) == "正常" for c in w.cards_by_person.get(a.person_id, ()))


def card_holder_mismatch(w: World, a: App, p: Person | None, item: Item) -> bool:
    if p is None or p.id_hash is None:
        return False
    for card in w.cards_by_person.get(a.person_id, ()):
        registered = w.card_registry.get(card.card_number)
        if not registered:
            continue
        holder = _latest(registered).id_hash
        if holder is None or holder == p.id_hash:
            continue
        if not any(h.holder_id_hash == holder and _overlaps(h.valid_from, h.valid_until, a)
                   for h in w.proxies_by_person.get(a.person_id, ())):
            return True
    return False


def cadre_own_village(w: World, a: App, p: Person | None, item: Item) -> bool:
    return any(v.region_code == a.region_code for v in _rows(w.village_cadres, p))


def household_twice(w: World, a: App, p: Person | None, item: Item) -> bool:
    if a.basis != "户" or a.household_id is None:
        return False
    return any(b.item_code == a.item_code and b.application_id < a.application_id and b.person_id != a.person_id
               and b.person_id in w.persons and _both_overlap(b, a)
               for b in w.apps_by_household.get(a.household_id, ()))


RULES: dict[str, Callable[[World, App, Person | None, Item], bool]] = {
    "ID_NOT_IN_HUKOU": id_not_in_hukou,
    "HUKOU_MOVED_OUT": hukou_moved_out,
    "NAME_MISMATCH": name_mismatch,
    "DECEASED": deceased,
    "PAYROLL_MEANS_TESTED": payroll_means_tested,
    "RETIREE_PENSION_MEANS_TESTED": retiree_pension_means_tested,
    "VEHICLE_MEANS_TESTED": vehicle_means_tested,
    "BUSINESS_MEANS_TESTED": business_means_tested,
    "PROPERTIES_MEANS_TESTED": properties_means_tested,
    "IN_CUSTODY": in_custody,
    "AGE_OUT_OF_RANGE": age_out_of_range,
    "DUPLICATE_PAYMENT": duplicate_payment,
    "TWO_REGIONS": two_regions,
    "EXCLUSIVE_ITEMS": exclusive_items,
    "OVER_STANDARD": over_standard,
    "SHARED_ACCOUNT": shared_account,
    "CARD_NOT_ACTIVE": card_not_active,
    "CARD_HOLDER_MISMATCH": card_holder_mismatch,
    "CADRE_OWN_VILLAGE": cadre_own_village,
    "HOUSEHOLD_TWICE": household_twice,
}


# ---------------------------------------------------------------- fact keys
# For the rules whose facts this world holds (it does not load plates, employers or certificates),
# the fact keys the SQL returns for each hit row; the engine joins an application's distinct keys.


def _deceased_facts(w: World, a: App, p: Person | None, item: Item) -> list[str]:
    return [str(d.on) for d in _rows(w.deaths, p) if _le(d.on, a.period_end)]


def _retiree_facts(w: World, a: App, p: Person | None, item: Item) -> list[str]:
    limit = w.params["pension_limit_fen"]
    return [str(r.on) for r in _rows(w.retirees, p)
            if r.value is not None and r.value > limit and _le(r.on, a.period_end)]


def _custody_facts(w: World, a: App, p: Person | None, item: Item) -> list[str]:
    return [str(c.start) for c in _rows(w.prisoners, p) if _overlaps(c.start, c.end, a)]


def _age_facts(w: World, a: App, p: Person | None, item: Item) -> list[str]:
    return [str(p.birth_date)] if p is not None and age_out_of_range(w, a, p, item) else []


def _two_regions_facts(w: World, a: App, p: Person | None, item: Item) -> list[str]:
    if a.basis not in ("人", "户"):
        return []
    return [f"application:{b.application_id}" for b in w.apps_by_person.get(a.person_id, ())
            if b.basis in ("人", "户") and b.region_code != a.region_code and _both_overlap(b, a)]


def _exclusive_facts(w: World, a: App, p: Person | None, item: Item) -> list[str]:
    others = w.exclusive.get(a.item_code) or set()
    return [f"application:{b.application_id}" for b in w.apps_by_person.get(a.person_id, ())
            if b.item_code in others and b.item_code in w.items and _both_overlap(b, a)]


def _household_facts(w: World, a: App, p: Person | None, item: Item) -> list[str]:
    if a.basis != "户" or a.household_id is None:
        return []
    return [f"application:{b.application_id}" for b in w.apps_by_household.get(a.household_id, ())
            if b.item_code == a.item_code and b.application_id < a.application_id and b.person_id != a.person_id
            and b.person_id in w.persons and _both_overlap(b, a)]


def _over_standard_facts(w: World, a: App, p: Person | None, item: Item) -> list[str]:
    wrong_quantity = a.basis in ("人", "户") and a.quantity_centi != 100
    return [f"{'quantity' if wrong_quantity else 'amount'}:{a.quantity_centi}:{a.amount_fen}"]


FACTS: dict[str, Callable[[World, App, Person | None, Item], list[str]]] = {
    "DECEASED": _deceased_facts,
    "RETIREE_PENSION_MEANS_TESTED": _retiree_facts,
    "IN_CUSTODY": _custody_facts,
    "AGE_OUT_OF_RANGE": _age_facts,
    "TWO_REGIONS": _two_regions_facts,
    "EXCLUSIVE_ITEMS": _exclusive_facts,
    "HOUSEHOLD_TWICE": _household_facts,
    "OVER_STANDARD": _over_standard_facts,
}
FACT_KEY_MAX = 100  # as interception.engine


def fact_key(w: World, a: App, code: str) -> str:
    """The fact key the engine gives a hit of rule `code` on `a` (only for the rules in FACTS)."""
    facts = "|".join(sorted(set(FACTS[code](w, a, w.persons.get(a.person_id), w.items[a.item_code]))))
    return facts if len(facts) <= FACT_KEY_MAX else "sha256:" + hashlib.sha256(facts.encode()).hexdigest()[:56]


def check(w: World, a: App) -> set[str]:
    """The codes of the rules that hit application `a`, testing one rule after another."""
    item = w.items.get(a.item_code)
    if item is None:
        return set()  # the engine joins every hit to its item
    p = w.persons.get(a.person_id)
    hits = set()
    for code, rule in RULES.items():
        if _in_scope(w.scopes[code], item) and rule(w, a, p, item):
            hits.add(code)
    return hits
