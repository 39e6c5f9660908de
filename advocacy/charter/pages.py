"""Charter pages: comms write and publish it (/app/charter), employees read, comment and accept it (/me/charter),
and the one-time acceptance page behind newsletter share buttons (/me/charter/accept)."""

import io
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from advocacy.charter import gate
from advocacy.charter import service as charter
from advocacy.charter.markdown import passages
from advocacy.charter.models import Surface
from service.accounts.guard import PageUser, employee_guard, page_guard, safe_next, signed_in
from service.accounts.sessions import csrf_ok
from service.csv_safe import dict_writer
from service.directory.models import Employee
from service.errors import AppError
from service.models import Role
from service.page_views import app_error, read_form
from service.pages import PageError, render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)
COMMS = page_guard(Role.comms)
PUBLIC_HEADERS = {"cache-control": "no-store", "x-robots-tag": "noindex", "referrer-policy": "no-referrer"}


def charter_notice(session, user: PageUser) -> dict | None:
    """What the portal overview says about the charter (portal/_charter_notice.html), or None."""
    assert user.employee_id is not None
    version = charter.current_version(session, user.org_id)
    if version is None or version.major is None:
        return None
    accepted = charter.acceptance_of(session, employee_id=user.employee_id, major=version.major)
    if accepted is None:
        return {"kind": "accept", "version": version}
    if accepted.version_id != version.id:
        return {"kind": "updated", "version": version}
    return None


# ---------------------------------------------------------------- comms: /app/charter


def _comms_context(session, request: Request, user: PageUser, *, draft_values: dict | None = None) -> dict:
    current = charter.current_version(session, user.org_id)
    draft = charter.draft_of(session, user.org_id)
    settings_min = request.app.state.settings.min_group_size
    rates = (
        charter.acceptance_rates(session, org_id=user.org_id, major=current.major, min_group_size=settings_min)
        if current is not None and current.major is not None
        else None
    )
    values = draft_values or {"title": draft.title if draft else "", "body": draft.body if draft else ""}
    items: list = []
    orphans: list = []
    if draft is not None:
        found = charter.threads(session, draft, viewer_user_id=user.id, names_visible=True)
        items, orphans = charter.with_threads(passages(values["body"]), found)
    return {"current": current, "draft": draft, "values": values, "rates": rates, "items": items,
            "orphans": orphans, "versions": charter.published_versions(session, user.org_id),
            "open_threads": charter.open_thread_count(session, draft) if draft else 0}  # fmt: skip


@router.get("/app/charter")
def comms_page(session: DbSession, request: Request, user: PageUser = Depends(COMMS)):
    return render_page(request, "advocacy/charter.html", errors={}, **_comms_context(session, request, user))


@router.post("/app/charter")
def save_draft(session: DbSession, request: Request, user: PageUser = Depends(COMMS),
               form: FormData = Depends(read_form)):  # fmt: skip
    values = {"title": str(form.get("title", "")), "body": str(form.get("body", ""))}
    try:
        charter.save_draft(session, org_id=user.org_id, **values)
    except AppError as exc:
        session.rollback()
        ctx = _comms_context(session, request, user, draft_values=values)
        return render_page(request, "advocacy/charter.html", status_code=422, errors=app_error(exc), **ctx)
    return RedirectResponse("/app/charter?toast=saved#draft", status_code=303)


@router.post("/app/charter/draft")
def start_draft(session: DbSession, user: PageUser = Depends(COMMS)):
    charter.start_draft(session, org_id=user.org_id)
    return RedirectResponse("/app/charter?toast=created#draft", status_code=303)


@router.post("/app/charter/preview")
def preview(request: Request, user: PageUser = Depends(COMMS), form: FormData = Depends(read_form)):
    """htmx, as comms type: the draft rendered and sanitized, passage by passage."""
    body = str(form.get("body", ""))[: charter.MAX_BODY]
    return render_page(request, "advocacy/_charter_preview.html", items=[(p, []) for p in passages(body)])


