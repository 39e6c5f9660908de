"""Click housekeeping: the summary is folded every few minutes; raw clicks older than the retention period are
deleted daily (their figures stay in the summary)."""

import logging

from huey import crontab

from service.clicks.reports import rollup_and_purge
from service.clicks.rollup import fold
from service.db import session_scope
from service.jobs import engine, get_huey

log = logging.getLogger(__name__)
huey = get_huey()


@huey.periodic_task(crontab(minute="*/5"))
def fold_clicks() -> None:
    """Keep the raw tail that every figure reads besides the summary a few minutes long."""
    with session_scope(engine()) as session:
        fold(session)


@huey.periodic_task(crontab(minute="30", hour="3"))
def daily_rollup() -> None:
    with session_scope(engine()) as session:
        stats = rollup_and_purge(session)
    log.info("service.clicks.rollup_done", extra=stats)
