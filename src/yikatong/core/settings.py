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
    )


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI change the environment, then call this)."""
    get_settings.cache_clear()
    from yikatong.core import crypto, db

    db.reset_engine()
    crypto.reset_cipher()
