"""Run rules set-based in DuckDB over a snapshot: each rule is one query over all applications at
once, never a loop over applications in Python.

A rule's SELECT is wrapped so that every rule, built-in or written by a supervisor, yields the same
shape: one row per application it hits, with the evidence (several facts joined by "；") and the
amount at stake, restricted to the items the rule applies to (and to the focus set, if any) — and the
fact key: the rule's `fact_key` values for that application (sorted, distinct, joined by "|"; the
rule's code when the rule returns none), which names the facts without their wording. Flags are
deduplicated on it (interception.screening), so rewording a rule never raises a flag again."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

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


def _output_columns(snapshot: Snapshot, spec: RuleSpec) -> list[str]:
    cursor = snapshot.con.execute(f"SELECT * FROM ({spec.sql}) AS rule_output LIMIT 0", spec.params or None)
    columns = [d[0] for d in cursor.description]
    cursor.fetchall()
    return columns


def wrapped_sql(spec: RuleSpec, columns: Sequence[str], focused: bool) -> str:
    missing = [c for c in ("application_id", "evidence") if c not in columns]
    if missing:
        raise Invalid(f"规则{spec.code}的查询结果缺少必需的列：{'、'.join(missing)}")
    amount = "h.amount_fen" if "amount_fen" in columns else "NULL"
    focus = " AND a.application_id IN (SELECT application_id FROM focus)" if focused else ""
    code = spec.code.replace("'", "''")
    # no fact_key column: the rule's code alone, so one flag per application and rule
    fact = f"COALESCE(CAST(h.fact_key AS VARCHAR), '{code}')" if "fact_key" in columns else f"'{code}'"
    return f"""
WITH hits AS (
  SELECT CAST(h.application_id AS BIGINT) AS application_id,
         CAST(h.evidence AS VARCHAR) AS evidence,
         {fact} AS fact_key,
         CAST(COALESCE({amount}, a.amount_fen) AS BIGINT) AS amount_fen
  FROM ({spec.sql}) AS h
  JOIN applications a ON a.application_id = CAST(h.application_id AS BIGINT)
  JOIN items i ON i.item_code = a.item_code
  WHERE h.evidence IS NOT NULL AND {spec.items.sql_condition('i')}{focus}
), one_per_application AS (
  SELECT application_id,
         left(string_agg(DISTINCT evidence, '；' ORDER BY evidence), {EVIDENCE_MAX}) AS evidence,
         string_agg(DISTINCT fact_key, '|' ORDER BY fact_key) AS facts,
         max(amount_fen) AS amount_fen
  FROM hits GROUP BY application_id
)
SELECT '{code}' AS rule_code, application_id, evidence, left(sha256(evidence), 32) AS evidence_key,
       CASE WHEN length(facts) <= {FACT_KEY_MAX} THEN facts ELSE 'sha256:' || left(sha256(facts), 56) END AS fact_key,
       amount_fen
FROM one_per_application"""


def run_rule(snapshot: Snapshot, spec: RuleSpec) -> RuleResult:
    """One rule over the snapshot. Errors in the rule's SQL are returned, not raised, so one broken
    rule does not stop the others (the run records it)."""
    started = time.perf_counter()
    seconds = get_settings().rule_timeout_seconds
    try:
        with time_limit(snapshot.con, seconds):  # the memory and temporary-disk ceilings are the connection's
            sql = wrapped_sql(spec, _output_columns(snapshot, spec), snapshot.focus is not None)
            table = snapshot.con.sql(sql, params=spec.params or None).to_arrow_table().cast(HIT_SCHEMA)
        return RuleResult(spec.code, table, time.perf_counter() - started)
    except Exception as e:  # noqa: BLE001 - DuckDB raises several kinds; the message is what matters
        limited = limit_message(e, seconds)
        message = (e.message if isinstance(e, Invalid) else f"规则{spec.code}：{limited}" if limited
                   else f"规则{spec.code}执行出错：{e}")
        return RuleResult(spec.code, HIT_SCHEMA.empty_table(), time.perf_counter() - started, message)


def run_rules(snapshot: Snapshot, specs: Sequence[RuleSpec],
              progress: Callable[[str, int, int], None] | None = None) -> list[RuleResult]:
    results = []
    for done, spec in enumerate(specs, 1):
        results.append(run_rule(snapshot, spec))
        if progress:
            progress(f"规则 {spec.code}", done, len(specs))
    return results


def combined_hits(results: Sequence[RuleResult]) -> pa.Table:
    tables = [r.hits for r in results if r.hits.num_rows]
    return pa.concat_tables(tables) if tables else HIT_SCHEMA.empty_table()
