"""Queue tasks: a periodic check sends due issues (and resumes interrupted ones). Listed in service.features."""

import logging

from huey import crontab

from newsletter.mailer import SmtpMailer
from newsletter.sending import send_issue
from newsletter.service import due_issue_ids
from service.db import session_scope
from service.jobs import engine, get_huey
from service.settings import get_settings

log = logging.getLogger(__name__)
huey = get_huey()


def send_due(engine_, settings, mailer=None) -> list[int]:
    """Send every scheduled issue whose time has come, and resume any interrupted send."""
    with session_scope(engine_) as session:
        due = due_issue_ids(session)
    for issue_id in due:
        _send_one(engine_, issue_id, mailer or SmtpMailer(settings), settings)
    return due


def _send_one(engine_, issue_id, mailer, settings) -> None:
    from service.errors import AppError

    try:
        send_issue(engine_, issue_id, mailer, settings, wait_for_lease=False)
    except AppError as exc:  # another worker holds the lease, or the issue is not sendable
        log.info("newsletter.send.not_started", extra={"issue_id": issue_id, "reason": exc.message})


@huey.periodic_task(crontab(minute="*"), retries=0)
def newsletter_send_due() -> None:
    send_due(engine(), get_settings())


@huey.task(retries=0)
def newsletter_send_issue(issue_id: int) -> None:
    settings = get_settings()
    _send_one(engine(), issue_id, SmtpMailer(settings), settings)
