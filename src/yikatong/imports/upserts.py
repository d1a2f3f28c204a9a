"""Per kind: check every parsed row against the file and the database, then plan the upsert.

Each planner looks records up in bulk (one query per chunk of keys), reports every problem
through `Batch.error`, and returns a `Plan` whose `write` inserts new rows and updates changed
ones with bulk statements. A row equal to what is stored is left untouched, so importing the same
file twice writes nothing the second time. A column absent from the file leaves that field of
existing records alone; a column present with an empty cell clears it (or sets its default).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import insert, text, update

from yikatong.catalog.models import Bank, Department, ItemStandard, SubsidyCategory, SubsidyItem
from yikatong.catalog.service import refresh_current_standards, standard_book
from yikatong.core import crypto
from yikatong.core.clock import beijing_date
from yikatong.core.protect import protect, search_hash
from yikatong.imports.batch import LEVEL_ZH, Batch, Plan, Progress, Row, write_in_chunks
from yikatong.imports.budget import plan_budget
from yikatong.imports.claims import plan_applications
from yikatong.registry.models import Card, CardStatus, Household, Person, Region, RegionLevel
from yikatong.registry.service import refresh_card_flags
from yikatong.security.scope import in_subtree, level_of, parent_of, subtree_prefix

Planner = Callable[[Batch], Plan]
EVER = date(2000, 1, 1)  # a new item's standard given without a date applies to every period


def _writer(b: Batch, model: Any, inserts: list[dict], updates: list[dict],
            after: Callable[[], None] | None = None) -> Callable[[Progress], None]:
    def write(progress: Progress) -> None:
        total, done = len(inserts) + len(updates), [0]
        progress("写入", 0, total)
        # Core INSERT on the table: executemany without the ORM's per-row bookkeeping.
        write_in_chunks(b.session, insert(model.__table__), inserts, progress, done, total)
        write_in_chunks(b.session, update(model), updates, progress, done, total)
        if after is not None:
            after()
        _refresh_statistics(b, model, len(inserts))

    return write


ANALYZE_AFTER = 1000  # rows inserted into one table


def _refresh_statistics(b: Batch, model: Any, inserted: int) -> None:
    """PostgreSQL plans `key IN (...)` look-ups from table statistics; a table that just grew by
    thousands of rows still looks empty to it until autovacuum runs, and the next import would scan
    the whole table once per chunk of keys (minutes instead of seconds). ANALYZE is allowed inside
    the transaction and its statistics take effect at commit. SQLite needs no help: it always uses
    the unique index."""
    if inserted >= ANALYZE_AFTER and b.session.get_bind().dialect.name == "postgresql":
        b.session.execute(text(f"ANALYZE {model.__table__.name}"))


def _diff(old: Any, new: dict[str, Any]) -> bool:
    return any(getattr(old, k) != v for k, v in new.items())


def _known_regions(b: Batch, codes: list[str]) -> set[str]:
    return {r.code for r in b.fetch([Region.code], Region.code, codes)}


def _check_region(b: Batch, row: Row, known: set[str], *, village: bool) -> None:
    code = row.values.get("region_code")
    if code is None:
        return
    if code not in known:
        b.error(row, "region_code", "区划代码不存在，请先导入行政区划")
        return
    level = level_of(code)
    if village and level is not RegionLevel.VILLAGE:
        b.error(row, "region_code", f"应为村（社区）级区划，该代码是{LEVEL_ZH[level]}级")
    elif not b.in_scope(code):
        b.error(row, "region_code", b.scope_reason())


# ---------------------------------------------------------------- regions


def plan_regions(b: Batch) -> Plan:
    b.unique("code")
    file_codes = {row.values["code"]: row for row in b.rows if row.has("code")}
    wanted: set[str] = set(file_codes)
    for code in list(file_codes):
        parent = parent_of(code)
        while parent is not None:
            wanted.add(parent)
            parent = parent_of(parent)
    wanted.update(b.values("parent_code"))
    existing = {r.code: r for r in b.fetch(
        [Region.code, Region.name, Region.full_name, Region.level, Region.parent_code], Region.code, wanted)}
    known = set(existing) | set(file_codes)
    planned_full: dict[str, str] = {}
    inserts: list[dict] = []
    updates: list[dict] = []
    unchanged = 0
    # Parents before children: the full name of a child is built from its parent's.
    for row in sorted(b.rows, key=lambda r: (len(subtree_prefix(r.values["code"])) if r.has("code") else 0,
                                             r.number)):
        code = row.values.get("code")
        if code is None:
            continue
        if not b.in_scope(code):
            b.error(row, "code", b.scope_reason())
        parent = row.values.get("parent_code")
        if parent is not None:
            if parent not in known:
                b.error(row, "parent_code", "上级代码不存在（数据库和本文件中都没有）")
            elif parent == code or not in_subtree(parent, code) or \
                    len(subtree_prefix(parent)) >= len(subtree_prefix(code)):
                b.error(row, "parent_code", f"上级代码与区划代码不相符：{code} 不在 {parent} 之下")
        else:
            parent = parent_of(code)
            while parent is not None and parent not in known:
                parent = parent_of(parent)
        if row.bad or "name" not in row.values:
            continue
        full_name = row.values.get("full_name")
        if not full_name:
            parent_full = planned_full.get(parent) or (existing[parent].full_name if parent in existing else "")
            full_name = (parent_full + row.values["name"])[:200]
        planned_full[code] = full_name
        new = {"name": row.values["name"], "full_name": full_name, "level": level_of(code).value,
               "parent_code": parent}
        old = existing.get(code)
        if old is None:
            inserts.append({"code": code, **new})
        elif _diff(old, new):
            updates.append({"code": code, **new})
        else:
            unchanged += 1
    # Insert in level order so a parent row exists before its children reference it.
    inserts.sort(key=lambda r: len(subtree_prefix(r["code"])))
    return Plan(len(inserts), len(updates), unchanged, write=_writer(b, Region, inserts, updates))


# ---------------------------------------------------------------- departments


def plan_departments(b: Batch) -> Plan:
    b.unique("code")
    known = _known_regions(b, b.values("region_code"))
    existing = {r.code: r for r in b.fetch(
        [Department.code, Department.name, Department.region_code, Department.sector], Department.code,
        b.values("code"))}
    inserts, updates, unchanged = [], [], 0
    for row in b.rows:
        _check_region(b, row, known, village=False)
        old = existing.get(row.values.get("code"))
        if old is not None and not b.in_scope(old.region_code):
            b.error(row, "code", f"该部门现属其他辖区（{old.region_code}），" + b.scope_reason())
        if row.bad:
            continue
        new = {k: row.values[k] for k in ("name", "region_code", "sector")}
        if old is None:
            inserts.append({"code": row.values["code"], **new})
        elif _diff(old, new):
            updates.append({"code": row.values["code"], **new})
        else:
            unchanged += 1
    return Plan(len(inserts), len(updates), unchanged, write=_writer(b, Department, inserts, updates))


# ---------------------------------------------------------------- banks


def plan_banks(b: Batch) -> Plan:
    b.unique("code")
    existing = {r.code: r for r in b.fetch([Bank.code, Bank.name, Bank.account_prefix], Bank.code,
                                           b.values("code"))}
    inserts, updates, unchanged = [], [], 0
    for row in b.rows:
        if row.bad:
            continue
        new = {"name": row.values["name"]}
        if "account_prefix" in b.present:
            new["account_prefix"] = row.values.get("account_prefix", "")
        old = existing.get(row.values["code"])
        if old is None:
            inserts.append({"code": row.values["code"], "account_prefix": "", **new})
        elif _diff(old, new):
            updates.append({"code": row.values["code"], **new})
        else:
            unchanged += 1
    return Plan(len(inserts), len(updates), unchanged, write=_writer(b, Bank, inserts, updates))


# ---------------------------------------------------------------- households


def plan_households(b: Batch) -> Plan:
    b.unique("code")
    known = _known_regions(b, b.values("region_code"))
    existing = {r.code: r for r in b.fetch(
        [Household.id, Household.code, Household.region_code, Household.address], Household.code,
        b.values("code"))}
    inserts, updates, unchanged = [], [], 0
    for row in b.rows:
        _check_region(b, row, known, village=True)
        old = existing.get(row.values.get("code"))
        if old is not None and not b.in_scope(old.region_code):
            b.error(row, "code", f"该户现登记在其他辖区（{old.region_code}），" + b.scope_reason())
        if row.bad:
            continue
        new = {"region_code": row.values["region_code"]}
        if "address" in b.present:
            new["address"] = row.values.get("address", "")
        if old is None:
            inserts.append({"code": row.values["code"], "address": "", **new,
                            "created_at": b.now, "updated_at": b.now})
        elif _diff(old, new):
            updates.append({"id": old.id, **new, "updated_at": b.now})
        else:
            unchanged += 1
    return Plan(len(inserts), len(updates), unchanged, write=_writer(b, Household, inserts, updates))


# ---------------------------------------------------------------- persons


def _id_hashes(b: Batch) -> dict[int, str]:
    """Row number -> keyed hash of the row's ID number (the natural key of a person)."""
    return {row.number: search_hash(crypto.ID_NUMBER, row.values["id_number"].number)
            for row in b.rows if row.has("id_number")}


