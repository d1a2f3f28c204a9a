"""Screening (比对): run the active rules and turn their hits into flags.

Three occasions, one code path: the whole city (`run_city`, nightly or on demand), the claims just
entered at any door (`screen`, called by workflow.enter_claims so the clerk sees the problem at
once), and the pre-payment gate (interception.service.gate). This module sits below the workflow
service: it writes flags, and leaves the applications' `open_flags` count and their 存疑拦截 trail
records to workflow.flag_marks (workflow writes workflow's tables); verification, which moves
applications on the road, is in interception.service.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import pyarrow as pa
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yikatong.core.db import bulk_insert, insert_from_duckdb, naive_utc, savepoint
from yikatong.interception import engine as rule_engine
from yikatong.interception import rulefile, tallies
from yikatong.interception.models import Flag, FlagStatus, Rule, RuleOrigin, RuleRun, RuleVersion
from yikatong.interception.rulefile import RuleSpec
from yikatong.interception.snapshot import Snapshot, city_snapshot, focus_snapshot
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.sharing.store import current_snapshots
from yikatong.workflow import flag_marks
from yikatong.workflow.models import Application

Progress = Callable[[str, int, int], None]
CHUNK = 900
SYSTEM_NAME = "系统"


# ---------------------------------------------------------------- rules and versions


def _fingerprint(spec: RuleSpec) -> str:
    content = [spec.name, spec.severity, str(spec.items), list(spec.datasets), spec.explanation, spec.params, spec.sql]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


def _version_fingerprint(v: RuleVersion) -> str:
    return _fingerprint(spec_of(v))


def spec_of(version: RuleVersion) -> RuleSpec:
    return rulefile.make_spec(code=version.rule_code, name=version.name, severity=version.severity,
                              items=version.items, datasets=version.datasets, explanation=version.explanation,
                              sql=version.sql, params=json.loads(version.params or "{}"))


def new_version(session: Session, rule: Rule, spec: RuleSpec, author: User | None, now: datetime) -> RuleVersion:
    """Append a version (versions are never edited)."""
    rule.latest_version += 1
    rule.name = spec.name
    rule.updated_at = now
    version = RuleVersion(rule_code=rule.code, version=rule.latest_version, name=spec.name,
                          explanation=spec.explanation, severity=spec.severity, items=str(spec.items),
                          datasets=",".join(spec.datasets), params=spec.params_json(), sql=spec.sql,
                          sql_sha256=spec.sql_sha256, author_id=author.id if author else None,
                          author_name=author.display_name if author else SYSTEM_NAME, created_at=now)
    session.add(version)
    session.flush()
    return version


def sync_builtin_rules(session: Session, now: datetime) -> None:
    """Bring the rule files into the database: a new file is a new rule (on), a changed file a new
    version (on at once: shipped rules are reviewed in the code). A supervisor rule that happens to
    use a shipped code is left alone.

    Every screening calls this, so on a fresh database (or after an upgrade) two claims entered at
    once may both find a rule missing: the second to write meets the first's rows in the unique
    indexes, rolls back its savepoint and looks again — by then there is nothing left to do."""
    for attempt in range(3):
        if not _sync_builtin_rules(session, now, write=False):
            return  # the usual case: nothing to write, and no write lock taken (SQLite's is the database's)
        try:
            with savepoint(session):
                _sync_builtin_rules(session, now, write=True)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _sync_builtin_rules(session: Session, now: datetime, write: bool) -> bool:
    """Whether a rule file is not in the database as it is; with `write`, put it there."""
    specs = rulefile.builtin_rules()
    rules = {r.code: r for r in session.scalars(select(Rule))}
    latest_versions = {v.rule_code: v for v in session.scalars(
        select(RuleVersion).join(Rule, (Rule.code == RuleVersion.rule_code)
                                 & (Rule.latest_version == RuleVersion.version)))}
    pending = False
    for spec in specs:
        rule = rules.get(spec.code)
        if rule is not None:
            spec = with_params_set(spec, rule)
            if rule.origin != RuleOrigin.BUILTIN.value:
                continue
        latest = latest_versions.get(spec.code)
        if rule is not None and latest is not None and _version_fingerprint(latest) == _fingerprint(spec):
            continue
        pending = True
        if not write:
            continue
        if rule is None:
            rule = Rule(code=spec.code, origin=RuleOrigin.BUILTIN.value, name=spec.name, active=True,
                        latest_version=0, created_at=now, updated_at=now)
            session.add(rule)
            session.flush()
        version = new_version(session, rule, spec, None, now)
        version.activated_at = now
        rule.active_version = version.version
    if write:
        session.flush()
    return pending


def with_params_set(spec: RuleSpec, rule: Rule) -> RuleSpec:
    """The rule file's spec with the parameters a supervisor set on the rule (ykt rules set-param):
    the file's value is only the default, so a new version of the file keeps them."""
    chosen = {k: v for k, v in json.loads(rule.params_set or "{}").items() if k in spec.params}
    return dataclasses.replace(spec, params={**spec.params, **chosen}) if chosen else spec


