"""Newsletter API (comms) and the public preferences page `/u/{token}` (RFC 8058 one-click unsubscribe)."""

import hashlib
import hmac
from datetime import date, datetime
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

import newsletter.figures
import newsletter.service
from newsletter.figures import ambassador_of_the_month
from newsletter.models import Article, Issue
from newsletter.previews import preview, send_test
from newsletter.progress import SendReport, progress
from newsletter.service import (
    ArticleIn,
    ArticlePublic,
    ArticleUpdate,
    IssueIn,
    IssuePublic,
    IssueUpdate,
    article_public,
    issue_public,
    preference_by_token,
    schedule_issue,
    set_subscribed,
    unschedule_issue,
)
from service.api_errors import HTML_OR_TEXT
from service.auth import Principal, requires
from service.clicks.optout import EMPLOYEE, opted_out, set_opt_out
from service.links import link_key
from service.models import Role
from service.pages import PageError, render_page
from service.session import DbSession

router = APIRouter(prefix="/api/newsletter", tags=["newsletter"])
public = APIRouter(tags=["newsletter"])
COMMS = requires(Role.comms)


@router.post("/articles", response_model=ArticlePublic, status_code=201)
def create_article(session: DbSession, body: ArticleIn, request: Request, p: Principal = Depends(COMMS)):
    """Add an article by URL (its Open Graph metadata is read) or by hand (fetch=false)."""
    a = newsletter.service.create_article(session, org_id=p.org_id, body=body, settings=request.app.state.settings)
    return article_public(a)


@router.get("/articles", response_model=list[ArticlePublic])
def list_articles(
    session: DbSession,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
    p: Principal = Depends(COMMS),
):
    rows = session.exec(select(Article).where(Article.org_id == p.org_id).order_by(col(Article.id).desc())
                        .offset(offset).limit(limit)).all()  # fmt: skip
    return [article_public(a) for a in rows]


@router.get("/articles/{article_id}", response_model=ArticlePublic)
def get_article(session: DbSession, article_id: int, p: Principal = Depends(COMMS)):
    return article_public(newsletter.service.get_article(session, org_id=p.org_id, article_id=article_id))


@router.patch("/articles/{article_id}", response_model=ArticlePublic)
def update_article(
    session: DbSession, article_id: int, body: ArticleUpdate, request: Request, p: Principal = Depends(COMMS)
):
    """Edit anything; fetch=true reads the page again."""
    a = newsletter.service.update_article(session, org_id=p.org_id, article_id=article_id, body=body,
                                          settings=request.app.state.settings)  # fmt: skip
    return article_public(a)


@router.post("/issues", response_model=IssuePublic, status_code=201)
def create_issue(session: DbSession, body: IssueIn, p: Principal = Depends(COMMS)):
    return issue_public(session, newsletter.service.create_issue(session, org_id=p.org_id, body=body))


@router.get("/issues", response_model=list[IssuePublic])
def list_issues(session: DbSession, p: Principal = Depends(COMMS)):
    rows = session.exec(select(Issue).where(Issue.org_id == p.org_id).order_by(col(Issue.id).desc())).all()
    return [issue_public(session, i) for i in rows]


@router.get("/issues/{issue_id}", response_model=IssuePublic)
def get_issue(session: DbSession, issue_id: int, p: Principal = Depends(COMMS)):
    return issue_public(session, newsletter.service.get_issue(session, org_id=p.org_id, issue_id=issue_id))


@router.patch("/issues/{issue_id}", response_model=IssuePublic)
def update_issue(session: DbSession, issue_id: int, body: IssueUpdate, p: Principal = Depends(COMMS)):
    return issue_public(
        session, newsletter.service.update_issue(session, org_id=p.org_id, issue_id=issue_id, body=body)
    )


@router.get("/issues/{issue_id}/preview", response_class=HTMLResponse, responses=HTML_OR_TEXT)
def preview_issue(
    session: DbSession,
    issue_id: int,
    request: Request,
    employee_id: int | None = None,
    format: Literal["html", "text"] = "html",
    p: Principal = Depends(COMMS),
):
    """The email exactly as this employee (default: the first of the audience) would receive it."""
    html, text = preview(session, org_id=p.org_id, issue_id=issue_id, employee_id=employee_id,
                         settings=request.app.state.settings)  # fmt: skip
    return PlainTextResponse(text) if format == "text" else HTMLResponse(html)


class TestSendIn(BaseModel):
    address: str = Field(..., max_length=320)
    employee_id: int | None = Field(None, description="Render it as this employee would receive it.")


@router.post("/issues/{issue_id}/test")
def test_send(issue_id: int, body: TestSendIn, request: Request, p: Principal = Depends(COMMS)):
    """Send one copy now to an address (subject prefixed with [TEST]); recipients are not touched."""
    from newsletter.mailer import SmtpMailer

    settings = request.app.state.settings
    msg_id = send_test(request.app.state.engine, issue_id, body.address, SmtpMailer(settings), settings,
                       org_id=p.org_id, employee_id=body.employee_id)  # fmt: skip
    return {"message_id": msg_id, "address": body.address}


class ScheduleIn(BaseModel):
    at: datetime | None = Field(None, description="When to send (with timezone); empty = now.")


