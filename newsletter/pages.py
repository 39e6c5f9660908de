"""Newsletter pages: articles (added by URL, shown as cards, share texts per network with X's counter), issues
(compose in order, audience, preview as an employee, test send, schedule) and the send's live progress, then
its figures per article. Every action calls the newsletter service functions the API routes call."""

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import col, select
from starlette.datastructures import FormData

import newsletter.service
from newsletter.figures import issue_figures
from newsletter.images import image_response
from newsletter.models import Article, Issue, IssueStatus
from newsletter.previews import preview, send_test
from newsletter.progress import progress
from service.accounts.guard import PageUser, page_guard
from service.directory.models import Employee, EmployeeGroup
from service.errors import AppError, Invalid
from service.models import Role
from service.page_views import FRAME_HEADERS, app_error, frame_message, org_zone, parse_form, parse_local, read_form
from service.pages import render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)
COMMS = page_guard(Role.comms)


def last_issue_panel(session, org_id: int) -> dict:
    """The comms dashboard's panel: the last issue sent and its figures (or what to do first)."""
    issue = session.exec(select(Issue).where(Issue.org_id == org_id, Issue.status == IssueStatus.sent)
                         .order_by(col(Issue.finished_at).desc())).first()  # fmt: skip
    figures = issue_figures(session, org_id=org_id, issue_id=issue.id) if issue is not None else None
    return {"template": "comms/_last_issue.html", "issue": issue, "figures": figures}


@router.get("/app/newsletter")
def newsletter_home(session: DbSession, request: Request, user: PageUser = Depends(COMMS)):
    issues = session.exec(
        select(Issue).where(Issue.org_id == user.org_id).order_by(col(Issue.id).desc()).limit(50)
    ).all()
    articles = session.exec(
        select(Article).where(Article.org_id == user.org_id).order_by(col(Article.id).desc()).limit(50)
    ).all()
    return render_page(request, "comms/newsletter.html", issues=issues, articles=articles, errors={}, url="")


# ---------------------------------------------------------------- articles


@router.post("/app/newsletter/articles")
def add_article(
    session: DbSession, request: Request, user: PageUser = Depends(COMMS), form: FormData = Depends(read_form)
):
    url = str(form.get("url", "")).strip()
    body, errors = parse_form(
        newsletter.service.ArticleIn,
        {"url": url, "fetch": form.get("fetch") == "on", "title": str(form.get("title", "")).strip() or None},
    )
    if body is not None and not url:
        errors = {"url": "Paste the article's address (https://...)."}
    if body is not None and not errors:
        try:
            a = newsletter.service.create_article(
                session,
                org_id=user.org_id,
                body=body,
                settings=request.app.state.settings,
            )
            return RedirectResponse(f"/app/newsletter/articles/{a.id}?toast=created", status_code=303)
        except AppError as exc:
            session.rollback()
            errors = {"url": exc.message}
    issues = session.exec(select(Issue).where(Issue.org_id == user.org_id).order_by(col(Issue.id).desc())).all()
    articles = session.exec(select(Article).where(Article.org_id == user.org_id).order_by(col(Article.id).desc())).all()
    return render_page(
        request, "comms/newsletter.html", status_code=422, issues=issues, articles=articles, errors=errors, url=url
    )


@router.get("/app/newsletter/articles/{article_id}")
def article_page(session: DbSession, request: Request, article_id: int, user: PageUser = Depends(COMMS)):
    a = newsletter.service.article_public(
        newsletter.service.get_article(session, org_id=user.org_id, article_id=article_id)
    )
    return render_page(request, "comms/article.html", a=a, errors={})


@router.get("/app/newsletter/articles/{article_id}/image")
def article_image(session: DbSession, request: Request, article_id: int, user: PageUser = Depends(COMMS)):
    """The article's image through the app (fetched once through the article fetcher, cached)."""
    a = newsletter.service.get_article(session, org_id=user.org_id, article_id=article_id)
    return image_response(request.app.state.settings, article_id, a.image_url, download=False)


@router.post("/app/newsletter/articles/{article_id}")
def save_article(
    session: DbSession,
    request: Request,
    article_id: int,
    user: PageUser = Depends(COMMS),
    form: FormData = Depends(read_form),
):
    data: dict[str, str | list[str] | bool] = {
        k: str(form.get(k, ""))
        for k in ("title", "description", "text_x", "text_linkedin", "text_facebook", "text_email", "text_whatsapp",
                  "text_bluesky")
    }  # fmt: skip
    data["shareable"] = form.get("shareable") == "on"
    data["hashtags"] = [h.strip().lstrip("#") for h in str(form.get("hashtags", "")).split(",") if h.strip()]
    body, errors = parse_form(newsletter.service.ArticleUpdate, data)
    if body is not None:
        try:
            newsletter.service.update_article(
                session, org_id=user.org_id, article_id=article_id, body=body, settings=request.app.state.settings
            )
            return RedirectResponse(f"/app/newsletter/articles/{article_id}?toast=saved", status_code=303)
        except AppError as exc:
            session.rollback()
            errors = app_error(exc)
    a = newsletter.service.article_public(
        newsletter.service.get_article(session, org_id=user.org_id, article_id=article_id)
    )
    return render_page(request, "comms/article.html", status_code=422, a=a.model_copy(update=data), errors=errors)


