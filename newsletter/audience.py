"""Who receives an issue: the audience query, the preference rows (the /u/ tokens), and the frozen list of
deliveries taken when a send first starts."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import Executable, Table
from sqlmodel import Session, col, select

from newsletter.models import Delivery, DeliveryState, Issue, IssueArticle, IssueStatus, NewsletterPreference
from newsletter.waves import leaders_condition, leaders_of, second_wave_time
from service.db import table_of, utcnow
from service.directory.audience import Audience, Match
from service.directory.models import Employee
from service.errors import Invalid

log = logging.getLogger(__name__)


# Issue audiences match ANY of their criteria (a department, an office, a group...), then exclusions win.
ISSUE_MATCH = Match.any


def audience_of(issue: Issue) -> Audience:
    """The issue's audience; issues saved before it said how it matches read as ISSUE_MATCH."""
    return Audience.load(issue.audience, match=ISSUE_MATCH)


def audience_query(org_id: int, audience: Audience):
    """Active employees of the organisation in the audience, minus those who unsubscribed."""
    opted_out = select(NewsletterPreference.employee_id).where(
        NewsletterPreference.org_id == org_id, col(NewsletterPreference.subscribed).is_(False)
    )
    return audience.query(org_id).where(col(Employee.id).not_in(opted_out)).order_by(col(Employee.id))


def _insert_ignore(session: Session, table: Table, rows: list[dict]) -> None:
    if not rows:
        return
    statement: Executable
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        statement = postgresql_insert(table).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).on_conflict_do_nothing()
    for i in range(0, len(rows), 2000):
        session.execute(statement, rows[i : i + 2000])


def ensure_preferences(session: Session, *, org_id: int, employee_ids: list[int]) -> dict[int, str]:
    """Every recipient gets a preference row (its token is the /u/ address); returns employee_id -> token."""
    tokens: dict[int, str] = {}
    for i in range(0, len(employee_ids), 5000):
        chunk = employee_ids[i : i + 5000]
        q = select(NewsletterPreference.employee_id, NewsletterPreference.token).where(
            col(NewsletterPreference.employee_id).in_(chunk)
        )
        tokens.update(session.exec(q).all())
    missing = [{"org_id": org_id, "employee_id": e, "token": secrets.token_urlsafe(16), "subscribed": True,
                "updated_at": utcnow()} for e in employee_ids if e not in tokens]  # fmt: skip
    if missing:
        _insert_ignore(session, table_of(NewsletterPreference), missing)
        ids = [m["employee_id"] for m in missing]
        q = select(NewsletterPreference.employee_id, NewsletterPreference.token).where(
            col(NewsletterPreference.employee_id).in_(ids)
        )
        tokens.update(session.exec(q).all())
    return tokens


def freeze_audience(session: Session, issue: Issue) -> None:
    """The first wave's deliveries: the whole audience, or only its leaders when the issue has a leaders' wave
    (newsletter.waves), whose second wave is then timed."""
    if not session.exec(select(IssueArticle.id).where(IssueArticle.issue_id == issue.id)).first():
        raise Invalid("This issue has no articles yet: add at least one before sending.")
    now = utcnow()
    query = audience_query(issue.org_id, audience_of(issue))
    leaders = leaders_of(issue.leaders)
    if leaders is not None:
        query = query.where(leaders_condition(issue.org_id, leaders))
        issue.second_wave_at = second_wave_time(issue, leaders, now)
    count = _freeze(session, issue, query, wave=1)
    issue.status = IssueStatus.sending
    issue.started_at = now
    issue.updated_at = now
    session.add(issue)
    log.info("newsletter.send.audience_frozen", extra={"issue_id": issue.id, "recipients": count, "wave": 1})


def freeze_second_wave(session: Session, issue: Issue) -> None:
    """Everyone else in the audience, read now; anyone the first wave had keeps their row (no second email)."""
    now = utcnow()
    count = _freeze(session, issue, audience_query(issue.org_id, audience_of(issue)), wave=2)
    issue.status = IssueStatus.sending
    issue.second_wave_started_at = now
    issue.updated_at = now
    session.add(issue)
    log.info("newsletter.send.audience_frozen", extra={"issue_id": issue.id, "recipients": count, "wave": 2})


def _freeze(session: Session, issue: Issue, query, *, wave: int) -> int:
    emps = session.exec(query).all()
    now = utcnow()
    _insert_ignore(session, table_of(Delivery), [
        {"org_id": issue.org_id, "issue_id": issue.id, "employee_id": e.id, "email": e.email, "wave": wave,
         "state": DeliveryState.pending, "attempts": 0, "updated_at": now} for e in emps])  # fmt: skip
    ensure_preferences(session, org_id=issue.org_id, employee_ids=[e.id for e in emps])
    return len(emps)
