"""Jinja2 templates. Each domain keeps its templates beside its code (<domain>/templates/)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

from yikatong.core.clock import format_beijing
from yikatong.core.money import format_fen
from yikatong.security.roles import ROLE_LABELS, Perm, Role, has_perm

PACKAGE = Path(__file__).resolve().parent.parent
DOMAINS = ("web", "registry", "catalog", "security", "imports", "workflow", "sharing", "interception", "jobs",
           "disbursement")

templates = Jinja2Templates(directory=str(PACKAGE / "web" / "templates"))
templates.env.loader = ChoiceLoader(
    [FileSystemLoader(str(PACKAGE / d / "templates")) for d in DOMAINS if (PACKAGE / d / "templates").is_dir()]
)
templates.env.filters["yuan"] = format_fen
# {{ at|bj }} -> "2026-12-04 09:30", {{ at|bj("%Y-%m-%d") }}: every time on a page is Beijing time
templates.env.filters["bj"] = format_beijing
templates.env.filters["percent"] = lambda x, digits=2: f"{x * 100:.{digits}f}%"
templates.env.globals["role_label"] = lambda role: ROLE_LABELS.get(Role(role), role)
templates.env.globals["can"] = lambda user, perm: user is not None and has_perm(user.role, Perm(perm))
