"""Sign-in pages: sign in and out, forgotten password, reset link, employees' sign-in links (emailed, and the
newsletter's "Open my space"), and the user's own account settings."""

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from service.accounts import magic_links as links
from service.accounts import open_links
from service.accounts import reset as resets
from service.accounts.guard import HOME, PageUser, page_guard, safe_next, signed_in
from service.accounts.models import User
from service.accounts.passwords import needs_rehash, password_problem, verify_password
from service.accounts.service import set_password, user_by_email
from service.accounts.sessions import (
    COOKIE,
    clear_failures,
    create_session,
    csrf_ok,
    record_failure,
    revoke,
    throttled,
)
from service.db import get_existing, utcnow
from service.errors import Invalid
from service.models import Role
from service.page_strings import N_
from service.page_views import read_form
from service.pages import LANGUAGES, PAGE_CSP, gettext, render_page, request_language, use_language
from service.session import DbSession
from service.sso.oidc import provider_origins
from service.sso.service import PASSWORDS_OFF, passwords_refused

router = APIRouter(include_in_schema=False)
FORM_COOKIE = "relais_form"  # double-submit token for the forms shown before a session exists
ANY = page_guard(Role.comms, Role.it)
SIGNED_IN = page_guard(*Role)  # anyone with a session, employees too: signing out


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.app.state.settings.public_base_url.startswith("https://")


def _form_token(request: Request) -> str:
    return request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)


def _with_form_cookie(request: Request, response: Response, token: str) -> Response:
    if request.cookies.get(FORM_COOKIE) != token:
        response.set_cookie(
            FORM_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/", max_age=3600
        )
    return response


def _form_ok(request: Request, form) -> bool:
    expected = request.cookies.get(FORM_COOKIE)
    sent = form.get("csrf")
    if not expected:
        return False
    return csrf_ok(expected, sent if isinstance(sent, str) else None)


def _public_page(request: Request, name: str, status_code: int = 200, **ctx) -> Response:
    token = _form_token(request)
    # the sign-in form's "Continue with" button ends at the identity provider (a redirect CSP form-action covers)
    targets = " ".join(provider_origins(request.app.state.settings))
    headers = {"content-security-policy": PAGE_CSP.replace("form-action 'self'", f"form-action 'self' {targets}")}
    headers |= ctx.pop("headers", None) or {}
    page = render_page(request, name, status_code=status_code, csrf=token, headers=headers, **ctx)
    return _with_form_cookie(request, page, token)


@router.get("/")
def home(request: Request, user: PageUser | None = Depends(signed_in)):
    return RedirectResponse(user.home if user else "/sign-in", status_code=303)


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None, user: PageUser | None = Depends(signed_in)):
    if user is not None:
        return RedirectResponse(safe_next(next) or user.home, status_code=303)
    return _public_page(request, "sign_in.html", **_sign_in_context(next=safe_next(next) or ""))


def _sign_in_context(**ctx) -> dict:
    """The sign-in page shows two forms: a password, and an emailed link for employees."""
    return {"email": "", "errors": {}, "link_email": "", "link_errors": {}, "link_sent": False, **ctx}


@router.post("/sign-in")
def sign_in(request: Request, form: FormData = Depends(read_form)):
    email = str(form.get("email", "")).strip()[:320]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", ""))) or ""
    if not _form_ok(request, form):
        return _public_page(
            request,
            "sign_in.html",
            status_code=400,
            **_sign_in_context(next=target, email=email, errors={"_form": "This form has expired. Sign in again."}),
        )

    return _check_sign_in(request, email, password, target)


