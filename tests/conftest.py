"""Test database: a fresh one per run, on SQLite (default) or the PostgreSQL in YKT_TEST_DATABASE_URL.

A small synthetic city is built once per run; tests that write use their own rows."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

_state: dict[str, str] = {}

TEST_SCALE = float(os.environ.get("YKT_TEST_SCALE", "0.002"))  # about 6,000 residents
TEST_SEED = 7


def pytest_configure(config: pytest.Config) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ykt-test-"))
    url = os.environ.get("YKT_TEST_DATABASE_URL", "")
    if url.startswith("postgresql"):
        from yikatong.core.db import create_database

        url = _state["pg_url"] = create_database(url, "ykt_test")
    else:
        url = f"sqlite:///{tmp / 'test.db'}"
    os.environ["YKT_DATABASE_URL"] = url
    os.environ["YKT_DATA_DIR"] = str(tmp / "data")
    os.environ["YKT_SECRET_KEY"] = "test-secret-key-for-the-suite"
    from yikatong.core.settings import reset_settings

    reset_settings()


def pytest_unconfigure(config: pytest.Config) -> None:
    from yikatong.core.db import reset_engine

    reset_engine()
    if "pg_url" in _state:
        from yikatong.core.db import drop_database

        drop_database(_state["pg_url"])


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("YKT_DATABASE_URL", "")
    return f"yikatong test database: {make_url(url).render_as_string(hide_password=True)}"


@pytest.fixture(scope="session")
def migrated() -> str:
    from yikatong.core.migrate import upgrade

    upgrade()
    return os.environ["YKT_DATABASE_URL"]


@pytest.fixture(scope="session")
def city(migrated):
    """The small synthetic city, with the demo users. Returns the build report."""
    from yikatong.core.db import engine
    from yikatong.synth.city import build_city

    # without the bulk claims, shared data and planted anomalies (tests/interception/test_planted.py
    # builds its own city with them), so no test sees a flag it did not raise itself
    return build_city(engine(), scale=TEST_SCALE, seed=TEST_SEED, claims=False, shared_data=False)


@pytest.fixture
def db(migrated):
    from yikatong.core.db import new_session

    session = new_session()
    yield session
    session.rollback()
    session.close()


CHROMIUM = "/usr/bin/chromium"
# As root on these machines; without the background-networking flags Chromium stalls on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (never a downloaded browser build)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            raise RuntimeError("CI needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def serve():
    """serve(app) -> the base URL of a real uvicorn server for that app on a free port."""
    import socket
    import threading
    import time

    import uvicorn

    running = []

    def start(app) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the test server did not start"
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)
