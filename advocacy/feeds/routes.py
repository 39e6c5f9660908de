"""Feeds API (comms): subscriptions, "poll now", and the suggestions inbox."""

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

import advocacy.feeds.service as feeds
from advocacy.feeds.models import FeedStatus, ItemState
from newsletter.service import ArticlePublic, article_public
from service.auth import Principal, requires
from service.models import Role
from service.session import DbSession

router = APIRouter(prefix="/api/feeds", tags=["feeds"])
COMMS = requires(Role.comms)


class PollOut(BaseModel):
    status: FeedStatus
    new_items: int
    error: str | None


@router.post("", response_model=feeds.FeedPublic, status_code=201)
def subscribe(session: DbSession, body: feeds.FeedIn, p: Principal = Depends(COMMS)):
    """Subscribe to an RSS or Atom feed; it is polled within minutes, then every 30 minutes."""
    return feeds.feed_public(feeds.add_feed(session, org_id=p.org_id, body=body))


@router.get("", response_model=list[feeds.FeedPublic])
def list_feeds(session: DbSession, p: Principal = Depends(COMMS)):
    return [feeds.feed_public(f) for f in feeds.list_feeds(session, org_id=p.org_id)]


@router.get("/items", response_model=list[feeds.ItemPublic])
def list_items(
    session: DbSession,
    state: ItemState | None = ItemState.new,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
    p: Principal = Depends(COMMS),
):
    """The inbox (state=new, the default), or the suggestions made into articles, or dismissed."""
    rows = feeds.list_items(session, org_id=p.org_id, state=state, limit=limit, offset=offset)
    return [feeds.item_public(i) for i in rows]


@router.post("/items/{item_id}/article", response_model=ArticlePublic, status_code=201)
def make_article(session: DbSession, item_id: int, request: Request, p: Principal = Depends(COMMS)):
    """Turn the suggestion into a newsletter article, its page's metadata fetched and share texts drafted."""
    settings = request.app.state.settings
    return article_public(feeds.make_article(session, org_id=p.org_id, item_id=item_id, settings=settings))


@router.post("/items/{item_id}/dismiss", response_model=feeds.ItemPublic)
def dismiss(session: DbSession, item_id: int, p: Principal = Depends(COMMS)):
    return feeds.item_public(feeds.dismiss(session, org_id=p.org_id, item_id=item_id))


@router.get("/{feed_id}", response_model=feeds.FeedPublic)
def get_feed(session: DbSession, feed_id: int, p: Principal = Depends(COMMS)):
    return feeds.feed_public(feeds.get_feed(session, org_id=p.org_id, feed_id=feed_id))


@router.post("/{feed_id}/poll", response_model=PollOut)
def poll(session: DbSession, feed_id: int, request: Request, p: Principal = Depends(COMMS)):
    """Poll now (a conditional GET: a feed unchanged since the last poll answers 304 and brings nothing)."""
    r = feeds.poll_now(session, org_id=p.org_id, feed_id=feed_id, settings=request.app.state.settings)
    return PollOut(status=r.status, new_items=r.new_items, error=r.error)


@router.delete("/{feed_id}", status_code=204)
def unsubscribe(session: DbSession, feed_id: int, p: Principal = Depends(COMMS)):
    feeds.delete_feed(session, org_id=p.org_id, feed_id=feed_id)
    return Response(status_code=204)
