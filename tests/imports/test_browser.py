"""The upload page in a real Chromium: htmx posts the file, the progress indicator shows, the report swaps in."""

from __future__ import annotations

import pytest

from yikatong.core.clock import FixedClock

from .conftest import NOW, PASSWORD, csv_bytes
from .test_service import PERSON_HEADERS, person_rows

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(migrated, serve):
    from yikatong.web.app import create_app

    return serve(create_app(clock=FixedClock(NOW)))


def test_upload_shows_errors_then_imports(server, browser, area, tmp_path):
    import httpx

    login = {"username": area.clerk, "password": PASSWORD}
    token = httpx.post(f"{server}/api/v1/auth/login", json=login).json()["token"]
    context = browser.new_context()
    context.add_cookies([{"name": "ykt_session", "value": token, "url": server}])
    page = context.new_page()
    problems: list[str] = []
    # Script errors and CSP refusals; a 422 answer or a missing favicon is not a problem of the page.
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{server}/imports")
    assert page.locator("[data-testid=import-progress]").is_hidden()

    rows = person_rows(area, 2)
    rows[1][2] = area.village2  # another village: refused
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes(PERSON_HEADERS, rows))
    page.select_option("[data-testid=import-kind]", "persons")
    page.set_input_files("[data-testid=import-file]", str(bad))
    page.click("#import-submit")
    page.wait_for_selector("[data-testid=import-errors]")
    assert "超出本辖区" in page.inner_text("[data-testid=import-errors]")
    assert page.url.endswith("/imports")  # swapped in place by htmx, not a page load
    assert page.locator("[data-testid=import-progress]").is_hidden()
    assert page.is_enabled("#import-submit")

    rows.pop()
    good = tmp_path / "good.csv"
    good.write_bytes(csv_bytes(PERSON_HEADERS, rows))
    page.set_input_files("[data-testid=import-file]", str(good))
    # Record what the progress indicator does while the request runs.
    page.evaluate("""() => {
        window.seen = [];
        const box = document.getElementById('import-progress');
        new MutationObserver(() => window.seen.push(box.className + '|' +
            document.getElementById('import-progress-text').textContent))
            .observe(box, {attributes: true, childList: true, subtree: true, characterData: true});
    }""")
    page.click("#import-submit")
    page.wait_for_selector("[data-testid=import-ok]")
    assert page.inner_text("[data-testid=import-added]") == "1"
    seen = page.evaluate("window.seen")
    assert any("htmx-request" in s for s in seen), seen  # the indicator was shown during the request
    assert any("正在" in s for s in seen), seen
    assert problems == []
    context.close()
