"""Feeds and the suggestions inbox without HTTP: subscribe, list, poll now, turn an item into an article or
dismiss it. Every page and API action calls these."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

import newsletter.service
from advocacy.feeds.canonical import canonical_url
from advocacy.feeds.models import Feed, FeedItem, FeedStatus, ItemState
from advocacy.feeds.polling import FAILING_AFTER, FIXES, PollResult, poll_feed
from newsletter.articles import fetch_page
from newsletter.models import Article, ArticleKind
from service.db import utcnow
from service.errors import Conflict
from service.settings import Settings
from service.tenancy import get_owned
from service.validation import HttpUrl

log = logging.getLogger(__name__)


class FeedIn(BaseModel):
    url: HttpUrl = Field(..., max_length=2000, description="The RSS or Atom feed's address.")
    kind: ArticleKind = Field(ArticleKind.company, description="What its items become: company or sector news.")
    title: str = Field("", max_length=300, description="Empty: the feed's own title, read on the first poll.")


class FeedPublic(BaseModel):
    id: int
    url: str
    title: str
    kind: ArticleKind
    status: FeedStatus
    last_error: str | None
    fix: str | None = Field(None, description="What to do, once the feed has failed several polls in a row.")
    failures: int
    last_polled_at: datetime | None
    next_poll_at: datetime


class ItemPublic(BaseModel):
    id: int
    feed_id: int
    url: str
    canonical_url: str
    title: str
    summary: str
    published_at: datetime | None
    state: ItemState
    article_id: int | None
    created_at: datetime


def failing(feed: Feed) -> bool:
    return feed.failures >= FAILING_AFTER


def feed_public(feed: Feed) -> FeedPublic:
    fix = FIXES.get(feed.error_kind or "") if failing(feed) else None
    return FeedPublic(**feed.model_dump(include=set(FeedPublic.model_fields) - {"fix"}), fix=fix)


def item_public(item: FeedItem) -> ItemPublic:
    return ItemPublic(**item.model_dump(include=set(ItemPublic.model_fields)))


def fetch_options(settings: Settings) -> dict:
    return {"allow_private": settings.fetch_allow_private}


def add_feed(session: Session, *, org_id: int, body: FeedIn) -> Feed:
    url = body.url.strip()
    if session.exec(select(Feed.id).where(Feed.org_id == org_id, Feed.url == url)).first() is not None:
        raise Conflict("This organisation already subscribes to that feed.")
    feed = Feed(org_id=org_id, url=url, kind=body.kind, title=body.title.strip())
    session.add(feed)
    session.flush()
    log.info("advocacy.feeds.subscribed", extra={"feed_id": feed.id})
    return feed


def get_feed(session: Session, *, org_id: int, feed_id: int) -> Feed:
    return get_owned(session, Feed, feed_id, org_id=org_id, label="feed")


def list_feeds(session: Session, *, org_id: int) -> list[Feed]:
    return list(session.exec(select(Feed).where(Feed.org_id == org_id).order_by(col(Feed.id))).all())


def poll_now(session: Session, *, org_id: int, feed_id: int, settings: Settings, **fetch_kw) -> PollResult:
    """Poll one feed at once (comms pressed "Check now", or just subscribed). Commits."""
    feed = get_feed(session, org_id=org_id, feed_id=feed_id)
    return poll_feed(session, feed, **(fetch_options(settings) | fetch_kw))


def delete_feed(session: Session, *, org_id: int, feed_id: int) -> None:
    """Unsubscribe. Its suggestions go with it; the articles made from them stay."""
    feed = get_feed(session, org_id=org_id, feed_id=feed_id)
    items = session.exec(select(FeedItem).where(FeedItem.feed_id == feed.id)).all()
    for item in items:
        session.delete(item)
    session.flush()
    session.delete(feed)
    session.flush()


def list_items(session: Session, *, org_id: int, state: ItemState | None = ItemState.new, limit: int = 100,
               offset: int = 0) -> list[FeedItem]:  # fmt: skip
    q = select(FeedItem).where(FeedItem.org_id == org_id)
    if state is not None:
        q = q.where(FeedItem.state == state)
    # newest first; undated items after dated ones on both backends (PostgreSQL sorts NULL first otherwise)
    q = q.order_by(col(FeedItem.published_at).desc().nulls_last(), col(FeedItem.id).desc())
    q = q.offset(offset).limit(limit)
    return list(session.exec(q).all())


def get_item(session: Session, *, org_id: int, item_id: int) -> FeedItem:
    return get_owned(session, FeedItem, item_id, org_id=org_id, label="suggestion")


def make_article(session: Session, *, org_id: int, item_id: int, settings: Settings, **fetch_kw) -> Article:
    """The suggestion becomes a newsletter article: its page's metadata fetched (through the article fetcher),
    share texts drafted by newsletter.service.create_article. Other suggestions whose canonical URL is the
    page's own canonical (og:url / <link rel=canonical>) are marked as made too."""
    item = get_item(session, org_id=org_id, item_id=item_id)
    if item.state is ItemState.article and item.article_id is not None:
        raise Conflict(f"This suggestion is already article {item.article_id}.")
    feed = session.get(Feed, item.feed_id)
    meta = fetch_page(item.url, **(fetch_options(settings) | fetch_kw))
    body = newsletter.service.ArticleIn(
        url=item.url, fetch=False, kind=feed.kind if feed else ArticleKind.company,
        title=meta.title or item.title or None, description=meta.description or item.summary,
        image_url=meta.image_url, site_name=meta.site_name, language=meta.language,
    )  # fmt: skip
    article = newsletter.service.create_article(session, org_id=org_id, body=body, settings=settings)
    article.fetched_at = utcnow()
    keys = {item.canonical_url, canonical_url(meta.url)}
    same = session.exec(select(FeedItem).where(FeedItem.org_id == org_id, col(FeedItem.canonical_url).in_(keys)))
    for other in same.all():
        other.state, other.article_id = ItemState.article, article.id
        session.add(other)
    session.flush()
    log.info("advocacy.feeds.item_made_article", extra={"item_id": item.id, "article_id": article.id})
    return article


def dismiss(session: Session, *, org_id: int, item_id: int) -> FeedItem:
    item = get_item(session, org_id=org_id, item_id=item_id)
    if item.state is ItemState.article:
        raise Conflict("This suggestion is already an article; delete the article instead.")
    item.state = ItemState.dismissed
    session.add(item)
    session.flush()
    return item


def restore(session: Session, *, org_id: int, item_id: int) -> FeedItem:
    item = get_item(session, org_id=org_id, item_id=item_id)
    if item.state is ItemState.dismissed:
        item.state = ItemState.new
        session.add(item)
        session.flush()
    return item
