"""The feeds' part of the demo: a subscription to a feed the app serves itself (/demo/feed.xml, only when
RELAIS_SEED_DEMO is on; no outside host), and its suggestions already in the inbox. `make run` also sets
RELAIS_FETCH_ALLOW_PRIVATE so "Check now" and "Make an article" can read the app's own demo pages."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from sqlmodel import Session

from advocacy.feeds.canonical import canonical_url
from advocacy.feeds.models import Feed, FeedItem, FeedStatus
from advocacy.feeds.polling import parse_feed
from newsletter.models import ArticleKind
from service.db import utcnow
from service.settings import Settings

FILES = Path(__file__).resolve().parent / "demo_files"
router = APIRouter(include_in_schema=False)


def _feed_bytes(base_url: str) -> bytes:
    return (FILES / "feed.xml").read_bytes().replace(b"http://127.0.0.1:8000", base_url.rstrip("/").encode())


@router.get("/demo/feed.xml")
def demo_feed(request: Request):
    if not request.app.state.settings.seed_demo:
        return Response(status_code=404)
    return Response(_feed_bytes(request.app.state.settings.public_base_url), media_type="application/rss+xml")


@router.get("/demo/articles/{name}")
def demo_article(request: Request, name: str):
    path = FILES / name
    if (
        not request.app.state.settings.seed_demo
        or not name.endswith(".html")
        or path.parent != FILES
        or not path.is_file()
    ):
        return Response(status_code=404)
    return FileResponse(path, media_type="text/html; charset=utf-8")


def seed(session: Session, settings: Settings, org_id: int) -> None:
    url = f"{settings.public_base_url.rstrip('/')}/demo/feed.xml"
    feed = Feed(org_id=org_id, url=url, title="Le blog d'ACME Logistique (démo)", kind=ArticleKind.company,
                status=FeedStatus.ok, last_polled_at=utcnow())  # fmt: skip
    session.add(feed)
    session.flush()
    _title, entries = parse_feed(_feed_bytes(settings.public_base_url), url, "application/rss+xml")
    for e in entries:
        session.add(FeedItem(org_id=org_id, feed_id=feed.id or 0, canonical_url=canonical_url(e["url"]), url=e["url"],
                             title=e["title"], summary=e["summary"], published_at=e["published_at"]))  # fmt: skip
    session.flush()
