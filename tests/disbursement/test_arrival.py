"""Arrival SMS (到账短信) on SQLite and PostgreSQL: the text for a payment to the beneficiary's own card and
to a proxy holder's, written in the transaction that marks the orders paid (a rollback leaves none), one
row per order however often it is queued, none without a phone, sent once through the gateway even when
the worker crashes after delivering, retried with backoff, and a thousand orders in one call."""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from yikatong.catalog.models import SubsidyItem
from yikatong.core import crypto
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.core.protect import protect, reveal
from yikatong.core.settings import get_settings
from yikatong.disbursement import service
from yikatong.disbursement.arrival import arrival_key, arrival_params, arrival_text, queue_arrivals
from yikatong.disbursement.models import PaymentOrder
from yikatong.notify.dispatcher import Dispatcher, retry_delay
from yikatong.notify.models import OutboxMessage, OutboxStatus
from yikatong.notify.notifier import FileSink, GatewaySimulator, SimulatedCrash, SmsAdapter
from yikatong.registry.models import Person, ProxyHolding
from yikatong.security.models import User
from yikatong.workflow import service as workflow
from yikatong.workflow.models import Application, Source, Status

from .conftest import NOW, approved, colleague, mark_paid, new_person, set_budget

PAID_ON = date(2026, 12, 4)
SIGN = "内江一卡通"


@pytest.fixture(autouse=True)
def sign(monkeypatch):
    monkeypatch.setenv("YKT_SMS_SIGN", SIGN)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def give_phone(person_id: int, phone: str, name: str | None = None) -> None:
    with transaction() as s:
        person = s.get(Person, person_id)
        p = protect("phone", phone)
        person.phone_enc, person.phone_hash, person.phone_masked = p.enc, p.hash, p.masked
        if name:
            person.name = name


def hold_by_proxy(person_id: int, holder_id: int) -> None:
    with transaction() as s:
        holder = s.get(Person, holder_id)
        number = protect("id_number", reveal(crypto.ID_NUMBER, holder.id_number_enc))
        s.add(ProxyHolding(person_id=person_id, holder_name=holder.name, holder_id_number_enc=number.enc,
                           holder_id_number_hash=number.hash, holder_id_number_masked=number.masked,
                           holder_relation="子女", reason="本人失能，由子女代管社保卡", approver_name="测试",
                           approved_on=date(2026, 1, 5), valid_from=date(2026, 1, 5), valid_until=date(2027, 1, 5),
                           created_at=NOW))


def paid_orders(paying, apps: list[int]) -> dict[int, PaymentOrder]:
    """Build and approve a batch of the item's 已通过 applications; its orders by application id."""
    set_budget(paying.item, 10_000_000)
    with transaction() as s:
        maker = s.scalar(select(User).where(User.username == "city_finance"))
        batch = service.build_batch(s, maker, item_code=paying.item, period=paying.period, bank_code=paying.bank,
                                    now=NOW).batch
        batch_id = batch.id
    with transaction() as s:
        service.approve_batch(s, s.get(User, colleague()), batch_id, NOW)
    with new_session() as s:
        orders = s.scalars(select(PaymentOrder).where(PaymentOrder.batch_id == batch_id)).all()
        assert {o.application_id for o in orders} == set(apps)
        return {o.application_id: o for o in orders}


def outbox(keys: list[str]) -> list[OutboxMessage]:
    with new_session() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.in_(keys))
                              .order_by(OutboxMessage.id)))


def test_the_text_reads_as_the_example():
    params = arrival_params("张小明", "2026Q3", "耕地地力保护补贴", 12_850, PAID_ON, "6217 **** **** 5341", False)
    assert arrival_text(SIGN, params) == ("【内江一卡通】张*明您好，您2026年第3季度耕地地力保护补贴128.50元"
                                          "已于12月4日发放到尾号5341的社会保障卡。")
    assert params == {"name": "张*明", "period": "2026年第3季度", "item": "耕地地力保护补贴", "amount": "128.50",
                      "date": "12月4日", "card": "尾号5341"}
    proxy = arrival_params("欧阳小明", "2026-11", "高龄津贴", 123_450, date(2026, 1, 9), "6228 **** **** 0042", True)
    assert arrival_text(SIGN, proxy) == ("【内江一卡通】欧**明您好，您2026年11月高龄津贴1,234.50元"
                                         "已于1月9日发放到代管人尾号0042的社会保障卡。")


