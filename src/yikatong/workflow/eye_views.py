"""Pages and API of the electronic eye: the overdue board (超期督办) and the outbox for operators."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock, beijing_date
from yikatong.notify.service import outbox_summary
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm
from yikatong.web.deps import DbSession, client_ip, current_user, get_clock, require
from yikatong.web.templating import templates
from yikatong.workflow.overdue import OverdueBoard, board_to_excel, overdue_board

api = APIRouter(prefix="/api/v1", tags=["workflow"])
pages = APIRouter(include_in_schema=False)

StageQuery = Query(None, pattern="^(村评|公示|镇审|县定|市管)$", description="环节：村评、公示、镇审、县定、市管")
ItemQuery = Query(None, max_length=20, description="补贴项目代码")


class OverdueRowOut(BaseModel):
    region_code: str
    region_name: str
    department: str
    stage: str
    handlers: list[str]
    count: int
    amount_fen: int
    oldest_due: date
    days_overdue: int


class OverdueOut(BaseModel):
    today: date
    total: int
    amount_fen: int
    rows: list[OverdueRowOut]


class OutboxProblemOut(BaseModel):
    id: int
    dedupe_key: str
    kind: str
    channel: str
    title: str
    status: str
    attempts: int
    last_error: str
    created_at: datetime
    recipient: str | None


class OutboxOut(BaseModel):
    by_status: dict[str, int]
    oldest_pending: datetime | None
    problems: list[OutboxProblemOut]


def _board(db: Session, user: User, clock: Clock, stage: str | None, item: str | None) -> OverdueBoard:
    return overdue_board(db, user, beijing_date(clock.now()), stage=stage or None, item_code=item or None)


@api.get("/overdue", response_model=OverdueOut)
def api_overdue(stage: str | None = StageQuery, item: str | None = ItemQuery, db: Session = DbSession,
                clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.OVERDUE_READ))) -> OverdueOut:
    """超期督办: overdue open stations in your region (and department), by region, department, station
    and person in charge, with counts, amount at stake and working days overdue."""
    board = _board(db, user, clock, stage, item)
    return OverdueOut(today=board.today, total=board.total, amount_fen=board.amount_fen,
                      rows=[OverdueRowOut(**vars(r)) for r in board.rows])


@api.get("/outbox", response_model=OutboxOut)
def api_outbox(db: Session = DbSession, user: User = Depends(current_user)) -> OutboxOut:
    """The notification outbox for the system administrator: counts by status and the messages that
    failed (with the gateway's error)."""
    summary = outbox_summary(db, user)
    return OutboxOut(by_status=summary.by_status, oldest_pending=summary.oldest_pending,
                     problems=[OutboxProblemOut(**p) for p in summary.problems])


@pages.get("/overdue", response_class=HTMLResponse)
def overdue_page(request: Request, stage: str | None = StageQuery, item: str | None = ItemQuery,
                 db: Session = DbSession, clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.OVERDUE_READ))):
    board = _board(db, user, clock, stage, item)
    chart = {"names": [f"{r.department}·{r.stage}" for r in board.rows[:20]],
             "counts": [r.count for r in board.rows[:20]], "days": [r.days_overdue for r in board.rows[:20]]}
    return templates.TemplateResponse(request, "workflow/overdue.html",
                                      {"user": user, "board": board, "chart": chart})


@pages.get("/overdue/export.xlsx")
def overdue_export(request: Request, stage: str | None = StageQuery, item: str | None = ItemQuery,
                   db: Session = DbSession, clock: Clock = Depends(get_clock),
                   user: User = Depends(require(Perm.OVERDUE_READ))) -> Response:
    board = _board(db, user, clock, stage, item)
    audit.record_export(db, user, "overdue", "xlsx", {"stage": stage, "item": item}, len(board.rows), clock.now(),
                        ip=client_ip(request))
    filename = f"overdue-{board.today:%Y%m%d}.xlsx"
    return Response(board_to_excel(board),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
