"""Arrival SMS (到账短信): when the bank's return says an order was paid, the beneficiary gets a free text
message on the phone the registry holds for them:

    【内江一卡通】张*明您好，您2026年第3季度耕地地力保护补贴128.50元已于12月4日发放到尾号5341的社会保障卡。

The messages are written to the outbox in the transaction that marks the orders paid (the return
import calls `queue_arrivals`), so a return that does not commit leaves no message and a committed one
never lacks its messages; the outbox worker sends them (notify.dispatcher: retries with backoff, once
per person). One message per order, keyed `arrival:<order id>`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import BigInteger, String, any_, cast, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from yikatong.catalog.models import SubsidyItem
from yikatong.core.db import bulk_insert
from yikatong.core.masking import mask_name
from yikatong.core.money import format_fen
from yikatong.core.settings import get_settings
from yikatong.disbursement.models import OrderStatus, PaymentOrder
from yikatong.disbursement.service import period_words
from yikatong.notify.models import OutboxMessage, OutboxStatus
from yikatong.notify.notifier import Channel
from yikatong.registry.models import Person

ARRIVAL = "arrival"  # the outbox kind; the SMS gateway sends it with YKT_SMS_ARRIVAL_TEMPLATE
TITLE = "补贴到账通知"
CHUNK = 50_000  # orders read and written per round


@dataclass
class ArrivalResult:
    queued: int = 0  # messages written
    no_phone: int = 0  # paid, but the beneficiary has no phone on file: no message
    already: int = 0  # the order's message was written before (a second call)
    not_paid: int = 0  # ids given that are not 成功 (nothing to say)


def arrival_key(order_id: int) -> str:
    return f"{ARRIVAL}:{order_id}"


def card_tail(account_masked: str) -> str:
    """The last 4 digits of a masked account (6217 **** **** 5341 -> 5341)."""
    tail = account_masked[-4:]
    return tail if tail.isdigit() else "".join(c for c in account_masked if c.isdigit())[-4:]


def arrival_params(name: str, period: str, item_name: str, amount_fen: int, paid_on: date, account_masked: str,
                   by_proxy: bool) -> dict[str, str]:
    """The template's parameters: what the gateway fills into the registered arrival template."""
    return {"name": mask_name(name), "period": period_words(period), "item": item_name,
            "amount": format_fen(amount_fen), "date": f"{paid_on.month}月{paid_on.day}日",
            "card": f"{'代管人' if by_proxy else ''}尾号{card_tail(account_masked)}"}


def arrival_text(sign: str, params: dict[str, str]) -> str:
    """The text the person reads (the arrival template, filled in, with the sign the gateway adds)."""
    p = params
    return (f"【{sign}】{p['name']}您好，您{p['period']}{p['item']}{p['amount']}元已于{p['date']}"
            f"发放到{p['card']}的社会保障卡。")


class _Texts:
    """arrival_text and its parameters for many orders at Python's best speed: what orders share
    (item, period, amount, day) is formatted once; a row adds its name and card."""

    def __init__(self, sign: str):
        self.sign = sign
        self.shared: dict[tuple, tuple[str, str]] = {}

    def make(self, name: str, period: str, item_name: str, amount_fen: int, paid_on: date, account_masked: str,
             by_proxy: bool) -> tuple[str, str]:
        """(body, payload JSON) of one order."""
        key = (period, item_name, amount_fen, paid_on)
        if key not in self.shared:
            p = arrival_params("", period, item_name, amount_fen, paid_on, "", False)
            middle = f"{p['period']}{p['item']}{p['amount']}元已于{p['date']}发放到"
            rest = json.dumps({k: p[k] for k in ("amount", "date", "item", "period")}, ensure_ascii=False)[1:-1]
            self.shared[key] = middle, rest
        middle, rest = self.shared[key]
        masked = mask_name(name)
        card = f"{'代管人' if by_proxy else ''}尾号{card_tail(account_masked)}"  # digits and fixed words: no escaping
        return (f"【{self.sign}】{masked}您好，您{middle}{card}的社会保障卡。",
                f'{{"sms": {{"name": {json.dumps(masked, ensure_ascii=False)}, "card": "{card}", {rest}}}}}')


def _paid(connection, order_ids: list[int]):
    """The paid orders among `order_ids` with what their texts need, in lists of at most CHUNK rows:
    (order id, person id, period, amount, paid on, masked account, by proxy, name, item name, has a
    phone, message already written).

    PostgreSQL: one query (one bound array, hash joins: one pass over each table), streamed from a
    server-side cursor; 20 queries of 50,000 ids would each scan the tables. SQLite: a query per
    CHUNK ids (a JSON list, looked up by key), each read whole before its messages are written."""
    key = literal(f"{ARRIVAL}:") + cast(PaymentOrder.id, String)
    query = (select(PaymentOrder.id, PaymentOrder.person_id, PaymentOrder.period, PaymentOrder.amount_fen,
                    PaymentOrder.paid_on, PaymentOrder.account_masked, PaymentOrder.by_proxy, Person.name,
                    SubsidyItem.name, Person.phone_enc.is_not(None), OutboxMessage.id.is_not(None))
             .join(Person, Person.id == PaymentOrder.person_id)
             .join(SubsidyItem, SubsidyItem.code == PaymentOrder.item_code)
             .outerjoin(OutboxMessage, OutboxMessage.dedupe_key == key)
             .where(PaymentOrder.status == OrderStatus.PAID.value))
    if connection.dialect.name == "postgresql":
        ids = literal(order_ids, ARRAY(BigInteger))
        result = connection.execute(query.where(PaymentOrder.id == any_(ids)).execution_options(yield_per=CHUNK))
        yield from result.partitions()
        return
    for start in range(0, len(order_ids), CHUNK):
        each = func.json_each(json.dumps(order_ids[start:start + CHUNK])).table_valued("value")
        yield connection.execute(query.where(PaymentOrder.id.in_(select(each.c.value)))).all()


def queue_arrivals(session: Session, order_ids: Sequence[int], now: datetime) -> ArrivalResult:
    """Write one 待发送 arrival SMS per paid order among `order_ids`, in the caller's transaction.

    Set-based: the paid orders are read joined with their persons, items and any message already
    written (see _paid), the texts made in Python and the rows inserted in bulk, CHUNK at a time
    (COPY on PostgreSQL). An order whose message is already in the outbox is skipped, so calling
    twice writes one row and never fails the transaction. Two transactions never queue the same order
    at once: the caller queues only the orders its own conditional UPDATE flipped to 成功."""
    wanted = sorted(set(order_ids))
    result = ArrivalResult(not_paid=len(wanted))
    texts = _Texts(get_settings().sms_sign)
    for rows in _paid(session.connection(), wanted):
        result.not_paid -= len(rows)
        messages = []
        for order_id, person_id, period, amount_fen, paid_on, account_masked, by_proxy, name, item_name, \
                has_phone, written in rows:
            if not has_phone:
                result.no_phone += 1
            elif written:
                result.already += 1
            else:
                body, payload = texts.make(name, period, item_name, amount_fen, paid_on, account_masked, by_proxy)
                messages.append({"dedupe_key": f"{ARRIVAL}:{order_id}", "kind": ARRIVAL, "person_id": person_id,
                                 "channel": Channel.SMS.value, "title": TITLE, "body": body, "payload": payload,
                                 "status": OutboxStatus.PENDING.value, "attempts": 0, "last_error": "",
                                 "created_at": now})
        bulk_insert(session, OutboxMessage.__table__, messages)
        result.queued += len(messages)
    return result
