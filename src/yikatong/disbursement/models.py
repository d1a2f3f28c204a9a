"""Tables of disbursement: budget allocations (指标), payment batches (发放批次) and payment orders.
Amounts are integer fen."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yikatong.core.db import Base


class BudgetAllocation(Base):
    """One allocation (指标) of an item for a year at a funding level (中央/省/市/县). Entering the same
    item, year and level again sets its amount (the trail keeps every change)."""

    __tablename__ = "budget_allocations"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"))
    year: Mapped[int] = mapped_column(Integer)
    funding_level: Mapped[str] = mapped_column(String(4))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(200), default="")  # 文件依据, e.g. 财社〔2026〕12号
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_by_name: Mapped[str] = mapped_column(String(60), default="")
    updated_at: Mapped[datetime]

    __table_args__ = (Index("uq_budget_allocations_key", "item_code", "year", "funding_level", unique=True),)


class BudgetYear(Base):
    """What an item may still spend in a year: the allocations' sum and what approved batches took.
    Both change only by conditional UPDATEs (committed + batch <= allocated), so two approvals at once
    can never together exceed the allocation, on either engine."""

    __tablename__ = "budget_years"
    item_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocated_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    committed_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # orders of approved batches


class BatchStatus(StrEnum):
    DRAFT = "待审批"  # built by its maker, waiting for another user's approval
    APPROVED = "已审批"  # frozen: payees, accounts, amounts fixed; ready for the bank
    SENT = "已发送"  # its files were exported for the bank
    ANSWERED = "已回盘"  # every order has the bank's answer (paid or failed)
    RECONCILED = "已对账"  # orders, returns, bank statement and treasury debits agree to the fen
    CANCELLED = "已撤销"  # dropped before approval; its applications may go into another batch


# Batches whose orders are fixed (approved and after).
FROZEN_BATCH = (BatchStatus.APPROVED.value, BatchStatus.SENT.value, BatchStatus.ANSWERED.value,
                BatchStatus.RECONCILED.value)


class OrderStatus(StrEnum):
    DRAFT = "待审批"
    APPROVED = "待发送"  # fixed at approval, waiting for the bank
    PAID = "成功"  # set by the bank's return
    FAILED = "失败"  # set by the bank's return; may be paid again later
    CANCELLED = "已撤销"  # its batch was cancelled


class Rework(StrEnum):
    """A failed order's way back to its department (退回重发)."""

    OPEN = "待处理"  # the bank's reason is on the department's list
    READY = "可重发"  # the department fixed it (or says the same card is right now): pay again
    REPAID = "已重发"  # a later order pays the application (retry_of points here)


# Orders that hold their application: at most one of these per application (uq_payment_orders_live).
SPENT_STATUSES = (OrderStatus.PAID.value,)
_LIVE_ORDER = "status NOT IN ('失败', '已撤销')"


class PaymentBatch(Base):
    """A payment batch (发放批次): one item, one period, one bank, made by one user and approved by
    another. `version` makes every ORM UPDATE conditional (`WHERE id = ? AND version = ?`)."""

    __tablename__ = "payment_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # FF20261205000001
    item_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"))
    period: Mapped[str] = mapped_column(String(10))
    year: Mapped[int] = mapped_column(Integer)  # the budget year the batch draws on
    bank_code: Mapped[str] = mapped_column(ForeignKey("banks.code"))
    treasury_code: Mapped[str] = mapped_column(ForeignKey("treasury_accounts.code"))
    region_code: Mapped[str] = mapped_column(String(12))  # the maker's region: the batch's scope
    status: Mapped[str] = mapped_column(String(4))
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    blocked_count: Mapped[int] = mapped_column(Integer, default=0)
    made_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    made_by_name: Mapped[str] = mapped_column(String(60))
    made_at: Mapped[datetime]
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_name: Mapped[str] = mapped_column(String(60), default="")
    approved_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)

    orders: Mapped[list[PaymentOrder]] = relationship(order_by="PaymentOrder.id", viewonly=True)
    exclusions: Mapped[list[BatchExclusion]] = relationship(order_by="BatchExclusion.id", viewonly=True)

    __table_args__ = (Index("ix_payment_batches_item", "item_code", "year", "status"),)
    __mapper_args__ = {"version_id_col": version}


