"""The portal's pages: the overview (/me), my signature (/me/signature: preview, copy, install guides, proposed
corrections) and my data (/me/data: what is stored, the JSON export, my choices and language)."""

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from advocacy.charter.pages import charter_notice
from portal import corrections, my_data
from portal.guides import guides
from portal.signature import my_signature, rendered
from portal.visibility import CHOICES, choices_of
from service.accounts.guard import PageUser, employee_guard
from service.accounts.models import User
from service.db import get_existing, utcnow
from service.directory.models import Employee
from service.errors import AppError
from service.page_views import FRAME_HEADERS, frame_message, read_form
from service.pages import LANGUAGES, render_page
from service.session import DbSession
from signatures.models import SignatureKind

router = APIRouter(include_in_schema=False)


def _me(session, user: PageUser) -> Employee:
    return get_existing(session, Employee, user.employee_id)


@router.get("/me")
def overview(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    employee = _me(session, user)
    signature = my_signature(session, employee, request.app.state.settings)
    mine = corrections.of_employee(session, employee.id or 0, limit=20)
    pending = sum(1 for c in mine if c.state == "pending")
    return render_page(request, "portal/overview.html", employee=employee, signature=signature, pending=pending,
                       charter=charter_notice(session, user))  # fmt: skip


# ---------------------------------------------------------------- my signature


def _signature_page(session, request: Request, user: PageUser, *, errors=None, values=None, status_code=200):
    employee = _me(session, user)
    signature = my_signature(session, employee, request.app.state.settings)
    current = {f: getattr(employee, f) or "" for f in corrections.FIELDS}
    return render_page(
        request, "portal/signature.html", status_code=status_code, employee=employee, signature=signature,
        guides=guides(signature.installed_in), fields=corrections.FIELD_LABELS, values=values or current,
        errors=errors or {}, mine=corrections.of_employee(session, employee.id or 0, limit=20),
    )  # fmt: skip


@router.get("/me/signature")
def signature_page(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    return _signature_page(session, request, user)


@router.get("/me/signature/preview/{kind}")
def signature_preview(session: DbSession, request: Request, kind: str, user: PageUser = Depends(employee_guard)):
    """One version for the sandboxed preview frame (its inline styles are the email's own)."""
    if kind not in SignatureKind.__members__:
        return frame_message(request, "There is no such signature.", status_code=404)
    try:
        sig = rendered(session, _me(session, user), request.app.state.settings, SignatureKind(kind))
    except AppError as exc:
        return frame_message(request, exc.message)
    return HTMLResponse(sig.html, headers=FRAME_HEADERS)


@router.post("/me/signature/corrections")
def propose_corrections(
    session: DbSession, request: Request, user: PageUser = Depends(employee_guard), form: FormData = Depends(read_form)
):
    employee = _me(session, user)
    values = {f: str(form.get(f, ""))[:2000] for f in corrections.FIELDS if f in form}
    try:
        proposed = corrections.propose(session, employee=employee, changes=values, by=user.email)
    except corrections.FieldErrors as exc:
        session.rollback()
        return _signature_page(session, request, user, errors=exc.errors, values=values, status_code=422)
    toast = "proposed" if proposed else "nothing_changed"
    return RedirectResponse(f"/me/signature?toast={toast}#corrections", status_code=303)


# ---------------------------------------------------------------- my data


def _data_page(session, request: Request, user: PageUser, status_code: int = 200):
    employee = _me(session, user)
    account = get_existing(session, User, user.id)
    data = my_data.collect(session, employee=employee, user=account)
    return render_page(request, "portal/data.html", status_code=status_code, employee=employee, data=data,
                       visibility=choices_of(session, employee.id or 0), languages=LANGUAGES,
                       field_labels=my_data.PROFILE_LABELS, channel_labels=my_data.CHANNEL_LABELS)  # fmt: skip


@router.get("/me/data")
def data_page(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    return _data_page(session, request, user)


@router.post("/me/data")
def save_choices(
    session: DbSession, request: Request, user: PageUser = Depends(employee_guard), form: FormData = Depends(read_form)
):
    """Checkboxes: a box left unticked is not sent, so absence means no."""
    employee = _me(session, user)
    language = str(form.get("language", ""))
    my_data.save_choices(
        session, employee=employee, user=get_existing(session, User, user.id),
        attributed=form.get("attributed") == "on", newsletter=form.get("newsletter") == "on",
        visibility={c: form.get(c) == "on" for c in CHOICES}, language=language if language in LANGUAGES else None,
    )  # fmt: skip
    return RedirectResponse("/me/data?toast=saved", status_code=303)


@router.get("/me/data/export")
def export(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    employee = _me(session, user)
    data = my_data.collect(session, employee=employee, user=get_existing(session, User, user.id))
    body = json.dumps({"exported_at": utcnow(), **data}, ensure_ascii=False, indent=2, default=str)
    return Response(body, media_type="application/json", headers={
        "content-disposition": 'attachment; filename="my-relais-data.json"', "cache-control": "no-store",
        "x-content-type-options": "nosniff"})  # fmt: skip
