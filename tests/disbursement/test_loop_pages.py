"""The payment loop on the pages and the API: finance exports (a job), downloads the file (the bytes, on the
audit trail), uploads the bank's return through the page (kept 0600 in the restricted folder, taken in by a
job, then deleted) and sees the paid and failed counts; a malformed return shows its Chinese reasons and
changes nothing; the bank sees only its own batches; supervisors read and are refused the actions; the
county department releases a failure; the daily report is an Excel file with numeric amounts."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from yikatong.catalog.models import SubsidyItem
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.disbursement.models import BankFile, FileKind, PaymentBatch, PaymentOrder, Rework
from yikatong.jobs.models import Job
from yikatong.jobs.runner import Runner
from yikatong.security.models import AuditEvent, User
from yikatong.security.roles import Role
from yikatong.security.service import create_user

from .conftest import NOW, PASSWORD, STANDARD_FEN, Paying, new_item
from .test_loop import bank_answers, orders_of, paid_batch

DAY = date(2026, 11, 23)  # a booking day of this file's first test only (the day must balance)


@pytest.fixture(autouse=True)
def bank_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bank"
    monkeypatch.setenv("YKT_BANK_DIR", str(folder))
    return folder


@pytest.fixture
def web(city):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(NOW))) as client:
        yield client


def login(web, username: str) -> dict[str, str]:
    r = web.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def run_job(web, headers, response) -> dict:
    """The job a page started (its redirect) or the API started (its job_id), run by a worker; its JSON."""
    if response.history:  # a page: redirected to the job's page
        assert response.history[0].status_code == 303
        job_id = int(response.history[0].headers["location"].rsplit("/", 1)[1])
    else:
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
    assert web.get(f"/api/v1/jobs/{job_id}", headers=headers).json()["status"] == "排队中"  # nothing ran yet
    assert job_id in Runner(FixedClock(NOW)).run_pending()  # with any left queued by earlier tests
    return {"id": job_id, **web.get(f"/api/v1/jobs/{job_id}", headers=headers).json()}


def batch_files(batch_id: int, kind: FileKind = FileKind.BATCH) -> list[BankFile]:
    with new_session() as s:
        return list(s.scalars(select(BankFile).where(BankFile.batch_id == batch_id, BankFile.kind == kind.value)
                              .order_by(BankFile.id)))


def exported(web, finance, batch_id: int, bank_dir: Path) -> tuple[BankFile, Path]:
    job = run_job(web, finance, web.post(f"/batches/{batch_id}/export", headers=finance))
    assert job["status"] == "已完成", job["error"]
    [row] = batch_files(batch_id)
    with new_session() as s:
        number = s.get(PaymentBatch, batch_id).number
    return row, bank_dir / number / row.name


def upload(web, headers, url: str, path: Path, kind: str | None = None):
    data = {"kind": kind} if kind else {}
    return web.post(url, headers=headers, data=data, files={"file": (path.name, path.read_bytes())})


def test_finance_exports_downloads_takes_the_return_and_reconciles_on_the_pages(web, bank_dir, tmp_path):
    paying = Paying(item=new_item(), bank="PSBC")
    batch_id, _ = paid_batch(paying, 3)
    finance = login(web, "city_finance")
    page = web.get(f"/batches/{batch_id}", headers=finance).text
    assert 'data-testid="export-button"' in page and "尚未生成代发文件" in page

    row, path = exported(web, finance, batch_id, bank_dir)
    page = text(web.get(f"/batches/{batch_id}", headers=finance).text)
    assert row.name in page and row.sha256[:16] in page and "已生成" in page and "已发送" in page
    r = web.get(f"/payment-files/{row.id}/download", headers=finance)
    assert r.status_code == 200 and r.content == path.read_bytes()
    with new_session() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "payment.file_download",
                                                 AuditEvent.object_id == row.name)) is not None

    ret, stm, tsy = bank_answers(path, tmp_path / "answers", fail={1}, day=DAY)
    started = upload(web, finance, f"/batches/{batch_id}/upload", ret, "payment.return")
    assert started.history[0].status_code == 303 and "排队中" in started.text
    [kept] = list((bank_dir / "uploads").iterdir())  # saved before the job, readable by the platform only
    assert oct(kept.stat().st_mode)[-3:] == "600" and kept.read_bytes() == ret.read_bytes()
    job = run_job(web, finance, started)
    assert job["status"] == "已完成" and (job["result"]["paid"], job["result"]["failed"]) == (2, 1)
    assert "成功2笔" in job["result"]["summary"] and "失败1笔" in job["result"]["summary"]
    assert list((bank_dir / "uploads").iterdir()) == []  # the upload is gone once its job ended
    assert not path.exists()  # the clear accounts left with the bank's answer
    job_page = text(web.get(f"/jobs/{job['id']}", headers=finance).text)
    assert "成功2笔" in job_page and f"/batches/{batch_id}" in web.get(f"/jobs/{job['id']}", headers=finance).text
    page = text(web.get(f"/batches/{batch_id}", headers=finance).text)
    assert "成功 2" in page and "失败 1" in page and "已删除" in page and ret.name in page
    assert [o.status for o in orders_of(batch_id)] == ["成功", "失败", "成功"]

    assert run_job(web, finance, upload(web, finance, f"/batches/{batch_id}/upload", stm,
                                        "payment.statement"))["status"] == "已完成"
    assert run_job(web, finance, upload(web, finance, "/reconciliation/treasury", tsy))["status"] == "已完成"
    job = run_job(web, finance, web.post(f"/batches/{batch_id}/reconcile", headers=finance))
    assert job["result"]["balanced"] is True, job["result"]
    page = text(web.get(f"/reconciliation?batch={batch_id}", headers=finance).text)
    assert "对账平" in page and "没有差异" in page and "1,500.00" in page

    # the day: the bank booked the failed one back the next day and the treasury too: the day balances
    job = run_job(web, finance, web.post("/reconciliation/reconcile", headers=finance, data={"day": DAY.isoformat()}))
    assert job["status"] == "已完成" and job["result"]["url"] == f"/reconciliation?day={DAY.isoformat()}"
    page = text(web.get(f"/reconciliation?day={DAY.isoformat()}", headers=finance).text)
    assert "对账平" in page and "下载日终对账报表" in page

    r = web.get(f"/reconciliation/{DAY.isoformat()}.xlsx", headers=finance)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(r.content))
    summary = book["日终对账"]
    facts = {row[0].value: row[1] for row in summary.iter_rows(min_row=2) if row[0].value}
    assert isinstance(facts["记账日期（北京时间）"].value, datetime)  # a date cell (openpyxl reads it as datetime)
    assert facts["记账日期（北京时间）"].value.date() == DAY
    out = facts["银行支出（元）"]
    assert isinstance(out.value, (int, float)) and out.value >= 3 * STANDARD_FEN / 100
    assert out.number_format == "#,##0.00"
    batches = book["当日批次"]
    assert [c.value for c in batches[1]][:4] == ["批次号", "补贴项目", "代发银行", "银行支出（元）"]
    with new_session() as s:
        number = s.get(PaymentBatch, batch_id).number
    [mine] = [row for row in batches.iter_rows(min_row=2) if row[0].value == number]
    assert mine[3].value == 3 * STANDARD_FEN / 100 and mine[3].number_format == "#,##0.00" and mine[7].value == "是"
    with new_session() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "export.payment_reconciliation",
                                                 AuditEvent.object_id == DAY.isoformat())) is not None


def test_a_malformed_return_shows_its_reasons_and_changes_nothing(web, bank_dir, tmp_path):
    paying = Paying(item=new_item(), bank="PSBC")
    batch_id, _ = paid_batch(paying, 3)
    finance = login(web, "city_finance")
    row, path = exported(web, finance, batch_id, bank_dir)
    ret, _, _ = bank_answers(path, tmp_path / "answers", fail=set())
    wrong = tmp_path / "wrong.csv"  # one amount changed by a fen: the whole file is refused
    lines = ret.read_bytes().decode("gbk").splitlines()
    fields = lines[2].split("|")
    fields[3] = str(int(fields[3]) + 1)
    lines[2] = "|".join(fields)
    wrong.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))

    job = run_job(web, finance, upload(web, finance, f"/batches/{batch_id}/upload", wrong, "payment.return"))
    assert job["status"] == "失败" and "整个文件未导入" in job["error"] and "金额" in job["error"]
    html = web.get(f"/jobs/{job['id']}", headers=finance).text
    reasons = re.search(r'<ul data-testid="job-error-reasons">(.*?)</ul>', html, re.S)
    assert reasons and "金额" in reasons.group(1)  # row by row, in Chinese
    assert f'href="/batches/{batch_id}" data-testid="job-back"' in html  # back to the batch
    assert {o.status for o in orders_of(batch_id)} == {"待发送"}
    assert path.exists() and [f.state for f in batch_files(batch_id)] == ["已生成"]
    assert batch_files(batch_id, FileKind.RETURN) == []
    assert list((bank_dir / "uploads").iterdir()) == []
    with new_session() as s:
        assert s.get(PaymentBatch, batch_id).status == "已发送"

    # an empty file or one for a batch not yet exported is refused on the spot, before any job
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    r = upload(web, finance, f"/batches/{batch_id}/upload", empty, "payment.return")
    assert r.status_code == 422 and "空文件" in r.text


def bank_user(bank: str) -> str:
    username = f"bk_{uuid.uuid4().hex[:8]}"
    with transaction() as s:
        region = s.scalar(select(User.region_code).where(User.username == "city_finance"))
        create_user(s, username, PASSWORD, Role.BANK, region, f"{bank}代发岗", NOW, bank_code=bank)
    return username


def test_the_bank_sees_only_its_own_batches_and_answers_them(web, bank_dir, tmp_path):
    paying = Paying(item=new_item(), bank="ABC")
    batch_id, _ = paid_batch(paying, 2)
    finance = login(web, "city_finance")
    row, path = exported(web, finance, batch_id, bank_dir)
    own_name = bank_user("ABC")
    own, other = login(web, own_name), login(web, bank_user("PSBC"))
    with new_session() as s:
        number = s.get(PaymentBatch, batch_id).number

    home = web.get("/", headers=own).text
    assert 'href="/bank"' in home and "支付环节上线后" not in home
    box = web.get("/bank/home-box", headers=own).text
    assert number in box and "2笔" in box and number not in web.get("/bank/home-box", headers=other).text
    page = web.get("/bank", headers=own).text
    assert number in page and row.name in page and f"/payment-files/{row.id}/download" in page
    for order in orders_of(batch_id):  # names, IDs and accounts stay off the bank's page
        assert order.account_masked not in page and order.end_to_end_id not in page
    r = web.get(f"/payment-files/{row.id}/download", headers=own)
    assert r.status_code == 200 and r.content == path.read_bytes()
    with new_session() as s:
        assert s.scalar(select(AuditEvent.username).where(
            AuditEvent.action == "payment.file_download", AuditEvent.object_id == row.name)
            .order_by(AuditEvent.id.desc()).limit(1)) == own_name

    assert number not in web.get("/bank", headers=other).text
    assert web.get(f"/payment-files/{row.id}/download", headers=other).status_code == 404
    assert web.get(f"/api/v1/payment-files/{row.id}/content", headers=other).status_code == 404
    assert web.get(f"/api/v1/batches/{batch_id}", headers=other).status_code == 404
    assert batch_id not in [b["id"] for b in web.get("/api/v1/batches", headers=other).json()]
    assert batch_id in [b["id"] for b in web.get("/api/v1/batches", headers=own).json()]
    assert web.get(f"/batches/{batch_id}", headers=own).status_code == 403  # finance's page, not the bank's
    ret, _, _ = bank_answers(path, tmp_path / "answers", fail={0})
    assert upload(web, other, f"/bank/batches/{batch_id}/upload", ret, "payment.return").status_code == 404
    assert not (bank_dir / "uploads").exists()  # refused before the file was kept

    job = run_job(web, own, upload(web, own, f"/bank/batches/{batch_id}/upload", ret, "payment.return"))
    assert job["status"] == "已完成" and (job["result"]["paid"], job["result"]["failed"]) == (1, 1)
    assert job["result"]["url"] == "/bank"
    assert "已删除" in web.get("/bank", headers=own).text
    assert web.get(f"/payment-files/{row.id}/download", headers=own).status_code == 422  # deleted with the answer


def test_supervisors_read_batches_and_rates_but_cannot_act(web, bank_dir, tmp_path):
    paying = Paying(item=new_item(), bank="SCRCU")
    batch_id, _ = paid_batch(paying, 4)
    finance = login(web, "city_finance")
    row, path = exported(web, finance, batch_id, bank_dir)
    ret, _, _ = bank_answers(path, tmp_path / "answers", fail={0})
    run_job(web, finance, upload(web, finance, f"/batches/{batch_id}/upload", ret, "payment.return"))

    supervisor = login(web, "supervisor")
    page = web.get(f"/batches/{batch_id}", headers=supervisor).text
    assert row.name in page and "export-form" not in page and "upload-form" not in page
    assert "reconcile-form" not in page and "/download" not in page
    assert web.post(f"/batches/{batch_id}/export", headers=supervisor).status_code == 403
    assert web.post(f"/api/v1/batches/{batch_id}/export", headers=supervisor).status_code == 403
    assert web.post(f"/api/v1/batches/{batch_id}/reconcile", headers=supervisor).status_code == 403
    assert upload(web, supervisor, f"/api/v1/batches/{batch_id}/returns", ret).status_code == 403
    assert web.get(f"/payment-files/{row.id}/download", headers=supervisor).status_code == 403
    assert web.get("/payment-failures", headers=supervisor).status_code == 403
    with new_session() as s:
        assert s.scalar(select(Job.id).where(Job.started_by == s.scalar(
            select(User.id).where(User.username == "supervisor")), Job.kind.like("payment.%"))) is None

    r = web.get("/payment-rates?by=batch", headers=supervisor)
    with new_session() as s:
        number = s.get(PaymentBatch, batch_id).number
    rate_row = text(re.search(rf'<tr data-testid="rate-{batch_id}">.*?</tr>', r.text, re.S).group(0))
    assert number in rate_row and "75.00%" in rate_row  # 3 of 4 paid at the first attempt
    rates = {x["key"]: x for x in web.get("/api/v1/payment-rates?by=batch", headers=supervisor).json()}
    assert (rates[str(batch_id)]["answered"], rates[str(batch_id)]["first_paid"]) == (4, 3)
    assert rates[str(batch_id)]["label"] == number
    by_bank = {x["key"]: x for x in web.get("/api/v1/payment-rates?by=bank", headers=supervisor).json()}
    assert by_bank["SCRCU"]["label"] not in ("", "SCRCU") and by_bank["SCRCU"]["label"] in web.get(
        "/payment-rates?by=bank", headers=supervisor).text


def test_the_county_department_releases_a_failure(web, bank_dir, tmp_path):
    with transaction() as s:
        handler = s.scalar(select(User).where(User.username == "county_handler"))
        item = new_item()
        s.get(SubsidyItem, item).department_code = handler.department_code  # the handler's own item
    paying = Paying(item=item, bank="PSBC")
    batch_id, _ = paid_batch(paying, 2)
    finance = login(web, "city_finance")
    _, path = exported(web, finance, batch_id, bank_dir)
    ret, _, _ = bank_answers(path, tmp_path / "answers", fail={0})
    run_job(web, finance, upload(web, finance, f"/batches/{batch_id}/upload", ret, "payment.return"))
    failed = [o for o in orders_of(batch_id) if o.status == "失败"][0]

    county = login(web, "county_handler")
    page = web.get("/payment-failures", headers=county).text
    row = text(re.search(rf'<tr data-testid="failure-{failed.id}">.*?</tr>', page, re.S).group(0))
    assert "账户已冻结" in row and failed.account_masked in row and "待处理" in row
    listed = web.get("/api/v1/payment-failures", headers=county).json()
    assert failed.id in [f["order_id"] for f in listed]

    r = web.post("/payment-failures/release", headers=county, data={"order_ids": [str(failed.id)], "note": "   "})
    assert r.status_code == 422 and "请填写处理意见" in r.text
    r = web.post("/payment-failures/release", headers=county,
                 data={"order_ids": [str(failed.id)], "note": "已核实，银行已解冻"}, follow_redirects=True)
    assert r.status_code == 200 and "1笔已标记为可重发" in r.text
    with new_session() as s:
        assert s.get(PaymentOrder, failed.id).rework == Rework.READY.value
    ready = web.get(f"/payment-failures?state={Rework.READY.value}", headers=county).text
    assert f'data-testid="failure-{failed.id}"' in ready and "已核实，银行已解冻" in ready
    again = web.post("/api/v1/payment-failures/release", headers=county,
                     json={"order_ids": [failed.id], "note": "再次"})
    assert again.status_code == 409 and "已被他人处理" in again.json()["detail"]
    with new_session() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "payment.rework_release",
                                                 AuditEvent.object_id == str(failed.id))) is not None


def test_the_api_runs_the_loop_with_job_ids(web, bank_dir, tmp_path):
    paying = Paying(item=new_item(), bank="ABC")
    batch_id, _ = paid_batch(paying, 2)
    finance = login(web, "city_finance")
    detail = web.get(f"/api/v1/batches/{batch_id}", headers=finance).json()
    assert (detail["status"], detail["files"], detail["order_counts"]) == ("已审批", [], {"待发送": 2})
    assert web.get(f"/api/v1/batches/{batch_id}/reconciliation", headers=finance).status_code == 404

    job = run_job(web, finance, web.post(f"/api/v1/batches/{batch_id}/export", headers=finance))
    assert job["status"] == "已完成"
    [f] = web.get(f"/api/v1/batches/{batch_id}", headers=finance).json()["files"]
    content = web.get(f"/api/v1/payment-files/{f['id']}/content", headers=finance)
    assert content.status_code == 200 and f["sha256"] == hashlib.sha256(content.content).hexdigest()
    path = tmp_path / f["name"]
    path.write_bytes(content.content)
    ret, stm, tsy = bank_answers(path, tmp_path / "answers", fail=set(), day=date(2026, 12, 4))
    assert run_job(web, finance, upload(web, finance, f"/api/v1/batches/{batch_id}/returns", ret))["status"] == "已完成"
    assert run_job(web, finance, upload(web, finance, f"/api/v1/batches/{batch_id}/statements",
                                        stm))["status"] == "已完成"
    job = run_job(web, finance, web.post(f"/api/v1/batches/{batch_id}/reconcile", headers=finance))
    run = web.get(f"/api/v1/batches/{batch_id}/reconciliation", headers=finance).json()
    assert job["result"]["run_id"] == run["id"] and run["balanced"] is False  # the treasury has not booked yet
    assert {d["kind"] for d in run["difference_rows"]} == {"国库无支出记录"} and run["differences"] == 2
    assert run["paid_fen"] == 2 * STANDARD_FEN and run["bank_out_fen"] == 2 * STANDARD_FEN

    assert run_job(web, finance, upload(web, finance, "/api/v1/treasury-files", tsy))["status"] == "已完成"
    job = run_job(web, finance, web.post("/api/v1/reconciliations/days/2026-12-04", headers=finance))
    day = web.get("/api/v1/reconciliations/days/2026-12-04", headers=finance).json()
    assert day["day"] == "2026-12-04" and day["id"] == job["result"]["run_id"]
    assert web.get("/api/v1/reconciliations/days/2001-01-01", headers=finance).status_code == 404


def test_an_upload_whose_job_was_cancelled_is_swept(web, bank_dir, tmp_path):
    paying = Paying(item=new_item(), bank="PSBC")
    batch_id, _ = paid_batch(paying, 1)
    finance = login(web, "city_finance")
    _, path = exported(web, finance, batch_id, bank_dir)
    ret, stm, _ = bank_answers(path, tmp_path / "answers", fail=set())
    first = web.post(f"/api/v1/batches/{batch_id}/returns", headers=finance,
                     files={"file": (ret.name, ret.read_bytes())}).json()
    [kept] = list((bank_dir / "uploads").iterdir())
    assert web.post(f"/api/v1/jobs/{first['job_id']}/cancel", headers=finance).json()["status"] == "已取消"
    os.utime(kept, (time.time() - 120, time.time() - 120))  # older than a job's start takes
    second = web.post(f"/api/v1/batches/{batch_id}/statements", headers=finance,
                      files={"file": (stm.name, stm.read_bytes())})
    assert second.status_code == 202
    [left] = list((bank_dir / "uploads").iterdir())
    assert left != kept and left.read_bytes() == stm.read_bytes()  # the cancelled one's file is gone
    web.post(f"/api/v1/jobs/{second.json()['job_id']}/cancel", headers=finance)  # leave no queued job behind
