"""The directory API: employees, CSV import and provider sync. Thin: the logic lives in service.directory.sync."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import BaseModel
from sqlmodel import col, func, select

from service.auth import Principal, requires
from service.connections.models import Provider
from service.db import row_id
from service.directory.models import DirectorySync, Employee, EmployeeGroup, EmployeePublic
from service.directory.runs import error_of, record
from service.directory.service import employee_search
from service.directory.service import get_employee as fetch_employee
from service.directory.sources import make_directory
from service.directory.sources.csv_file import MAX_BYTES as MAX_CSV_BYTES
from service.directory.sources.csv_file import CsvDirectory, check_options
from service.directory.sync import SyncReport, sync_directory
from service.models import Role
from service.session import DbSession

router = APIRouter(prefix="/api")

IT = requires(Role.it)
READ = requires(Role.it, Role.comms)


class EmployeePage(BaseModel):
    total: int
    items: list[EmployeePublic]


@router.get("/employees", tags=["directory"], response_model=EmployeePage)
def list_employees(
    session: DbSession,
    department: str | None = None,
    office: str | None = None,
    active: bool | None = True,
    q: str | None = Query(None, description="Matches name or email."),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    p: Principal = Depends(READ),
):
    query = employee_search(p.org_id, department=department, office=office, active=active, q=q)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(Employee.last_name), col(Employee.id)).offset(offset).limit(limit)).all()
    groups: dict[int, list[str]] = {}
    if rows:
        ids = [row_id(r) for r in rows]
        for g in session.exec(select(EmployeeGroup).where(col(EmployeeGroup.employee_id).in_(ids))).all():
            groups.setdefault(g.employee_id, []).append(g.group_key)
    items = [
        EmployeePublic.model_validate(r, from_attributes=True, update={"groups": sorted(groups.get(row_id(r), []))})
        for r in rows
    ]
    return EmployeePage(total=total, items=items)


@router.get("/employees/{employee_id}", tags=["directory"], response_model=EmployeePublic)
def get_employee(session: DbSession, employee_id: int, p: Principal = Depends(READ)):
    emp = fetch_employee(session, org_id=p.org_id, employee_id=employee_id)
    groups = session.exec(select(EmployeeGroup.group_key).where(EmployeeGroup.employee_id == emp.id)).all()
    return EmployeePublic.model_validate(emp, from_attributes=True, update={"groups": sorted(groups)})


@router.post("/directory/import", tags=["directory"], response_model=SyncReport)
def import_csv(  # sync: parsing runs in the thread pool, off the event loop
    session: DbSession,
    file: UploadFile = File(..., description="CSV with a header row and an email column (see docs/directory.md)."),
    dry_run: bool = Query(True, description="Report what would change without changing anything."),
    delimiter: str | None = Query(None, description="',', ';' or 'tab'; detected from the header when omitted."),
    encoding: str | None = Query(
        None, description="e.g. utf-8, cp1252; detected when omitted (UTF-8 with or without BOM, else Windows-1252)."
    ),
    p: Principal = Depends(IT),
):
    delimiter, encoding = check_options(delimiter, encoding)
    data = file.file.read(MAX_CSV_BYTES + 1)  # the request ceiling already bounds it; this bounds the copy
    directory = CsvDirectory(data, delimiter=delimiter, encoding=encoding)
    report = sync_directory(session, org_id=p.org_id, directory=directory, dry_run=dry_run)
    record(session, org_id=p.org_id, report=report, trigger="api", requested_by=p.name[:320])
    return report


@router.post(
    "/directory/sync/{provider}",
    tags=["directory"],
    response_model=SyncReport,
    summary="Sync employees from Google Workspace or Microsoft 365 (people who left are deactivated)",
)
def sync_provider(
    session: DbSession,
    provider: Provider,
    request: Request,
    dry_run: bool = Query(True, description="Report what would change without changing anything."),
    p: Principal = Depends(IT),
):
    directory = make_directory(session, org_id=p.org_id, provider=provider, settings=request.app.state.settings)
    try:
        report = sync_directory(session, org_id=p.org_id, directory=directory, dry_run=dry_run)
        record(session, org_id=p.org_id, report=report, trigger="api", requested_by=p.name[:320])
        return report
    finally:
        close = getattr(getattr(directory, "client", None), "close", None)
        if close:
            close()


class SyncPublic(BaseModel):
    id: int
    source: str
    trigger: str
    requested_by: str | None
    state: str
    created: int
    updated: int
    deactivated: int
    unchanged: int
    refused: int
    refusals: list[dict]
    error: str | None  # English, like every API message
    started_at: datetime
    finished_at: datetime | None


class SyncPage(BaseModel):
    total: int
    items: list[SyncPublic]


@router.get(
    "/directory/syncs", tags=["directory"], response_model=SyncPage, summary="Past directory syncs, newest first"
)
def list_syncs(
    session: DbSession,
    source: Literal["csv", "google", "microsoft"] | None = None,
    state: Literal["queued", "listing", "applying", "done", "failed"] | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    p: Principal = Depends(IT),
):
    query = select(DirectorySync).where(DirectorySync.org_id == p.org_id)
    if source:
        query = query.where(DirectorySync.source == source)
    if state:
        query = query.where(DirectorySync.state == state)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    newest = (col(DirectorySync.started_at).desc(), col(DirectorySync.id).desc())
    rows = session.exec(query.order_by(*newest).offset(offset).limit(limit)).all()
    items = [SyncPublic(**r.model_dump(), error=error_of(r)) for r in rows]
    return SyncPage(total=total, items=items)
