"""Administration pages (admin only): users and their roles, and API keys (shown once, revocable).
Keys are minted by create_api_key and users by create_user, as the API and the CLI do."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlmodel import col, select
from starlette.datastructures import FormData

from service.accounts.guard import PageUser, page_guard
from service.accounts.models import User
from service.accounts.service import create_user
from service.accounts.sessions import revoke_all
from service.auth import create_api_key
from service.db import row_id, utcnow
from service.errors import AppError
from service.models import STAFF_ROLES, ApiKey, Role
from service.page_views import read_form
from service.pages import PageError, render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)
ADMIN = page_guard()
ROLES = [r.value for r in Role]  # a user's role
KEY_ROLES = [r.value for r in Role if r in STAFF_ROLES]  # an API key's role


def _users_page(request, session, user, *, errors=None, values=None, status_code=200):
    rows = session.exec(select(User).where(User.org_id == user.org_id).order_by(User.email)).all()
    return render_page(
        request,
        "admin/users.html",
        status_code=status_code,
        rows=rows,
        roles=ROLES,
        errors=errors or {},
        v=values or {"email": "", "name": "", "role": "comms"},
    )


@router.get("/app/admin/users")
def users(session: DbSession, request: Request, user: PageUser = Depends(ADMIN)):
    return _users_page(request, session, user)


@router.post("/app/admin/users")
def add_user(
    session: DbSession, request: Request, user: PageUser = Depends(ADMIN), form: FormData = Depends(read_form)
):
    """A user without a password: they choose one through 'Forgot your password?' (or SSO)."""
    values = {
        "email": str(form.get("email", "")).strip(),
        "name": str(form.get("name", "")).strip(),
        "role": str(form.get("role", "")),
    }
    if values["role"] not in ROLES:
        return _users_page(request, session, user, errors={"role": "Choose a role."}, values=values, status_code=422)
    try:
        create_user(session, org_id=user.org_id, email=values["email"], role=Role(values["role"]), name=values["name"])
    except AppError as exc:
        session.rollback()
        return _users_page(request, session, user, errors={"email": exc.message}, values=values, status_code=422)
    return RedirectResponse("/app/admin/users?toast=created", status_code=303)


@router.post("/app/admin/users/{user_id}")
def change_user(
    session: DbSession,
    request: Request,
    user_id: int,
    user: PageUser = Depends(ADMIN),
    form: FormData = Depends(read_form),
):
    row = session.get(User, user_id)
    if row is None or row.org_id != user.org_id:
        raise PageError(404, "No such user", "They may have been removed, or belong to another organisation.")
    if row.id == user.id:
        raise PageError(409, "That is you", "Ask another administrator to change your own role or access.")
    role, action = str(form.get("role", "")), str(form.get("action", ""))
    if role in ROLES:
        row.role = Role(role)
    if action == "disable":
        row.disabled_at = utcnow()
        revoke_all(session, row_id(row))
    elif action == "enable":
        row.disabled_at = None
    session.add(row)
    return RedirectResponse("/app/admin/users?toast=saved", status_code=303)


@router.get("/app/admin/keys")
def keys(session: DbSession, request: Request, user: PageUser = Depends(ADMIN)):
    rows = session.exec(select(ApiKey).where(ApiKey.org_id == user.org_id).order_by(col(ApiKey.id))).all()
    return render_page(request, "admin/keys.html", rows=rows, roles=KEY_ROLES, new_key=None, errors={})


@router.post("/app/admin/keys")
def add_key(session: DbSession, request: Request, user: PageUser = Depends(ADMIN), form: FormData = Depends(read_form)):
    name, role = str(form.get("name", "")).strip()[:120], str(form.get("role", ""))
    errors = {}
    if not name:
        errors["name"] = "Name the key after who or what uses it."
    if role not in KEY_ROLES:
        errors["role"] = "Choose a role."
    new_key = None
    if not errors:
        _row, new_key = create_api_key(session, org_id=user.org_id, name=name, role=Role(role))
    rows = session.exec(select(ApiKey).where(ApiKey.org_id == user.org_id).order_by(col(ApiKey.id))).all()
    return render_page(
        request,
        "admin/keys.html",
        status_code=422 if errors else 201,
        rows=rows,
        roles=KEY_ROLES,
        new_key=new_key,
        errors=errors,
    )


@router.post("/app/admin/keys/{key_id}/revoke")
def revoke_key(session: DbSession, key_id: int, user: PageUser = Depends(ADMIN)):
    row = session.get(ApiKey, key_id)
    if row is None or row.org_id != user.org_id:
        raise PageError(404, "No such key", "It may belong to another organisation.")
    row.revoked_at = row.revoked_at or utcnow()
    session.add(row)
    return RedirectResponse("/app/admin/keys?toast=saved", status_code=303)
