"""Daily privacy housekeeping: raw clicks older than the retention period are rolled up and deleted."""

import logging

from huey import crontab

from service.clicks.reports import rollup_and_purge
from service.db import session_scope
from service.jobs import engine, get_huey

log = logging.getLogger(__name__)
huey = get_huey()


@huey.periodic_task(crontab(minute="30", hour="3"))
def daily_rollup() -> None:
    with session_scope(engine()) as session:
        stats = rollup_and_purge(session)
    log.info("service.clicks.rollup_done", extra=stats)
