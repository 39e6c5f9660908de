"""Single sign-on pages: the administrator's settings page, and the sign-in side — which provider an email address
leads to (home-realm discovery), the start of the flow, and the callback that opens the session.

The browser that starts a sign-in gets its `state` in a short-lived HttpOnly cookie; the callback admits only that
browser, only once (the attempt row is used up), and only within `sso_attempt_minutes`.
"""

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete
from sqlmodel import Session, col
from starlette.datastructures import FormData

from service.accounts.guard import HOME, PageUser, page_guard, safe_next
from service.accounts.routes import _form_ok, _public_page, _secure, _sign_in_context, signed_in_response
from service.accounts.sessions import create_session
from service.db import session_scope, utcnow
from service.errors import AppError
from service.page_strings import N_
from service.page_views import parse_form, read_form
from service.pages import render_page
from service.session import DbSession
from service.sso import oidc
from service.sso.models import DENY, SsoAttempt, SsoConfig, SsoProvider
from service.sso.oidc import PROVIDER_NAMES, SsoRefused, SsoUnavailable
from service.sso.service import (
    SignInDenied,
    SsoConfigIn,
    client_secret,
    config_for_email,
    domains_of,
    get_config,
    resolve_user,
    save_config,
)

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
ADMIN = page_guard()
STATE_COOKIE = "relais_sso_state"
STATE_PATH = "/sign-in/sso"
NO_REALM = N_("No single sign-on is set up for this email address's domain. Sign in with your password.")
EXPIRED = N_("This sign-in did not start in this browser, or it took too long. Start again from the sign-in page.")


# ---------------------------------------------------------------- the administrator's page


def _page(request: Request, session: Session, user: PageUser, *, values: dict, errors: dict, status_code: int = 200):
    settings = request.app.state.settings
    row = get_config(session, user.org_id)
    return render_page(
        request, "admin/sso.html", status_code=status_code, row=row, v=values, errors=errors,
        redirect_uri=oidc.redirect_uri(settings),
    )  # fmt: skip


def _values(session: Session, row: SsoConfig | None) -> dict:
    if row is None:
        return {"provider": "microsoft", "client_id": "", "tenant_id": "", "domains": "", "group_roles": "",
                "default_role": DENY, "allow_passwords": True, "enabled": True}  # fmt: skip
    return {
        "provider": row.provider.value, "client_id": row.client_id, "tenant_id": row.tenant_id,
        "domains": "\n".join(domains_of(session, row.org_id)),
        "group_roles": "\n".join(f"{g['group']} {g['role']}" for g in row.group_roles),
        "default_role": row.default_role, "allow_passwords": row.allow_passwords, "enabled": row.enabled,
    }  # fmt: skip