def test_paid_orders_queue_their_sms_in_the_same_transaction(paying):
    own, proxied, holder, silent = new_person(), new_person(), new_person(), new_person()
    give_phone(own, "13812345678", name="张小明")
    give_phone(proxied, "13912340000", name="李大红")
    give_phone(holder, "13700001111")  # the holder's phone is not used: the beneficiary's is
    hold_by_proxy(proxied, holder)
    with transaction() as s:
        s.execute(update(SubsidyItem).where(SubsidyItem.code == paying.item).values(name="测试到账补贴"))
    apps = {approved(paying.item, p): p for p in (own, proxied, silent)}
    orders = paid_orders(paying, list(apps))
    by_person = {apps[a]: o for a, o in orders.items()}
    ids = [o.id for o in orders.values()]
    keys = [arrival_key(i) for i in ids]

    class Crash(Exception):
        pass

    with pytest.raises(Crash), transaction() as s:  # the return's transaction dies before its commit
        mark_paid(s, ids, PAID_ON)
        assert queue_arrivals(s, ids, NOW).queued == 2
        raise Crash
    assert outbox(keys) == []
    with new_session() as s:
        assert {s.get(PaymentOrder, i).status for i in ids} == {"待发送"}

    with transaction() as s:
        mark_paid(s, ids, PAID_ON)
        result = queue_arrivals(s, ids, NOW)
    assert (result.queued, result.no_phone, result.already, result.not_paid) == (2, 1, 0, 0)
    rows = {m.person_id: m for m in outbox(keys)}
    assert set(rows) == {own, proxied}  # no phone on file: no row
    tail = {p: by_person[p].account_masked[-4:] for p in (own, proxied)}
    assert rows[own].body == (f"【内江一卡通】张*明您好，您2026年11月测试到账补贴500.00元已于12月4日"
                              f"发放到尾号{tail[own]}的社会保障卡。")
    assert rows[proxied].body == (f"【内江一卡通】李*红您好，您2026年11月测试到账补贴500.00元已于12月4日"
                                  f"发放到代管人尾号{tail[proxied]}的社会保障卡。")
    assert by_person[proxied].by_proxy and not by_person[own].by_proxy
    assert json.loads(rows[own].payload) == {"sms": {"name": "张*明", "period": "2026年11月", "amount": "500.00",
                                                     "item": "测试到账补贴", "date": "12月4日",
                                                     "card": f"尾号{tail[own]}"}}
    for person, m in rows.items():
        assert (m.kind, m.channel, m.user_id, m.status, m.attempts) == ("arrival", "sms", None, "待发送", 0)
        assert m.dedupe_key == arrival_key(by_person[person].id)
        assert json.loads(m.payload)["sms"]["card"].endswith(f"尾号{tail[person]}")

    with transaction() as s:  # again (a re-run of the import): nothing new, the transaction is not hurt
        again = queue_arrivals(s, ids + ids, NOW)
        s.execute(select(1))
    assert (again.queued, again.already, again.no_phone) == (0, 2, 1)
    assert len(outbox(keys)) == 2


def test_orders_not_paid_queue_nothing(paying):
    person = new_person()
    give_phone(person, "13600000000")
    [order] = paid_orders(paying, [approved(paying.item, person)]).values()
    with transaction() as s:
        assert queue_arrivals(s, [order.id], NOW).not_paid == 1
    assert outbox([arrival_key(order.id)]) == []


