"""Feed subscriptions (RSS/Atom) and the suggestions they bring, one row per canonical URL per organisation."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from newsletter.models import ArticleKind
from service.db import utcnow
from service.dbtypes import UTCDateTime


class FeedStatus(StrEnum):
    new = "new"  # not polled yet
    ok = "ok"  # the last poll read the feed
    not_modified = "not_modified"  # the last poll got 304: nothing new
    error = "error"  # the last poll failed: see last_error, retried with backoff


class Feed(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "url"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    url: str = Field(max_length=2000)
    title: str = Field(default="", max_length=300)
    kind: ArticleKind = Field(default=ArticleKind.company, sa_type=sa.Enum(ArticleKind, native_enum=False, length=20))
    # the validators of the last copy read whole: sent back as If-None-Match / If-Modified-Since
    etag: str | None = Field(default=None, max_length=300)
    last_modified: str | None = Field(default=None, max_length=100)
    status: FeedStatus = Field(default=FeedStatus.new, sa_type=sa.Enum(FeedStatus, native_enum=False, length=20))
    last_error: str | None = Field(default=None, max_length=500)
    error_kind: str | None = Field(default=None, max_length=30)  # advocacy.feeds.polling.FIXES: what to do
    failures: int = 0  # consecutive failed polls
    last_polled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_poll_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ItemState(StrEnum):
    new = "new"  # in the inbox
    article = "article"  # made into a newsletter article (article_id)
    dismissed = "dismissed"


class FeedItem(SQLModel, table=True):
    """A suggestion. Unique per organisation by canonical URL, whichever feed brought it first."""

    __tablename__ = "feed_item"
    __table_args__ = (
        UniqueConstraint("org_id", "canonical_url"),
        Index("ix_feed_item_org_state", "org_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    feed_id: int = Field(foreign_key="feed.id", index=True)
    canonical_url: str = Field(max_length=2000)  # advocacy.feeds.canonical.canonical_url of the item's link
    url: str = Field(max_length=2000)  # the link as the feed gave it
    title: str = Field(default="", max_length=500)
    summary: str = Field(default="", max_length=2000)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    state: ItemState = Field(default=ItemState.new, sa_type=sa.Enum(ItemState, native_enum=False, length=20))
    article_id: int | None = Field(default=None, foreign_key="article.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