def _group_roles(text: str) -> list[dict] | str:
    """'<group object id> <role>' per line, the first match wins; or the sentence saying how to write a line."""
    out = []
    for line in text.splitlines():
        parts = line.replace(",", " ").replace("=", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            return N_("Write each line as a group's object id, a space, then a role (admin, comms or it).")
        out.append({"group": parts[0], "role": parts[1]})
    return out


@router.get("/app/admin/sso")
def sso_page(session: DbSession, request: Request, user: PageUser = Depends(ADMIN)):
    return _page(request, session, user, values=_values(session, get_config(session, user.org_id)), errors={})


@router.post("/app/admin/sso")
def sso_save(
    session: DbSession, request: Request, user: PageUser = Depends(ADMIN), form: FormData = Depends(read_form)
):
    values: dict[str, Any] = {
        "provider": str(form.get("provider", "")), "client_id": str(form.get("client_id", "")).strip(),
        "tenant_id": str(form.get("tenant_id", "")).strip(), "domains": str(form.get("domains", "")),
        "group_roles": str(form.get("group_roles", "")), "default_role": str(form.get("default_role", DENY)),
        "allow_passwords": form.get("allow_passwords") == "on", "enabled": form.get("enabled") == "on",
    }  # fmt: skip
    groups = _group_roles(values["group_roles"])
    if isinstance(groups, str):
        return _page(request, session, user, values=values, errors={"group_roles": groups}, status_code=422)
    data = {
        **values, "domains": values["domains"].replace(",", " ").split(), "group_roles": groups,
        "client_secret": str(form.get("client_secret", "")).strip() or None,
    }  # fmt: skip
    parsed, errors = parse_form(SsoConfigIn, data)
    if parsed is None:
        errors = {("group_roles" if k.startswith("group_roles") else k): v for k, v in errors.items()}
        if "provider" in errors and values["provider"] not in {p.value for p in SsoProvider}:
            errors["provider"] = N_("Choose Microsoft Entra ID or Google.")
        return _page(request, session, user, values=values, errors=errors, status_code=422)
    try:
        save_config(session, org_id=user.org_id, data=parsed, settings=request.app.state.settings)
    except AppError as exc:
        session.rollback()
        field = "client_secret" if "secret" in exc.message else "domains"
        return _page(request, session, user, values=values, errors={field: exc.message}, status_code=exc.status_code)
    log.info("service.sso.configured", extra={"org_id": user.org_id, "provider": parsed.provider.value})
    return RedirectResponse("/app/admin/sso?toast=saved", status_code=303)


# ---------------------------------------------------------------- signing in


def _problem(request: Request, status_code: int, title: str, message: str, provider: str = "", ask=()) -> Response:
    return _public_page(
        request, "sso_problem.html", status_code=status_code, title=title, message=message, provider=provider,
        ask=list(ask),
    )  # fmt: skip


@router.get("/sign-in/realm")
def realm(request: Request, email: str = ""):
    """htmx: the single sign-on button for the address typed so far (the provider's name when its domain has one)."""
    with session_scope(request.app.state.engine) as session:
        row = config_for_email(session, email[:320])
    return render_page(
        request, "_sso_choice.html", provider=PROVIDER_NAMES[row.provider] if row else "",
        passwords=row.allow_passwords if row else True,
    )  # fmt: skip


@router.post("/sign-in/sso")
def start(request: Request, form: FormData = Depends(read_form)):
    email = str(form.get("email", "")).strip()[:320]
    target = safe_next(str(form.get("next", ""))) or ""
    page = {"next": target, "email": email}
    if not _form_ok(request, form):
        errors = {"_form": "This form has expired. Sign in again."}
        return _public_page(request, "sign_in.html", status_code=400, **_sign_in_context(errors=errors, **page))
    settings = request.app.state.settings
    with session_scope(request.app.state.engine) as session:
        row = config_for_email(session, email)
    if row is None:
        errors = {"email": N_("Enter your work email address.")} if "@" not in email else {"_form": NO_REALM}
        return _public_page(request, "sign_in.html", status_code=422, **_sign_in_context(errors=errors, **page))
    provider = PROVIDER_NAMES[row.provider]
    try:
        auth = oidc.authorization(row, settings, login_hint=email)
    except SsoUnavailable as exc:
        return _problem(request, 503, N_("Single sign-on is unavailable"), str(exc), provider)
    except SsoRefused as exc:
        return _problem(request, 502, N_("Single sign-on is not working"), exc.message, provider)
    with session_scope(request.app.state.engine) as session:
        # attempts past their time are worthless: keep the table small
        expired = utcnow() - timedelta(minutes=settings.sso_attempt_minutes)
        session.exec(delete(SsoAttempt).where(col(SsoAttempt.created_at) < expired))
        session.add(SsoAttempt(
            id=oidc.state_digest(auth.state), org_id=row.org_id, provider=row.provider, nonce=auth.nonce,
            code_verifier=auth.code_verifier, next=target,
        ))  # fmt: skip
    log.info("service.sso.started", extra={"org_id": row.org_id, "provider": row.provider.value})
    response = RedirectResponse(auth.url, status_code=303)
    response.set_cookie(
        STATE_COOKIE, auth.state, httponly=True, samesite="lax", secure=_secure(request), path=STATE_PATH,
        max_age=settings.sso_attempt_minutes * 60,
    )  # fmt: skip
    return response


def _take_attempt(request: Request, state: str) -> SsoAttempt | None:
    """The attempt this browser started with this state, used up now (a second callback finds nothing)."""
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not state or len(state) > 200 or not cookie or not oidc.same(state, cookie):
        return None
    limit = timedelta(minutes=request.app.state.settings.sso_attempt_minutes)
    with session_scope(request.app.state.engine) as session:
        row = session.get(SsoAttempt, oidc.state_digest(state))
        if row is None or row.used_at is not None:
            return None
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=utcnow().tzinfo)
        row.used_at = utcnow()
        session.add(row)
        return row if utcnow() - created <= limit else None


