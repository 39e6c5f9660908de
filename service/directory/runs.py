"""The history of directory syncs: every real sync is a DirectorySync row, whichever way it was started.

A provider sync started from the page or the schedule runs `run_sync` in the worker, which moves the row
through listing → applying → done (or failed, with the sentence saying what to change), committing each step
so the page can follow it. A CSV import applied, or an API sync, is recorded once it has applied (`record`).
"""

import logging
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from service.connections.models import Provider, ProviderConnection
from service.db import session_scope, utcnow
from service.directory.models import DirectorySync
from service.directory.sync import SyncReport, apply_listing
from service.errors import AppError, Conflict
from service.sentences import N_, Sentence
from service.settings import Settings

log = logging.getLogger(__name__)

OPEN_STATES = ("queued", "listing", "applying")
STATES = (*OPEN_STATES, "done", "failed")
TRIGGERS = ("schedule", "manual", "import", "api", "cli")
SOURCES = ("csv", "google", "microsoft")
STALE = timedelta(hours=2)  # an open run older than this was lost with its worker: it no longer blocks another
MAX_REFUSALS = 200


def _count(report: SyncReport, row: DirectorySync) -> None:
    row.created, row.updated = report.created, report.updated
    row.deactivated, row.unchanged = report.deactivated, report.unchanged
    row.refused, row.refusals = len(report.skipped), report.skipped[:MAX_REFUSALS]


def record(session: Session, *, org_id: int, report: SyncReport, trigger: str, requested_by: str | None) -> None:
    """Record a sync that has just applied in this session (a CSV import, an API sync); dry runs are not."""
    if report.dry_run:
        return
    row = DirectorySync(org_id=org_id, source=report.source, trigger=trigger, requested_by=requested_by,
                        state="done", finished_at=utcnow())  # fmt: skip
    _count(report, row)
    session.add(row)


def open_sync(session: Session, *, org_id: int, source: str, now: datetime | None = None) -> DirectorySync | None:
    """The run of this source still under way, if any (a lost one stops counting after STALE)."""
    since = (now or utcnow()) - STALE
    return session.exec(
        select(DirectorySync).where(DirectorySync.org_id == org_id, DirectorySync.source == source,
                                    col(DirectorySync.state).in_(OPEN_STATES), DirectorySync.started_at >= since)
    ).first()  # fmt: skip


def is_running(row: DirectorySync, now: datetime | None = None) -> bool:
    """Still under way (a page keeps polling it); a run lost with its worker stops counting after STALE."""
    return row.state in OPEN_STATES and (now or utcnow()) - row.started_at <= STALE


def request_sync(
    session: Session, *, org_id: int, provider: Provider, trigger: str, requested_by: str | None
) -> DirectorySync:
    """A queued run for `provider` (the caller queues run_sync after commit); refused while one is open or when
    there is no connection to sync from."""
    connection = session.exec(select(ProviderConnection).where(
        ProviderConnection.org_id == org_id, ProviderConnection.provider == provider)).first()  # fmt: skip
    if connection is None:
        raise Conflict(N_("There is no %(provider)s connection to sync from: set it up on the Connections page "
                          "first.", provider=provider.value))  # fmt: skip
    running = open_sync(session, org_id=org_id, source=provider.value)
    if running is not None:
        raise Conflict(N_("A %(provider)s sync is already under way (started %(when)s); follow its progress.",
                          provider=provider.value, when=running.started_at.strftime("%H:%M UTC")))  # fmt: skip
    row = DirectorySync(org_id=org_id, source=provider.value, trigger=trigger, requested_by=requested_by)
    session.add(row)
    session.flush()
    return row


def _step(engine: Engine, sync_id: int, **values) -> None:
    with session_scope(engine) as session:
        row = session.get(DirectorySync, sync_id)
        if row is not None:
            for k, v in values.items():
                setattr(row, k, v)
            session.add(row)


def failure(exc: Exception) -> tuple[str, dict]:
    """The message id and parameters to store for a failed run (a Sentence keeps them apart)."""
    message = exc.message if isinstance(exc, AppError) else None
    if isinstance(message, Sentence):
        return message.msgid, {k: str(v) for k, v in message.params.items()}
    if message:
        return "%(reason)s", {"reason": str(message)}
    return (
        "The sync stopped on an unexpected error (%(kind)s); the worker's log has the details. Try again, and if "
        "it keeps failing, report it.",
        {"kind": type(exc).__name__},
    )


def run_sync(engine: Engine, settings: Settings, sync_id: int) -> None:
    """Run a queued sync to its end. Idempotent: a finished run is left alone, and a run resumed after a crash
    lists again and applies again (the upsert changes nothing that is already current)."""
    from service.directory.sources import make_directory

    with Session(engine) as session:
        row = session.get(DirectorySync, sync_id)
        if row is None or row.state not in OPEN_STATES:
            return
        org_id, source = row.org_id, row.source
    _step(engine, sync_id, state="listing", started_at=utcnow())
    directory = None
    try:
        # One session for listing and applying: a source may keep state for its next run (the Graph delta link)
        # through this session once the listing is applied. The state steps commit on their own sessions.
        with session_scope(engine) as session:
            directory = make_directory(session, org_id=org_id, provider=Provider(source), settings=settings)
            listing = directory.list_people()
            _step(engine, sync_id, state="applying")
            report = apply_listing(session, org_id=org_id, source=source, listing=listing, dry_run=False)
            connection = session.exec(select(ProviderConnection).where(
                ProviderConnection.org_id == org_id, ProviderConnection.provider == source)).first()  # fmt: skip
            if connection is not None:
                connection.last_sync_at = utcnow()
                session.add(connection)
            row = session.get(DirectorySync, sync_id)
            if row is not None:
                _count(report, row)
                row.state, row.finished_at = "done", utcnow()
                session.add(row)
    except Exception as exc:
        msgid, params = failure(exc)
        _step(engine, sync_id, state="failed", finished_at=utcnow(), error_msgid=msgid, error_params=params)
        fields = {"org_id": org_id, "provider": source, "sync_id": sync_id, "error": type(exc).__name__}
        log.warning("service.directory.sync_failed", extra=fields, exc_info=not isinstance(exc, AppError))
    else:  # ("created" is a LogRecord attribute: the counts go by other names)
        log.info(
            "service.directory.synced",
            extra={"org_id": org_id, "provider": source, "sync_id": sync_id, "new": report.created,
                   "changed": report.updated, "deactivated": report.deactivated},
        )  # fmt: skip
    finally:
        close = getattr(getattr(directory, "client", None), "close", None)
        if close:
            close()


def error_of(row: DirectorySync) -> Sentence | None:
    return Sentence(row.error_msgid, **row.error_params) if row.error_msgid else None


def next_run(expr: str, now: datetime | None = None) -> datetime | None:
    """When the schedule (five-field cron, UTC) next fires, looked for within the coming 32 days."""
    return _next_run(expr, (now or utcnow()).replace(second=0, microsecond=0))


@lru_cache(maxsize=64)  # minute by minute is slow-ish (~0.2 s a day): once a minute per schedule is enough
def _next_run(expr: str, minute: datetime) -> datetime | None:
    from service.jobs import cron

    check = cron(expr)
    moment = minute + timedelta(minutes=1)
    for _ in range(32 * 24 * 60):
        if check(moment.replace(tzinfo=None)):
            return moment
        moment += timedelta(minutes=1)
    return None