@router.post("/app/charter/publish")
def publish(session: DbSession, request: Request, user: PageUser = Depends(COMMS),
            form: FormData = Depends(read_form)):  # fmt: skip
    bump = charter.Bump.minor if form.get("bump") == "minor" else charter.Bump.major
    try:
        charter.publish(session, org_id=user.org_id, user_id=user.id, bump=bump,
                        changelog=str(form.get("changelog", "")))  # fmt: skip
    except AppError as exc:
        session.rollback()
        errors = {"changelog": exc.message}
        return render_page(request, "advocacy/charter.html", status_code=422, errors=errors,
                           **_comms_context(session, request, user))  # fmt: skip
    return RedirectResponse("/app/charter?toast=published", status_code=303)


@router.post("/app/charter/comments")
def comms_reply(session: DbSession, request: Request, user: PageUser = Depends(COMMS),
                form: FormData = Depends(read_form)):  # fmt: skip
    parent = str(form.get("parent_id", ""))
    if not parent.isdigit():
        raise PageError(422, "Nothing to answer", "Answer a thread from its reply form.")
    try:
        charter.add_comment(session, org_id=user.org_id, user_id=user.id, employee_id=user.employee_id,
                            from_comms=True, body=str(form.get("body", "")), parent_id=int(parent))  # fmt: skip
    except AppError as exc:
        session.rollback()
        if exc.status_code == 404:
            raise
        return render_page(request, "advocacy/charter.html", status_code=422, errors={f"reply-{parent}": exc.message},
                           **_comms_context(session, request, user))  # fmt: skip
    return RedirectResponse(f"/app/charter?toast=saved#thread-{parent}", status_code=303)


@router.post("/app/charter/comments/{comment_id}/resolve")
def resolve(session: DbSession, comment_id: int, user: PageUser = Depends(COMMS),
            form: FormData = Depends(read_form)):  # fmt: skip
    charter.resolve_thread(session, org_id=user.org_id, comment_id=comment_id, user_id=user.id,
                           resolved=form.get("action") != "reopen")  # fmt: skip
    return RedirectResponse(f"/app/charter?toast=saved#thread-{comment_id}", status_code=303)


@router.get("/app/charter/acceptances.csv")
def acceptances_csv(session: DbSession, user: PageUser = Depends(COMMS)):
    buf = io.StringIO()
    fields = ["email", "name", "department", "version", "accepted_at", "surface"]
    writer = dict_writer(buf, fields)
    writer.writeheader()
    writer.writerows(charter.acceptance_records(session, user.org_id))
    disposition = 'attachment; filename="charter-acceptances.csv"'
    return PlainTextResponse(
        buf.getvalue(), media_type="text/csv; charset=utf-8", headers={"content-disposition": disposition}
    )


# ---------------------------------------------------------------- employees: /me/charter


def _employee_context(session, user: PageUser) -> dict:
    assert user.employee_id is not None
    current = charter.current_version(session, user.org_id)
    draft = charter.draft_of(session, user.org_id)
    accepted = (
        charter.acceptance_of(session, employee_id=user.employee_id, major=current.major)
        if current is not None and current.major is not None
        else None
    )
    items: list = []
    orphans: list = []
    if draft is not None:
        found = charter.threads(session, draft, viewer_user_id=user.id, names_visible=False)
        items, orphans = charter.with_threads(passages(draft.body), found)
    return {"current": current, "current_passages": passages(current.body) if current else [], "accepted": accepted,
            "draft": draft, "items": items, "orphans": orphans}  # fmt: skip