def test_the_dispatcher_sends_to_the_beneficiary_once_through_a_crash_and_a_failure(paying, tmp_path):
    people = [new_person() for _ in range(3)]
    for n, p in enumerate(people):
        give_phone(p, f"1350000000{n}")
    orders = paid_orders(paying, [approved(paying.item, p) for p in people])
    ids = sorted(o.id for o in orders.values())
    keys = [arrival_key(i) for i in ids]
    with transaction() as s:
        mark_paid(s, ids, PAID_ON)
        assert queue_arrivals(s, ids, NOW).queued == 3

    gateway = GatewaySimulator()
    gateway.crash_on(keys[0])  # delivered, then the worker dies before marking it sent
    gateway.fail_key(keys[1], "短信网关超时")
    clock = FixedClock(NOW + timedelta(hours=1))
    with pytest.raises(SimulatedCrash):
        Dispatcher(gateway, clock).run()
    first = outbox(keys[:1])[0]
    assert (first.status, first.attempts) == (OutboxStatus.PENDING, 0)

    Dispatcher(gateway, clock).run()  # the restart
    sent, failing, third = outbox(keys)
    assert (sent.status, third.status) == (OutboxStatus.SENT, OutboxStatus.SENT)
    assert gateway.deliveries[keys[0]] == 1 and gateway.calls[keys[0]] == 2  # handed over twice, delivered once
    assert (failing.status, failing.attempts, failing.last_error) == (OutboxStatus.PENDING, 1, "短信网关超时")
    assert failing.next_attempt_at == clock.now() + retry_delay(1)

    clock.advance(seconds=retry_delay(1).total_seconds() - 1)
    Dispatcher(gateway, clock).run()  # not yet due
    assert gateway.calls[keys[1]] == 1
    gateway.fail_key(keys[1], None)
    clock.advance(seconds=1)
    Dispatcher(gateway, clock).run()
    assert [m.status for m in outbox(keys)] == [OutboxStatus.SENT] * 3
    assert all(gateway.deliveries[k] == 1 for k in keys) and gateway.calls[keys[1]] == 2

    # the recipient is the beneficiary: masked name, the registry's phone (encrypted until the adapter)
    with new_session() as s:
        person = s.get(Person, outbox(keys[:1])[0].person_id)
        name, phone_masked = person.name, person.phone_masked
    message = gateway.delivered[keys[0]]
    assert message.recipient.display_name == name[0] + "*" * (len(name) - 2) + name[-1]
    assert message.recipient.user_id is None and message.recipient.person_id == person.id
    assert message.recipient.phone_masked == phone_masked
    clear = reveal(crypto.PHONE, message.recipient.phone_enc)
    assert clear.startswith("1350000000")

    # the SMS adapter gets the clear phone, the arrival template and its parameters; the file sink never
    seen: list[httpx.Request] = []
    client = httpx.Client(transport=httpx.MockTransport(
        lambda request: seen.append(request) or httpx.Response(200, json={"code": "OK"})))
    SmsAdapter("https://sms.example/send", SIGN, "SMS_REMIND", client=client,
               templates={"arrival": "SMS_ARRIVAL"}).send(message)
    body = json.loads(seen[0].content)
    assert (body["phone"], body["template"], body["sign"], body["out_id"]) == (clear, "SMS_ARRIVAL", SIGN, keys[0])
    assert message.body == (f"【{SIGN}】{body['params']['name']}您好，您{body['params']['period']}"
                            f"{body['params']['item']}{body['params']['amount']}元已于12月4日发放到"
                            f"{body['params']['card']}的社会保障卡。")
    sink = FileSink(tmp_path / "messages.jsonl")
    sink.send(message)
    written = (tmp_path / "messages.jsonl").read_text("utf-8")
    assert clear not in written and phone_masked in written and message.body in written


def many_approved(item: str, n: int) -> list[int]:
    """n 已通过 applications of new people with phones, entered as one list."""
    people = [new_person() for _ in range(n)]
    with transaction() as s:
        p = protect("phone", "13800000000")
        s.execute(update(Person).where(Person.id.in_(people))
                  .values(phone_enc=p.enc, phone_hash=p.hash, phone_masked=p.masked))
        clerk = s.scalar(select(User).where(User.username == "village_clerk"))
        claims = [workflow.Claim(ref=k, person_id=person, item_code=item, period="2026-11")
                  for k, person in enumerate(people)]
        prepared = workflow.prepare_claims(s, clerk, claims, Source.COUNTER, NOW)
        assert not prepared.errors, prepared.errors[:3]
        app_ids = workflow.enter_claims(s, clerk, prepared, Source.COUNTER, NOW, screen=False)
        for app in s.scalars(select(Application).where(Application.id.in_(app_ids))):
            workflow.leave_road(app, Status.APPROVED, NOW)
    return app_ids


def test_a_thousand_orders_are_queued_in_one_call(paying):
    orders = paid_orders(paying, many_approved(paying.item, 1000))
    ids = [o.id for o in orders.values()]
    with transaction() as s:
        mark_paid(s, ids, PAID_ON)
        result = queue_arrivals(s, ids, NOW)
    assert (result.queued, result.no_phone) == (1000, 0)
    with new_session() as s:
        count = s.scalar(select(func.count()).select_from(OutboxMessage)
                         .where(OutboxMessage.dedupe_key.in_([arrival_key(i) for i in ids]),
                                OutboxMessage.status == OutboxStatus.PENDING.value, OutboxMessage.kind == "arrival"))
    assert count == 1000


def test_the_worker_sends_sms_through_the_gateway_with_the_arrival_template(monkeypatch):
    from yikatong.core.errors import Invalid
    from yikatong.notify.notifier import ChannelRouter
    from yikatong.workflow.eye_commands import Sink, build_notifier

    assert isinstance(build_notifier(Sink.FILE), FileSink)  # development: everything to the file
    monkeypatch.setenv("YKT_SMS_URL", "https://sms.example/send")
    get_settings.cache_clear()
    with pytest.raises(Invalid, match="YKT_SMS_ARRIVAL_TEMPLATE"):  # else arrivals would use the reminders' text
        build_notifier(Sink.GATEWAY)
    monkeypatch.setenv("YKT_SMS_ARRIVAL_TEMPLATE", "SMS_ARRIVAL")
    get_settings.cache_clear()
    router = build_notifier(Sink.GATEWAY)
    assert isinstance(router, ChannelRouter)
    sms = router.by_channel["sms"]
    assert isinstance(sms, SmsAdapter) and (sms.url, sms.sign, sms.templates) == (
        "https://sms.example/send", SIGN, {"arrival": "SMS_ARRIVAL"})
