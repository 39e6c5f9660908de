"""The job queue: Huey on SQLite by default (a file in the data dir), on Redis when RELAIS_REDIS_URL is set
so several workers on several machines share the work.

Huey is built from the settings on first use (`get_huey`), not when this module is imported. Tasks live beside
their features (`*/jobs.py`, listed in service.features) and register themselves when imported.

Jobs that a request or a CLI command queues go out only after its database transaction commits, and never
when it rolls back: `defer(session, task, *args)` holds them on the session until then (as Polar's deferred
queue does), so a worker can never pick up a row that the database doesn't have yet.
"""

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from sqlalchemy import event
from sqlalchemy.orm import Session

from service.db import make_engine
from service.settings import Settings, get_settings

log = logging.getLogger(__name__)

TaskRunner = Callable[..., Any]  # runner(task, *args): how a deferred job is handed over

PENDING = "relais.pending_jobs"
RUNNER = "relais.task_runner"


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisHuey(settings.queue_name, url=settings.redis_url)
    return SqliteHuey(settings.queue_name, filename=str(settings.ensure_data_dir() / "queue.db"))


@lru_cache
def get_huey() -> Huey:
    """The process's Huey instance, built from the settings the first time it is asked for."""
    return make_huey(get_settings())


@lru_cache
def engine():
    """The worker's database engine (one per process)."""
    return make_engine(get_settings().effective_database_url)


def cron(expr: str) -> crontab:
    """A Huey schedule from a five-field cron expression (as the settings write them)."""
    minute, hour, day, month, day_of_week = expr.split()
    return crontab(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week)


def enqueue(task, *args) -> None:
    """The default runner: calling a Huey task puts it on the queue."""
    task(*args)


def defer(session: Session, task, *args) -> None:
    """Queue `task(*args)` once `session` commits; dropped if it rolls back."""
    session.info.setdefault(PENDING, []).append((task, args))


@event.listens_for(Session, "after_commit")
def _send_deferred(session: Session) -> None:
    pending = session.info.pop(PENDING, [])
    runner = session.info.get(RUNNER, enqueue)
    for task, args in pending:
        try:
            runner(task, *args)
        except Exception:  # the row is committed: the watchdog or the next scheduled run picks it up
            log.exception("service.jobs.enqueue_failed", extra={"task": getattr(task, "name", repr(task))})


@event.listens_for(Session, "after_rollback")
def _drop_deferred(session: Session) -> None:
    session.info.pop(PENDING, None)
