"""Configuration from the environment (YKT_*), with safe development defaults."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEV_SECRET = "ykt-development-secret-do-not-use-in-production"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    session_hours: int
    max_failed_logins: int
    lockout_minutes: int
    sql_echo: bool
    # Failed logins from one address within the lockout window before it must wait (HTTP 429).
    max_failures_per_address: int = 20
    # Served over HTTPS (behind nginx): the session cookie is Secure and HSTS is sent.
    https: bool = False
    # Where the electronic eye's messages go (`ykt worker --sink gateway`): a WeChat official-account
    # template-message endpoint (or an internal relay that adds the access token) and an SMS gateway.
    wechat_url: str = ""
    wechat_template_id: str = ""
    sms_url: str = ""
    sms_sign: str = "一卡通"
    sms_template: str = ""
    # The gateway's template for arrival SMS (到账短信, disbursement.arrival); params name, period, item,
    # amount, date, card. Required with YKT_SMS_URL: the reminders' template would say the wrong thing.
    sms_arrival_template: str = ""
    public_url: str = ""  # the address users open (links in messages), e.g. https://ykt.example.gov.cn
    # Limits of every DuckDB query of a rule (DuckDB has no statement timeout of its own).
    rule_timeout_seconds: float = 600.0
    duckdb_memory: str = "4GB"
    duckdb_temp_max: str = "20GB"  # temporary disk a run may spill to, under YKT_DATA_DIR/duckdb-tmp
    # A running job whose heartbeat is older than this is taken to have lost its runner and runs again.
    job_stale_seconds: float = 300.0
    import_job_bytes: int = 1_000_000  # a page upload larger than this is imported by a job
    # The city run keeps its snapshot in YKT_DATA_DIR/snapshot/ and refreshes it by what changed
    # (interception.kept); 0 exports the city whole into memory at every run.
    kept_snapshot: bool = True

    @property
    def documents_dir(self) -> Path:
        return self.data_dir / "documents"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    data_dir = Path(os.environ.get("YKT_DATA_DIR", "data")).resolve()
    secret = os.environ.get("YKT_SECRET_KEY", DEV_SECRET)
    if secret == DEV_SECRET and os.environ.get("YKT_ENV") == "production":
        raise RuntimeError("YKT_SECRET_KEY must be set in production")
    if secret == DEV_SECRET:
        warnings.filterwarnings("ignore", message="YKT_SECRET_KEY")
    return Settings(
        data_dir=data_dir,
        database_url=os.environ.get("YKT_DATABASE_URL", f"sqlite:///{data_dir / 'yikatong.db'}"),
        secret_key=secret,
        session_hours=int(os.environ.get("YKT_SESSION_HOURS", "8")),
        max_failed_logins=int(os.environ.get("YKT_MAX_FAILED_LOGINS", "5")),
        lockout_minutes=int(os.environ.get("YKT_LOCKOUT_MINUTES", "15")),
        sql_echo=os.environ.get("YKT_SQL_ECHO") == "1",
        max_failures_per_address=int(os.environ.get("YKT_MAX_FAILURES_PER_ADDRESS", "20")),
        https=os.environ.get("YKT_HTTPS") == "1",
        wechat_url=os.environ.get("YKT_WECHAT_URL", ""),
        wechat_template_id=os.environ.get("YKT_WECHAT_TEMPLATE_ID", ""),
        sms_url=os.environ.get("YKT_SMS_URL", ""),
        sms_sign=os.environ.get("YKT_SMS_SIGN", "一卡通"),
        sms_template=os.environ.get("YKT_SMS_TEMPLATE", ""),
        sms_arrival_template=os.environ.get("YKT_SMS_ARRIVAL_TEMPLATE", ""),
        public_url=os.environ.get("YKT_PUBLIC_URL", "").rstrip("/"),
        rule_timeout_seconds=float(os.environ.get("YKT_RULE_TIMEOUT_SECONDS", "600")),
        duckdb_memory=os.environ.get("YKT_DUCKDB_MEMORY", "4GB"),
        duckdb_temp_max=os.environ.get("YKT_DUCKDB_TEMP_MAX", "20GB"),
        job_stale_seconds=float(os.environ.get("YKT_JOB_STALE_SECONDS", "300")),
        import_job_bytes=int(os.environ.get("YKT_IMPORT_JOB_BYTES", "1000000")),
        kept_snapshot=os.environ.get("YKT_KEPT_SNAPSHOT", "1") != "0",
    )


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI change the environment, then call this)."""
    get_settings.cache_clear()
    from yikatong.core import crypto, db

    db.reset_engine()
    crypto.reset_cipher()