def active_specs(session: Session) -> list[tuple[RuleVersion, RuleSpec]]:
    rows = session.execute(
        select(RuleVersion).join(Rule, (Rule.code == RuleVersion.rule_code)
                                 & (Rule.active_version == RuleVersion.version))
        .where(Rule.active).order_by(Rule.code)).scalars().all()
    return [(v, spec_of(v)) for v in rows]


# ---------------------------------------------------------------- runs


def run_city(engine: Engine, session: Session, now: datetime, actor: User | None = None,
             progress: Progress | None = None, specs: Sequence[tuple[RuleVersion, RuleSpec]] | None = None,
             threads: int | None = None, ip: str = "") -> RuleRun:
    """All active rules over every live application of the city (committed data), set-based in
    DuckDB. New hits become flags in `session`; the caller commits. The run is on the audit trail
    (it reads every claimant's data)."""
    sync_builtin_rules(session, now)
    pairs = list(specs) if specs is not None else active_specs(session)
    shared = current_snapshots(session)
    snap = city_snapshot(engine, shared, threads=threads, progress=progress)
    try:
        run = _run_and_record(session, snap, pairs, "city", actor, shared, now, progress)
    finally:
        snap.close()
    audit.record(session, actor, "interception.city_run", "rule_run", run.id, now, ip=ip,
                 detail={"rules": len(pairs), "applications": run.applications, "new_flags": run.new_flags})
    return run


def screen(session: Session, application_ids: Sequence[int], now: datetime, actor: User | None = None,
           scope: str = "submit") -> RuleRun | None:
    """The active rules on a set of applications (and what they are compared with), seen through
    `session`, so claims entered in the same transaction are screened before it commits."""
    if not application_ids:
        return None
    sync_builtin_rules(session, now)
    pairs = active_specs(session)
    if not pairs:
        return None
    session.flush()
    shared = current_snapshots(session)
    snap = focus_snapshot(session, application_ids, shared)
    try:
        return _run_and_record(session, snap, pairs, scope, actor, shared, now, None)
    finally:
        snap.close()


def _start_run(session: Session, scope: str, now: datetime, actor: User | None, shared) -> RuleRun:
    run = RuleRun(scope=scope, started_at=now, applications=0, hits=0, new_flags=0,
                  snapshots=json.dumps({k: [s.id for s in v] for k, v in shared.items()}), timings="{}",
                  triggered_by=actor.id if actor else None)
    session.add(run)
    session.flush()
    return run


def _run_and_record(session: Session, snap: Snapshot, pairs: Sequence[tuple[RuleVersion, RuleSpec]], scope: str,
                    actor: User | None, shared, now: datetime, progress: Progress | None) -> RuleRun:
    started = time.perf_counter()
    results = rule_engine.run_rules(snap, [spec for _, spec in pairs], progress)
    hits = rule_engine.combined_hits(results)
    # the first write of the run comes only now: on SQLite a city run does not hold the database's
    # single write lock (and keep the counters waiting) while it exports and runs the rules
    run = _start_run(session, scope, now, actor, shared)
    run.applications = len(snap.focus) if snap.focus is not None else snap.counts.get("applications", 0)
    run.hits = hits.num_rows
    timings = {r.code: round(r.seconds, 3) for r in results}
    errors = {r.code: r.error for r in results if r.error}
    versions = {spec.code: version for version, spec in pairs}
    run.new_flags = record_hits(session, snap, hits, versions, run, now, progress)
    run.timings = json.dumps({"rules": timings, "errors": errors, "total": round(time.perf_counter() - started, 3)},
                             ensure_ascii=False)
    run.finished_at = now
    return run