class PaymentOrder(Base):
    """One payment order: an application paid from a treasury account straight to a card. Payee,
    account, amount, bank and treasury account are fixed when the batch is approved."""

    __tablename__ = "payment_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payment_batches.id"), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))  # the beneficiary
    item_code: Mapped[str] = mapped_column(String(20))
    period: Mapped[str] = mapped_column(String(10))
    year: Mapped[int] = mapped_column(Integer)
    region_code: Mapped[str] = mapped_column(String(12))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(4))
    bank_code: Mapped[str] = mapped_column(ForeignKey("banks.code"))
    # Fixed at approval (empty or NULL before):
    payee_name: Mapped[str] = mapped_column(String(40), default="")
    by_proxy: Mapped[bool] = mapped_column(Boolean, default=False)  # paid to the proxy holder's card (代管代持)
    proxy_id: Mapped[int | None] = mapped_column(ForeignKey("proxy_holdings.id"))
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))
    account_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    account_hash: Mapped[str] = mapped_column(String(32), default="")
    account_masked: Mapped[str] = mapped_column(String(24), default="")
    treasury_code: Mapped[str | None] = mapped_column(ForeignKey("treasury_accounts.code"))
    end_to_end_id: Mapped[str | None] = mapped_column(String(35), unique=True)
    approved_at: Mapped[datetime | None]
    # Set by the bank's return:
    answered_at: Mapped[datetime | None]
    paid_on: Mapped[date | None]  # the Beijing booking day the money reached the card
    fail_code: Mapped[str] = mapped_column(String(8), default="")
    fail_reason: Mapped[str] = mapped_column(String(100), default="")
    # Re-payment: the failed order this one pays again (its first attempt is found by following the links).
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("payment_orders.id"))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    rework: Mapped[str] = mapped_column(String(4), default="")  # Rework, on failed orders only
    rework_note: Mapped[str] = mapped_column(String(200), default="")
    rework_by_name: Mapped[str] = mapped_column(String(60), default="")
    rework_at: Mapped[datetime | None]

    __table_args__ = (
        # An application is paid at most once: one order per application that is not failed or cancelled,
        # held by the database itself, whatever batches, retries or re-runs try.
        Index("uq_payment_orders_live", "application_id", unique=True,
              sqlite_where=text(_LIVE_ORDER), postgresql_where=text(_LIVE_ORDER)),
        # ... and a person at most once per item and period, even through another application of theirs
        # (one withdrawn after payment and entered again).
        Index("uq_payment_orders_person_period", "person_id", "item_code", "period", unique=True,
              sqlite_where=text(_LIVE_ORDER), postgresql_where=text(_LIVE_ORDER)),
        Index("ix_payment_orders_item", "item_code", "year", "status"),
        Index("ix_payment_orders_person", "person_id", "status"),
        Index("ix_payment_orders_rework", "rework", "region_code"),
    )


class BatchExclusion(Base):
    """An application left out of a batch when it was built, and why (存疑未核实, 无正常社保卡...)."""

    __tablename__ = "payment_batch_exclusions"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payment_batches.id"), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    reason: Mapped[str] = mapped_column(Text)


class FileKind(StrEnum):
    BATCH = "代发文件"  # written for the bank (clear accounts: the restricted folder)
    RETURN = "回盘文件"  # the bank's per-record answer
    STATEMENT = "银行对账单"  # the bank's statement of the paying account
    TREASURY = "国库支付明细"  # the treasury's debits and refunds


class FileState(StrEnum):
    WRITTEN = "已生成"  # a batch file in the restricted folder
    ACCEPTED = "已导入"  # a return or statement taken in whole
    REMOVED = "已删除"  # a batch file removed once the bank's return for it was accepted


