"""The payment loop on SQLite and PostgreSQL, through the bank's own file formats (a fixed-width file, a
delimited file, ISO 20022): export, the bank's return with failures, the statement and the treasury's
detail, three-way reconciliation to the fen, failures back to the department and paid again — once."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from yikatong.core.clock import beijing_at
from yikatong.core.db import new_session, transaction
from yikatong.core.errors import Conflict, Invalid, NotFound
from yikatong.core.protect import protect
from yikatong.disbursement import budget, exchange, reconcile, rework, service
from yikatong.disbursement.bank import sim
from yikatong.disbursement.bank.records import ReturnRecord, ReturnStatus
from yikatong.disbursement.bank.treasury import write_treasury
from yikatong.disbursement.models import (
    BankFile,
    BatchStatus,
    FileState,
    OrderStatus,
    PaymentBatch,
    PaymentOrder,
    Rework,
)
from yikatong.registry.models import Card, CardStatus
from yikatong.security.models import User
from yikatong.security.roles import Role
from yikatong.security.service import create_user

from .conftest import NOW, PASSWORD, STANDARD_FEN, Paying, approved, colleague, new_item, new_person, set_budget

DAY = date(2026, 12, 3)
BANKS = ["ABC", "PSBC", "SCRCU"]  # fixed width GBK, delimited GBK, ISO 20022


@pytest.fixture(autouse=True)
def bank_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bank"
    monkeypatch.setenv("YKT_BANK_DIR", str(folder))
    return folder


def finance(s) -> User:
    return s.scalar(select(User).where(User.username == "city_finance"))


def paid_batch(paying: Paying, n: int) -> tuple[int, list[int]]:
    """n approved applications at the paying bank, built into a batch by city_finance and approved by a
    colleague. Returns (batch id, application ids)."""
    apps = [approved(paying.item, new_person(paying.bank), paying.period) for _ in range(n)]
    set_budget(paying.item, 1_000_000)
    checker = colleague()
    with transaction() as s:
        result = service.build_batch(s, finance(s), item_code=paying.item, period=paying.period,
                                     bank_code=paying.bank, now=NOW)
        assert result.batch is not None, result.message()
        batch_id = result.batch.id
    with transaction() as s:
        service.approve_batch(s, s.get(User, checker), batch_id, NOW)
    return batch_id, apps


def export(batch_id: int) -> list[Path]:
    with transaction() as s:
        files = exchange.export_batch(s, finance(s), batch_id, NOW)
        folder = exchange.bank_dir() / s.get(PaymentBatch, batch_id).number
        return [folder / f.name for f in files]


def bank_answers(batch_path: Path, out: Path, fail: set[int], *, day: date = DAY, returned: bool = True):
    """The bank's files for one batch file, as the bank would write them: records at positions `fail`
    fail (account frozen); the statement and the treasury's detail book every payment on `day` and each
    failed one back the next day (`returned` False: the treasury forgets to book them back)."""
    connector, _ = sim.detect(batch_path)
    header, records = connector.read_batch_file(batch_path)
    answers = [ReturnRecord(r.end_to_end_id, r.amount_fen, ReturnStatus.FAILED, "AC06", "账户已冻结") if i in fail
               else ReturnRecord(r.end_to_end_id, r.amount_fen, ReturnStatus.PAID, "", "")
               for i, r in enumerate(records)]
    processed = beijing_at(day, time(18))
    out.mkdir(parents=True, exist_ok=True)
    stem = batch_path.name.split(".")[0]
    ret = connector.write_return(out / f"{stem}.ret{''.join(batch_path.suffixes)}", header, processed,
                                 list(zip(records, answers, strict=True))).path
    lines = sim.statement_lines(answers, day)
    stm = connector.write_statement(out / f"{stem}.stm{''.join(batch_path.suffixes)}", header, processed, lines).path
    treasury_lines = lines if returned else [x for x in lines if x.amount_fen > 0]
    tsy = write_treasury(out / f"{stem}.treasury.csv", treasury_lines).path
    return ret, stm, tsy


def take_return(batch_id: int, path: Path, user: str = "city_finance") -> exchange.ReturnResult:
    with transaction() as s:
        actor = s.scalar(select(User).where(User.username == user))
        result = exchange.import_return(s, actor, batch_id, path, NOW)
    exchange.remove_files(result.to_remove)
    return result


def orders_of(batch_id: int) -> list[PaymentOrder]:
    with new_session() as s:
        return list(s.scalars(select(PaymentOrder).where(PaymentOrder.batch_id == batch_id).order_by(PaymentOrder.id)))


@pytest.mark.parametrize("bank", BANKS)
def test_the_loop_pays_fails_books_and_reconciles_to_the_fen(city, bank, tmp_path):
    paying = Paying(item=new_item(), bank=bank)
    batch_id, _ = paid_batch(paying, 5)
    [batch_path] = export(batch_id)
    assert batch_path.exists() and oct(batch_path.stat().st_mode)[-3:] == "600"
    ret, stm, tsy = bank_answers(batch_path, tmp_path / "answers", fail={1, 3})

    result = take_return(batch_id, ret)
    assert (result.paid, result.failed) == (3, 2)
    assert (result.paid_fen, result.failed_fen) == (3 * STANDARD_FEN, 2 * STANDARD_FEN)
    assert not batch_path.exists()  # clear accounts leave the restricted folder once the bank answered
    orders = orders_of(batch_id)
    assert [o.status for o in orders] == ["成功", "失败", "成功", "失败", "成功"]
    assert {o.paid_on for o in orders if o.status == "成功"} == {DAY}
    assert {(o.fail_code, o.fail_reason, o.rework) for o in orders if o.status == "失败"} == {
        ("AC06", "账户已冻结", Rework.OPEN.value)}
    with new_session() as s:
        assert s.get(PaymentBatch, batch_id).status == BatchStatus.ANSWERED.value
        # the failed money went back to what the year may still spend
        assert budget.figures(s, paying.item, 2026) == (1_000_000 * 100, 3 * STANDARD_FEN)

    with transaction() as s:
        early = reconcile.reconcile_batch(s, finance(s), batch_id, NOW)  # nothing booked yet
        assert not early.balanced
        kinds = {d.kind for d in reconcile.differences(s, early)}
        assert kinds == {reconcile.DifferenceKind.NO_BANK_OUT.value}
        assert early.differences == 5

    with transaction() as s:
        exchange.import_statement(s, finance(s), batch_id, stm, NOW)
    with transaction() as s:
        exchange.import_treasury(s, finance(s), tsy, NOW)
    with transaction() as s:
        run = reconcile.reconcile_batch(s, finance(s), batch_id, NOW)
        assert run.balanced, reconcile.summary(run)
        assert (run.orders_fen, run.paid_fen, run.failed_fen) == (5 * STANDARD_FEN, 3 * STANDARD_FEN, 2 * STANDARD_FEN)
        assert (run.bank_out_fen, run.bank_back_fen) == (5 * STANDARD_FEN, 2 * STANDARD_FEN)
        assert (run.treasury_out_fen, run.treasury_back_fen) == (5 * STANDARD_FEN, 2 * STANDARD_FEN)
        assert s.get(PaymentBatch, batch_id).status == BatchStatus.RECONCILED.value
        day = reconcile.reconcile_day(s, finance(s), DAY, NOW)
        assert day.differences == 0 and day.bank_out_fen >= 5 * STANDARD_FEN


def test_a_return_is_taken_once_and_a_wrong_one_changes_nothing(city, tmp_path):
    paying = Paying(item=new_item(), bank="PSBC")
    batch_id, _ = paid_batch(paying, 3)
    [batch_path] = export(batch_id)
    ret, _, _ = bank_answers(batch_path, tmp_path / "answers", fail=set())

    wrong = tmp_path / "wrong.csv"  # the bank's file with one amount changed: refused whole
    text = ret.read_bytes().decode("gbk").splitlines()
    fields = text[2].split("|")
    fields[3] = str(int(fields[3]) + 1)
    text[2] = "|".join(fields)
    wrong.write_bytes(("\r\n".join(text) + "\r\n").encode("gbk"))
    with pytest.raises(Invalid) as refused:
        take_return(batch_id, wrong)
    assert "金额" in refused.value.message and "整个文件未导入" in refused.value.message
    assert {o.status for o in orders_of(batch_id)} == {OrderStatus.APPROVED.value}
    assert batch_path.exists()

    take_return(batch_id, ret)
    with pytest.raises(Conflict) as twice:
        take_return(batch_id, ret)
    assert "不能重复导入" in twice.value.message
    assert [o.status for o in orders_of(batch_id)] == ["成功"] * 3


def test_export_again_gives_the_same_files_and_a_changed_file_is_not_handed_over(city):
    paying = Paying(item=new_item(), bank="ABC")
    batch_id, _ = paid_batch(paying, 2)
    [first] = export(batch_id)
    content = first.read_bytes()
    [again] = export(batch_id)
    assert again == first and again.read_bytes() == content
    with transaction() as s:
        [row] = s.scalars(select(BankFile).where(BankFile.batch_id == batch_id)).all()
        assert exchange.open_batch_file(s, finance(s), row.id, NOW) == first
        file_id = row.id
    first.write_bytes(content.replace(b"0", b"1", 1))
    with transaction() as s, pytest.raises(Invalid) as changed:
        exchange.open_batch_file(s, finance(s), file_id, NOW)
    assert "SHA-256" in changed.value.message


def test_the_bank_sees_only_its_own_batches(city, tmp_path):
    paying = Paying(item=new_item(), bank="ABC")
    batch_id, _ = paid_batch(paying, 2)
    [path] = export(batch_id)
    with transaction() as s:
        region = finance(s).region_code
        own = create_user(s, "bank_abc_t", PASSWORD, Role.BANK, region, "农行代发岗", NOW, bank_code="ABC")
        other = create_user(s, "bank_psbc_t", PASSWORD, Role.BANK, region, "邮储代发岗", NOW, bank_code="PSBC")
        assert [b.id for b in exchange.bank_batches(s, own)].count(batch_id) == 1
        assert batch_id not in [b.id for b in exchange.bank_batches(s, other)]
        file_id = s.scalar(select(BankFile.id).where(BankFile.batch_id == batch_id))
        assert exchange.open_batch_file(s, own, file_id, NOW) == path
        with pytest.raises(NotFound):
            exchange.open_batch_file(s, other, file_id, NOW)
    ret, _, _ = bank_answers(path, tmp_path / "answers", fail={0})
    result = take_return(batch_id, ret, user="bank_abc_t")  # the bank uploads its own return
    assert (result.paid, result.failed) == (1, 1)


def test_a_failure_goes_back_and_is_paid_again_once(city, tmp_path):
    paying = Paying(item=new_item(), bank="PSBC")
    batch_id, apps = paid_batch(paying, 3)
    [path] = export(batch_id)
    ret, _, _ = bank_answers(path, tmp_path / "a1", fail={0, 1})
    take_return(batch_id, ret)
    first_failed = [o for o in orders_of(batch_id) if o.status == "失败"]
    assert len(first_failed) == 2

    with transaction() as s:
        handler = s.scalar(select(User).where(User.role == Role.COUNTY_HANDLER.value))
        listed = rework.failures(s, None)
        assert {f.order_id for f in listed} >= {o.id for o in first_failed}
        assert all(f.reason == "账户已冻结" for f in listed if f.order_id in {o.id for o in first_failed})
        assert handler is not None
        # the same card again: not paid again until someone acts
        result = service.build_batch(s, finance(s), item_code=paying.item, period=paying.period,
                                     bank_code=paying.bank, now=NOW)
        assert result.batch is None
        assert sorted(e.application_id for e in result.excluded) == sorted(o.application_id for o in first_failed)
        assert all("收款卡未更换" in e.reason for e in result.excluded)

    # one beneficiary gets a new card; the other's failure is released by the department
    changed, released = first_failed
    with transaction() as s:
        card = s.scalar(select(Card).where(Card.person_id == changed.person_id))
        card.status = CardStatus.CANCELLED.value
        account = protect("bank_account", "6221889900112233445")
        s.add(Card(card_number=f"NEW{changed.id:09d}", person_id=changed.person_id, bank_code=paying.bank,
                   bank_account_enc=account.enc, bank_account_hash=account.hash, bank_account_masked=account.masked,
                   status=CardStatus.ACTIVE.value, issued_on=date(2026, 12, 3), created_at=NOW, updated_at=NOW))
    with transaction() as s:
        assert rework.release(s, None, [released.id], "已核实，银行已解冻", NOW) == 1
    with transaction() as s, pytest.raises(Conflict):
        rework.release(s, None, [released.id], "再次", NOW)

    checker = colleague()
    with transaction() as s:
        result = service.build_batch(s, finance(s), item_code=paying.item, period=paying.period,
                                     bank_code=paying.bank, now=NOW)
        assert result.batch is not None and result.batch.order_count == 2
        second_id = result.batch.id
    with transaction() as s:
        service.approve_batch(s, s.get(User, checker), second_id, NOW)
    retries = orders_of(second_id)
    assert {(o.retry_of, o.attempt) for o in retries} == {(changed.id, 2), (released.id, 2)}
    assert {o.account_masked for o in retries if o.retry_of == changed.id} != {changed.account_masked}
    [path2] = export(second_id)
    ret2, _, _ = bank_answers(path2, tmp_path / "a2", fail=set())
    take_return(second_id, ret2)
    with new_session() as s:
        paid = s.execute(select(PaymentOrder.application_id, func.count()).where(
            PaymentOrder.application_id.in_(apps), PaymentOrder.status == "成功")
            .group_by(PaymentOrder.application_id)).all()
        assert sorted(paid) == sorted((a, 1) for a in apps)  # every application paid, each exactly once
        assert {s.get(PaymentOrder, o.id).rework for o in first_failed} == {Rework.REPAID.value}
        rates = {r.key: r for r in rework.success_rates(s, None, "batch", item_code=paying.item)}
        first = rates[str(batch_id)]
        assert (first.answered, first.first_paid, first.finally_paid) == (3, 1, 3)


def test_a_treasury_that_did_not_book_the_returns_leaves_differences(city, tmp_path):
    paying = Paying(item=new_item(), bank="SCRCU")
    batch_id, _ = paid_batch(paying, 4)
    [path] = export(batch_id)
    ret, stm, tsy = bank_answers(path, tmp_path / "a", fail={2}, returned=False)
    take_return(batch_id, ret)
    with transaction() as s:
        exchange.import_statement(s, finance(s), batch_id, stm, NOW)
        exchange.import_treasury(s, finance(s), tsy, NOW)
    with transaction() as s:
        run = reconcile.reconcile_batch(s, finance(s), batch_id, NOW)
        assert not run.balanced
        [d] = reconcile.differences(s, run)
        failed = [o for o in orders_of(batch_id) if o.status == "失败"][0]
        assert (d.order_id, d.kind, d.bank_fen, d.treasury_fen) == (
            failed.id, reconcile.DifferenceKind.FAILED_NOT_TREASURY_RETURNED.value, 0, STANDARD_FEN)
        assert s.get(PaymentBatch, batch_id).status == BatchStatus.ANSWERED.value
        day = reconcile.reconcile_day(s, finance(s), date(2026, 12, 4), NOW)  # the bank booked it back that day
        assert not day.balanced and day.differences == 1
    with transaction() as s, pytest.raises(Conflict):
        exchange.import_treasury(s, finance(s), tsy, NOW)  # the same file twice


def test_a_statement_line_of_another_batch_refuses_the_file(city, tmp_path):
    paying = Paying(item=new_item(), bank="PSBC")
    first, _ = paid_batch(paying, 2)
    paying2 = Paying(item=new_item(), bank="PSBC")
    second, _ = paid_batch(paying2, 2)
    [p1] = export(first)
    export(second)
    _, stm1, _ = bank_answers(p1, tmp_path / "a1", fail=set())
    with transaction() as s, pytest.raises(Invalid):
        exchange.import_statement(s, finance(s), second, stm1, NOW)
    with new_session() as s:
        assert s.scalar(select(func.count()).select_from(BankFile).where(
            BankFile.batch_id == second, BankFile.state == FileState.ACCEPTED.value)) == 0


def test_a_file_whose_bytes_differ_from_the_declared_hash_is_refused(city, tmp_path):
    from yikatong.disbursement.bank.files import file_sha256

    paying = Paying(item=new_item(), bank="SCRCU")
    batch_id, _ = paid_batch(paying, 2)
    [path] = export(batch_id)
    ret, _, _ = bank_answers(path, tmp_path / "a", fail=set())
    with transaction() as s, pytest.raises(Invalid) as changed:
        exchange.import_return(s, finance(s), batch_id, ret, NOW, sha256="0" * 64)
    assert "SHA-256" in changed.value.message and "已被改动" in changed.value.message
    assert {o.status for o in orders_of(batch_id)} == {OrderStatus.APPROVED.value}
    with transaction() as s:
        result = exchange.import_return(s, finance(s), batch_id, ret, NOW, sha256=file_sha256(ret).upper())
        assert result.paid == 2


def test_a_county_finance_bureau_pays_the_county_funded_items_of_its_county(city):
    from yikatong.core.errors import Forbidden

    county_item, city_item = new_item("县"), new_item("市")
    apps = [approved(county_item, new_person("ABC")) for _ in range(2)]
    approved(city_item, new_person("ABC"))
    set_budget(county_item, 10_000)
    set_budget(city_item, 10_000)
    with transaction() as s:
        maker = s.scalar(select(User).where(User.username == "county_finance"))
        with pytest.raises(Forbidden) as refused:
            service.build_batch(s, maker, item_code=city_item, period="2026-11", bank_code="ABC", now=NOW)
        assert "县级资金" in refused.value.message
        built = service.build_batch(s, maker, item_code=county_item, period="2026-11", bank_code="ABC", now=NOW)
        assert built.batch is not None and built.batch.region_code == maker.region_code
        batch_id = built.batch.id
    with transaction() as s:
        service.approve_batch(s, s.scalar(select(User).where(User.username == "county_finance2")), batch_id, NOW)
    assert sorted(o.application_id for o in orders_of(batch_id)) == sorted(apps)
    with transaction() as s:  # the county's own batch: its files are its to export
        files = exchange.export_batch(s, s.scalar(select(User).where(User.username == "county_finance")), batch_id,
                                      NOW)
        assert files and files[0].records == 2


def test_a_batch_file_left_behind_by_a_crash_after_the_commit_is_swept(city, tmp_path):
    paying = Paying(item=new_item(), bank="PSBC")
    batch_id, _ = paid_batch(paying, 2)
    [path] = export(batch_id)
    ret, _, _ = bank_answers(path, tmp_path / "a", fail=set())
    kept = path.read_bytes()
    take_return(batch_id, ret)
    path.write_bytes(kept)  # as if the process stopped between the commit and the deletion
    with transaction() as s, pytest.raises(Conflict):
        exchange.import_return(s, finance(s), batch_id, ret, NOW)  # anything of the batch sweeps first
    assert not path.exists()
