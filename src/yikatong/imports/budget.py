"""Budget files (补贴资金指标): one allocation per row, keyed by item, year and funding level. A row sets the
amount of its key (added or updated; an equal row is untouched). An item's year may not fall below
what approved batches have already committed: such a row is an error with the figures."""

from __future__ import annotations

from collections import defaultdict

from yikatong.catalog.models import SubsidyItem
from yikatong.core.money import format_fen
from yikatong.disbursement import budget
from yikatong.disbursement.models import BudgetAllocation, BudgetYear
from yikatong.imports.batch import Batch, Plan, Progress


def plan_budget(b: Batch) -> Plan:
    if b.actor is not None:
        budget.require_city_budget(b.actor)  # the whole file is refused (403) for anyone else
    b.unique("item_code", lambda r: (r.values.get("item_code"), r.values.get("year"), r.values.get("funding_level")),
             what="同一项目、年度、资金级次")
    known = {c for (c,) in b.fetch([SubsidyItem.code], SubsidyItem.code, b.values("item_code"))}
    codes = sorted(known)
    stored: dict[tuple[str, int, str], tuple[int, str]] = {}
    totals: dict[tuple[str, int], tuple[int, int]] = {}
    if codes:
        for r in b.fetch([BudgetAllocation.item_code, BudgetAllocation.year, BudgetAllocation.funding_level,
                          BudgetAllocation.amount_fen, BudgetAllocation.note], BudgetAllocation.item_code, codes):
            stored[(r.item_code, r.year, r.funding_level)] = (r.amount_fen, r.note)
        for r in b.fetch([BudgetYear.item_code, BudgetYear.year, BudgetYear.allocated_fen, BudgetYear.committed_fen],
                         BudgetYear.item_code, codes):
            totals[(r.item_code, r.year)] = (r.allocated_fen, r.committed_fen)
    values: list[budget.AllocationInput] = []
    delta: dict[tuple[str, int], int] = defaultdict(int)
    rows_of: dict[tuple[str, int], list] = defaultdict(list)
    added = updated = unchanged = 0
    for row in b.rows:
        if row.bad:
            continue
        code, year, level = row.values["item_code"], row.values["year"], row.values["funding_level"]
        if code not in known:
            b.error(row, "item_code", "补贴项目代码不存在")
            continue
        amount, note = row.values["amount_yuan"], row.values.get("note", "")
        old = stored.get((code, year, level))
        if old is not None and old == (amount, note):
            unchanged += 1
            continue
        added, updated = (added + 1, updated) if old is None else (added, updated + 1)
        delta[(code, year)] += amount - (old[0] if old else 0)
        rows_of[(code, year)].append(row)
        values.append(budget.AllocationInput(code, year, level, amount, note))
    for key, change in delta.items():
        allocated, committed = totals.get(key, (0, 0))
        if allocated + change < committed:
            for row in rows_of[key]:
                b.error(row, "amount_yuan", f"{key[0]} {key[1]}年度指标调整后为{format_fen(allocated + change)}元，"
                                            f"低于已审批批次占用的{format_fen(committed)}元")
    if b.error_count:
        return Plan()

    def write(progress: Progress) -> None:
        progress("写入", 0, len(values))
        budget.set_allocations(b.session, b.actor, values, b.now, source="import")
        progress("写入", len(values), len(values))

    return Plan(added, updated, unchanged, write=write)
