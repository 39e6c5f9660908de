"""Articles, newsletter issues, per-recipient deliveries and newsletter preferences."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime

NETWORKS = ("linkedin", "x", "facebook", "email")


class ArticleKind(StrEnum):
    company = "company"  # company news
    sector = "sector"  # sector news


class Article(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    url: str = Field(max_length=2000)
    kind: ArticleKind = Field(default=ArticleKind.company, sa_type=sa.Enum(ArticleKind, native_enum=False, length=20))
    title: str = Field(max_length=500)
    description: str = Field(default="", max_length=2000)
    image_url: str | None = Field(default=None, max_length=2000)
    site_name: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=20)
    # ready-made share text written by comms
    text_x: str = Field(default="", max_length=600)
    text_linkedin: str = Field(default="", max_length=3000)
    text_facebook: str = Field(default="", max_length=3000)
    # the share center's other networks (advocacy.share): empty means "built from the title and description"
    text_email: str = Field(default="", max_length=3000)
    text_whatsapp: str = Field(default="", max_length=1000)
    text_bluesky: str = Field(default="", max_length=600)
    shareable: bool = False  # offered in the employees' share center even when no sent issue carries it
    hashtags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fetched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IssueStatus(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    sending = "sending"
    waiting = "waiting"  # the leaders' wave is sent; everyone else's starts at second_wave_at
    sent = "sent"


class Issue(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    subject: str = Field(max_length=300)
    preheader: str = Field(default="", max_length=300)
    intro: str = Field(default="", max_length=5000)
    language: str = Field(default="fr", max_length=20)
    # An Audience's model_dump() (service.directory.audience); older rows without "match" read as "any".
    audience: dict = Field(default_factory=lambda: {"everyone": True},
                           sa_column=Column(JSON, nullable=False))  # fmt: skip
    status: IssueStatus = Field(default=IssueStatus.draft, index=True,
                                sa_type=sa.Enum(IssueStatus, native_enum=False, length=20))  # fmt: skip
    scheduled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # An earlier wave for leaders (newsletter.waves.LeadersWave's model_dump()), or None: one wave for all.
    leaders: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    second_wave_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # set when the first wave starts
    second_wave_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # the send job's lease: one sender per issue; a dead sender's lease expires and a restart takes over
    runner: str | None = Field(default=None, max_length=64)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IssueArticle(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("issue_id", "article_id"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    article_id: int = Field(foreign_key="article.id")
    position: int


class DeliveryState(StrEnum):
    pending = "pending"  # not tried yet (or tried and certainly not accepted: retry)
    sending = "sending"  # claimed; the message body may be on the wire, its end-of-data dot is not
    accepting = "accepting"  # committed just before the end-of-data dot is written: counts as sent, never resent
    sent = "sent"  # the server answered 250 to the dot
    failed = "failed"  # permanent (5xx) refusal
    skipped = "skipped"  # left the company (or unsubscribed) before their turn came


class Delivery(SQLModel, table=True):
    """One row per (issue, employee), created from the audience when the send starts."""

    __table_args__ = (
        UniqueConstraint("issue_id", "employee_id"),
        Index("ix_delivery_issue_state", "issue_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    issue_id: int = Field(foreign_key="issue.id")
    employee_id: int = Field(foreign_key="employee.id", index=True)
    email: str = Field(max_length=320)
    wave: int = 1  # 1: the first (leaders', or everyone's when there is one wave); 2: everyone else, later
    state: DeliveryState = Field(default=DeliveryState.pending,
                                 sa_type=sa.Enum(DeliveryState, native_enum=False, length=20))  # fmt: skip
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class NewsletterPreference(SQLModel, table=True):
    """Per-employee newsletter preference; its token is the `/u/{token}` unsubscribe/preferences address."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    employee_id: int = Field(foreign_key="employee.id", unique=True)
    token: str = Field(max_length=32, unique=True)
    subscribed: bool = True
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
