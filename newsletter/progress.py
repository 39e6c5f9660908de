"""Where an issue's send stands: counts per delivery state and the first failures."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session, col, select

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
    # with a leaders' wave: [{"wave": 1, "total": ..., "done": ...}, {"wave": 2, ...}] and when the second starts
    waves: list[dict] = field(default_factory=list)
    second_wave_at: str | None = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def progress(session: Session, *, issue_id: int) -> SendReport:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"There is no newsletter issue {issue_id}.")
    rows = session.exec(select(col(Delivery.wave), col(Delivery.state), sa.func.count())
                        .where(Delivery.issue_id == issue_id)
                        .group_by(col(Delivery.wave), col(Delivery.state))).all()  # fmt: skip
    counts: dict[DeliveryState, int] = {}
    by_wave: dict[int, dict] = {}
    for wave, state, n in rows:
        counts[state] = counts.get(state, 0) + n
        w = by_wave.setdefault(wave, {"wave": wave, "total": 0, "done": 0})
        w["total"] += n
        w["done"] += n if state not in (DeliveryState.pending, DeliveryState.sending) else 0
    rep = SendReport(issue_id=issue_id, status=issue.status.value)
    for state in DeliveryState:
        n = counts.get(state, 0)
        setattr(rep, "unconfirmed" if state is DeliveryState.accepting else state.value, n)
        rep.total += n
    if issue.leaders:
        rep.waves = [by_wave.get(w, {"wave": w, "total": 0, "done": 0}) for w in (1, 2)]
        rep.second_wave_at = issue.second_wave_at.isoformat() if issue.second_wave_at else None
    errors = session.exec(
        select(Delivery.email, Delivery.last_error)
        .where(Delivery.issue_id == issue_id, Delivery.state == DeliveryState.failed)
        .limit(50)
    ).all()
    rep.errors = [{"email": e, "error": err} for e, err in errors]
    return rep
