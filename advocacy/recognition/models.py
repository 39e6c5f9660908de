"""Contests and their announced winners."""

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class Metric(StrEnum):
    confirmed_posts = "confirmed_posts"  # posts a network's preview crawler fetched during the contest
    clicks_per_share = "clicks_per_share"  # human clicks on those posts during the contest, per post
    articles_shared = "articles_shared"  # distinct articles shared (a share button pressed or a post confirmed)
    best_post = "best_post"  # comms picks the best posts among the confirmed ones


METRIC_TYPE = sa.Enum(Metric, native_enum=False, length=20)


class Contest(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    title: str = Field(max_length=120)
    description: str = Field(default="", max_length=2000)  # plain text, shown escaped
    metric: Metric = Field(sa_type=METRIC_TYPE)
    starts_at: datetime = Field(sa_type=UTCDateTime)  # entered in the organisation's time zone, stored in UTC
    ends_at: datetime = Field(sa_type=UTCDateTime)  # exclusive
    # Who may take part: an Audience's model_dump() (service.directory.audience; everyone, a department, a group).
    audience: dict = Field(default_factory=lambda: {"everyone": True}, sa_column=Column(JSON, nullable=False))
    winners: int = Field(default=3, ge=1, le=10)  # how many places the announcement names
    announced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ContestWinner(SQLModel, table=True):
    """A place in an announced contest, frozen at announcement (late clicks don't reshuffle a published result).
    For a best-post contest, the post comms picked (the employee's share of an article on a network)."""

    __tablename__ = "contest_winner"

    id: int | None = Field(default=None, primary_key=True)
    contest_id: int = Field(foreign_key="contest.id", index=True)
    org_id: int = Field(foreign_key="organisation.id")
    place: int  # tied employees share a place
    employee_id: int = Field(foreign_key="employee.id")
    score: float | None = None  # the metric's figure (None for a picked best post)
    article_id: int | None = None
    network: str | None = Field(default=None, max_length=20)


class OwnDevice(SQLModel, table=True):
    """A visitor hash (service.clicks: salted daily hash of address and browser) seen on the employee's own signed-in
    portal pages: a click on their own links from it that day is their own click, not their audience's. The hash
    means nothing once its day's salt is deleted (two days later); rows go with the raw clicks they match."""

    __tablename__ = "recognition_own_device"
    __table_args__ = (UniqueConstraint("employee_id", "visitor"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    employee_id: int = Field(foreign_key="employee.id")
    visitor: str = Field(max_length=16)
    seen_on: date
