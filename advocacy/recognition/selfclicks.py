"""Self-generated clicks: an employee clicking their own signature or shared-post links.

service.clicks records who brought a click, not who made it; it only keeps `visitor`, a salted hash of the
address and browser that changes every day. Two facts tie a visitor to the employee on a given day:

- the employee's own clicks: their newsletter's "read" links and share buttons carry their token and only they
  receive that email (channels newsletter and share_intent);
- their signed-in portal pages (/me/figures, /me/contests note the visitor hash of the session: `note_own_device`).

A human click on the employee's audience links (signature, shared posts) from such a visitor is a self-click and
never counts in a contest. Limits: another device or network the same day is not recognised; the hash of a
shared office address and a common browser can match a colleague on the same network (rare: the user agent
string differs between most machines); rolled-up days (older than the retention period) have no visitor.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from advocacy.recognition.models import OwnDevice
from service.clicks.models import Click, TrackingSettings
from service.db import utcnow
from service.links import Channel

OWN_CHANNELS = (Channel.newsletter, Channel.share_intent)  # links only the employee receives


def own_visitors(session: Session, *, org_id: int, lo: datetime, hi: datetime) -> set[tuple[int, str]]:
    """(employee id, visitor hash) pairs known to be the employee themself between `lo` and `hi`.

    Visitor hashes are salted per day, so a pair found a day around the window covers every click in it."""
    own = session.exec(
        select(Click.employee_id, Click.visitor)
        .where(
            Click.org_id == org_id,
            col(Click.employee_id).is_not(None),
            col(Click.channel).in_(OWN_CHANNELS),
            Click.occurred_at >= lo - timedelta(days=1),
            Click.occurred_at < hi + timedelta(days=1),
            Click.visitor != "",
        )
        .distinct()
    ).all()
    portal = session.exec(
        select(OwnDevice.employee_id, OwnDevice.visitor).where(
            OwnDevice.org_id == org_id,
            OwnDevice.seen_on >= (lo - timedelta(days=1)).date(),
            OwnDevice.seen_on <= (hi + timedelta(days=1)).date(),
        )
    ).all()
    return {(e, v) for e, v in own if e is not None} | set(portal)


def note_own_device(session: Session, request: Request, *, org_id: int, employee_id: int) -> None:
    """Remember today's visitor hash of this signed-in employee (the same hash their clicks get)."""
    from service.clicks.routes import tracker_for

    tracker = tracker_for(request.app)
    today = utcnow().date()
    salt = tracker.cached_salt(today) or tracker.load_salt(today)
    ip = request.client.host if request.client else None
    visitor = tracker.visitor(salt, ip, request.headers.get("user-agent"))
    known = session.exec(
        select(OwnDevice.id).where(OwnDevice.employee_id == employee_id, OwnDevice.visitor == visitor)
    ).first()
    if known is None:
        try:
            with session.begin_nested():  # two tabs at once: the second finds the first's row
                session.add(OwnDevice(org_id=org_id, employee_id=employee_id, visitor=visitor, seen_on=today))
        except IntegrityError:
            pass


def purge_own_devices(session: Session) -> int:
    """Delete the hashes older than each organisation's retention period (their raw clicks are gone by then)."""
    retention = dict(session.exec(select(TrackingSettings.org_id, TrackingSettings.retention_days)).all())
    deleted = 0
    for org_id in set(session.exec(select(OwnDevice.org_id).distinct()).all()):
        cutoff = utcnow().date() - timedelta(days=retention.get(org_id, 90))
        result = session.exec(  # type: ignore[call-overload]
            sa.delete(OwnDevice).where(col(OwnDevice.org_id) == org_id, col(OwnDevice.seen_on) < cutoff)
        )
        deleted += result.rowcount or 0
    return deleted
