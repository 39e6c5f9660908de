"""Click and impression rows, the click summary (daily rollups), tracking settings and employee opt-outs.

Raw rows never hold an IP address or a user agent: only `visitor`, a salted hash of both whose salt
rotates daily (and is deleted two days later), used to count unique clickers and detect bursts.
"""

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime
from service.links import Channel

CHANNEL_TYPE = sa.Enum(Channel, native_enum=False, length=30)


class Verdict(StrEnum):
    human = "human"
    scanner = "scanner"  # mail security gateways, prefetchers, scripts, bursts
    crawler = "crawler"  # link-preview crawlers (LinkedInBot, Twitterbot, facebookexternalhit, Slackbot...)


VERDICT_TYPE = sa.Enum(Verdict, native_enum=False, length=10)


class Click(SQLModel, table=True):
    """One GET of a tracked link (HEAD requests are redirected but never stored)."""

    # Written on every redirect, so it carries one index: reports always select an organisation and a period.
    __table_args__ = (Index("ix_click_org_time", "org_id", "occurred_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # No foreign keys on this hot, append-only log: each check share-locks (and so writes) the parent row.
    # The link was resolved a moment before and links and organisations are never deleted.
    org_id: int
    link_id: int
    employee_id: int | None = None  # None when attribution is off or opted out
    campaign_id: int | None = None
    article_id: int | None = None
    issue_id: int | None = None
    channel: Channel = Field(sa_type=CHANNEL_TYPE)
    network: str | None = Field(default=None, max_length=20)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    verdict: Verdict = Field(sa_type=VERDICT_TYPE)
    reasons: str = Field(default="", max_length=120)  # comma-separated reason codes
    visitor: str = Field(default="", max_length=16)  # salted daily hash of IP + user agent


class Impression(SQLModel, table=True):
    """One load of a banner image through /i/{token}: an image load, not a read (proxies load everything)."""

    __table_args__ = (Index("ix_impression_org_time", "org_id", "occurred_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # No foreign keys on this hot, append-only log: each check share-locks (and so writes) the parent row.
    # The link was resolved a moment before and links and organisations are never deleted.
    org_id: int
    link_id: int
    employee_id: int | None = None
    campaign_id: int | None = None
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    verdict: Verdict = Field(sa_type=VERDICT_TYPE)
    reasons: str = Field(default="", max_length=120)
    visitor: str = Field(default="", max_length=16)


class ClickDaily(SQLModel, table=True):
    """The click summary, per UTC day and link facts: every raw click folded in by service.clicks.rollup (raw rows
    stay until the retention period, then are deleted; their figures stay here). See docs/campaigns-and-clicks.md."""

    # Covering the per-employee figures (leaderboard, group by employee/department/office): read from the index.
    __table_args__ = (
        Index("ix_clickdaily_org_day_employee", "org_id", "day", "channel", "employee_id", "verdict", "clicks",
              "uniques"),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    day: date
    link_id: int | None = None
    employee_id: int | None = Field(default=None, index=True)
    campaign_id: int | None = Field(default=None, index=True)
    article_id: int | None = Field(default=None, index=True)
    issue_id: int | None = None
    channel: Channel = Field(sa_type=CHANNEL_TYPE)
    network: str | None = Field(default=None, max_length=20)
    verdict: Verdict = Field(sa_type=VERDICT_TYPE)
    reasons: str = Field(default="", max_length=120)  # empty on days rolled up before migration 0110
    clicks: int = 0
    uniques: int = 0  # distinct visitors that day in this row (a person is counted once per day and row)


class ClickDailyTotal(SQLModel, table=True):
    """The same summary without the employee and link: the organisation's figures per day, channel, campaign,
    article and verdict (a few rows a day, so the dashboard never reads the per-employee rows)."""

    __table_args__ = (Index("ix_clickdailytotal_org_day", "org_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    day: date
    campaign_id: int | None = None
    article_id: int | None = None
    issue_id: int | None = None
    channel: Channel = Field(sa_type=CHANNEL_TYPE)
    network: str | None = Field(default=None, max_length=20)
    verdict: Verdict = Field(sa_type=VERDICT_TYPE)
    reasons: str = Field(default="", max_length=120)
    clicks: int = 0
    uniques: int = 0


class ClickRollupMark(SQLModel, table=True):
    """How far an organisation's raw clicks are folded into the summary: every click that occurred before
    `folded_until` is in it; `last_click_id` is the highest id folded (a row written later for an earlier time
    has a higher id: the next fold re-folds its day)."""

    org_id: int = Field(foreign_key="organisation.id", primary_key=True)
    folded_until: datetime = Field(sa_type=UTCDateTime)
    last_click_id: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ImpressionDaily(SQLModel, table=True):
    __table_args__ = (Index("ix_impressiondaily_org_day", "org_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    day: date
    link_id: int | None = None
    employee_id: int | None = Field(default=None, index=True)
    campaign_id: int | None = Field(default=None, index=True)
    verdict: Verdict = Field(sa_type=VERDICT_TYPE)
    impressions: int = 0


class VisitorSalt(SQLModel, table=True):
    """The day's random salt for visitor hashes; deleted after two days so old hashes can't be linked."""

    day: date = Field(primary_key=True)
    salt: str = Field(max_length=64)


class TrackingSettingsBase(SQLModel):
    attribution: bool = Field(default=True, description="Attribute clicks to the employee who brought them.")
    retention_days: int = Field(
        default=90, ge=1, le=3650, description="Raw click rows older than this are rolled up per day and deleted."
    )


class TrackingSettings(TrackingSettingsBase, table=True):
    org_id: int = Field(foreign_key="organisation.id", primary_key=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TrackingOptOut(SQLModel, table=True):
    """An employee who asked not to have clicks attributed to them."""

    __table_args__ = (UniqueConstraint("employee_id"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    employee_id: int = Field(foreign_key="employee.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    set_by: str = Field(default="comms", max_length=10)  # "employee": only the employee may undo it


class OptOutChange(SQLModel, table=True):
    """The audit record of every change to an employee's attribution opt-out: who, what, when."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    opt_out: bool  # the state after the change
    actor: str = Field(max_length=10)  # "employee" (their preferences page) or "comms" (an API key)
    actor_detail: str = Field(default="", max_length=160)  # the API key's name and id; empty for the employee
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
