"""Directory pages: employees with search and filters; CSV import as upload → dry-run report → apply.

The import calls sync_directory with the CsvDirectory the API uses. Between the dry run and the apply, the
uploaded file waits in data_dir/imports under a random name that includes the organisation, and is removed
once applied."""

import secrets

from fastapi import APIRouter, Depends, Request, UploadFile
from fastapi.responses import RedirectResponse
from sqlmodel import col, func, select
from starlette.datastructures import FormData

from service.accounts.guard import PageUser, page_guard
from service.directory.models import Employee
from service.directory.runs import record
from service.directory.service import employee_search
from service.directory.sources.csv_file import CsvDirectory
from service.directory.sync import sync_directory
from service.errors import AppError
from service.models import Role
from service.page_views import page_of, read_form
from service.pages import PageError, render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)
IT = page_guard(Role.it)
MAX_CSV = 20 * 1024 * 1024


def _held(request: Request, org_id: int, token: str):
    if not token.isalnum() or len(token) > 64:
        return None
    return request.app.state.settings.data_dir / "imports" / f"{org_id}-{token}.csv"


@router.get("/app/directory")
def directory(
    session: DbSession,
    request: Request,
    q: str = "",
    department: str = "",
    office: str = "",
    page: int = 1,
    user: PageUser = Depends(IT),
):
    query = employee_search(
        user.org_id, department=department or None, office=office or None, active=True, q=q.lower()[:100]
    )
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    pg = page_of(page, total)
    rows = session.exec(
        query.order_by(col(Employee.last_name), col(Employee.id)).offset(pg.offset).limit(pg.size)
    ).all()
    depts = session.exec(select(Employee.department).where(Employee.org_id == user.org_id).distinct()).all()
    offices = session.exec(select(Employee.office).where(Employee.org_id == user.org_id).distinct()).all()
    return render_page(
        request,
        "it/directory.html",
        rows=rows,
        page=pg,
        q=q,
        department=department,
        office=office,
        departments=sorted(d for d in depts if d),
        offices=sorted(o for o in offices if o),
        params={"q": q, "department": department, "office": office},
    )


@router.get("/app/directory/import")
def import_page(request: Request, user: PageUser = Depends(IT)):
    return render_page(request, "it/import.html", report=None, token="", error=None)


@router.post("/app/directory/import")
def import_dry_run(session: DbSession, request: Request, file: UploadFile | None = None, user: PageUser = Depends(IT)):
    data = file.file.read(MAX_CSV + 1) if file is not None else b""
    if not data:
        return render_page(
            request,
            "it/import.html",
            status_code=422,
            report=None,
            token="",
            error="Choose a CSV file (UTF-8, a header row, an 'email' column).",
        )
    if len(data) > MAX_CSV:
        return render_page(
            request,
            "it/import.html",
            status_code=413,
            report=None,
            token="",
            error="This file is over 20 MB; split it.",
        )
    try:
        report = sync_directory(session, org_id=user.org_id, directory=CsvDirectory(data), dry_run=True)
    except AppError as exc:
        problems = (exc.details or {}).get("errors", []) if isinstance(exc.details, dict) else []
        return render_page(
            request,
            "it/import.html",
            status_code=422,
            report=None,
            token="",
            error=exc.message,
            problems=problems[:200],
        )
    token = secrets.token_hex(16)
    path = _held(request, user.org_id, token)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return render_page(request, "it/import.html", report=report, token=token, error=None)


@router.post("/app/directory/import/apply")
def import_apply(
    session: DbSession, request: Request, user: PageUser = Depends(IT), form: FormData = Depends(read_form)
):
    path = _held(request, user.org_id, str(form.get("token", "")))
    if path is None or not path.exists():
        raise PageError(410, "This import has expired", "Upload the file again to see a new dry run.")
    try:
        report = sync_directory(session, org_id=user.org_id, directory=CsvDirectory(path.read_bytes()), dry_run=False)
        record(session, org_id=user.org_id, report=report, trigger="import", requested_by=user.email)
    except AppError as exc:
        raise PageError(422, "The import did not apply", exc.message) from None
    path.unlink(missing_ok=True)
    return RedirectResponse(f"/app/directory?toast=saved&created={report.created}", status_code=303)
