"""Tables of interception: rules and their versions, runs, flags (存疑信息) and leads (问题线索)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yikatong.core.db import Base


class Severity(StrEnum):
    HIGH = "高"
    MEDIUM = "中"
    LOW = "低"


class RuleOrigin(StrEnum):
    BUILTIN = "内置"  # a file in interception/rules/, synced at every run
    SUPERVISOR = "监督人员"  # written in SQL from the page or the CLI


class FlagStatus(StrEnum):
    OPEN = "待核实"
    CONFIRMED = "核实属实"  # the application is rejected and the case becomes a lead
    CLEARED = "核实排除"  # cleared with an opinion and evidence


class Rule(Base):
    """A named check (比对规则). Its SQL lives in versions; `active_version` is the one that runs."""

    __tablename__ = "rules"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    origin: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(60))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    active_version: Mapped[int | None] = mapped_column(Integer)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    # JSON {name: value}: parameters of a built-in rule a supervisor has set; they outlive a new
    # version of the rule file (the file's value is only the default)
    params_set: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    versions: Mapped[list[RuleVersion]] = relationship(order_by="RuleVersion.version", viewonly=True)


class RuleVersion(Base):
    """One version of a rule: never edited; a change is a new version. Flags point at the version
    that raised them, so a cleared flag can always be read against the SQL that produced it."""

    __tablename__ = "rule_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    rule_code: Mapped[str] = mapped_column(ForeignKey("rules.code"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(60))  # 规则名称
    explanation: Mapped[str] = mapped_column(Text)  # 规则说明
    severity: Mapped[str] = mapped_column(String(2))
    items: Mapped[str] = mapped_column(String(400))  # "all", "means_tested" or item codes, comma-separated
    datasets: Mapped[str] = mapped_column(String(300))  # tables the SQL reads, comma-separated
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON: named parameters ($name) and values
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")  # why this version (a parameter change)
    sql: Mapped[str] = mapped_column(Text)
    sql_sha256: Mapped[str] = mapped_column(String(64))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_name: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]
    dry_run_at: Mapped[datetime | None]
    dry_run_hits: Mapped[int | None] = mapped_column(Integer)
    dry_run_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    activated_at: Mapped[datetime | None]
    activated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (UniqueConstraint("rule_code", "version"),)


class RuleRun(Base):
    """One run of the active rules: over the whole city, for new applications at submission, or as
    the pre-payment gate for a set of applications."""

    __tablename__ = "rule_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(10))  # city / submit / gate
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    applications: Mapped[int] = mapped_column(Integer, default=0)  # how many were checked
    hits: Mapped[int] = mapped_column(Integer, default=0)  # rows the rules returned
    new_flags: Mapped[int] = mapped_column(Integer, default=0)  # flags raised (hits not seen before)
    snapshots: Mapped[str] = mapped_column(Text, default="{}")  # JSON: data set -> snapshot ids used
    timings: Mapped[str] = mapped_column(Text, default="{}")  # JSON: rule code -> seconds
    triggered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Flag(Base):
    """存疑信息: one rule's hit on one application, with the fact that triggered it.

    A hit already recorded for the same application, rule and fact key is not raised again, so a
    rerun adds nothing and a cleared flag stays cleared until the facts change — however the rule's
    evidence is worded, whichever version or engine runs it."""

    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    rule_code: Mapped[str] = mapped_column(ForeignKey("rules.code"))
    rule_version_id: Mapped[int] = mapped_column(ForeignKey("rule_versions.id"))
    evidence: Mapped[str] = mapped_column(Text)
    evidence_key: Mapped[str] = mapped_column(String(32))  # hash of the fact key (of the evidence before fact keys)
    # what the facts are, not how they are worded (the death date, the other application's id, the
    # plate...): the dedupe key. "evidence:<evidence_key>" marks a flag raised before fact keys, until
    # the next run that sees the same evidence gives it its fact key (interception.screening).
    fact_key: Mapped[str] = mapped_column(String(128))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # money at stake
    # copied from the application so statistics group without a join
    item_code: Mapped[str] = mapped_column(String(20))
    region_code: Mapped[str] = mapped_column(String(12))
    severity: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(4), default=FlagStatus.OPEN)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("rule_runs.id"))
    raised_at: Mapped[datetime]
    verified_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verified_at: Mapped[datetime | None]
    opinion: Mapped[str] = mapped_column(Text, default="")
    evidence_document: Mapped[str | None] = mapped_column(ForeignKey("documents.sha256"))

    application = relationship("Application")

    __table_args__ = (
        Index("uq_flags_fact", "application_id", "rule_code", "fact_key", unique=True),
        # counting an application's open flags (open_flags); SQLite would otherwise pick the status index
        Index("ix_flags_application_status", "application_id", "status"),
        # the flags list, newest first: walked backwards in id order, the region and item checked in the
        # index (a city's 待核实 page reads 50 entries, not every open flag sorted)
        Index("ix_flags_status_id", "status", "id", "region_code", "item_code"),
        # a township's or village's flags (its list and statistics)
        Index("ix_flags_region", "region_code", "status"),
        Index("ix_flags_rule", "rule_code", "status"),  # (and id, as every SQLite index: a rule's list in order)
        # the flags a run raised, counted into flag_tallies (interception.tallies) when it ends
        Index("ix_flags_run", "run_id"),
    )


class FlagTally(Base):
    """Flag counts kept per region, item, rule, Beijing day and status, so the statistics and the
    flags list of a city add up a few thousand rows instead of grouping every flag. Written only by
    interception.tallies, in the transaction that raises or verifies the flags; equal at every
    commit to the same counts over `flags` (tests/interception/test_tallies.py checks it).

    Five kinds of row (`kind`); F and A are kept per township, the others per county:
    - F: flags and their amounts at stake, by status; G: the same per rule;
    - A: applications flagged (涉及申请, with their amounts); R: the same per rule; M: per month.
    An A/R/M row counts "marks": a day on which an application (per rule, per month) got a flag,
    with the previous such day (`prev_day`, NEVER for the first). The applications flagged from
    day X to day Y are the marks dated X..Y whose previous day is before X — exactly one per
    application with a flag in the range, so distinct counts add up for any range of days."""

    __tablename__ = "flag_tallies"
    kind: Mapped[str] = mapped_column(String(1), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)  # the township's or county's code
    item_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    rule_code: Mapped[str] = mapped_column(String(40), primary_key=True)  # G and R rows; "" in the others
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # Beijing day the flags were raised
    prev_day: Mapped[date] = mapped_column(Date, primary_key=True)  # A/R/M: the previous mark's day
    status: Mapped[str] = mapped_column(String(4), primary_key=True)  # F, G: the flags' status; else ""
    count: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # F: at stake; A: the applications' amounts

    __table_args__ = {"sqlite_with_rowid": False}  # the key is the table: sums read it in key order


class Lead(Base):
    """问题线索: a confirmed flag kept for supervisors (followed up by the supervision domain)."""

    __tablename__ = "leads"
    id: Mapped[int] = mapped_column(primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id"), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    rule_code: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(12), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    summary: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(4), default="待处理")
    created_at: Mapped[datetime]


class SnapshotChange(Base):
    """One row of the kept snapshot's change log (快照变更记录): written by database triggers (migration
    0011) whenever a row of a table the city run reads is inserted, deleted or changed in a column the
    snapshot holds; read, applied and deleted by interception.kept."""

    __tablename__ = "snapshot_changes"
    __table_args__ = {"sqlite_autoincrement": True}
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(32))
    row_id: Mapped[int] = mapped_column(BigInteger)


class SnapshotState(Base):
    """One row: the token a kept snapshot must know to be fresh. Changed by every refresh that applied
    the log, and by anything that bypassed the log (a TRUNCATE, a bulk load with the triggers off)."""

    __tablename__ = "snapshot_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(32))