def plan_persons(b: Batch) -> Plan:
    b.unique("id_number", lambda r: r.values["id_number"].number)
    hashes = _id_hashes(b)
    known = _known_regions(b, b.values("region_code"))
    households = {r.code: r for r in b.fetch([Household.id, Household.code, Household.region_code],
                                             Household.code, b.values("household_code"))}
    existing = {r.id_number_hash: r for r in b.fetch(
        [Person.id, Person.id_number_hash, Person.name, Person.region_code, Person.household_id,
         Person.relation, Person.phone_hash, Person.is_beneficiary, Person.no_card_reason],
        Person.id_number_hash, hashes.values())}
    present = b.present
    inserts, updates, unchanged = [], [], 0
    for i, row in enumerate(b.rows):
        if i % 5000 == 0:
            b.progress("核对", i, len(b.rows))
        _check_region(b, row, known, village=True)
        old = existing.get(hashes.get(row.number))
        if old is not None and not b.in_scope(old.region_code):
            b.error(row, "id_number", f"该人员现登记在其他辖区（{old.region_code}），" + b.scope_reason())
        household_id = None
        if row.has("household_code"):
            household = households.get(row.values["household_code"])
            if household is None:
                b.error(row, "household_code", "户编号不存在，请先导入户信息")
            elif row.has("region_code") and household.region_code != row.values["region_code"]:
                b.error(row, "household_code", f"该户属于区划{household.region_code}，与本行区划代码不一致")
            else:
                household_id = household.id
        if row.bad:
            continue
        facts = row.values["id_number"]
        new: dict[str, Any] = {"name": row.values["name"], "region_code": row.values["region_code"]}
        if "household_code" in present:
            new["household_id"] = household_id
        if "relation" in present:
            new["relation"] = row.values.get("relation")
        if "is_beneficiary" in present:
            new["is_beneficiary"] = row.values.get("is_beneficiary", False)
        if "no_card_reason" in present:
            new["no_card_reason"] = row.values.get("no_card_reason")
        phone = row.values.get("phone")
        phone_hash = search_hash(crypto.PHONE, phone) if phone else None
        if old is None:
            p = protect(crypto.ID_NUMBER, facts.number)
            record = {"id_number_enc": p.enc, "id_number_hash": p.hash, "id_number_masked": p.masked,
                      "gender": facts.gender, "birth_date": facts.birth_date, "household_id": None,
                      "relation": None, "is_beneficiary": False, "has_active_card": False,
                      "no_card_reason": None, **new, **_phone_fields(phone),
                      "created_at": b.now, "updated_at": b.now}
            inserts.append(record)
        elif _diff(old, new) or ("phone" in present and old.phone_hash != phone_hash):
            record = {"id": old.id, **new, "updated_at": b.now}
            if "phone" in present:
                record.update(_phone_fields(phone))
            updates.append(record)
        else:
            unchanged += 1
    b.progress("核对", len(b.rows), len(b.rows))

    def after() -> None:
        refresh_card_flags(b.session, [u["id"] for u in updates])

    return Plan(len(inserts), len(updates), unchanged, write=_writer(b, Person, inserts, updates, after))


