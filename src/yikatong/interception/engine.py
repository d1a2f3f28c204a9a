"""Run rules set-based in DuckDB over a snapshot: each rule is one query over all applications at
once, never a loop over applications in Python.

Each rule's own SELECT runs as it is written and its rows are kept in one table; one query then
shapes them, so that every rule, built-in or written by a supervisor, yields the same: one row per
rule and application hit, with the evidence (several facts joined by "；") and the amount at stake,
restricted to the items the rule applies to (and to the focus set, if any) — and the fact key: the
rule's `fact_key` values for that application (sorted, distinct, joined by "|"; the rule's code when
the rule returns none), which names the facts without their wording. Flags are deduplicated on it
(interception.screening), so rewording a rule never raises a flag again."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from yikatong.core.errors import Invalid
from yikatong.core.settings import get_settings
from yikatong.interception.rulefile import RuleSpec
from yikatong.interception.snapshot import Snapshot, limit_message, time_limit

HIT_SCHEMA = pa.schema([("rule_code", pa.string()), ("application_id", pa.int64()), ("evidence", pa.string()),
                        ("evidence_key", pa.string()), ("fact_key", pa.string()), ("amount_fen", pa.int64())])
EVIDENCE_MAX = 2000
FACT_KEY_MAX = 100  # longer keys (many facts) are stored as their hash: same facts, same key


@dataclass
class RuleResult:
    code: str
    hits: pa.Table  # HIT_SCHEMA
    seconds: float
    error: str | None = None


_COLUMNS_CACHE: dict[tuple[str, tuple[str, ...]], list[str]] = {}


def output_columns(snapshot: Snapshot, spec: RuleSpec) -> list[str]:
    """The columns a rule's SELECT returns (they depend on its SQL only, so they are asked once)."""
    key = (spec.sql, tuple(sorted(spec.params)))
    if key not in _COLUMNS_CACHE:
        cursor = snapshot.con.execute(f"SELECT * FROM ({spec.sql}) AS rule_output LIMIT 0", spec.params or None)
        columns = [d[0] for d in cursor.description]
        cursor.fetchall()
        if len(_COLUMNS_CACHE) > 500:
            _COLUMNS_CACHE.clear()
        _COLUMNS_CACHE[key] = columns
    return _COLUMNS_CACHE[key]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def collect_sql(spec: RuleSpec, columns: Sequence[str]) -> str:
    """INSERT the rule's own result, as it is, into rule_output: materialized before anything joins
    or groups it, so the optimizer cannot fold the grouping into the rule's joins (on a dense city
    that turned a one-second rule into tens of gigabytes of spilled intermediate rows)."""
    missing = [c for c in ("application_id", "evidence") if c not in columns]
    if missing:
        raise Invalid(f"规则{spec.code}的查询结果缺少必需的列：{'、'.join(missing)}")
    amount = "CAST(h.amount_fen AS BIGINT)" if "amount_fen" in columns else "NULL"
    # no fact_key column: the rule's code alone, so one flag per application and rule
    fact = (f"COALESCE(CAST(h.fact_key AS VARCHAR), {_quote(spec.code)})" if "fact_key" in columns
            else _quote(spec.code))
    return f"""
INSERT INTO rule_output
SELECT {_quote(spec.code)}, CAST(h.application_id AS BIGINT), CAST(h.evidence AS VARCHAR), {fact}, {amount}
FROM ({spec.sql}) AS h"""


def grouped_sql(specs: Sequence[RuleSpec], focused: bool) -> str:
    """One row per rule and application hit: restricted to the items each rule applies to, the
    evidence joined by "；", the fact keys sorted and joined by "|", the largest amount at stake.

    For a focus set (claims just entered, a batch at the gate) an application outside the focus is
    kept too when one of its facts names a focus application ("application:<id>"): the claim a new
    one conflicts with is flagged in the same screening. It is kept with all its facts for that rule,
    so its flag is the one a city run would raise."""
    scope = " ".join(f"WHEN {_quote(spec.code)} THEN {spec.items.sql_condition('i')}" for spec in specs)
    kept = "scoped"
    if focused:
        kept = """(
  SELECT s.* FROM scoped s
  WHERE s.application_id IN (SELECT application_id FROM focus)
     OR EXISTS (SELECT 1 FROM scoped t
                WHERE t.rule_code = s.rule_code AND t.application_id = s.application_id
                  AND t.fact_key IN (SELECT 'application:' || application_id FROM focus))
)"""
    return f"""
WITH scoped AS (
  SELECT h.rule_code, h.application_id, h.evidence, h.fact_key, COALESCE(h.amount_fen, a.amount_fen) AS amount_fen
  FROM rule_output h
  JOIN applications a ON a.application_id = h.application_id
  JOIN items i ON i.item_code = a.item_code
  WHERE h.evidence IS NOT NULL AND CASE h.rule_code {scope or 'WHEN NULL THEN FALSE'} ELSE FALSE END
), grouped AS (
  SELECT rule_code, application_id,
         left(string_agg(DISTINCT evidence, '；' ORDER BY evidence), {EVIDENCE_MAX}) AS evidence,
         string_agg(DISTINCT fact_key, '|' ORDER BY fact_key) AS facts,
         max(amount_fen) AS amount_fen
  FROM {kept} AS k GROUP BY rule_code, application_id
)
SELECT rule_code, application_id, evidence, left(sha256(evidence), 32) AS evidence_key,
       CASE WHEN length(facts) <= {FACT_KEY_MAX} THEN facts ELSE 'sha256:' || left(sha256(facts), 56) END AS fact_key,
       amount_fen
FROM grouped"""


