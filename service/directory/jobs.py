"""The directory sync in the worker: the nightly run of every provider connection's directory, and the runs
IT starts with "sync now". Each is a DirectorySync row (service.directory.runs) that the page follows; the
deployment scheduler then keeps the signatures that changed because of it current."""

import logging

from sqlmodel import Session, select

from service.connections.models import ProviderConnection
from service.db import row_id, session_scope
from service.directory.runs import request_sync, run_sync
from service.errors import AppError
from service.jobs import cron, engine, get_huey
from service.settings import get_settings

log = logging.getLogger(__name__)
huey = get_huey()


@huey.task()
def run_directory_sync(sync_id: int) -> None:
    """A queued run ("sync now"), to its end."""
    run_sync(engine(), get_settings(), sync_id)


@huey.periodic_task(cron(get_settings().directory_sync_cron))
def sync_directories() -> None:
    """Nightly by default: every provider directory with a connection (one failing does not stop the others)."""
    with Session(engine()) as session:
        connections = [(c.org_id, c.provider) for c in session.exec(select(ProviderConnection)).all()]
    for org_id, provider in connections:
        try:
            with session_scope(engine()) as session:
                run = request_sync(session, org_id=org_id, provider=provider, trigger="schedule", requested_by=None)
                sync_id = row_id(run)
        except AppError as exc:  # one is already under way: it is this night's run
            log.info("service.directory.sync_skipped", extra={"org_id": org_id, "provider": provider.value,
                     "reason": str(exc.message)})  # fmt: skip
            continue
        run_sync(engine(), get_settings(), sync_id)