# ---------------------------------------------------------------- issues


def _issue_context(session, user: PageUser, issue: Issue | None) -> dict:
    articles = session.exec(select(Article).where(Article.org_id == user.org_id).order_by(col(Article.id).desc())).all()
    depts = session.exec(select(Employee.department).where(Employee.org_id == user.org_id).distinct()).all()
    groups = session.exec(
        select(EmployeeGroup.group_key).where(EmployeeGroup.org_id == user.org_id).distinct().limit(500)
    ).all()
    public = newsletter.service.issue_public(session, issue) if issue else None
    chosen = public.article_ids if public else []
    return {
        "issue": public,
        "articles": articles,
        "chosen": chosen,
        "departments": sorted(d for d in depts if d),
        "groups": sorted(groups),
        "employees": session.exec(
            select(Employee)
            .where(Employee.org_id == user.org_id, Employee.active == True)  # noqa: E712
            .order_by(col(Employee.id))
            .limit(50)
        ).all(),
        "zone": str(org_zone(session, user.org_id)),
    }


def _issue_values(form) -> dict:
    positions = {}
    for key in form:
        if key.startswith("article_"):
            raw = str(form.get(key, "")).strip()
            if raw.isdigit():
                positions[int(key.removeprefix("article_"))] = int(raw)
    everyone = form.get("everyone") == "on"
    leaders = None
    if form.get("leaders_on") == "on":
        hours = str(form.get("leaders_hours", "")).strip()
        groups = [str(g) for g in form.getlist("leaders_groups") if g]
        leaders = {
            "managers": form.get("leaders_managers") == "on",
            "audience": {"groups": groups} if groups else None,
            "hours": int(hours) if hours.isdigit() else hours,
        }
    return {
        "subject": str(form.get("subject", "")).strip(),
        "preheader": str(form.get("preheader", "")).strip(),
        "intro": str(form.get("intro", "")),
        "language": str(form.get("language", "fr")),
        "audience": {"everyone": everyone, "departments": form.getlist("departments")},
        "leaders": leaders,
        "article_ids": [aid for aid, _pos in sorted(positions.items(), key=lambda kv: (kv[1], kv[0]))],
    }


@router.get("/app/newsletter/issues/new")
def new_issue(session: DbSession, request: Request, user: PageUser = Depends(COMMS)):
    return render_page(request, "comms/issue.html", errors={}, **_issue_context(session, user, None))


@router.post("/app/newsletter/issues/new")
def create_issue(
    session: DbSession, request: Request, user: PageUser = Depends(COMMS), form: FormData = Depends(read_form)
):
    values = _issue_values(form)
    body, errors = parse_form(newsletter.service.IssueIn, values)
    if body is not None:
        try:
            issue = newsletter.service.create_issue(session, org_id=user.org_id, body=body)
            return RedirectResponse(f"/app/newsletter/issues/{issue.id}?toast=created", status_code=303)
        except AppError as exc:
            session.rollback()
            errors = app_error(exc)
    ctx = _issue_context(session, user, None)
    ctx["issue"] = newsletter.service.IssuePublic.model_construct(id=0, status=IssueStatus.draft, **values)
    ctx["chosen"] = values["article_ids"]
    return render_page(request, "comms/issue.html", status_code=422, errors=errors, **ctx)


@router.get("/app/newsletter/issues/{issue_id}")
def issue_page(session: DbSession, request: Request, issue_id: int, user: PageUser = Depends(COMMS)):
    issue = newsletter.service.get_issue(session, org_id=user.org_id, issue_id=issue_id)
    ctx = _issue_context(session, user, issue)
    figures = (
        issue_figures(session, org_id=user.org_id, issue_id=issue_id) if issue.status is IssueStatus.sent else None
    )
    names = {a.id: a.title for a in ctx["articles"]}
    return render_page(
        request,
        "comms/issue.html",
        errors={},
        figures=figures,
        names=names,
        report=progress(session, issue_id=issue_id),
        **ctx,
    )


