"""Leaders first: an issue can go to a leaders' audience some hours before everyone else.

The first wave (the leaders among the issue's audience: directory managers — people whose address is someone's
``manager_email`` — and/or an audience such as a directory group) starts when the issue is due; its deliveries
are frozen with ``wave=1`` and ``Issue.second_wave_at`` is set to the scheduled time plus ``hours``. When that
wave is done the issue waits (status ``waiting``); once ``second_wave_at`` has come, the worker freezes the rest
of the audience as ``wave=2``. Both waves are rows of the same (issue, employee)-unique ``Delivery`` table, so
the second wave never includes anyone the first one had, and the send's once-only rules (newsletter.sending)
hold across both waves and any crash between them.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from pydantic import BaseModel, Field, model_validator
from sqlmodel import col, select

from service.directory.audience import Audience, Match
from service.directory.models import Employee

MAX_HOURS = 7 * 24


class LeadersWave(BaseModel):
    """Who goes first, and how many hours before everyone else. Stored as JSON on the issue."""

    managers: bool = Field(False, description="Directory managers: employees who are someone's manager_email.")
    audience: Audience | None = Field(None, description="And/or these employees, e.g. a directory group.")
    hours: int = Field(24, ge=1, le=MAX_HOURS, description="Hours between the leaders' wave and everyone else's.")

    @model_validator(mode="after")
    def _someone(self) -> LeadersWave:
        if not self.managers and (self.audience is None or self.audience.is_empty()):
            raise ValueError("say who the leaders are: the directory's managers, or a group")
        return self


def leaders_of(stored: dict | None) -> LeadersWave | None:
    if not stored:
        return None
    audience = stored.get("audience")
    return LeadersWave.model_validate(
        {**stored, "audience": Audience.load(audience, match=Match.any) if audience else None}
    )


def managers_condition(org_id: int) -> sa.ColumnElement[bool]:
    """Employees whose address is the manager_email of an active colleague (compared lower-cased)."""
    other = sa.orm.aliased(Employee)
    managed = select(sa.func.lower(other.manager_email)).where(
        other.org_id == org_id, col(other.active).is_(True), col(other.manager_email).is_not(None)
    )
    return sa.func.lower(Employee.email).in_(managed)


def leaders_condition(org_id: int, leaders: LeadersWave) -> sa.ColumnElement[bool]:
    conditions = []
    if leaders.managers:
        conditions.append(managers_condition(org_id))
    if leaders.audience is not None and not leaders.audience.is_empty():
        conditions.append(leaders.audience.where(org_id))
    return sa.or_(*conditions)


def second_wave_time(issue, leaders: LeadersWave, now):
    return (issue.scheduled_at or now) + timedelta(hours=leaders.hours)
