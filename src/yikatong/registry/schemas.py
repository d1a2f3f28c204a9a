"""What the registry API returns. Personal data leaves masked; clear values only via /reveal."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class CardOut(BaseModel):
    card_number: str
    bank_code: str
    bank_name: str
    bank_account_masked: str
    status: str
    issued_on: date


class DocumentOut(BaseModel):
    title: str
    sha256: str


class ProxyOut(BaseModel):
    holder_name: str
    holder_id_number_masked: str
    holder_relation: str
    reason: str
    approver_name: str
    approved_on: date
    valid_from: date
    valid_until: date | None
    documents: list[DocumentOut]


class MemberOut(BaseModel):
    id: int
    name: str
    relation: str | None
    id_number_masked: str


class PersonBrief(BaseModel):
    id: int
    name: str
    gender: str
    birth_date: date
    id_number_masked: str
    region_code: str
    region_name: str
    is_beneficiary: bool
    card_status: str | None


class PersonOut(PersonBrief):
    phone_masked: str | None
    relation: str | None
    household_id: int | None = None
    household_code: str | None
    household_address: str | None
    members: list[MemberOut]
    cards: list[CardOut]
    no_card_reason: str | None
    proxies: list[ProxyOut]


class PersonSearchIn(BaseModel):
    """A person search in the request body, so a clear ID number never sits in a URL (access logs,
    browser history, the Referer header)."""

    q: str = Field("", max_length=40, description="完整身份证号（18位）或姓名开头")
    page: int = Field(1, ge=1, le=100_000)
    size: int = Field(20, ge=1, le=100)


class PersonPage(BaseModel):
    total: int
    page: int
    size: int
    items: list[PersonBrief]


class RegionSummary(BaseModel):
    code: str
    name: str
    level: str
    persons: int
    beneficiaries: int
    beneficiaries_with_card: int
    card_holding_rate: float  # 持卡率 among beneficiaries, 0..1 (display only; not money)
    active_cards: int
    proxy_cases: int
    children: list[RegionSummary] = []


class RevealOut(BaseModel):
    field: str
    value: str