# Errors the provider sends back to the callback, in words (the provider's own description is not shown: anyone
# can put text in a link).
CALLBACK_ERRORS = {
    "access_denied": N_("%(provider)s did not sign you in: the sign-in was cancelled, or your account is not "
                        "allowed to use Relais. Ask your administrator to assign you to the Relais application."),
    "consent_required": N_("%(provider)s needs an administrator to consent to Relais first. Ask your administrator."),
    "interaction_required": N_("%(provider)s needs you to sign in again. Start again."),
    "login_required": N_("%(provider)s needs you to sign in again. Start again."),
    "temporarily_unavailable": N_("%(provider)s is not answering sign-ins right now."),
    "server_error": N_("%(provider)s is not answering sign-ins right now."),
}  # fmt: skip


@router.get(oidc.CALLBACK_PATH)
def callback(request: Request, state: str = "", code: str = "", error: str = ""):
    attempt = _take_attempt(request, state)
    if attempt is None:
        return _problem(request, 400, N_("Start signing in again"), EXPIRED)
    settings = request.app.state.settings
    provider = PROVIDER_NAMES[attempt.provider]
    with session_scope(request.app.state.engine) as session:
        row = get_config(session, attempt.org_id)
        domains = frozenset(domains_of(session, attempt.org_id))
    if row is None or not row.enabled or row.provider != attempt.provider:
        return _problem(request, 409, N_("Start signing in again"), EXPIRED)
    if error:
        log.info("service.sso.provider_refused", extra={"org_id": row.org_id, "error": error[:60]})
        message = CALLBACK_ERRORS.get(error, N_("%(provider)s did not sign you in. Start again."))
        status = 503 if error in {"temporarily_unavailable", "server_error"} else 401
        return _problem(request, status, N_("You are not signed in"), message, provider)
    if not code or len(code) > 4000:
        return _problem(request, 400, N_("Start signing in again"), EXPIRED)
    try:
        identity = oidc.exchange(
            row, settings, secret=client_secret(row, settings), code=code, code_verifier=attempt.code_verifier,
            nonce=attempt.nonce, domains=domains,
        )  # fmt: skip
    except SsoUnavailable as exc:
        return _problem(request, 503, N_("Single sign-on is unavailable"), str(exc), provider)
    except SsoRefused as exc:
        log.warning(
            "service.sso.refused", extra={"org_id": row.org_id, "provider": row.provider.value, "reason": exc.detail}
        )
        return _problem(request, 401, N_("You are not signed in"), exc.message, provider)
    try:
        with session_scope(request.app.state.engine) as session:
            user = resolve_user(session, row=row, identity=identity)
            token = create_session(session, user, user_agent=request.headers.get("user-agent", ""))
            home = HOME[user.role]
    except SignInDenied as exc:
        log.info("service.sso.denied", extra={"org_id": row.org_id, "subject": identity.subject})
        return _problem(request, 403, N_("You are not signed in"), exc.message, provider, exc.ask)
    log.info("service.sso.signed_in", extra={"org_id": row.org_id, "user_id": user.id})
    response = signed_in_response(request, token, attempt.next or home)
    response.delete_cookie(STATE_COOKIE, path=STATE_PATH)
    return response