def record_hits(session: Session, snap: Snapshot, hits: pa.Table, versions: dict[str, RuleVersion], run: RuleRun,
                now: datetime, progress: Progress | None = None) -> int:
    """Turn hits into flags, skipping every (application, rule, fact key) already flagged — open,
    confirmed or cleared — so a rerun raises nothing twice and a cleared flag stays cleared until
    the facts change, however the evidence is worded. Returns how many flags were raised."""
    if hits.num_rows == 0:
        return 0
    if snap.focus is None:
        return _record_city(session, snap, hits, versions, run, now, progress)
    con = snap.con
    con.register("run_hits", hits)
    rows = con.sql("""
        SELECT h.rule_code, h.application_id, h.evidence, h.evidence_key, h.amount_fen,
               a.item_code, a.region_code, a.status, a.stage, h.fact_key
        FROM run_hits h JOIN applications a USING (application_id)
        ORDER BY h.application_id, h.rule_code""").fetchall()
    con.unregister("run_hits")
    seen = _existing_keys(session, sorted({r[1] for r in rows}), snap.focus is None)
    fresh = [r for r in rows if (r[1], r[0], r[9]) not in seen and not _adopt_legacy(session, seen, r)]
    if not fresh:
        return 0
    flag_rows = [dict(application_id=app_id, rule_code=code, rule_version_id=versions[code].id, evidence=evidence,
                      evidence_key=fact_hash(fact), fact_key=fact, amount_fen=amount, item_code=item,
                      region_code=region, severity=versions[code].severity, status=FlagStatus.OPEN.value,
                      run_id=run.id, raised_at=now, verified_by=None, verified_at=None, opinion="",
                      evidence_document=None)
                 for code, app_id, evidence, _key, amount, item, region, _status, _stage, fact in fresh]
    if len(flag_rows) <= GUARDED_MAX:
        # A claim, a list or the gate: another transaction (a city run, a second gate) may be raising the
        # same flag at this moment; the unique index decides, and only the rows written here count.
        written = _insert_new_flags(session, flag_rows)
        fresh = [r for r in fresh if (r[1], r[0], r[9]) in written]
        if not fresh:
            return 0
    else:
        for start in range(0, len(flag_rows), 50_000):
            bulk_insert(session, Flag.__table__, flag_rows[start:start + 50_000])
            if progress:
                progress("记录存疑信息", min(start + 50_000, len(flag_rows)), len(flag_rows))
    flag_marks.record_flags_raised(session, _raised(fresh, versions), now)
    refresh_open_flags(session, sorted({r[1] for r in fresh}))
    tallies.flags_raised(session, run_id=run.id)  # after open_flags: the applications are locked
    session.expire_all()  # open_flags changed under the ORM's feet
    return len(fresh)


GUARDED_MAX = 20_000  # flags written with ON CONFLICT DO NOTHING; a city run's more go through COPY
FLAG_COLUMNS = ["application_id", "rule_code", "rule_version_id", "evidence", "evidence_key", "fact_key", "amount_fen",
                "item_code", "region_code", "severity", "status", "run_id", "raised_at", "opinion"]


