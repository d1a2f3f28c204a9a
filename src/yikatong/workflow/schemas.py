"""What the workflow API takes and returns. Amounts are integer fen; personal data leaves masked."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from yikatong.core.limits import MAX_ID, Id

# ---------------------------------------------------------------- inbox and lists


class ItemCount(BaseModel):
    code: str
    name: str
    count: int


class InboxRow(BaseModel):
    id: int
    number: str
    item_code: str
    item_name: str
    person_name: str
    id_number_masked: str
    region_code: str
    period: str
    amount_fen: int
    stage: str
    due_on: date | None
    overdue_days: int  # calendar days past the deadline, 0 when not overdue
    returned: bool
    open_objections: int
    publicity_id: int | None
    version: int  # send it back with a decision: 409 if someone else moved the application meanwhile
    at_publicity: bool = False  # waiting at 公示 (published or not yet)


class InboxOut(BaseModel):
    rows: list[InboxRow]
    total: int
    overdue: int
    page: int
    size: int
    pages: int
    by_item: list[ItemCount]  # everything waiting for you, by item (unfiltered)
    steps: list[str]  # the stations you act at


class ApplicationBrief(BaseModel):
    id: int
    number: str
    item_code: str
    item_name: str
    person_name: str
    region_code: str
    period: str
    amount_fen: int
    status: str
    stage: str | None
    created_at: datetime


class ApplicationPage(BaseModel):
    rows: list[ApplicationBrief]
    page: int
    size: int
    has_next: bool


# ---------------------------------------------------------------- one application


class RecordOut(BaseModel):
    """One record of the trail (审批留痕)."""

    id: int
    at: datetime
    step: str
    action: str
    to_stage: str | None
    status_after: str
    actor_name: str
    actor_role: str
    actor_role_label: str
    opinion: str
    detail: dict[str, Any]
    detail_text: str  # the detail as a reader says it: 数量 5亩→4.5亩；金额 525.00→472.50


class DocumentOut(BaseModel):
    title: str
    sha256: str
    filename: str
    content_type: str
    size: int
    added_at: datetime


class ObjectionOut(BaseModel):
    id: int
    publicity_id: int
    raised_at: datetime
    raised_by_name: str
    contact_masked: str | None
    reason: str
    status: str
    opinion: str
    resolved_at: datetime | None


class ApplicationOut(BaseModel):
    id: int
    number: str
    item_code: str
    item_name: str
    sector: str
    person_id: int
    person_name: str
    id_number_masked: str
    region_code: str
    region_name: str
    period: str
    period_start: date
    period_end: date
    basis: str
    quantity_centi: int
    quantity_text: str
    standard_fen: int
    amount_fen: int
    source: str
    status: str
    stage: str | None
    returned: bool
    version: int  # changes at every move; send it back with a decision (409 if it moved meanwhile)
    owner_region: str | None
    due_on: date | None
    overdue_days: int
    open_objections: int
    publicity_id: int | None
    note: str
    created_at: datetime
    decided_at: datetime | None
    can_act: bool  # whether you are a handler of the station it waits at
    actions: list[str] = Field(default_factory=list, description=(
        "What you may do with it now: decide (通过/否决), return (退回补正), correct (补正), withdraw (撤回), "
        "resolve_objection (异议处理), verify (核实存疑信息)"))
    documents: list[DocumentOut]
    objections: list[ObjectionOut]
    records: list[RecordOut]


# ---------------------------------------------------------------- decisions


class DecisionIn(BaseModel):
    decision: Literal["approve", "return", "reject"]
    opinion: str = Field("", max_length=2000)
    return_to: str | None = Field(None, description="退回补正的目标环节（村评/镇审/县定），缺省为申请进入的环节")
    version: int | None = Field(None, description="审核人看到的申请版本（查询申请时的 version）："
                                                  "申请已被他人处理时返回 409")


class DecisionOut(BaseModel):
    id: int
    number: str
    status: str
    stage: str | None
    returned: bool
    record: RecordOut


class InboxFilterIn(BaseModel):
    item_code: str | None = None
    village: str | None = Field(None, pattern=r"^[0-9]{2,12}$", description="区划代码（本辖区内任一级）")
    due_before: date | None = None
    overdue: bool = False
    returned: bool = False


class BulkDecisionIn(BaseModel):
    """Either `ids` or `filter` (everything in your inbox that matches, up to 10,000)."""

    ids: list[Id] | None = Field(None, max_length=10_000)
    filter: InboxFilterIn | None = None
    decision: Literal["approve", "reject"]
    opinion: str = Field("", max_length=2000)


class SkippedOut(BaseModel):
    number: str
    reason: str


class BulkDecisionOut(BaseModel):
    done: list[str]  # application numbers
    skipped: list[SkippedOut]


class ObjectionResolutionIn(BaseModel):
    upheld: bool  # true: 异议成立 (the application is rejected); false: 异议不成立
    opinion: str = Field(..., max_length=2000)


# ---------------------------------------------------------------- publicity


class PublicityEntryOut(BaseModel):
    position: int  # 序号: what an objection names
    name_masked: str
    id_number_masked: str
    item_name: str
    quantity_text: str
    amount_fen: int


class PublicityOut(BaseModel):
    id: int
    title: str
    region_code: str
    region_name: str
    item_code: str
    item_name: str
    starts_on: date
    ends_on: date
    open: bool  # objections are taken today
    entries: list[PublicityEntryOut]


class PublishIn(BaseModel):
    village: str | None = Field(None, description="只公示这个村的待公示申请；缺省为本辖区全部")


class PublishOut(BaseModel):
    publicities: list[int]
    entries: int


class ObjectionIn(BaseModel):
    entry: int = Field(..., ge=1, le=MAX_ID, description="公示名单中的序号")
    reason: str = Field(..., max_length=2000)
    name: str = Field("", max_length=40)
    phone: str = Field("", max_length=20)


class ObjectionCreated(BaseModel):
    id: int
    status: str
    message: str


# ---------------------------------------------------------------- business systems: POST /api/v1/applications


def _as_text(value: Any) -> Any:
    """JSON numbers are accepted where a system may send them (2026, 12.5) and kept as their text,
    so `2026` and `"2026"` are the same request."""
    if isinstance(value, bool):
        return value  # refused by the str type: true is not a period
    if isinstance(value, int | float | Decimal):
        return str(value)
    return value


_TEXT_OR_NUMBER = WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}]})
_OPTIONAL_TEXT_OR_NUMBER = WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]})


class SubmissionClaimIn(BaseModel):
    """One claim of a business system's submission. Unknown fields are refused (a misspelt
    optional field would otherwise be dropped silently)."""

    model_config = ConfigDict(extra="forbid")

    id_number: str = Field(..., min_length=1, max_length=30,
                           description="18-character resident ID number (GB 11643); the person must be registered")
    name: str = Field(..., min_length=1, max_length=40,
                      description="Cross-check: must equal the name registered for the ID number")
    item_code: str = Field(..., min_length=1, max_length=20, description="Code of a subsidy item, e.g. ZS007")
    period: Annotated[str, BeforeValidator(_as_text), _TEXT_OR_NUMBER] = Field(
        ..., min_length=1, max_length=12,
        description="By the item's frequency: 2026-11 (月), 2026Q4 (季), 2026H2 (半年), 2026 (年, 一次性)")
    quantity: Annotated[str | None, BeforeValidator(_as_text), _OPTIONAL_TEXT_OR_NUMBER] = Field(
        None, max_length=20,
        description="Items paid per 亩: the area in mu (> 0, at most 2 decimals). Per 人/户: omit, null or 1")
    note: str = Field("", max_length=500, description="Free text for the reviewers")
    external_ref: str | None = Field(None, min_length=1, max_length=64,
                                     description="The business system's own reference for this claim; stored "
                                                 "with the application and returned in the answer")


class SubmissionIn(BaseModel):
    """A business system's claims: all are entered, or none."""

    model_config = ConfigDict(extra="forbid")

    claims: list[SubmissionClaimIn] = Field(..., min_length=1, max_length=10_000)


class SubmissionApplicationOut(BaseModel):
    index: int = Field(description="Position of the claim in `claims`, from 0")
    id: int
    number: str = Field(description="申请编号, e.g. SQ202611300000001")
    amount_fen: int = Field(description="Standard x quantity, in fen")
    status: str
    stage: str | None = Field(description="The station it waits at (县定 for most items); null once decided")
    due_on: date | None = Field(description="Last working day of that station")
    external_ref: str | None


class SubmissionOut(BaseModel):
    applications: list[SubmissionApplicationOut]
    replayed: bool = Field(description="True when this answers a repeated request (same Idempotency-Key and "
                                       "body): nothing new was written")


class ClaimErrorOut(BaseModel):
    index: int | None = Field(description="Position of the claim in `claims`; null for the request as a whole")
    field: str = Field(description="id_number, name, item_code, period, quantity, note, external_ref, or the "
                                   "request part (claims, Idempotency-Key)")
    reason: str = Field(description="Why, in Chinese")


class SubmissionRefused(BaseModel):
    detail: str
    error_count: int = Field(description="All problems found; `errors` lists at most the first 1000")
    errors: list[ClaimErrorOut]
