"""Queue tasks: every five minutes, poll the feeds whose time has come (each feed's next_poll_at carries its
interval and backoff). Listed in service.features."""

import logging

from sqlmodel import Session

from advocacy.feeds.models import Feed
from advocacy.feeds.polling import due_feed_ids, poll_feed
from service.db import session_scope
from service.jobs import cron, engine, get_huey
from service.settings import get_settings

log = logging.getLogger(__name__)
huey = get_huey()


def poll_due(engine_, settings, **fetch_options) -> list[int]:
    """Poll every due feed, each in its own session: one failing feed never stops the others."""
    with session_scope(engine_) as session:
        due = due_feed_ids(session)
    for feed_id in due:
        with Session(engine_) as session:
            feed = session.get(Feed, feed_id)
            if feed is None:
                continue
            try:
                poll_feed(session, feed, **({"allow_private": settings.fetch_allow_private} | fetch_options))
            except Exception:  # left due: the next run retries it (its items so far are kept, see polling)
                log.exception("advocacy.feeds.poll_crashed", extra={"feed_id": feed_id})
    return due


@huey.periodic_task(cron("*/5 * * * *"), retries=0)
def feeds_poll_due() -> None:
    poll_due(engine(), get_settings())
