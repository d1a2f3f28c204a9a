"""Tables of the registry (人员与社保卡信息库)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yikatong.core.db import Base


class RegionLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"
    VILLAGE = "village"


class CardStatus(StrEnum):
    ACTIVE = "正常"
    LOST = "挂失"
    FROZEN = "冻结"
    CANCELLED = "注销"


class Region(Base):
    """An administrative area with its 12-digit statistical code (统计用区划代码)."""

    __tablename__ = "regions"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    full_name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(10))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"), index=True)


class Household(Base):
    """A registered household (户); members are persons pointing at it."""

    __tablename__ = "households"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(30), unique=True)  # 户编号
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    address: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    members: Mapped[list[Person]] = relationship(back_populates="household", order_by="Person.id")


class Person(Base):
    """A resident. The ID number and phone are stored encrypted with a keyed hash and a mask."""

    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_hash: Mapped[str] = mapped_column(String(32), unique=True)
    id_number_masked: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(40))
    gender: Mapped[str] = mapped_column(String(1))  # derived from the ID number
    birth_date: Mapped[date] = mapped_column(Date)  # derived from the ID number
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    relation: Mapped[str | None] = mapped_column(String(10))  # 与户主关系
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_hash: Mapped[str | None] = mapped_column(String(32), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(20))
    is_beneficiary: Mapped[bool] = mapped_column(Boolean, default=False)  # 享受补贴人员
    # Kept equal to "has a card with status 正常" by registry.service.refresh_card_flags, so the
    # card-holding rate (持卡率) of any region is one index scan.
    has_active_card: Mapped[bool] = mapped_column(Boolean, default=False)
    no_card_reason: Mapped[str | None] = mapped_column(String(60))  # why there is no active card
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    household: Mapped[Household | None] = relationship(back_populates="members")
    cards: Mapped[list[Card]] = relationship(back_populates="person", order_by="Card.issued_on.desc()")

    __table_args__ = (
        Index("ix_persons_region_counts", "region_code", "is_beneficiary", "has_active_card"),
        # Name search within a scope is answered from this index alone (on PostgreSQL the migration
        # adds a text_pattern_ops twin for LIKE prefixes).
        Index("ix_persons_name_region", "name", "region_code"),
    )


class Card(Base):
    """A social security card (社会保障卡) with its financial account at a paying bank."""

    __tablename__ = "cards"
    id: Mapped[int] = mapped_column(primary_key=True)
    card_number: Mapped[str] = mapped_column(String(20), unique=True)  # 社会保障卡号
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    bank_code: Mapped[str] = mapped_column(ForeignKey("banks.code"))
    bank_account_enc: Mapped[bytes] = mapped_column(LargeBinary)
    bank_account_hash: Mapped[str] = mapped_column(String(32), index=True)
    bank_account_masked: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(4), default=CardStatus.ACTIVE)
    issued_on: Mapped[date] = mapped_column(Date)
    status_changed_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    person: Mapped[Person] = relationship(back_populates="cards")


class VillageCount(Base):
    """Counts per village, kept exact by database triggers on persons (migration 0002); read-only
    for the application. Region summaries add these up instead of scanning millions of persons."""

    __tablename__ = "village_counts"
    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    persons: Mapped[int] = mapped_column(Integer, server_default="0")
    beneficiaries: Mapped[int] = mapped_column(Integer, server_default="0")
    beneficiaries_with_card: Mapped[int] = mapped_column(Integer, server_default="0")
    card_holders: Mapped[int] = mapped_column(Integer, server_default="0")


class Document(Base):
    """An attached file, stored once under data/documents by its SHA-256 content hash."""

    __tablename__ = "documents"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    uploaded_at: Mapped[datetime]
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ProxyHolding(Base):
    """代管代持: someone holds and uses the card of a person who cannot manage it, with approval."""

    __tablename__ = "proxy_holdings"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    holder_name: Mapped[str] = mapped_column(String(40))
    holder_id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    holder_id_number_hash: Mapped[str] = mapped_column(String(32), index=True)
    holder_id_number_masked: Mapped[str] = mapped_column(String(18))
    holder_relation: Mapped[str] = mapped_column(String(20))  # 与被代管人关系
    reason: Mapped[str] = mapped_column(Text)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approver_name: Mapped[str] = mapped_column(String(60))
    approved_on: Mapped[date] = mapped_column(Date)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]

    documents: Mapped[list[ProxyDocument]] = relationship(order_by="ProxyDocument.id")


class ProxyDocument(Base):
    """A document in a proxy-holding case's electronic archive (电子档案)."""

    __tablename__ = "proxy_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    proxy_id: Mapped[int] = mapped_column(ForeignKey("proxy_holdings.id"), index=True)
    document_sha256: Mapped[str] = mapped_column(ForeignKey("documents.sha256"))
    title: Mapped[str] = mapped_column(String(100))

    document: Mapped[Document] = relationship()
