"""Daily: forget the portal visitor hashes whose raw clicks the retention period has deleted."""

import logging

from huey import crontab

from advocacy.recognition.selfclicks import purge_own_devices
from service.db import session_scope
from service.jobs import engine, get_huey

log = logging.getLogger(__name__)
huey = get_huey()


@huey.periodic_task(crontab(minute="40", hour="3"))
def forget_own_devices() -> None:
    with session_scope(engine()) as session:
        deleted = purge_own_devices(session)
    log.info("advocacy.recognition.own_devices_purged", extra={"deleted": deleted})
