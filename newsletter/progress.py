"""Where an issue's send stands: counts per delivery state and the first failures."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session, select

from newsletter.models import Delivery, DeliveryState, Issue
from service.errors import NotFound


@dataclass
class SendReport:
    issue_id: int
    status: str
    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    unconfirmed: int = 0  # accepting: end of data written, the 250 not seen (counted as sent, never resent)
    failed: int = 0
    skipped: int = 0
    waiting_for_smtp: bool = False
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def progress(session: Session, *, issue_id: int) -> SendReport:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"There is no newsletter issue {issue_id}.")
    counts = dict(session.exec(select(Delivery.state, sa.func.count()).where(Delivery.issue_id == issue_id)
                               .group_by(Delivery.state)).all())  # fmt: skip
    rep = SendReport(issue_id=issue_id, status=issue.status.value)
    for state in DeliveryState:
        n = counts.get(state, 0)
        setattr(rep, "unconfirmed" if state is DeliveryState.accepting else state.value, n)
        rep.total += n
    errors = session.exec(
        select(Delivery.email, Delivery.last_error)
        .where(Delivery.issue_id == issue_id, Delivery.state == DeliveryState.failed)
        .limit(50)
    ).all()
    rep.errors = [{"email": e, "error": err} for e, err in errors]
    return rep
