"""Tables of the review road (审核审批): applications, the append-only trail, per-item road settings,
village publicity with objections, and the working-day calendar. Amounts are integer fen."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yikatong.core.db import Base


class Step(StrEnum):
    """The stations of the road, in their fixed order (户报、村评、公示、镇审、县定、市管)."""

    APPLY = "户报"  # the household applies at the village (受理); not a waiting station
    VILLAGE = "村评"  # village evaluation (民主评议)
    PUBLICITY = "公示"  # village publicity, default 7 days, open to objections (异议)
    TOWNSHIP = "镇审"  # township review
    COUNTY = "县定"  # county department decision
    CITY = "市管"  # city finance management


class Status(StrEnum):
    OPEN = "办理中"
    APPROVED = "已通过"  # through every step: waiting for the pre-payment gate
    PAYABLE = "待支付"  # passed the pre-payment gate (interception.service.gate): waiting for payment
    REJECTED = "已否决"
    WITHDRAWN = "已撤回"


LIVE_STATUSES = (Status.OPEN.value, Status.APPROVED.value, Status.PAYABLE.value)


class Action(StrEnum):
    """What one record of the trail says happened."""

    SUBMIT = "提交申请"
    APPROVE = "通过"
    RETURN = "退回补正"
    REJECT = "否决"
    CORRECT = "补正"
    PUBLICITY_START = "公示开始"
    PUBLICITY_END = "公示期满"
    OBJECTION = "异议登记"
    OBJECTION_RESOLVED = "异议处理"
    WITHDRAW = "撤回"
    FLAG_RAISED = "存疑拦截"  # a rule flagged the application (interception)
    FLAG_CONFIRMED = "核实属实"
    FLAG_CLEARED = "核实排除"
    PAYABLE = "转入待支付"  # passed the pre-payment gate


class Source(StrEnum):
    COUNTER = "村级受理"  # the acceptance module (受理模块)
    LIST = "部门名单"  # a department's Excel/CSV list
    API = "业务系统接口"  # a department business system over the JSON API


class Application(Base):
    """One claim (补贴申请): a person (or household), an item, a period and an amount.

    `stage` is the station the application waits at while it is 办理中; `due_on` is the last
    working day of that station and `remind_on` the day the electronic eye reminds the handler."""

    __tablename__ = "applications"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # 申请编号
    item_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"))
    sector: Mapped[str] = mapped_column(String(20))  # the item's department sector: a handler's duties
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"))
    region_code: Mapped[str] = mapped_column(String(12))  # the village the claim belongs to
    period: Mapped[str] = mapped_column(String(10))  # 2026-11, 2026Q4, 2026H2, 2026
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    basis: Mapped[str] = mapped_column(String(2))  # 人 / 户 / 亩, copied from the item
    quantity_centi: Mapped[int] = mapped_column(Integer)  # quantity x 100 (12.50 亩 -> 1250)
    standard_fen: Mapped[int] = mapped_column(BigInteger)  # the item's standard when computed
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # standard x quantity, never typed in
    source: Mapped[str] = mapped_column(String(10))
    source_ref: Mapped[str] = mapped_column(String(100), default="")  # list file hash, API client key...
    status: Mapped[str] = mapped_column(String(4))
    stage: Mapped[str | None] = mapped_column(String(4))  # station while 办理中, else NULL
    stage_seq: Mapped[int] = mapped_column(Integer, default=1)  # bumps at every move: keys reminders
    returned: Mapped[bool] = mapped_column(Boolean, default=False)  # waiting for a correction (补正)
    owner_region: Mapped[str | None] = mapped_column(String(12))  # whose staff act at this stage
    stage_entered_at: Mapped[datetime]
    due_on: Mapped[date | None] = mapped_column(Date)
    remind_on: Mapped[date | None] = mapped_column(Date)
    reminded: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    open_objections: Mapped[int] = mapped_column(Integer, default=0)
    # 存疑信息 not yet verified (interception.service keeps it equal to the open flags): while > 0 the
    # application cannot pass 县定 nor be paid.
    open_flags: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    publicity_id: Mapped[int | None] = mapped_column(ForeignKey("publicities.id"))
    note: Mapped[str] = mapped_column(Text, default="")  # the applicant's statement
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]  # when it left 办理中

    item = relationship("SubsidyItem")
    person = relationship("Person")
    records: Mapped[list[ReviewRecord]] = relationship(order_by="ReviewRecord.id", viewonly=True)
    documents: Mapped[list[ApplicationDocument]] = relationship(order_by="ApplicationDocument.id")

    __table_args__ = (
        # One live claim per person, item and period, enforced by the database itself.
        Index("uq_applications_live_claim", "person_id", "item_code", "period", unique=True,
              sqlite_where=text("status IN ('办理中', '已通过', '待支付')"),
              postgresql_where=text("status IN ('办理中', '已通过', '待支付')")),
        # The inbox: what waits at a stage for a region's staff, by deadline (and by item). The trailing
        # columns are what the inbox filters and counts read, so 100,000 waiting are counted and paged
        # from the index alone (docs/benchmarks.md).
        Index("ix_applications_inbox", "stage", "owner_region", "due_on", "id", "sector", "item_code",
              "region_code"),
        Index("ix_applications_item_inbox", "stage", "owner_region", "item_code", "due_on", "id", "sector",
              "region_code"),
        Index("ix_applications_region", "region_code", "status"),
        Index("ix_applications_eye", "status", "remind_on"),
        Index("ix_applications_publicity", "publicity_id"),
        # screening reads the live claims of the claimant's household (interception.snapshot)
        Index("ix_applications_household", "household_id"),
    )
    # Every ORM UPDATE of an application is `WHERE id = ? AND stage_seq = ?`: of two people moving the
    # same application at once, the second finds no row (StaleDataError, answered as a Conflict). Every
    # move sets stage_seq itself (enter_stage, leave_road, correct, publish), so the check excludes them.
    __mapper_args__ = {"version_id_col": stage_seq, "version_id_generator": False}


class ApplicationDocument(Base):
    """Evidence attached to an application, by content hash (the file is stored once)."""

    __tablename__ = "application_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    document_sha256: Mapped[str] = mapped_column(ForeignKey("documents.sha256"))
    title: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime]
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    document = relationship("Document")


class ReviewRecord(Base):
    """One entry of an application's trail (审批留痕). Database triggers refuse UPDATE and DELETE."""

    __tablename__ = "review_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    step: Mapped[str] = mapped_column(String(4))  # the station it happened at
    action: Mapped[str] = mapped_column(String(8))
    to_stage: Mapped[str | None] = mapped_column(String(4))  # where the application went
    status_after: Mapped[str] = mapped_column(String(4))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_name: Mapped[str] = mapped_column(String(60))  # who, as shown (a user or 系统 / 群众)
    actor_role: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime]
    opinion: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")  # JSON: corrected fields, publicity id...