def _check_sign_in(request: Request, email: str, password: str, target: str) -> Response:
    from service.db import session_scope

    ip = request.client.host if request.client else None
    with session_scope(request.app.state.engine) as session:
        if throttled(session, email, ip):
            return _public_page(
                request,
                "sign_in.html",
                status_code=429,
                headers={"retry-after": "900"},
                **_sign_in_context(
                    next=target,
                    email=email,
                    errors={"_form": "Too many failed attempts. Wait 15 minutes, or reset your password."},
                ),
            )
        user = user_by_email(session, email) if email else None
        ok = verify_password(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled_at is not None:
            record_failure(session, email, ip)
            return _public_page(
                request,
                "sign_in.html",
                status_code=401,
                **_sign_in_context(
                    next=target, email=email, errors={"_form": "That email and password do not match an account."}
                ),
            )
        if passwords_refused(session, user):
            return _public_page(
                request,
                "sign_in.html",
                status_code=403,
                **_sign_in_context(next=target, email=email, errors={"_form": PASSWORDS_OFF}),
            )
        if user.password_hash and needs_rehash(user.password_hash):  # verified above: it has one
            set_password(session, user, password)
        clear_failures(session, email)
        token = create_session(session, user, user_agent=request.headers.get("user-agent", ""))
        home = HOME[user.role]
    return signed_in_response(request, token, target or home)


def signed_in_response(request: Request, token: str, target: str) -> Response:
    """The answer to a sign-in that worked (password or SSO): the session cookie, and on to `target`."""
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=_secure(request), path="/")
    response.delete_cookie(FORM_COOKIE, path="/")
    return response


