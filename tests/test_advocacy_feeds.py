"""Feed subscriptions and the suggestions inbox: RSS 2.0 and Atom from a local server, conditional polls (304
brings nothing), limits before parsing, the address policy on every hop, backoff, canonical de-duplication
across feeds, item → article, dismiss, tenancy and roles, and a poll that crashes mid-feed."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session, func, select

from advocacy.feeds.canonical import canonical_url
from advocacy.feeds.models import Feed, FeedItem, FeedStatus, ItemState
from advocacy.feeds.polling import FAILING_AFTER, POLL_EVERY, poll_feed
from advocacy.feeds.service import FeedIn, add_feed, poll_now
from service.app import create_app
from service.db import utcnow
from service.directory.models import Employee
from service.models import Role
from tests.conftest import make_tenant
from tests.feed_support import ETAG, LAST_MODIFIED, start_feeds
from tests.page_support import make_user, signed_in_client


@pytest.fixture
def feeds_server():
    server, base = start_feeds()
    yield server, base
    server.shutdown()


@pytest.fixture
def local_settings(settings):
    return settings.model_copy(update={"fetch_allow_private": True})


@pytest.fixture
def api(db, local_settings):
    with TestClient(create_app(settings=local_settings, engine=db)) as client:
        yield client


def _items(db, org_id):
    with Session(db) as s:
        return s.exec(select(FeedItem).where(FeedItem.org_id == org_id).order_by(FeedItem.id)).all()


def test_canonical_urls():
    assert canonical_url("HTTPS://Blog.Example.COM:443/a/b/?utm_source=x&b=2&a=1&fbclid=z#top") == (
        "https://blog.example.com/a/b?a=1&b=2"
    )
    assert canonical_url("http://blog.example/") == "http://blog.example/"
    assert canonical_url("http://blog.example:8080/x?gclid=1") == "http://blog.example:8080/x"
    assert canonical_url("http://blog.example/x") != canonical_url("https://blog.example/x")


def test_rss_and_atom_polled_conditionally_and_deduplicated_across_feeds(api, db, tenant, feeds_server):
    server, base = feeds_server
    h = tenant.headers(Role.comms)
    rss = api.post("/api/feeds", json={"url": f"{base}/rss.xml"}, headers=h)
    assert rss.status_code == 201 and rss.json()["status"] == "new"
    atom = api.post("/api/feeds", json={"url": f"{base}/atom.xml", "kind": "sector"}, headers=h).json()
    first = api.post(f"/api/feeds/{rss.json()['id']}/poll", headers=h).json()
    assert first == {"status": "ok", "new_items": 2, "error": None}  # the item without a link is skipped
    second = api.post(f"/api/feeds/{atom['id']}/poll", headers=h).json()
    assert second["new_items"] == 1  # "Un (repris)" is the RSS's first item, by canonical URL
    items = _items(db, tenant.org_id)
    assert [i.title for i in items] == ["Un", "Deux", "Trois"]
    assert items[0].canonical_url == f"{base}/article/one" and "utm_source" in items[0].url
    assert items[0].summary == "Premier article"  # HTML summary shown as text
    assert items[0].published_at is not None and items[2].feed_id == atom["id"]
    feed = api.get(f"/api/feeds/{rss.json()['id']}", headers=h).json()
    assert feed["title"] == "Le blog"  # read from the feed when not given

    # second polls: the validators go back, the server answers 304, nothing changes
    server.requests.clear()
    assert api.post(f"/api/feeds/{rss.json()['id']}/poll", headers=h).json()["status"] == "not_modified"
    assert api.post(f"/api/feeds/{atom['id']}/poll", headers=h).json()["status"] == "not_modified"
    assert server.requests == [("/rss.xml", ETAG, None), ("/atom.xml", None, LAST_MODIFIED)]
    assert len(_items(db, tenant.org_id)) == 3
    inbox = api.get("/api/feeds/items", headers=h).json()
    assert len(inbox) == 3 and {i["state"] for i in inbox} == {"new"}


def test_a_malformed_feed_a_huge_one_and_a_missing_one_say_what_is_wrong(api, db, tenant, feeds_server):
    server, base = feeds_server
    h = tenant.headers(Role.comms)
    for path, words in (("/broken.xml", "not an RSS or Atom feed"), ("/huge.xml", "larger than 1 MB"),
                        ("/missing.xml", "HTTP 404")):  # fmt: skip
        feed = api.post("/api/feeds", json={"url": f"{base}{path}"}, headers=h).json()
        r = api.post(f"/api/feeds/{feed['id']}/poll", headers=h).json()
        assert r["status"] == "error" and words in r["error"], (path, r)
        shown = api.get(f"/api/feeds/{feed['id']}", headers=h).json()
        assert shown["last_error"] == r["error"] and shown["failures"] == 1 and shown["fix"] is None
    assert server.huge_sent and _items(db, tenant.org_id) == []


def test_a_redirect_to_a_private_address_is_refused_before_connecting(db, tenant, feeds_server, settings):
    server, base = feeds_server
    asked = []

    def resolver(host, port):
        asked.append(host)
        return ["127.0.0.1"] if host == "127.0.0.1" else ["10.0.0.7"]

    def loopback_only(ip):  # the test's policy: its own server, nothing else
        return ip.is_loopback

    with Session(db) as s:
        feed = add_feed(s, org_id=tenant.org_id, body=FeedIn(url=f"{base}/hop.xml"))
        s.commit()
        r = poll_now(s, org_id=tenant.org_id, feed_id=feed.id, settings=settings, resolver=resolver,
                     allowed=loopback_only)  # fmt: skip
        assert r.status is FeedStatus.error and "private or local" in r.error
        assert asked == ["127.0.0.1", "internal.example"]
        assert [p for p, *_ in server.requests] == ["/hop.xml"]  # nothing went to 10.0.0.7
        assert s.get(Feed, feed.id).error_kind == "address"


def test_backoff_honours_retry_after_grows_on_errors_and_the_page_shows_the_fix(app, db, tenant, feeds_server,
                                                                                  local_settings):  # fmt: skip
    server, base = feeds_server
    with Session(db) as s:
        throttled = add_feed(s, org_id=tenant.org_id, body=FeedIn(url=f"{base}/throttle.xml"))
        down = add_feed(s, org_id=tenant.org_id, body=FeedIn(url=f"{base}/down.xml", title="Panne"))
        s.commit()
        before = utcnow()
        poll_feed(s, throttled, allow_private=True)
        assert timedelta(seconds=119) <= throttled.next_poll_at - before <= timedelta(seconds=121 + 60)
        assert throttled.error_kind == "throttled"
        waits = []
        for _ in range(FAILING_AFTER):
            before = utcnow()
            poll_feed(s, down, allow_private=True)
            waits.append(down.next_poll_at - before)
        assert waits[0] >= POLL_EVERY and waits[1] >= 2 * POLL_EVERY and waits[2] >= 4 * POLL_EVERY
        assert waits[2] < 5 * POLL_EVERY and down.failures == FAILING_AFTER
    s_emp = Session(db)
    s_emp.add(Employee(org_id=tenant.org_id, email="comms@acme.example", source_id="c"))
    s_emp.commit()
    s_emp.close()
    make_user(db, tenant.org_id, Role.comms)
    page = signed_in_client(app, "comms@acme.example").get("/app/feeds")
    assert page.status_code == 200
    assert "Failing 3 times in a row." in page.text and "HTTP 503" in page.text
    assert "retries with growing pauses" in page.text  # the fix, only once it keeps failing


def test_item_becomes_an_article_with_its_metadata_and_dismiss(api, db, tenant, feeds_server):
    server, base = feeds_server
    h = tenant.headers(Role.comms)
    feed = api.post("/api/feeds", json={"url": f"{base}/rss.xml", "kind": "sector"}, headers=h).json()
    api.post(f"/api/feeds/{feed['id']}/poll", headers=h)
    one, two = api.get("/api/feeds/items", headers=h).json()[:2]
    made = api.post(f"/api/feeds/items/{one['id']}/article", headers=h)
    assert made.status_code == 201, made.text
    article = made.json()
    assert article["title"] == "Page one" and article["description"] == "Description one."
    assert article["kind"] == "sector" and article["image_url"] == f"{base}/img/one.png"
    assert article["text_x"] and article["x_length"] <= 280 and article["fetched_at"]
    again = api.post(f"/api/feeds/items/{one['id']}/article", headers=h)
    assert again.status_code == 409 and "already article" in again.json()["error"]["message"]
    made_items = api.get("/api/feeds/items?state=article", headers=h).json()
    assert [(i["id"], i["article_id"]) for i in made_items] == [(one["id"], article["id"])]
    r = api.post(f"/api/feeds/items/{two['id']}/dismiss", headers=h)
    assert r.status_code == 200 and r.json()["state"] == "dismissed"
    assert api.get("/api/feeds/items", headers=h).json() == []
    assert api.post(f"/api/feeds/items/{one['id']}/dismiss", headers=h).status_code == 409
    # a later feed carrying an article's URL arrives marked as made
    atom = api.post("/api/feeds", json={"url": f"{base}/atom.xml"}, headers=h).json()
    api.post(f"/api/feeds/{atom['id']}/poll", headers=h)
    assert [i["title"] for i in api.get("/api/feeds/items", headers=h).json()] == ["Trois"]


def test_another_organisations_ids_are_not_found_and_roles_are_checked(api, db, tenant, feeds_server):
    server, base = feeds_server
    h = tenant.headers(Role.comms)
    feed = api.post("/api/feeds", json={"url": f"{base}/rss.xml"}, headers=h).json()
    api.post(f"/api/feeds/{feed['id']}/poll", headers=h)
    item = api.get("/api/feeds/items", headers=h).json()[0]
    other = make_tenant(db, "globex").headers(Role.comms)
    assert api.get(f"/api/feeds/{feed['id']}", headers=other).status_code == 404
    assert api.post(f"/api/feeds/{feed['id']}/poll", headers=other).status_code == 404
    assert api.delete(f"/api/feeds/{feed['id']}", headers=other).status_code == 404
    assert api.post(f"/api/feeds/items/{item['id']}/article", headers=other).status_code == 404
    r = api.post(f"/api/feeds/items/{item['id']}/dismiss", headers=other)
    assert r.status_code == 404 and "No suggestion" in r.json()["error"]["message"]
    assert api.get("/api/feeds/items", headers=other).json() == []
    assert api.get("/api/feeds", headers=tenant.headers(Role.it)).status_code == 403
    assert api.get("/api/feeds", headers=tenant.headers(Role.admin)).status_code == 200
    dup = api.post("/api/feeds", json={"url": f"{base}/rss.xml"}, headers=h)
    assert dup.status_code == 409
    bad = api.post("/api/feeds", json={"url": "javascript:alert(1)"}, headers=h)
    assert bad.status_code == 422 and "http" in bad.text
    assert api.delete(f"/api/feeds/{feed['id']}", headers=h).status_code == 204
    assert api.get("/api/feeds/items", headers=h).json() == []


def test_pages_subscribe_make_an_article_and_roles(app, db, tenant, feeds_server, local_settings):
    server, base = feeds_server
    app = create_app(settings=local_settings, engine=db)
    make_user(db, tenant.org_id, Role.comms)
    make_user(db, tenant.org_id, Role.it)
    with Session(db) as s:
        s.add(Employee(org_id=tenant.org_id, email="ana@acme.example", source_id="ana"))
        s.commit()
    make_user(db, tenant.org_id, Role.employee, email="ana@acme.example")
    comms = signed_in_client(app, "comms@acme.example")
    page = comms.get("/app/feeds")
    from tests.page_support import csrf_of

    csrf = csrf_of(page.text)
    r = comms.post("/app/feeds", data={"url": "ftp://nope", "kind": "company", "csrf": csrf})
    assert r.status_code == 422 and 'aria-invalid="true"' in r.text
    r = comms.post("/app/feeds", data={"url": f"{base}/rss.xml", "kind": "company", "csrf": csrf},
                   follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    page = comms.get("/app/feeds")
    assert "Un" in page.text and "Deux" in page.text and "Make an article" in page.text
    with Session(db) as s:
        item = s.exec(select(FeedItem).where(FeedItem.title == "Un")).one()
    r = comms.post(f"/app/feeds/items/{item.id}/article", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/app/newsletter/articles/")
    assert "Made into articles" in comms.get("/app/feeds").text
    assert comms.post(f"/app/feeds/items/{item.id}/dismiss", data={}).status_code == 403  # no CSRF token
    assert signed_in_client(app, "it@acme.example").get("/app/feeds").status_code == 403
    assert signed_in_client(app, "ana@acme.example").get("/app/feeds").status_code == 403
    fr = comms.get("/app/feeds", headers={"accept-language": "fr"})
    assert "Suggestions" in fr.text and "Abonnements" in fr.text


def test_a_poll_crashing_mid_feed_resumes_without_duplicates(db, tenant, feeds_server):
    server, base = feeds_server
    inserts = []

    def crash_on_third_item(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO FEED_ITEM"):
            inserts.append(1)
            if len(inserts) == 3:
                raise RuntimeError("the worker died here")

    with Session(db) as s:
        feed = add_feed(s, org_id=tenant.org_id, body=FeedIn(url=f"{base}/many.xml"))
        s.commit()
        event.listen(db, "before_cursor_execute", crash_on_third_item)
        try:
            with pytest.raises(RuntimeError):
                poll_feed(s, feed, batch=1, allow_private=True)
        finally:
            event.remove(db, "before_cursor_execute", crash_on_third_item)
    assert len(_items(db, tenant.org_id)) == 2  # the first batches were committed
    with Session(db) as s:
        feed = s.get(Feed, feed.id)
        assert feed.etag is None and feed.status is FeedStatus.new  # validators not saved: the next poll rereads
        assert feed.next_poll_at <= utcnow()  # still due: the cron picks it up again
        from advocacy.feeds.jobs import poll_due
        from service.settings import Settings

        assert feed.id in poll_due(db, Settings(fetch_allow_private=True, secret_key="k"))
    with Session(db) as s:
        counts = s.exec(select(FeedItem.canonical_url, func.count()).group_by(FeedItem.canonical_url)).all()
        assert len(counts) == 5 and {n for _, n in counts} == {1}
        assert s.get(Feed, feed.id).status is FeedStatus.ok
    assert {i.state for i in _items(db, tenant.org_id)} == {ItemState.new}


def test_the_demo_feed_is_served_by_the_app_only_in_the_demo(db, settings):
    from advocacy.feeds.polling import parse_feed

    with TestClient(create_app(settings=settings, engine=db)) as off:
        assert off.get("/demo/feed.xml").status_code == 404
        assert off.get("/demo/articles/biocarburant.html").status_code == 404
    demo = settings.model_copy(update={"seed_demo": True})
    with TestClient(create_app(settings=demo, engine=db)) as on:
        r = on.get("/demo/feed.xml")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/rss+xml")
        title, entries = parse_feed(r.content, "https://relais.test/demo/feed.xml", r.headers["content-type"])
        assert len(entries) == 2 and all(e["url"].startswith("https://relais.test/demo/articles/") for e in entries)
        page = on.get(urlsplit_path(entries[0]["url"]))
        assert page.status_code == 200 and 'property="og:title"' in page.text
        assert on.get("/demo/articles/..%2Ffeed.xml").status_code == 404
        assert on.get("/demo/articles/missing.html").status_code == 404


def urlsplit_path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path