def _record_city(session: Session, snap: Snapshot, hits: pa.Table, versions: dict[str, RuleVersion], run: RuleRun,
                 now: datetime, progress: Progress | None) -> int:
    """record_hits for the whole city, set-based in DuckDB: the flags already raised are read once
    (application, rule, fact key) and anti-joined there, and the new flags, their trail records and
    open-flag counts are written in bulk (COPY on PostgreSQL), never a Python object per hit.

    The flags read are the session's own view: on SQLite the run holds the write lock from its first
    write (the run's row) on, so nothing can be raised in between; on PostgreSQL a flag raised
    meanwhile by a claim or the gate makes the COPY fail on the unique index, and the run then
    writes its flags one chunk at a time with ON CONFLICT DO NOTHING instead."""
    con = snap.con
    session.flush()
    con.register("run_hits", hits)
    con.register("existing_flags", _existing_flags(session))
    con.register("run_rules", pa.table({
        "rule_code": pa.array(list(versions), pa.string()),
        "version_id": pa.array([v.id for v in versions.values()], pa.int64()),
        "name": pa.array([v.name for v in versions.values()], pa.string()),
        "severity": pa.array([v.severity for v in versions.values()], pa.string())}))
    try:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE fresh_flags AS
            SELECT h.rule_code, h.application_id, h.evidence, h.evidence_key, h.fact_key, h.amount_fen,
                   a.item_code, a.region_code, a.status, a.stage, r.version_id, r.name, r.severity
            FROM run_hits h JOIN applications a USING (application_id) JOIN run_rules r USING (rule_code)
            WHERE NOT EXISTS (SELECT 1 FROM existing_flags e WHERE e.application_id = h.application_id
                              AND e.rule_code = h.rule_code AND e.fact_key = h.fact_key)""").fetchall()
        # flags raised before fact keys, with this hit's evidence: they take the fact key (see _adopt_legacy)
        legacy = con.execute(f"""
            SELECT f.application_id, f.rule_code, f.fact_key, f.evidence_key FROM fresh_flags f JOIN existing_flags e
              ON e.application_id = f.application_id AND e.rule_code = f.rule_code
             AND e.fact_key = '{LEGACY}' || f.evidence_key""").fetchall()
        for app_id, code, fact, evidence_key in legacy:
            session.execute(update(Flag).where(Flag.application_id == app_id, Flag.rule_code == code,
                                               Flag.fact_key == LEGACY + evidence_key)
                            .values(fact_key=fact, evidence_key=fact_hash(fact))
                            .execution_options(synchronize_session=False))
        if legacy:
            con.execute(f"""DELETE FROM fresh_flags f WHERE EXISTS (SELECT 1 FROM existing_flags e
                WHERE e.application_id = f.application_id AND e.rule_code = f.rule_code
                  AND e.fact_key = '{LEGACY}' || f.evidence_key)""").fetchall()
        fresh = con.execute("SELECT count(*) FROM fresh_flags").fetchall()[0][0]
        if not fresh:
            return 0
        at = naive_utc(now).strftime("%Y-%m-%d %H:%M:%S.%f")
        flags_query = f"""
            SELECT application_id, rule_code, version_id, evidence, left(sha256(fact_key), 32), fact_key, amount_fen,
                   item_code, region_code, severity, '{FlagStatus.OPEN.value}', {int(run.id)}, '{at}', ''
            FROM fresh_flags ORDER BY application_id, rule_code"""
        try:
            with savepoint(session):
                insert_from_duckdb(session, Flag.__tablename__, FLAG_COLUMNS, con, flags_query)
        except IntegrityError as e:
            if "unique" not in str(e.orig).lower():
                raise
            _insert_racing(session, con, flags_query)
            fresh = con.execute("SELECT count(*) FROM fresh_flags").fetchall()[0][0]
            if not fresh:
                return 0
        if progress:
            progress("记录存疑信息", fresh, fresh)
        flag_marks.record_flags_raised_from(session, con, "fresh_flags", now)
        ids = [r[0] for r in con.execute("SELECT DISTINCT application_id FROM fresh_flags ORDER BY 1").fetchall()]
        refresh_open_flags(session, ids)
        tallies.flags_raised(session, run_id=run.id)  # after open_flags: the applications are locked
    finally:
        con.execute("DROP TABLE IF EXISTS fresh_flags").fetchall()
        for name in ("run_hits", "existing_flags", "run_rules"):
            con.unregister(name)
    session.expire_all()  # open_flags changed under the ORM's feet
    return fresh


def _insert_racing(session: Session, con, flags_query: str) -> None:
    """A flag of this run was raised meanwhile by another transaction: the flags go in bulk into a
    temporary table, from there into flags with ON CONFLICT DO NOTHING, and `fresh_flags` keeps only
    what this run wrote."""
    connection = session.connection()
    columns = ", ".join(FLAG_COLUMNS)
    connection.exec_driver_sql("DROP TABLE IF EXISTS racing_flags")
    connection.exec_driver_sql("CREATE TEMP TABLE racing_flags AS SELECT * FROM flags WHERE 1 = 0")
    insert_from_duckdb(session, "racing_flags", FLAG_COLUMNS, con, flags_query)
    written = connection.exec_driver_sql(
        f"INSERT INTO flags ({columns}) SELECT {columns} FROM racing_flags WHERE 1 = 1 "
        f"ON CONFLICT DO NOTHING RETURNING application_id, rule_code, fact_key").fetchall()
    connection.exec_driver_sql("DROP TABLE racing_flags")
    con.register("written_flags", pa.table({
        "application_id": pa.array([w[0] for w in written], pa.int64()),
        "rule_code": pa.array([w[1] for w in written], pa.string()),
        "fact_key": pa.array([w[2] for w in written], pa.string())}))
    con.execute("""DELETE FROM fresh_flags f WHERE NOT EXISTS (SELECT 1 FROM written_flags w
        WHERE w.application_id = f.application_id AND w.rule_code = f.rule_code AND w.fact_key = f.fact_key)""")
    con.unregister("written_flags")


def _existing_flags(session: Session) -> pa.Table:
    """(application_id, rule_code, fact_key) of every flag, as the session sees them, into Arrow
    (PostgreSQL: COPY out as CSV, parsed by Arrow)."""
    connection = session.connection()
    sql = "SELECT application_id, rule_code, fact_key FROM flags"
    schema = pa.schema([("application_id", pa.int64()), ("rule_code", pa.string()), ("fact_key", pa.string())])
    if connection.dialect.name == "postgresql":
        import io

        from pyarrow import csv

        buffer = io.BytesIO()
        with connection.connection.dbapi_connection.cursor() as cursor, cursor.copy(
                f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
            for data in copy:
                buffer.write(data)
        if not buffer.tell():
            return schema.empty_table()
        buffer.seek(0)
        return csv.read_csv(buffer, read_options=csv.ReadOptions(column_names=schema.names),
                            convert_options=csv.ConvertOptions(column_types=schema))
    rows = connection.exec_driver_sql(sql).fetchall()
    return pa.table([pa.array([r[i] for r in rows], schema.field(i).type) for i in range(3)], schema=schema)


def _insert_new_flags(session: Session, flag_rows: list[dict]) -> set[tuple[int, str, str]]:
    """INSERT .. ON CONFLICT DO NOTHING RETURNING: the (application, rule, fact key) actually written."""
    dialect = session.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    written: set[tuple[int, str, str]] = set()
    for start in range(0, len(flag_rows), 500):  # SQLite's limit on bound parameters per statement
        statement = (insert_fn(Flag.__table__).values(flag_rows[start:start + 500]).on_conflict_do_nothing()
                     .returning(Flag.application_id, Flag.rule_code, Flag.fact_key))
        written.update(tuple(r) for r in session.execute(statement))
    return written


LEGACY = "evidence:"  # the fact key of a flag raised before fact keys: "evidence:" + its evidence hash


def fact_hash(fact_key: str) -> str:
    """What flags.evidence_key holds since fact keys (on SQLite the old unique constraint on
    (application, rule, evidence_key) could not be dropped; this keeps it saying the same as the
    fact key index)."""
    return hashlib.sha256(fact_key.encode()).hexdigest()[:32]


def _adopt_legacy(session: Session, seen: set[tuple[int, str, str]], row: tuple) -> bool:
    """A flag raised before fact keys with the same evidence as this hit is this hit: it takes the
    hit's fact key (so from now on rewording cannot raise it again) and nothing new is raised."""
    code, app_id, _evidence, evidence_key, *_rest, fact = row
    legacy = (app_id, code, LEGACY + evidence_key)
    if legacy not in seen:
        return False
    session.execute(update(Flag).where(Flag.application_id == app_id, Flag.rule_code == code,
                                       Flag.fact_key == legacy[2])
                    .values(fact_key=fact, evidence_key=fact_hash(fact)).execution_options(synchronize_session=False))
    seen.discard(legacy)
    seen.add((app_id, code, fact))
    return True


