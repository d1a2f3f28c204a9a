"""Registry pages and API: the home page per role, person search, the person page, audited reveal."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock
from yikatong.registry import schemas, service
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm
from yikatong.web.deps import (
    DbSession,
    PageNo,
    PageSize,
    RegionCode,
    RowId,
    client_ip,
    current_user,
    get_clock,
    require,
)
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1", tags=["registry"])
pages = APIRouter(include_in_schema=False)

RevealField = Query(..., pattern="^(id_number|phone|bank_account)$", description="id_number, phone or bank_account")


@api.get("/persons", response_model=schemas.PersonPage)
def api_search(q: str = "", page: PageNo = 1, size: PageSize = 20, db: Session = DbSession,
               user: User = Depends(current_user)) -> schemas.PersonPage:
    """Search persons in your region by name (prefix). Personal data is masked. An ID number is refused
    here (it would sit in the URL): search by ID number with POST /api/v1/persons/search."""
    return service.search_persons(db, user, q, page, size)


@api.post("/persons/search", response_model=schemas.PersonPage)
def api_search_post(body: schemas.PersonSearchIn, db: Session = DbSession,
                    user: User = Depends(current_user)) -> schemas.PersonPage:
    """Search persons in your region by full ID number (exact) or by name (prefix), the query in the body."""
    return service.search_persons(db, user, body.q, body.page, body.size)


@api.get("/persons/{person_id}", response_model=schemas.PersonOut)
def api_person(person_id: RowId, db: Session = DbSession, user: User = Depends(current_user)):
    """One person with household, cards and proxy holder. 403 outside your region."""
    return service.person_detail(db, user, person_id)


@api.post("/persons/{person_id}/reveal", response_model=schemas.RevealOut)
def api_reveal(person_id: RowId, request: Request, field: str = RevealField, db: Session = DbSession,
               clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> schemas.RevealOut:
    """The clear value of one field, for roles whose duty needs it. Every call is audited."""
    value = service.reveal(db, user, person_id, field, clock.now(), client_ip(request))
    return schemas.RevealOut(field=field, value=value)


@api.get("/persons/{person_id}/documents/{sha256}", response_class=Response,
         responses={200: {"content": {"application/octet-stream": {}}}})
def api_document(person_id: RowId, sha256: str, request: Request, db: Session = DbSession,
                 clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> Response:
    """A file of the person's proxy-holding archive. Audited."""
    return _document_response(db, user, person_id, sha256, clock, request)


@pages.get("/persons/{person_id}/documents/{sha256}")
def page_document(person_id: RowId, sha256: str, request: Request, db: Session = DbSession,
                  clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> Response:
    return _document_response(db, user, person_id, sha256, clock, request)


def _document_response(db, user, person_id, sha256, clock, request) -> Response:
    document, data = service.proxy_document(db, user, person_id, sha256, clock.now(), client_ip(request))
    disposition = f"attachment; filename*=UTF-8''{quote(document.filename)}"
    return Response(data, media_type=document.content_type, headers={"Content-Disposition": disposition})


@api.get("/regions/{code}/summary", response_model=schemas.RegionSummary)
def api_region_summary(code: RegionCode, db: Session = DbSession, user: User = Depends(current_user)):
    """Persons, beneficiaries, cards and the card-holding rate (持卡率) of a region, by child region."""
    return service.region_summary(db, user, code)


@pages.get("/", response_class=HTMLResponse)
def home(request: Request, db: Session = DbSession, user: User = Depends(current_user)):
    context: dict = {"user": user}
    if has_perm(user.role, Perm.PERSON_READ):
        summary = service.region_summary(db, user)
        context["summary"] = summary
        context["chart"] = {
            "names": [c.name for c in summary.children],
            "rates": [round(c.card_holding_rate * 100, 2) for c in summary.children],
            "beneficiaries": [c.beneficiaries for c in summary.children],
        }
    context.update(service.home_extras(db, user))
    return templates.TemplateResponse(request, "registry/home.html", context)


@pages.get("/persons", response_class=HTMLResponse)
def persons_page(request: Request, q: str = "", page: PageNo = 1, db: Session = DbSession,
                 user: User = Depends(require(Perm.PERSON_READ))):
    result = service.search_persons(db, user, q, page, 20)
    return templates.TemplateResponse(request, "registry/search.html", {"user": user, "q": q, "result": result})


@pages.post("/persons", response_class=HTMLResponse)
def persons_search(request: Request, q: str = Form("", max_length=40), db: Session = DbSession,
                   user: User = Depends(require(Perm.PERSON_READ))):
    """The search box posts here: an ID number is answered at once (it never enters a URL); a name is
    sent on to the address above, so its pages can be bookmarked and paged."""
    if not service.looks_like_id(q):
        return RedirectResponse(f"/persons?q={quote(q.strip())}" if q.strip() else "/persons", status_code=303)
    result = service.search_persons(db, user, q, 1, 20)
    return templates.TemplateResponse(request, "registry/search.html", {"user": user, "q": "", "result": result})


@pages.get("/persons/{person_id}", response_class=HTMLResponse)
def person_page(request: Request, person_id: RowId, db: Session = DbSession,
                user: User = Depends(current_user)):
    person = service.person_detail(db, user, person_id)
    return templates.TemplateResponse(request, "registry/person.html", {
        "user": user, "p": person, "can_reveal": has_perm(user.role, Perm.PERSON_READ_CLEAR)})


@pages.post("/persons/{person_id}/reveal", response_class=HTMLResponse)
def person_reveal(request: Request, person_id: RowId, field: str = RevealField, db: Session = DbSession,
                  clock: Clock = Depends(get_clock), user: User = Depends(current_user)):
    """htmx fragment: the clear value replaces the masked one (and the read is audited)."""
    value = service.reveal(db, user, person_id, field, clock.now(), client_ip(request))
    return HTMLResponse(f'<span class="clear" data-testid="clear-{field}">{escape(value)}</span>'
                        '<span class="muted">（已记录查看）</span>')
