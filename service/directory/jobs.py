"""The nightly directory sync: every provider connection's directory, then (through the deployment
scheduler) the signatures that changed because of it."""

import logging

from sqlmodel import Session, select

from service.connections.models import ProviderConnection
from service.db import get_existing, session_scope, utcnow
from service.directory.sources import make_directory
from service.directory.sync import sync_directory
from service.jobs import cron, engine, get_huey
from service.settings import get_settings

log = logging.getLogger(__name__)
huey = get_huey()


@huey.periodic_task(cron(get_settings().directory_sync_cron))
def sync_directories() -> None:
    """Nightly by default: every provider directory with a connection, then (through redeploy_changed)
    the signatures that changed because of it."""

    with Session(engine()) as session:
        connections = session.exec(select(ProviderConnection)).all()
    for conn in connections:
        try:
            with session_scope(engine()) as session:
                directory = make_directory(session, org_id=conn.org_id, provider=conn.provider, settings=get_settings())
                report = sync_directory(session, org_id=conn.org_id, directory=directory)
                row = get_existing(session, ProviderConnection, conn.id)
                row.last_sync_at = utcnow()
                session.add(row)
            log.info(
                "service.directory.synced",
                extra={
                    "org_id": conn.org_id,
                    "provider": conn.provider.value,
                    "created": report.created,
                    "updated": report.updated,
                    "deactivated": report.deactivated,
                },
            )
        except Exception:
            log.exception(
                "service.directory.sync_failed", extra={"org_id": conn.org_id, "provider": conn.provider.value}
            )