@router.get("/me/charter")
def employee_page(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    return render_page(request, "portal/charter.html", errors={}, **_employee_context(session, user))


@router.post("/me/charter/comments")
def employee_comment(session: DbSession, request: Request, user: PageUser = Depends(employee_guard),
                     form: FormData = Depends(read_form)):  # fmt: skip
    parent = str(form.get("parent_id", ""))
    passage = str(form.get("passage", ""))
    try:
        comment = charter.add_comment(session, org_id=user.org_id, user_id=user.id, employee_id=user.employee_id,
                                      from_comms=False, body=str(form.get("body", "")), passage=passage,
                                      parent_id=int(parent) if parent.isdigit() else None)  # fmt: skip
    except AppError as exc:
        session.rollback()
        if exc.status_code == 404 and parent.isdigit():
            raise
        key = f"reply-{parent}" if parent.isdigit() else f"passage-{passage}" if exc.status_code != 404 else "_form"
        return render_page(request, "portal/charter.html", status_code=422, errors={key: exc.message},
                           **_employee_context(session, user))  # fmt: skip
    return RedirectResponse(f"/me/charter?toast=saved#thread-{comment.parent_id or comment.id}", status_code=303)


# ---------------------------------------------------------------- the one-time acceptance page


def _share_path(value: str) -> str | None:
    """A newsletter share button's own path (/c/<token>): the only place a signed acceptance goes on to."""
    path = safe_next(value)
    if path is None or urlsplit(path).query or not path.startswith("/c/") or "/" in path[3:]:
        return None
    return path


def _who(session, request: Request, user: PageUser | None, next_value: str, signed: str):
    """(employee, next, surface) for this request: from the signed address, else the signed-in employee."""
    settings = request.app.state.settings
    if signed:
        next_path = _share_path(next_value)
        employee_id = gate.verify(settings, signed, next_path) if next_path else None
        if employee_id is None:
            raise PageError(404, "This link has expired", "Press the share button in your newsletter again.")
        employee = session.get(Employee, employee_id)
        if employee is None or not employee.active:
            raise PageError(404, "This link has expired", "Press the share button in your newsletter again.")
        return employee, next_path, Surface.newsletter
    if user is None or user.employee_id is None:
        raise PageError(403, "Sign in first", "Sign in to the portal to read and accept the charter.")
    return session.get(Employee, user.employee_id), safe_next(next_value) or "/me/charter", Surface.portal


def _form_csrf(request: Request, signed: str, user: PageUser | None) -> str:
    if signed:
        import hashlib
        import hmac

        from service.links import link_key

        key = link_key(request.app.state.settings)
        return hmac.new(key, b"relais/charter-form/v1\x00" + signed.encode(), hashlib.sha256).hexdigest()[:32]
    return user.csrf if user else ""


def _cross_site(request: Request) -> bool:
    return request.headers.get("sec-fetch-site") == "cross-site"


def _language(employee: Employee) -> str | None:
    """A reader who is not signed in gets their own language (the directory's locale), else the browser's."""
    return (employee.locale or "").split("-")[0].lower() or None


@router.get("/me/charter/accept")
def accept_page(session: DbSession, request: Request, next: str = "", t: str = "",
                user: PageUser | None = Depends(signed_in)):  # fmt: skip
    if not t and user is None:
        from urllib.parse import quote

        from service.pages import PageRedirect

        raise PageRedirect(f"/sign-in?next={quote(request.url.path + '?' + request.url.query, safe='/')}")
    employee, next_path, _surface = _who(session, request, user, next, t)
    current = charter.current_version(session, employee.org_id)
    unlocked = gate.sharing_unlocked(session, employee.org_id, employee.id)
    if current is None or (unlocked and next_path.startswith("/c/")):
        return RedirectResponse(next_path, status_code=303)  # nothing (more) to accept: straight on
    language = _language(employee) if t else None
    return render_page(request, "portal/charter_accept.html", headers=PUBLIC_HEADERS, language=language,
                       current=current, current_passages=passages(current.body), next_path=next_path, signed=t,
                       form_csrf=_form_csrf(request, t, user), sharing=next_path.startswith("/c/"))  # fmt: skip


@router.post("/me/charter/accept")
def accept(session: DbSession, request: Request, user: PageUser | None = Depends(signed_in),
           form: FormData = Depends(read_form)) -> Response:  # fmt: skip
    signed = str(form.get("t", ""))
    if _cross_site(request) or not csrf_ok(_form_csrf(request, signed, user), str(form.get("csrf", ""))):
        raise PageError(403, "This form has expired", "Reload the page and try again.")
    employee, next_path, surface = _who(session, request, user, str(form.get("next", "")), signed)
    try:
        charter.accept(session, org_id=employee.org_id, employee_id=employee.id, surface=surface)
    except AppError as exc:
        raise PageError(exc.status_code, "Nothing to accept", exc.message) from None
    if next_path.startswith("/c/"):
        # a share button: its own address sends the browser on to the network. Not a redirect from this form:
        # the pages' CSP (form-action 'self') stops a form's redirect chain that leaves the site.
        return render_page(request, "portal/charter_accepted.html", headers=PUBLIC_HEADERS,
                           language=_language(employee) if signed else None, next_path=next_path)  # fmt: skip
    if next_path == "/me/charter":
        return RedirectResponse("/me/charter?toast=accepted", status_code=303)
    return RedirectResponse(next_path, status_code=303)