@router.post("/app/newsletter/issues/{issue_id}")
def save_issue(
    session: DbSession,
    request: Request,
    issue_id: int,
    user: PageUser = Depends(COMMS),
    form: FormData = Depends(read_form),
):
    values = _issue_values(form)
    body, errors = parse_form(newsletter.service.IssueUpdate, values)
    if body is not None:
        try:
            newsletter.service.update_issue(session, org_id=user.org_id, issue_id=issue_id, body=body)
            return RedirectResponse(f"/app/newsletter/issues/{issue_id}?toast=saved", status_code=303)
        except AppError as exc:
            session.rollback()
            errors = app_error(exc)
    issue = newsletter.service.get_issue(session, org_id=user.org_id, issue_id=issue_id)
    ctx = _issue_context(session, user, issue)
    ctx["issue"] = ctx["issue"].model_copy(update={k: v for k, v in values.items() if k not in ("audience", "leaders")})
    ctx["chosen"] = values["article_ids"]
    return render_page(
        request,
        "comms/issue.html",
        status_code=422,
        errors=errors,
        figures=None,
        names={},
        report=progress(session, issue_id=issue_id),
        **ctx,
    )


@router.get("/app/newsletter/issues/{issue_id}/preview")
def issue_preview(
    session: DbSession, request: Request, issue_id: int, employee_id: str = "", user: PageUser = Depends(COMMS)
):
    """The email exactly as this employee would receive it, in a sandboxed frame."""
    try:
        html, _text = preview(
            session,
            org_id=user.org_id,
            issue_id=issue_id,
            employee_id=int(employee_id) if employee_id.isdigit() else None,
            settings=request.app.state.settings,
        )
    except AppError as exc:
        return frame_message(request, exc.message, status_code=exc.status_code)
    return HTMLResponse(html, headers=FRAME_HEADERS)


@router.post("/app/newsletter/issues/{issue_id}/test")
def issue_test(
    session: DbSession,
    request: Request,
    issue_id: int,
    user: PageUser = Depends(COMMS),
    form: FormData = Depends(read_form),
):
    """htmx: send one copy to an address; answers a status line (and a toast)."""
    newsletter.service.get_issue(session, org_id=user.org_id, issue_id=issue_id)  # another organisation's id: 404 first
    from newsletter.mailer import SmtpMailer

    address = str(form.get("address", "")).strip()
    employee = str(form.get("employee_id", ""))
    settings = request.app.state.settings
    mailer = getattr(request.app.state, "mailer", None) or SmtpMailer(settings)
    try:
        send_test(
            request.app.state.engine,
            issue_id,
            address,
            mailer,
            settings,
            org_id=user.org_id,
            employee_id=int(employee) if employee.isdigit() else None,
        )
        return render_page(request, "comms/_test_result.html", ok=True, address=address, message="")
    except AppError as exc:
        return render_page(
            request,
            "comms/_test_result.html",
            status_code=exc.status_code,
            ok=False,
            address=address,
            message=exc.message,
        )
    except Exception as exc:  # the SMTP relay refused or is down: say so, the page stays usable
        return render_page(
            request,
            "comms/_test_result.html",
            ok=False,
            address=address,
            message=f"The mail server did not take the message: {exc}",
        )


@router.post("/app/newsletter/issues/{issue_id}/schedule")
def issue_schedule(
    session: DbSession,
    request: Request,
    issue_id: int,
    user: PageUser = Depends(COMMS),
    form: FormData = Depends(read_form),
):
    action = form.get("action")
    try:
        if action == "unschedule":
            newsletter.service.unschedule_issue(session, org_id=user.org_id, issue_id=issue_id)
        else:
            at: datetime | None = parse_local(str(form.get("at", "")), org_zone(session, user.org_id))
            newsletter.service.schedule_issue(session, org_id=user.org_id, issue_id=issue_id, at=at)
    except (AppError, Invalid) as exc:
        session.rollback()
        issue = newsletter.service.get_issue(session, org_id=user.org_id, issue_id=issue_id)
        return render_page(
            request,
            "comms/issue.html",
            status_code=422,
            errors={"schedule": exc.message},
            figures=None,
            names={},
            report=progress(session, issue_id=issue_id),
            **_issue_context(session, user, issue),
        )
    return RedirectResponse(f"/app/newsletter/issues/{issue_id}?toast=scheduled", status_code=303)


@router.get("/app/newsletter/issues/{issue_id}/progress")
def issue_progress(session: DbSession, request: Request, issue_id: int, user: PageUser = Depends(COMMS)):
    """htmx, polled while the send runs: the counts; the poll stops once the issue is sent."""
    issue = newsletter.service.get_issue(session, org_id=user.org_id, issue_id=issue_id)
    return render_page(
        request,
        "comms/_progress.html",
        report=progress(session, issue_id=issue_id),
        issue=newsletter.service.issue_public(session, issue),
    )
