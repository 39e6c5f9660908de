"""Polling one feed: a conditional GET through the article fetcher (its address policy on every hop, its body
and time limits before anything is parsed), feedparser on the bytes, new items into the inbox.

A poll commits as it goes, in batches: a crash mid-feed keeps the items already written, and since the feed's
validators (ETag / Last-Modified) are saved only once every item is in, the next poll reads the whole feed
again and skips what is there (items are unique per organisation by canonical URL). Failures back off:
Retry-After is honoured on 429/503, other errors wait exponentially longer, capped at a day.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import feedparser
from lxml import html as lxml_html
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from advocacy.feeds.canonical import canonical_url
from advocacy.feeds.models import Feed, FeedItem, FeedStatus, ItemState
from newsletter.articles import FetchFailed, fetch
from newsletter.models import Article
from service.db import row_id, utcnow
from service.errors import AppError
from service.page_strings import N_

log = logging.getLogger(__name__)

FEED_MAX_BYTES = 1024 * 1024  # feeds are text: a megabyte holds hundreds of items
MAX_ITEMS = 200  # per poll: a feed listing thousands of entries brings its newest 200
POLL_EVERY = timedelta(minutes=30)
MAX_WAIT = timedelta(hours=24)
FAILING_AFTER = 3  # consecutive failures before the page shows the feed as failing, with what to do
BATCH = 50
ACCEPT = "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"

# What a person can do about each kind of failure (shown on /app/feeds once a feed keeps failing).
FIXES = {
    "address": N_(
        "The feed's host resolves to a private or local address, which is never fetched. "
        "Use the public address of the feed."
    ),
    "not_found": N_(
        "The site answers that this address does not exist (or is not public). Open the "
        "site, find its RSS or Atom link and subscribe to that."
    ),
    "throttled": N_("The site asks us to slow down. Polling waits as long as it asks; nothing to do unless it lasts."),
    "server": N_(
        "The site's server fails. Polling retries with growing pauses; if it lasts for days, ask the site's owner."
    ),
    "not_a_feed": N_(
        "The address does not serve an RSS or Atom feed. Open it in a browser: it should "
        "show XML; look for the site's RSS link."
    ),
    "too_large": N_(
        "The feed is larger than 1 MB. Ask for a feed of recent items only (many sites offer one per category)."
    ),
    "unreachable": N_("The site could not be reached in time. Check the address; polling keeps retrying."),
}


def _accepts(ctype: str) -> bool:
    # feeds come as application/rss+xml, atom+xml, text/xml... and sometimes as text/plain or octet-stream
    return "xml" in ctype or ctype in ("text/plain", "application/octet-stream", "application/json")


@dataclass
class PollResult:
    status: FeedStatus
    new_items: int = 0
    error: str | None = None


def _error_kind(exc: AppError) -> str:
    status = getattr(exc, "status", None)
    if status == 429:
        return "throttled"
    if status is not None and status >= 500:
        return "server"
    if status is not None:
        return "not_found"
    text = exc.message
    if "private or local" in text or "could not be resolved" in text or "only http" in text.lower():
        return "address"
    if "larger than" in text:
        return "too_large"
    if "not an RSS" in text or "not RSS" in text:
        return "not_a_feed"
    return "unreachable"


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def next_wait(failures: int, retry_after: timedelta | None) -> timedelta:
    """After `failures` consecutive failures: what the server asked for, else 30 min × 2^(n-1), ≤ a day."""
    if retry_after is not None:
        return min(max(retry_after, timedelta(minutes=1)), MAX_WAIT)
    return min(POLL_EVERY * 2 ** max(failures - 1, 0), MAX_WAIT)


def _text(fragment: str, limit: int) -> str:
    """Feed summaries are HTML (feedparser sanitizes it); the inbox shows plain text."""
    if not fragment.strip():
        return ""
    try:
        text = lxml_html.fromstring(f"<div>{fragment}</div>").text_content()
    except Exception:  # lxml raises a zoo of errors on garbage
        text = fragment
    return " ".join(text.split())[:limit]


def _when(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def parse_feed(body: bytes, url: str, content_type: str | None) -> tuple[str, list[dict]]:
    """The feed's title and its entries [{url, title, summary, published_at}]; Invalid-like FetchFailed when
    the bytes are not RSS/Atom."""
    headers = {"content-location": url, **({"content-type": content_type} if content_type else {})}
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)  # a stream: feedparser fetches nothing
    if not parsed.get("version") and not parsed.entries:
        reason = getattr(parsed.get("bozo_exception"), "getMessage", lambda: "")() or "no RSS or Atom elements"
        raise FetchFailed(f"The feed is not an RSS or Atom feed ({str(reason)[:150]}).")
    entries = []
    for entry in parsed.entries[:MAX_ITEMS]:
        link = (entry.get("link") or "").strip()
        if not link.lower().startswith(("http://", "https://")) or len(link) > 2000:
            continue
        entries.append({
            "url": link, "title": " ".join((entry.get("title") or "").split())[:500],
            "summary": _text(entry.get("summary") or "", 2000), "published_at": _when(entry),
        })  # fmt: skip
    return " ".join((parsed.feed.get("title") or "").split())[:300], entries


def _known(session: Session, org_id: int, urls: list[str]) -> set[str]:
    rows = session.exec(
        select(FeedItem.canonical_url).where(FeedItem.org_id == org_id, col(FeedItem.canonical_url).in_(urls))
    )
    return set(rows.all())


def _add_items(session: Session, feed: Feed, entries: list[dict], batch: int) -> int:
    """Insert the entries not seen yet, committing every `batch` items. Items whose URL is already an article
    of the organisation arrive marked as made."""
    articles = {canonical_url(u): i for i, u in session.exec(
        select(Article.id, Article.url).where(Article.org_id == feed.org_id).order_by(col(Article.id).desc())
        .limit(2000)).all()}  # fmt: skip
    added = 0
    seen: set[str] = set()
    for start in range(0, len(entries), batch):
        chunk = []
        for e in entries[start : start + batch]:
            key = canonical_url(e["url"])
            if key not in seen:
                seen.add(key)
                chunk.append((key, e))
        known = _known(session, feed.org_id, [k for k, _ in chunk])
        for key, e in chunk:
            if key in known:
                continue
            article_id = articles.get(key)
            item = FeedItem(org_id=feed.org_id, feed_id=row_id(feed), canonical_url=key, url=e["url"], title=e["title"],
                            summary=e["summary"], published_at=e["published_at"], article_id=article_id,
                            state=ItemState.article if article_id else ItemState.new)  # fmt: skip
            try:
                with session.begin_nested():
                    session.add(item)
            except IntegrityError:  # another poll (of another feed with the same item) wrote it first
                continue
            added += 1
        session.commit()
    return added


def poll_feed(session: Session, feed: Feed, *, batch: int = BATCH, **fetch_options: Any) -> PollResult:
    """Poll `feed` now and record the outcome on it. Commits (see the module's docstring). ``fetch_options``
    go to the fetcher: ``allow_private``, and in tests ``resolver`` / ``allowed``."""
    headers = {}
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified
    now = utcnow()
    added = 0
    try:
        got = fetch(feed.url, accept=ACCEPT, content_ok=_accepts, what="feed", max_bytes=FEED_MAX_BYTES,
                    headers=headers, **fetch_options)  # fmt: skip
        if got.status == 304:
            result = PollResult(FeedStatus.not_modified)
        else:
            title, entries = parse_feed(got.body, got.url, got.headers.get("content-type"))
            added = _add_items(session, feed, entries, batch)
            feed.title = feed.title or title
            feed.etag = (got.headers.get("etag") or "")[:300] or None
            feed.last_modified = (got.headers.get("last-modified") or "")[:100] or None
            result = PollResult(FeedStatus.ok, added)
        feed.failures, feed.last_error, feed.error_kind = 0, None, None
        feed.next_poll_at = now + POLL_EVERY
    except AppError as exc:  # FetchFailed / Invalid: a sentence saying what went wrong
        feed.failures += 1
        feed.last_error, feed.error_kind = exc.message[:500], _error_kind(exc)
        feed.next_poll_at = now + next_wait(feed.failures, _retry_after(getattr(exc, "retry_after", None), now))
        result = PollResult(FeedStatus.error, added, exc.message)
    feed.status, feed.last_polled_at = result.status, now
    session.add(feed)
    session.commit()
    log.info("advocacy.feeds.polled", extra={"feed_id": feed.id, "status": result.status.value, "new_items": added,
                                             "failures": feed.failures})  # fmt: skip
    return result


def due_feed_ids(session: Session) -> list[int]:
    rows = session.exec(select(Feed.id).where(col(Feed.next_poll_at) <= utcnow()).order_by(col(Feed.next_poll_at)))
    return [i for i in rows.all() if i is not None]
