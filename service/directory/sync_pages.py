"""Directory sync pages for IT: where the directory comes from, the last sync (counts, refusals, the error and
its fix), the next scheduled one, "sync now" with live progress, and the history of every sync with filters.
"Sync now" queues the same run the schedule makes (service.directory.runs, service.directory.jobs)."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlmodel import col, func, select
from starlette.datastructures import FormData

from service.accounts.guard import PageUser, page_guard
from service.connections.models import Provider, ProviderConnection
from service.directory.jobs import run_directory_sync
from service.directory.models import DirectorySync, Employee
from service.directory.runs import SOURCES, STATES, TRIGGERS, error_of, is_running, next_run, request_sync
from service.errors import AppError
from service.jobs import defer
from service.models import Role
from service.page_views import app_error, page_of, read_form
from service.pages import PageError, render_page
from service.sentences import N_
from service.session import DbSession

router = APIRouter(include_in_schema=False)
IT = page_guard(Role.it)


def _status(session, request: Request, user: PageUser, **filters) -> dict:
    """What the sync page shows: sources, the last run, the schedule, and one page of the history."""
    connections = session.exec(select(ProviderConnection).where(ProviderConnection.org_id == user.org_id)).all()
    active = select(Employee.source, func.count()).where(Employee.org_id == user.org_id, Employee.active == True)  # noqa: E712
    by_source = dict(session.exec(active.group_by(Employee.source)).all())
    newest = (col(DirectorySync.started_at).desc(), col(DirectorySync.id).desc())
    last = session.exec(select(DirectorySync).where(DirectorySync.org_id == user.org_id).order_by(*newest)).first()
    query = select(DirectorySync).where(DirectorySync.org_id == user.org_id)
    source, state, trigger = (filters.get(k, "") for k in ("source", "state", "trigger"))
    if source in SOURCES:
        query = query.where(DirectorySync.source == source)
    if state in STATES:
        query = query.where(DirectorySync.state == state)
    if trigger in TRIGGERS:
        query = query.where(DirectorySync.trigger == trigger)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    pg = page_of(filters.get("page", 1), total)
    rows = session.exec(query.order_by(*newest).offset(pg.offset).limit(pg.size)).all()
    schedule = request.app.state.settings.directory_sync_cron
    return {
        "providers": [c.provider.value for c in sorted(connections, key=lambda c: c.provider.value)],
        "by_source": by_source,
        "last": last,
        "last_error": error_of(last) if last else None,
        "polling": is_running(last) if last else False,
        "schedule": schedule,
        "next_sync": next_run(schedule) if connections else None,
        "rows": rows,
        "page": pg,
        "chosen": {"source": source, "state": state, "trigger": trigger},
        "sources": SOURCES,
        "states": STATES,
        "triggers": TRIGGERS,
        "errors": {},
    }


@router.get("/app/directory/sync")
def sync_status(
    session: DbSession,
    request: Request,
    source: str = "",
    state: str = "",
    trigger: str = "",
    page: int = 1,
    user: PageUser = Depends(IT),
):
    context = _status(session, request, user, source=source, state=state, trigger=trigger, page=page)
    return render_page(request, "it/directory_sync.html", **context)


@router.post("/app/directory/sync")
def sync_now(session: DbSession, request: Request, user: PageUser = Depends(IT), form: FormData = Depends(read_form)):
    """Queue a sync of one provider's directory now; the run's page follows it."""
    try:
        provider = Provider(str(form.get("provider", "")))
    except ValueError:
        errors = {"_form": N_("Choose the directory to sync: Microsoft 365 or Google Workspace.")}
        return render_page(request, "it/directory_sync.html", status_code=422,
                           **{**_status(session, request, user), "errors": errors})  # fmt: skip
    try:
        run = request_sync(session, org_id=user.org_id, provider=provider, trigger="manual", requested_by=user.email)
    except AppError as exc:
        session.rollback()
        return render_page(request, "it/directory_sync.html", status_code=exc.status_code,
                           **{**_status(session, request, user), "errors": app_error(exc)})  # fmt: skip
    defer(session, run_directory_sync, run.id)
    return RedirectResponse(f"/app/directory/sync/{run.id}?toast=started", status_code=303)


@router.get("/app/directory/sync/{sync_id}")
def sync_run(session: DbSession, request: Request, sync_id: int, user: PageUser = Depends(IT)):
    """One sync: its progress (polled by htmx while it runs), its counts, its refusals and its error."""
    run = session.get(DirectorySync, sync_id)
    if run is None or run.org_id != user.org_id:
        raise PageError(404, N_("No such sync"), N_("It may belong to another organisation, or the link is wrong."))
    partial = request.headers.get("hx-target") == "sync-progress"
    return render_page(
        request,
        "it/_sync_run.html" if partial else "it/directory_sync_run.html",
        run=run,
        run_error=error_of(run),
        polling=is_running(run),
    )