def _phone_fields(phone: str | None) -> dict[str, Any]:
    if not phone:
        return {"phone_enc": None, "phone_hash": None, "phone_masked": None}
    p = protect(crypto.PHONE, phone)
    return {"phone_enc": p.enc, "phone_hash": p.hash, "phone_masked": p.masked}


# ---------------------------------------------------------------- cards


def plan_cards(b: Batch) -> Plan:
    b.unique("card_number")
    account_hashes = {row.number: search_hash(crypto.BANK_ACCOUNT, row.values["bank_account"])
                      for row in b.rows if row.has("bank_account")}
    b.unique("bank_account", lambda r: account_hashes[r.number], "银行账号")
    id_hashes = _id_hashes(b)
    persons = {r.id_number_hash: r for r in b.fetch(
        [Person.id, Person.id_number_hash, Person.name, Person.region_code], Person.id_number_hash,
        id_hashes.values())}
    banks = {r.code for r in b.fetch([Bank.code], Bank.code, b.values("bank_code"))}
    card_columns = [Card.id, Card.card_number, Card.person_id, Card.bank_code, Card.bank_account_hash,
                    Card.status, Card.issued_on, Card.status_changed_on]
    existing = {r.card_number: r for r in b.fetch(card_columns, Card.card_number, b.values("card_number"))}
    by_account: dict[str, list[Any]] = defaultdict(list)
    for r in b.fetch([Card.card_number, Card.person_id, Card.bank_account_hash], Card.bank_account_hash,
                     account_hashes.values()):
        by_account[r.bank_account_hash].append(r)
    person_ids = [p.id for p in persons.values()]
    cards_of_persons = b.fetch([Card.card_number, Card.person_id, Card.status], Card.person_id, person_ids)
    others = {r.person_id for r in existing.values()} | {r.person_id for v in by_account.values() for r in v}
    masked = {r.id: r.id_number_masked for r in b.fetch([Person.id, Person.id_number_masked], Person.id, others)}
    today = beijing_date(b.now)

    planned: list[tuple[Row, Any, dict[str, Any], Any]] = []  # row, person, new values, old card
    for row in b.rows:
        person = persons.get(id_hashes.get(row.number))
        if row.has("id_number") and person is None:
            b.error(row, "id_number", "该身份证号的人员不存在，请先导入人员")
        if person is not None:
            if row.has("name") and row.values["name"] != person.name:
                b.error(row, "name", "姓名与该身份证号登记的姓名不一致")
            if not b.in_scope(person.region_code):
                b.error(row, "id_number", f"该人员登记在{person.region_code}，" + b.scope_reason())
        if row.has("bank_code") and row.values["bank_code"] not in banks:
            b.error(row, "bank_code", "银行代码不存在，请先导入代发银行")
        card_no = row.values.get("card_number")
        old = existing.get(card_no)
        if old is not None and person is not None and old.person_id != person.id:
            b.error(row, "card_number", f"社会保障卡号已登记在其他人员名下（身份证号 {masked.get(old.person_id, '')}）")
        account_hash = account_hashes.get(row.number)
        for other in by_account.get(account_hash, []):
            if other.card_number != card_no and (person is None or other.person_id != person.id):
                b.error(row, "bank_account", f"银行账号已登记在其他人员名下（社会保障卡号 {other.card_number}）")
                break
        issued = row.values.get("issued_on")
        if issued is not None and issued > today:
            b.error(row, "issued_on", "发卡日期晚于今天")
        changed_on = row.values.get("status_changed_on")
        if changed_on is not None and issued is not None and changed_on < issued:
            b.error(row, "status_changed_on", "状态变更日期早于发卡日期")
        elif changed_on is not None and changed_on > today:
            b.error(row, "status_changed_on", "状态变更日期晚于今天")
        if row.bad:
            continue
        new: dict[str, Any] = {"person_id": person.id, "bank_code": row.values["bank_code"],
                               "bank_account_hash": account_hash, "issued_on": issued}
        if "status" in b.present or old is None:
            new["status"] = row.values.get("status", CardStatus.ACTIVE.value)
        if "status_changed_on" in b.present:
            new["status_changed_on"] = changed_on
        planned.append((row, person, new, old))

    # One card (一人一卡): after the import, a person holds at most one card with status 正常.
    final: dict[str, tuple[int, str]] = {r.card_number: (r.person_id, r.status) for r in cards_of_persons}
    for row, person, new, old in planned:
        final[row.values["card_number"]] = (person.id, new.get("status", old.status if old else CardStatus.ACTIVE))
    active: dict[int, list[str]] = defaultdict(list)
    for number, (pid, status) in final.items():
        if status == CardStatus.ACTIVE:
            active[pid].append(number)
    for row, person, new, old in planned:
        number = row.values["card_number"]
        if new.get("status", old.status if old else CardStatus.ACTIVE) == CardStatus.ACTIVE \
                and len(active[person.id]) > 1:
            other = ", ".join(sorted(n for n in active[person.id] if n != number))
            b.error(row, "card_number", f"该人员还有其他正常状态的社保卡（{other}），一人只能有一张正常卡")

    inserts, updates, unchanged = [], [], 0
    touched: set[int] = set()
    if b.error_count:
        return Plan()
    for row, person, new, old in planned:
        account = row.values["bank_account"]
        if old is None:
            p = protect(crypto.BANK_ACCOUNT, account)
            inserts.append({"card_number": row.values["card_number"], **new, "bank_account_enc": p.enc,
                            "bank_account_masked": p.masked, "status_changed_on": new.get("status_changed_on"),
                            "created_at": b.now, "updated_at": b.now})
            touched.add(person.id)
        elif _diff(old, new):
            if "status_changed_on" not in b.present:
                new["status_changed_on"] = today if new.get("status", old.status) != old.status \
                    else old.status_changed_on
            p = protect(crypto.BANK_ACCOUNT, account)
            updates.append({"id": old.id, **new, "bank_account_enc": p.enc, "bank_account_masked": p.masked,
                            "updated_at": b.now})
            touched.add(person.id)
        else:
            unchanged += 1

    def after() -> None:
        refresh_card_flags(b.session, sorted(touched))

    return Plan(len(inserts), len(updates), unchanged, write=_writer(b, Card, inserts, updates, after))


