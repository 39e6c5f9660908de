"""The issue's lease: only its holder (``Issue.runner``, renewed as it goes; presumed dead after
``settings.newsletter_lease_s``) sends, so two workers never send the same issue."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from newsletter.audience import freeze_audience, freeze_second_wave
from newsletter.models import Delivery, DeliveryState, Issue, IssueStatus
from service.db import rowcount, table_of, utcnow
from service.errors import Invalid, NotFound

log = logging.getLogger(__name__)


class LeaseLost(RuntimeError):
    pass


def acquire_lease(engine: Engine, issue_id: int, runner: str, lease_s: float, wait: bool) -> Issue | None:
    """Take the issue's lease (waiting for a dead sender's lease to expire), freeze the audience on first start
    (and the second wave's when it is due) and put ``sending`` rows back to ``pending``. Returns None when the
    issue is already sent, or waits for a second wave that is not due yet."""
    while True:
        with Session(engine, expire_on_commit=False) as session:
            issue = session.get(Issue, issue_id)
            if issue is None:
                raise NotFound(f"There is no newsletter issue {issue_id}.")
            now = utcnow()
            if issue.status is IssueStatus.sent or (
                issue.status is IssueStatus.waiting and (issue.second_wave_at is None or issue.second_wave_at > now)
            ):
                return None
            stale = now - timedelta(seconds=lease_s)
            t = table_of(Issue)
            got = rowcount(session.execute(sa.update(t).where(t.c.id == issue_id, sa.or_(
                t.c.runner.is_(None), t.c.runner == runner, t.c.heartbeat_at < stale)).values(
                runner=runner, heartbeat_at=now)))  # fmt: skip
            if got == 1:
                session.refresh(issue)
                if issue.status in (IssueStatus.draft, IssueStatus.scheduled):
                    freeze_audience(session, issue)
                elif issue.status is IssueStatus.waiting:
                    freeze_second_wave(session, issue)
                d = table_of(Delivery)
                session.execute(sa.update(d).where(d.c.issue_id == issue_id, d.c.state == DeliveryState.sending)
                                .values(state=DeliveryState.pending))  # fmt: skip
                session.commit()
                return issue
            session.rollback()
        if not wait:
            raise Invalid(f"Issue {issue_id} is being sent by another worker.", status_code=409)
        log.info("newsletter.send.waiting_for_lease", extra={"issue_id": issue_id})
        time.sleep(min(1.0, lease_s / 4))


def new_runner() -> str:
    """A name for this send attempt, unique across hosts, processes and calls."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


def renew_lease(session: Session, issue_id: int, runner: str) -> None:
    """Push the heartbeat forward (committed by the caller); LeaseLost if another worker took the issue over."""
    t = table_of(Issue)
    got = rowcount(session.execute(sa.update(t).where(t.c.id == issue_id, t.c.runner == runner)
                                   .values(heartbeat_at=utcnow())))  # fmt: skip
    if got != 1:
        raise LeaseLost(f"issue {issue_id}: another worker took over the send")


def release_lease(session: Session, issue_id: int, runner: str, *, finished: bool) -> None:
    """Give the lease up (if still held); ``finished``: nothing is left to send in the frozen waves, so the
    issue is sent — or, when its leaders' wave is done and everyone else's is still to come, waiting."""
    t = table_of(Issue)
    values: dict[str, object] = {"runner": None, "heartbeat_at": None, "updated_at": utcnow()}
    if finished:
        issue = session.get(Issue, issue_id)
        if issue is not None and issue.second_wave_at is not None and issue.second_wave_started_at is None:
            values.update(status=IssueStatus.waiting)
        else:
            values.update(status=IssueStatus.sent, finished_at=utcnow())
    session.execute(sa.update(t).where(t.c.id == issue_id, t.c.runner == runner).values(**values))
