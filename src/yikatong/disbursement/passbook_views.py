"""Passbook pages (明白折): a person's and a household's paid subsidies by year, printable on A4 and as a
PDF. Who may read which passbook, and the audit record of every read, are in disbursement.passbook."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock
from yikatong.disbursement import passbook, passbook_pdf
from yikatong.security.models import User
from yikatong.web.deps import DbSession, RowId, client_ip, current_user, get_clock
from yikatong.web.templating import templates

pages = APIRouter(include_in_schema=False)

YearFilter = Annotated[int | None, Query(ge=1990, le=2100, description="年度，留空为全部年度")]


def _page(request: Request, book: passbook.Passbook, user: User, base: str) -> Response:
    return templates.TemplateResponse(request, "disbursement/passbook.html", {"user": user, "book": book,
                                                                              "base": base})


def _pdf(book: passbook.Passbook, stem: str) -> Response:
    data = passbook_pdf.render(book)
    name = f"明白折-{stem}{'-' + str(book.year) if book.year else ''}.pdf"
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@pages.get("/persons/{person_id}/passbook", response_class=HTMLResponse)
def person_page(request: Request, person_id: RowId, year: YearFilter = None, db: Session = DbSession,
                clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> Response:
    book = passbook.person_passbook(db, user, person_id, clock.now(), year=year, ip=client_ip(request))
    return _page(request, book, user, f"/persons/{person_id}/passbook")


@pages.get("/persons/{person_id}/passbook.pdf")
def person_pdf(request: Request, person_id: RowId, year: YearFilter = None, db: Session = DbSession,
               clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> Response:
    book = passbook.person_passbook(db, user, person_id, clock.now(), year=year, fmt="pdf", ip=client_ip(request))
    return _pdf(book, book.name)


@pages.get("/households/{household_id}/passbook", response_class=HTMLResponse)
def household_page(request: Request, household_id: RowId, year: YearFilter = None, db: Session = DbSession,
                   clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> Response:
    book = passbook.household_passbook(db, user, household_id, clock.now(), year=year, ip=client_ip(request))
    return _page(request, book, user, f"/households/{household_id}/passbook")


@pages.get("/households/{household_id}/passbook.pdf")
def household_pdf(request: Request, household_id: RowId, year: YearFilter = None, db: Session = DbSession,
                  clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> Response:
    book = passbook.household_passbook(db, user, household_id, clock.now(), year=year, fmt="pdf",
                                       ip=client_ip(request))
    return _pdf(book, book.household_code or str(household_id))