class RoadStep(Base):
    """Per-item road (审核流程配置): the stations an item passes and each one's deadline in
    working days. An item without rows uses the default road (workflow.road.default_road)."""

    __tablename__ = "road_steps"
    item_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"), primary_key=True)
    step: Mapped[str] = mapped_column(String(4), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    working_days: Mapped[int] = mapped_column(Integer)  # for 公示: calendar days of the window
    remind_days_before: Mapped[int] = mapped_column(Integer, default=1)
    list_entry: Mapped[bool] = mapped_column(Boolean, default=False)  # department lists enter here


class Publicity(Base):
    """A village publicity list (村级公示) for one item: who, what and how much, with a window."""

    __tablename__ = "publicities"
    id: Mapped[int] = mapped_column(primary_key=True)
    region_code: Mapped[str] = mapped_column(String(12), index=True)  # the village
    item_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"))
    title: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)  # last day objections are taken
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]

    entries: Mapped[list[PublicityEntry]] = relationship(order_by="PublicityEntry.position")


class PublicityEntry(Base):
    """One line of a publicity list, frozen as published (masked name and ID number)."""

    __tablename__ = "publicity_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    publicity_id: Mapped[int] = mapped_column(ForeignKey("publicities.id"), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name_masked: Mapped[str] = mapped_column(String(40))
    id_number_masked: Mapped[str] = mapped_column(String(18))
    quantity_centi: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class ObjectionStatus(StrEnum):
    OPEN = "待处理"
    UPHELD = "异议成立"
    DISMISSED = "异议不成立"


class Objection(Base):
    """异议: anyone may object to a publicised application during the window."""

    __tablename__ = "objections"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    publicity_id: Mapped[int] = mapped_column(ForeignKey("publicities.id"), index=True)
    raised_at: Mapped[datetime]
    raised_by_name: Mapped[str] = mapped_column(String(40), default="")  # may be anonymous
    contact_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # phone, encrypted like every phone
    contact_masked: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # a clerk taking it in person
    status: Mapped[str] = mapped_column(String(6), default=ObjectionStatus.OPEN)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None]
    opinion: Mapped[str] = mapped_column(Text, default="")


class CalendarDay(Base):
    """An exception to Monday-to-Friday: a public holiday on a weekday, or a weekend working day
    (调休). Deadlines count working days through this calendar."""

    __tablename__ = "calendar_days"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(40), default="")


class ApiSubmission(Base):
    """Idempotency keys of API submissions: a retried request returns what the first one made."""

    __tablename__ = "api_submissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    client_key: Mapped[str] = mapped_column(String(120), unique=True)  # "<user id>:<Idempotency-Key>"
    request_sha256: Mapped[str] = mapped_column(String(64))
    application_ids: Mapped[str] = mapped_column(Text)  # JSON list
    created_at: Mapped[datetime]


class NumberCounter(Base):
    """Daily counters for application numbers (SQ20261128000001): numbers are reserved in blocks
    by one UPDATE, so a list of 100,000 takes one round trip and two clerks never share a number."""

    __tablename__ = "number_counters"
    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)
