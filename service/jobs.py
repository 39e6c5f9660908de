"""The job queue: Huey on SQLite by default (a file in the data dir), on Redis when RELAIS_REDIS_URL is set
so several workers on several machines share the work. Tasks live beside their features (`*/jobs.py`)
and are registered on import by `load_tasks()`."""

import logging
from functools import lru_cache

from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from service.db import make_engine
from service.settings import Settings, get_settings

log = logging.getLogger("service.jobs")

TASK_MODULES = ("signatures.deploy.jobs", "newsletter.jobs", "service.clicks.jobs")


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisHuey("relais", url=settings.redis_url)
    return SqliteHuey("relais", filename=str(settings.ensure_data_dir() / "queue.db"))


huey = make_huey(get_settings())


@lru_cache
def engine():
    """The worker's database engine (one per process)."""
    return make_engine(get_settings().effective_database_url)


def load_tasks() -> None:
    import importlib

    for name in TASK_MODULES:
        importlib.import_module(name)