# ---------------------------------------------------------------- catalogue


def plan_catalogue(b: Batch) -> Plan:
    b.unique("item_code")
    category_names: dict[str, tuple[str, int]] = {}
    for row in b.rows:
        if row.has("category_code") and row.has("category_name"):
            name, first = category_names.setdefault(row.values["category_code"],
                                                    (row.values["category_name"], row.number))
            if name != row.values["category_name"]:
                b.error(row, "category_name", f"同一类别代码的类别名称与第{first}行（{name}）不一致")
    departments = {r.code for r in b.fetch([Department.code], Department.code, b.values("department_code"))}
    categories = {r.code: r for r in b.fetch([SubsidyCategory.code, SubsidyCategory.name], SubsidyCategory.code,
                                             list(category_names))}
    item_columns = [SubsidyItem.code, SubsidyItem.name, SubsidyItem.category_code, SubsidyItem.funding_level,
                    SubsidyItem.department_code, SubsidyItem.basis, SubsidyItem.standard_fen,
                    SubsidyItem.frequency, SubsidyItem.village_publicity, SubsidyItem.means_tested,
                    SubsidyItem.description]
    existing = {r.code: r for r in b.fetch(item_columns, SubsidyItem.code, b.values("item_code"))}
    # A standard is dated, never overwritten: a changed 补贴标准 adds a standard valid from the file's
    # date (default: the first day of this Beijing month); claims of earlier periods keep theirs.
    book = standard_book(b.session, existing)
    this_month = beijing_date(b.now).replace(day=1)
    standards: list[dict] = []
    inserts, updates, unchanged = [], [], 0
    for row in b.rows:
        if row.has("department_code") and row.values["department_code"] not in departments:
            b.error(row, "department_code", "主管部门代码不存在，请先导入经办部门")
        if row.bad:
            continue
        v = row.values
        new: dict[str, Any] = {"name": v["item_name"], "category_code": v["category_code"],
                               "funding_level": v["funding_level"], "department_code": v["department_code"],
                               "basis": v["basis"], "standard_fen": v["standard_yuan"], "frequency": v["frequency"]}
        defaults = {"village_publicity": True, "means_tested": False, "description": ""}
        for key, default in defaults.items():
            if key in b.present:
                new[key] = v.get(key, default)
        old = existing.get(v["item_code"])
        new_standard = new.pop("standard_fen")
        if old is None:
            inserts.append({"code": v["item_code"], **defaults, **new, "standard_fen": new_standard})
            standards.append(dict(item_code=v["item_code"], valid_from=v.get("standard_from", EVER),
                                  standard_fen=new_standard, reason="目录导入（新项目）"))
            continue
        valid_from = v.get("standard_from", this_month)
        in_force = book.standard(old.code, "", valid_from)
        if in_force != new_standard:
            standards.append(dict(item_code=old.code, valid_from=valid_from, standard_fen=new_standard,
                                  reason="目录导入"))
        if _diff(old, new):
            updates.append({"code": v["item_code"], **new})
        elif in_force == new_standard:
            unchanged += 1
    changed_items = {s["item_code"] for s in standards} - {i["code"] for i in inserts} - {u["code"] for u in updates}
    cat_inserts = [{"code": c, "name": n} for c, (n, _) in category_names.items() if c not in categories]
    cat_updates = [{"code": c, "name": n} for c, (n, _) in category_names.items()
                   if c in categories and categories[c].name != n]
    write_items = _writer(b, SubsidyItem, inserts, updates)

    def write(progress: Progress) -> None:
        _writer(b, SubsidyCategory, cat_inserts, cat_updates)(progress)
        write_items(progress)
        actor = b.actor
        if standards:
            b.session.execute(insert(ItemStandard), [
                {**s, "county_code": None, "created_by": actor.id if actor else None,
                 "created_by_name": actor.display_name if actor else "系统", "created_at": b.now}
                for s in standards])
            refresh_current_standards(b.session, {s["item_code"] for s in standards}, beijing_date(b.now))

    extra = {"categories_added": len(cat_inserts), "categories_updated": len(cat_updates)}
    changed_standards = len(standards) - len(inserts)  # a new item's first standard is part of the item
    if changed_standards:
        extra["standards_added"] = changed_standards
    return Plan(len(inserts), len(updates) + len(changed_items), unchanged, extra=extra, write=write)


PLANNERS: dict[str, Planner] = {
    "regions": plan_regions,
    "departments": plan_departments,
    "banks": plan_banks,
    "households": plan_households,
    "persons": plan_persons,
    "cards": plan_cards,
    "catalogue": plan_catalogue,
    "applications": plan_applications,
    "budget": plan_budget,
}