@router.post("/issues/{issue_id}/schedule", response_model=IssuePublic)
def schedule(session: DbSession, issue_id: int, body: ScheduleIn, p: Principal = Depends(COMMS)):
    """Schedule the send (the audience is read when sending starts). The worker picks it up when due."""
    issue = schedule_issue(session, org_id=p.org_id, issue_id=issue_id, at=body.at)
    return issue_public(session, issue)


@router.post("/issues/{issue_id}/unschedule", response_model=IssuePublic)
def unschedule(session: DbSession, issue_id: int, p: Principal = Depends(COMMS)):
    return issue_public(session, unschedule_issue(session, org_id=p.org_id, issue_id=issue_id))


@router.get("/issues/{issue_id}/progress")
def send_progress(session: DbSession, issue_id: int, p: Principal = Depends(COMMS)) -> dict:
    newsletter.service.get_issue(session, org_id=p.org_id, issue_id=issue_id)
    rep: SendReport = progress(session, issue_id=issue_id)
    return rep.as_dict()


@router.get("/issues/{issue_id}/figures")
def issue_figures(session: DbSession, issue_id: int, p: Principal = Depends(COMMS)) -> dict:
    newsletter.service.get_issue(session, org_id=p.org_id, issue_id=issue_id)
    return newsletter.figures.issue_figures(session, org_id=p.org_id, issue_id=issue_id)


@router.get("/leaderboard")
def leaderboard(
    session: DbSession,
    start: date | None = None,
    end: date | None = None,
    limit: int = Query(20, ge=1, le=500),
    p: Principal = Depends(COMMS),  # per-employee figures: not for the it role (README, roles)
) -> dict:
    """Ranking over any period; the formula is part of the answer."""
    return newsletter.figures.leaderboard(session, org_id=p.org_id, start=start, end=end, limit=limit)


@router.get("/ambassador")
def ambassador(
    session: DbSession,
    month: str = Query(..., description="YYYY-MM"),
    p: Principal = Depends(COMMS),  # per-employee figures: not for the it role (README, roles)
) -> dict:
    return ambassador_of_the_month(session, org_id=p.org_id, month=month)


# ---------------------------------------------------------------- public preferences page

# The preferences token is in the address: no Referer may carry it anywhere, not even to this site.
PUBLIC_HEADERS = {"cache-control": "no-store", "x-robots-tag": "noindex", "referrer-policy": "no-referrer"}


def _csrf(request: Request, token: str) -> str:
    """The form's anti-forgery value: bound to this preferences token by the instance's link key."""
    key = link_key(request.app.state.settings)
    return hmac.new(key, b"relais/u-form/v1\x00" + token.encode(), hashlib.sha256).hexdigest()[:32]


def _cross_site(request: Request) -> bool:
    """A browser says where a form was posted from; mailbox providers' one-click POSTs come from servers."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin in (None, "null"):
        return origin == "null"
    ours = urlsplit(request.app.state.settings.public_base_url)
    return origin.rstrip("/") != f"{ours.scheme}://{ours.netloc}"


def _page(request: Request, emp, subscribed: bool, attributed: bool, token: str, changed: bool = False) -> HTMLResponse:
    # The employee's own language first (the directory's locale), else the browser's.
    language = (emp.locale or "").split("-")[0].lower() if emp is not None and emp.locale else None
    return render_page(request, "public/preferences.html", headers=PUBLIC_HEADERS, language=language,
                       email=emp.email if emp else "", subscribed=subscribed, attributed=attributed,
                       changed=changed, form_csrf=_csrf(request, token))  # fmt: skip


def _pref_or_404(session: Session, token: str):
    from service.directory.models import Employee

    pref = preference_by_token(session, token)
    if pref is None:
        raise PageError(404, "This link does not exist", "Check the address in the newsletter you received.")
    return pref, session.get(Employee, pref.employee_id)


@public.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
def preferences_page(session: DbSession, token: str, request: Request):
    """Landing page of List-Unsubscribe: shows the preference; changing it takes a POST (GETs are prefetched)."""
    pref, emp = _pref_or_404(session, token)
    return _page(request, emp, pref.subscribed, not opted_out(session, employee_id=pref.employee_id), token)


@public.post("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def preferences_post(session: DbSession, token: str, request: Request):
    """RFC 8058 one-click (body `List-Unsubscribe=One-Click`, from the mailbox provider) or the page's form
    (which carries its anti-forgery value). A post a browser made from another site is refused."""
    from service.errors import Forbidden

    form = await request.form()
    if _cross_site(request):
        raise Forbidden("This form can only be sent from its own page.")
    pref, emp = _pref_or_404(session, token)
    action = form.get("action")
    if action is not None and not hmac.compare_digest(str(form.get("csrf") or ""), _csrf(request, token)):
        raise Forbidden("This form has expired or was not sent from its page; open the link again.")
    if action in ("track", "untrack"):  # the employee's own attribution choice (see service.clicks.optout)
        set_opt_out(session, org_id=pref.org_id, employee_id=pref.employee_id, opt_out=action == "untrack",
                    actor=EMPLOYEE)  # fmt: skip
    else:  # a one-click List-Unsubscribe POST carries no action: it unsubscribes
        set_subscribed(session, pref=pref, subscribed=action == "subscribe")
    return _page(
        request, emp, pref.subscribed, not opted_out(session, employee_id=pref.employee_id), token, changed=True
    )