def _existing_keys(session: Session, application_ids: list[int], everything: bool) -> set[tuple[int, str, str]]:
    query = select(Flag.application_id, Flag.rule_code, Flag.fact_key)
    if everything:
        return {tuple(r) for r in session.execute(query)}
    out: set[tuple[int, str, str]] = set()
    for start in range(0, len(application_ids), CHUNK):
        out.update(tuple(r) for r in session.execute(
            query.where(Flag.application_id.in_(application_ids[start:start + CHUNK]))))
    return out


def _raised(fresh: list[tuple], versions: dict[str, RuleVersion]) -> list[flag_marks.FlagsRaised]:
    by_app: dict[int, list[tuple]] = {}
    for row in fresh:
        by_app.setdefault(row[1], []).append(row)
    return [flag_marks.FlagsRaised(application_id=app_id, status=rows[0][7], stage=rows[0][8],
                                   rules=[r[0] for r in rows], lines=[f"{versions[r[0]].name}：{r[2]}" for r in rows])
            for app_id, rows in by_app.items()]


def open_flag_count():
    """A scalar subquery, correlated with applications.id: the application's flags still 待核实."""
    return (select(text("count(*)")).select_from(Flag.__table__)
            .where(Flag.application_id == Application.id, Flag.status == FlagStatus.OPEN.value)
            .scalar_subquery())


def refresh_open_flags(session: Session, application_ids: Sequence[int]) -> None:
    """Set applications.open_flags to the number of their flags still 待核实 (written by workflow)."""
    flag_marks.set_open_flags(session, application_ids, open_flag_count())
