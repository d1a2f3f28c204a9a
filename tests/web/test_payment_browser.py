"""The payment loop in a real Chromium: finance exports a batch's files, uploads the bank's return on the
batch page, follows the job's progress until its message, comes back to the batch with the paid and failed
counts; a malformed return ends with its Chinese reasons, row by row, and changes nothing."""

from __future__ import annotations

import pytest

from disbursement.conftest import NOW, PASSWORD, Paying, new_item
from disbursement.test_loop import bank_answers, orders_of, paid_batch
from yikatong.core.clock import FixedClock
from yikatong.jobs.runner import Runner

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(city, serve):
    from yikatong.web.app import create_app

    return serve(create_app(clock=FixedClock(NOW)))


@pytest.fixture(autouse=True)
def bank_dir(tmp_path, monkeypatch):
    folder = tmp_path / "bank"
    monkeypatch.setenv("YKT_BANK_DIR", str(folder))
    return folder


def finish_job(page) -> str:
    """The job page the form led to: a worker runs the job, htmx polls until it shows its end."""
    page.wait_for_url("**/jobs/*")
    assert page.inner_text("[data-testid=job-state]") == "排队中"
    job_id = int(page.url.rsplit("/", 1)[1])
    assert job_id in Runner(FixedClock(NOW)).run_pending()  # with any left queued by earlier tests
    page.wait_for_selector("[data-testid=job-done], [data-testid=job-error]", timeout=15_000)
    return page.inner_text("[data-testid=job-status]")


def test_finance_exports_and_takes_the_return_in_the_browser(server, browser, bank_dir, tmp_path):
    import httpx

    batch_id, _ = paid_batch(Paying(item=new_item(), bank="PSBC"), 3)
    token = httpx.post(f"{server}/api/v1/auth/login", json={"username": "city_finance", "password": PASSWORD}
                       ).json()["token"]
    context = browser.new_context()
    context.add_cookies([{"name": "ykt_session", "value": token, "url": server}])
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(f"{server}/batches/{batch_id}")
    page.click("[data-testid=export-button]")
    assert "已生成代发文件1个" in finish_job(page)
    page.click("[data-testid=job-result-link]")
    page.wait_for_url(f"**/batches/{batch_id}")
    number = page.inner_text("h1").split()[1]
    [batch_path] = list((bank_dir / number).iterdir())
    files = page.inner_text("[data-testid=files]")
    assert "已生成" in files and batch_path.name in files

    ret, _, _ = bank_answers(batch_path, tmp_path / "answers", fail={2})
    text = ret.read_bytes().decode("gbk").splitlines()
    fields = text[2].split("|")
    fields[3] = str(int(fields[3]) + 1)  # a fen more than the order: refused whole
    text[2] = "|".join(fields)
    wrong = tmp_path / "wrong.csv"
    wrong.write_bytes(("\r\n".join(text) + "\r\n").encode("gbk"))
    page.select_option("[data-testid=upload-kind]", "payment.return")
    page.set_input_files("[data-testid=upload-file]", str(wrong))
    page.click("[data-testid=upload-button]")
    status = finish_job(page)
    assert "整个文件未导入" in status
    reasons = page.locator("[data-testid=job-error-reasons] li")
    assert reasons.count() >= 1 and "金额" in reasons.first.inner_text()
    assert {o.status for o in orders_of(batch_id)} == {"待发送"} and batch_path.exists()

    page.goto(f"{server}/batches/{batch_id}")
    page.set_input_files("[data-testid=upload-file]", str(ret))
    page.click("[data-testid=upload-button]")
    assert "成功2笔" in finish_job(page) and "失败1笔" in page.inner_text("[data-testid=job-summary]")
    page.click("[data-testid=job-result-link]")
    page.wait_for_url(f"**/batches/{batch_id}")
    facts = page.inner_text("[data-testid=batch-facts]")
    assert "成功 2" in facts and "失败 1" in facts and page.inner_text("[data-testid=batch-status]") == "已回盘"
    assert "已删除" in page.inner_text("[data-testid=files]") and not batch_path.exists()
    assert problems == []
    context.close()