def _failure(spec: RuleSpec, error: Exception, seconds: float) -> str:
    limited = limit_message(error, seconds)
    return (error.message if isinstance(error, Invalid) else f"规则{spec.code}：{limited}" if limited
            else f"规则{spec.code}执行出错：{error}")


def run_rule(snapshot: Snapshot, spec: RuleSpec) -> RuleResult:
    return run_rules(snapshot, [spec])[0]


def run_rules(snapshot: Snapshot, specs: Sequence[RuleSpec],
              progress: Callable[[str, int, int], None] | None = None) -> list[RuleResult]:
    """Each rule's own result is written to a table first, then grouped per rule and application. Over
    the whole city each rule is grouped on its own (memory and spill stay those of one rule); for a
    focus set (a few claims: rows by the dozen) one query groups every rule at once, since a query
    costs more than its rows. An error in one rule's SQL, or a rule stopped by a limit, is returned
    with its result, not raised, so one broken rule does not stop the others."""
    con = snapshot.con
    limit = get_settings().rule_timeout_seconds
    each = snapshot.focus is None
    con.execute("CREATE OR REPLACE TEMP TABLE rule_output (rule_code VARCHAR, application_id BIGINT, "
                "evidence VARCHAR, fact_key VARCHAR, amount_fen BIGINT)").fetchall()
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    hits: dict[str, pa.Table] = {}
    try:
        for done, spec in enumerate(specs, 1):
            started = time.perf_counter()
            try:
                with time_limit(con, limit):  # the memory and temporary-disk ceilings are the connection's
                    con.execute(collect_sql(spec, output_columns(snapshot, spec)), spec.params or None).fetchall()
                    if each:
                        hits[spec.code] = _grouped(con, [spec], False)
            except Exception as e:  # noqa: BLE001 - DuckDB raises several kinds; the message is what matters
                errors[spec.code] = _failure(spec, e, limit)
            if each or spec.code in errors:
                con.execute("DELETE FROM rule_output" if each else "DELETE FROM rule_output WHERE rule_code = ?",
                            None if each else [spec.code]).fetchall()
            seconds[spec.code] = time.perf_counter() - started
            if progress:
                progress(f"规则 {spec.code}", done, len(specs))
        if not each:
            ran = [spec for spec in specs if spec.code not in errors]
            started = time.perf_counter()
            try:
                with time_limit(con, limit):
                    together = _grouped(con, ran, True)
            except Exception as e:  # noqa: BLE001 - grouping stopped by a limit: no rule's hits can be trusted
                message = limit_message(e, limit) or str(e)
                errors.update({spec.code: f"规则{spec.code}：{message}" for spec in ran})
                together = HIT_SCHEMA.empty_table()
            share = (time.perf_counter() - started) / max(len(ran), 1)  # the grouping, spread over the rules
            by_rule = together.column("rule_code")
            for spec in ran:
                hits[spec.code] = together.filter(pc.equal(by_rule, spec.code))
                seconds[spec.code] += share
    finally:
        con.execute("DROP TABLE IF EXISTS rule_output").fetchall()
    return [RuleResult(spec.code, HIT_SCHEMA.empty_table() if spec.code in errors else hits[spec.code],
                       seconds[spec.code], errors.get(spec.code)) for spec in specs]


def _grouped(con, specs: Sequence[RuleSpec], focused: bool) -> pa.Table:
    return con.sql(grouped_sql(specs, focused)).to_arrow_table().cast(HIT_SCHEMA)


def combined_hits(results: Sequence[RuleResult]) -> pa.Table:
    tables = [r.hits for r in results if r.hits.num_rows]
    return pa.concat_tables(tables) if tables else HIT_SCHEMA.empty_table()