@router.post("/sign-out")
def sign_out(session: DbSession, request: Request, user: PageUser = Depends(SIGNED_IN)):
    revoke(session, user.session_id)
    response = RedirectResponse("/sign-in?toast=signed_out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# ---------------------------------------------------------------- forgotten password

RESET_SUBJECT = N_("Reset your Relais password")
RESET_BODY = N_(
    "Someone (probably you) asked to reset the password of your Relais account.\n\n"
    "Open this link within {minutes} minutes to choose a new one:\n{link}\n\n"
    "If you did not ask, ignore this email: your password stays as it is.\n"
)


@router.get("/password/forgot")
def forgot_page(request: Request):
    return _public_page(request, "forgot.html", email="", sent=False, errors={})


@router.post("/password/forgot")
def forgot(request: Request, form: FormData = Depends(read_form)):
    email = str(form.get("email", "")).strip()[:320]
    if not _form_ok(request, form):
        return _public_page(
            request,
            "forgot.html",
            status_code=400,
            email=email,
            sent=False,
            errors={"_form": "This form has expired. Try again."},
        )
    if not email:
        return _public_page(
            request,
            "forgot.html",
            status_code=422,
            email=email,
            sent=False,
            errors={"email": "Enter the email address you sign in with."},
        )

    _send_reset(request, email)
    # The same answer whether or not the account exists: the page does not tell who has one.
    return _public_page(request, "forgot.html", email=email, sent=True, errors={})


def _send_reset(request: Request, email: str) -> None:
    from service.db import session_scope

    settings = request.app.state.settings
    with session_scope(request.app.state.engine) as session:
        user = user_by_email(session, email)
        if user is None or user.disabled_at is not None:
            return
        token = resets.issue_reset(session, user, settings)
        language = request_language(request, user.language)
    use_language(language)
    link = f"{settings.public_base_url.rstrip('/')}/password/reset/{token}"
    body = gettext(RESET_BODY).replace("{minutes}", str(settings.reset_link_minutes))
    msg = resets.reset_message(settings, to=user.email, link=link, subject=gettext(RESET_SUBJECT), body=body)
    resets.send_reset_email(settings, msg)


@router.get("/password/reset/{token}")
def reset_page(session: DbSession, request: Request, token: str):
    if resets.usable_reset(session, token) is None:
        return _public_page(request, "reset.html", status_code=404, valid=False, errors={})
    return _public_page(request, "reset.html", valid=True, errors={})


@router.post("/password/reset/{token}")
def reset_password(request: Request, token: str, form: FormData = Depends(read_form)):
    password, again = str(form.get("password", ""))[:1024], str(form.get("password_again", ""))[:1024]
    if not _form_ok(request, form):
        return _public_page(
            request, "reset.html", status_code=400, valid=True, errors={"_form": "This form has expired. Try again."}
        )
    problem = password_problem(password) or (None if password == again else "The two passwords differ.")
    if problem:
        return _public_page(request, "reset.html", status_code=422, valid=True, errors={"password": problem})

    from service.db import session_scope

    def apply() -> bool:
        with session_scope(request.app.state.engine) as session:
            row = resets.usable_reset(session, token)
            if row is None:
                return False
            row.used_at = utcnow()
            session.add(row)
            set_password(session, get_existing(session, User, row.user_id), password)
            return True

    if not apply():
        return _public_page(request, "reset.html", status_code=404, valid=False, errors={})
    return RedirectResponse("/sign-in?toast=password_changed", status_code=303)


# ---------------------------------------------------------------- employees' sign-in links (the portal)

LINK_SUBJECT = N_("Your sign-in link to your Relais space")
LINK_BODY = N_(
    "Hello,\n\n"
    "Open this link within {minutes} minutes to sign in to your space (your signature, your data and choices):\n"
    "{link}\n\n"
    "The link works once. If you did not ask for it, ignore this email: nobody signs in without it.\n"
)


EXPIRED_BUTTON = N_("This form has expired. Press the button again.")


@router.post("/sign-in/link")
def request_link(request: Request, form: FormData = Depends(read_form)):
    email = str(form.get("link_email", "")).strip()[:320]
    target = safe_next(str(form.get("next", ""))) or ""

    def page(status_code: int = 200, headers: dict | None = None, **ctx) -> Response:
        return _public_page(request, "sign_in.html", status_code=status_code, headers=headers,
                            **_sign_in_context(next=target, link_email=email, **ctx))  # fmt: skip

    if not _form_ok(request, form):
        return page(400, link_errors={"_form": N_("This form has expired. Ask for the link again.")})
    if "@" not in email:
        return page(422, link_errors={"link_email": N_("Enter your work email address.")})
    from service.db import session_scope

    settings = request.app.state.settings
    ip = request.client.host if request.client else None
    message = None
    with session_scope(request.app.state.engine) as session:
        if throttled(session, email, ip, links.REQUESTS):
            return page(429, headers={"retry-after": "900"}, link_errors={
                "_form": N_("Too many sign-in links were asked for. Wait 15 minutes, then ask again.")})  # fmt: skip
        record_failure(session, email, ip, links.REQUESTS)  # every request counts, known address or not
        employee = links.employee_to_sign_in(session, email)
        if employee is not None:
            token = links.issue_link(session, employee, target)
            use_language(_employee_language(session, request, employee))
            link = f"{settings.public_base_url.rstrip('/')}/sign-in/link/{token}"
            body = gettext(LINK_BODY).replace("{minutes}", str(links.LINK_MINUTES))
            message = resets.reset_message(settings, to=employee.email, link=link, subject=gettext(LINK_SUBJECT),
                                           body=body)  # fmt: skip
    if message is not None:  # the link is committed before it is mailed
        resets.send_reset_email(settings, message)
    # The same answer whether or not the address is an employee's: the page does not tell who works here.
    return page(link_sent=True)


def _employee_language(session, request: Request, employee) -> str:
    """The employee's account language, else their directory locale (fr-FR -> fr), else the browser's."""
    user = user_by_email(session, employee.email)
    locale = (employee.locale or "").split("-")[0].split("_")[0].lower()
    return request_language(request, (user.language if user else None) or (locale if locale in LANGUAGES else None))


@router.get("/sign-in/link/{token}")
def link_page(session: DbSession, request: Request, token: str):
    """Shows a button; does not use the link (mail scanners open every link of a message)."""
    if links.usable_link(session, token) is None:
        return _link_gone(request)
    return _public_page(request, "sign_in_link.html", action=f"/sign-in/link/{token}", errors={}, opening=False)


@router.post("/sign-in/link/{token}")
def use_link(request: Request, token: str, form: FormData = Depends(read_form)):
    if not _form_ok(request, form):
        return _public_page(request, "sign_in_link.html", status_code=400, action=f"/sign-in/link/{token}",
                            opening=False, errors={"_form": EXPIRED_BUTTON})  # fmt: skip
    from service.db import session_scope
    from service.directory.models import Employee

    with session_scope(request.app.state.engine) as session:
        row = links.use_link(session, token)
        if row is None:
            return _link_gone(request)
        employee = session.get(Employee, row.employee_id)
        user = links.portal_user(session, employee) if employee is not None else None
        if user is None:
            return _link_refused(request)
        cookie = create_session(session, user, user_agent=request.headers.get("user-agent", ""))
        target = safe_next(row.next_path) or "/me"
    return signed_in_response(request, cookie, target)


@router.get("/sign-in/open/{token}")
def open_page(session: DbSession, request: Request, token: str, user: PageUser | None = Depends(signed_in)):
    """A newsletter's "Open my space": a button that signs in (a GET signs no one in: scanners prefetch)."""
    from service.directory.models import Employee

    employee_id = open_links.parse_open_token(token, open_links.open_key(request.app.state.settings))
    employee = session.get(Employee, employee_id) if employee_id is not None else None
    if employee is None or not employee.active:
        return _link_gone(request)
    if user is not None and user.employee_id == employee.id:
        return RedirectResponse("/me", status_code=303)
    if _staff(session, employee):
        return RedirectResponse("/sign-in?next=/me", status_code=303)
    return _public_page(request, "sign_in_link.html", action=f"/sign-in/open/{token}", errors={}, opening=True)


def _staff(session, employee) -> bool:
    """A staff account (comms, IT, admin) is never opened by a newsletter link: the link lasts 48 hours and an
    email gets forwarded, so it may open an employee's own space, not an administration. Staff sign in."""
    account = user_by_email(session, employee.email)
    return account is not None and account.role is not Role.employee


@router.post("/sign-in/open/{token}")
def open_space(request: Request, token: str, form: FormData = Depends(read_form)):
    if not _form_ok(request, form):
        return _public_page(request, "sign_in_link.html", status_code=400, action=f"/sign-in/open/{token}",
                            opening=True, errors={"_form": EXPIRED_BUTTON})  # fmt: skip
    from service.db import session_scope
    from service.directory.models import Employee

    employee_id = open_links.parse_open_token(token, open_links.open_key(request.app.state.settings))
    with session_scope(request.app.state.engine) as session:
        employee = session.get(Employee, employee_id) if employee_id is not None else None
        if employee is None or not employee.active:
            return _link_gone(request)
        if _staff(session, employee):
            return RedirectResponse("/sign-in?next=/me", status_code=303)
        user = links.portal_user(session, employee)
        if user is None:
            return _link_refused(request)
        cookie = create_session(session, user, user_agent=request.headers.get("user-agent", ""))
    return signed_in_response(request, cookie, "/me")


def _link_gone(request: Request) -> Response:
    return render_page(request, "error.html", status_code=404, title=N_("This link no longer works"),
                       message=N_("It was already used, or it expired. Ask for a new sign-in link on the sign-in "
                                  "page."))  # fmt: skip


def _link_refused(request: Request) -> Response:
    return render_page(request, "error.html", status_code=403, title=N_("You cannot sign in here"),
                       message=N_("Your account is disabled or is not linked to you. Ask IT."))  # fmt: skip


# ---------------------------------------------------------------- the user's own settings


@router.get("/app/account")
def account_page(request: Request, user: PageUser = Depends(ANY)):
    return render_page(request, "account.html", errors={}, languages=LANGUAGES)


@router.post("/app/account")
def account_save(
    session: DbSession, request: Request, user: PageUser = Depends(ANY), form: FormData = Depends(read_form)
):
    row = get_existing(session, User, user.id)  # the signed-in user
    errors: dict[str, str] = {}
    language = str(form.get("language", ""))
    row.language = language if language in LANGUAGES else None
    row.name = str(form.get("name", row.name)).strip()[:200]
    new = str(form.get("new_password", ""))
    if new:
        if not verify_password(row.password_hash, str(form.get("current_password", ""))):
            errors["current_password"] = "This is not your current password."  # noqa: S105 - a sentence
        else:
            try:
                set_password(session, row, new)
            except Invalid:
                errors["new_password"] = password_problem(new) or "Choose another password."
    session.add(row)
    if errors:
        return render_page(request, "account.html", status_code=422, errors=errors, languages=LANGUAGES)
    if new:  # every session ended with the password change, this one too
        response = RedirectResponse("/sign-in?toast=password_changed", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response
    return RedirectResponse("/app/account?toast=saved", status_code=303)