class BankFile(Base):
    """A file that passed between the platform and a bank or the treasury, with its SHA-256. Batch files
    hold clear account numbers, so they live only in the restricted folder (YKT_BANK_DIR) and are
    removed when their return is accepted; the record stays."""

    __tablename__ = "payment_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("payment_batches.id"), index=True)
    kind: Mapped[str] = mapped_column(String(6))
    file_no: Mapped[int] = mapped_column(Integer, default=1)
    file_count: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    records: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(4))
    by_name: Mapped[str] = mapped_column(String(60), default="")
    at: Mapped[datetime]
    removed_at: Mapped[datetime | None]

    __table_args__ = (
        # the same return, statement or treasury file is taken in once
        Index("uq_payment_files_taken", "kind", "sha256", unique=True,
              sqlite_where=text("kind <> '代发文件'"), postgresql_where=text("kind <> '代发文件'")),
    )


class MoneyLine(Base):
    """One booked movement of a paying account, from the bank's statement or the treasury's file:
    positive out of the account (to a card), negative back into it (a failed payment returned).
    One line per order, source and direction: a second copy is refused by the database."""

    __tablename__ = "payment_money_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(2))  # "B" the bank's statement, "T" the treasury's file
    file_id: Mapped[int] = mapped_column(ForeignKey("payment_files.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("payment_batches.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("payment_orders.id"))
    end_to_end_id: Mapped[str] = mapped_column(String(35))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    booked_on: Mapped[date]

    __table_args__ = (
        Index("uq_payment_money_lines", "source", "end_to_end_id", "amount_fen", unique=True),
        Index("ix_payment_money_lines_batch", "batch_id", "source"),
        Index("ix_payment_money_lines_day", "booked_on", "source"),
    )


class Reconciliation(Base):
    """One three-way reconciliation (对账) of a batch or of a day: the platform's orders, the bank's
    returns and statement, and the treasury's debits, to the fen."""

    __tablename__ = "payment_reconciliations"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("payment_batches.id"), index=True)
    day: Mapped[date | None] = mapped_column(index=True)  # a Beijing booking day (a daily reconciliation)
    orders_fen: Mapped[int] = mapped_column(BigInteger)  # drawn: what the platform ordered
    paid_fen: Mapped[int] = mapped_column(BigInteger)  # the bank's returns: paid
    failed_fen: Mapped[int] = mapped_column(BigInteger)  # the bank's returns: failed
    bank_out_fen: Mapped[int] = mapped_column(BigInteger)  # the bank's statement: out of the account
    bank_back_fen: Mapped[int] = mapped_column(BigInteger)  # the bank's statement: returned to it
    treasury_out_fen: Mapped[int] = mapped_column(BigInteger)
    treasury_back_fen: Mapped[int] = mapped_column(BigInteger)
    orders: Mapped[int] = mapped_column(Integer)
    differences: Mapped[int] = mapped_column(Integer)
    balanced: Mapped[bool] = mapped_column(Boolean)
    by_name: Mapped[str] = mapped_column(String(60), default="")
    at: Mapped[datetime]


class Difference(Base):
    """One record that does not agree, with its kind (DifferenceKind) and the three sides' amounts."""

    __tablename__ = "payment_differences"
    id: Mapped[int] = mapped_column(primary_key=True)
    reconciliation_id: Mapped[int] = mapped_column(ForeignKey("payment_reconciliations.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("payment_orders.id"))
    end_to_end_id: Mapped[str] = mapped_column(String(35))
    kind: Mapped[str] = mapped_column(String(20))
    order_fen: Mapped[int | None] = mapped_column(BigInteger)
    bank_fen: Mapped[int | None] = mapped_column(BigInteger)  # net on the bank's statement
    treasury_fen: Mapped[int | None] = mapped_column(BigInteger)  # net on the treasury's file
