"""Browser journey (Debian chromium, Playwright, axe-core): comms subscribes to a feed on a local server, makes a
suggestion into an article offered in the share center; an employee copies its LinkedIn text, presses "Share
on LinkedIn" (linkedin.com is intercepted: nothing leaves loopback), then LinkedIn's crawler fetches their /s/
link and the article shows as confirmed on reload. In French, every page checked by axe."""

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session

from service.app import create_app
from service.directory.models import Employee
from service.models import Role
from tests.feed_support import start_feeds
from tests.live_server import free_port, live_server
from tests.page_support import PASSWORD, make_user
from tests.test_pages_browser import Visit, browser  # noqa: F401 - the module-scoped browser fixture

pytestmark = pytest.mark.browser
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
LINKEDIN_BOT = "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"


@pytest.fixture
def site(db, tenant, settings):
    feeds, feeds_base = start_feeds()
    port = free_port()
    settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}", "fetch_allow_private": True})
    with Session(db) as s:
        s.add(Employee(org_id=tenant.org_id, email="ana@acme.example", display_name="Ana Lima", source_id="ana"))
        s.commit()
    make_user(db, tenant.org_id, Role.comms)
    make_user(db, tenant.org_id, Role.employee, email="ana@acme.example")
    try:
        with live_server(create_app(settings=settings, engine=db), port) as base:
            yield base, feeds_base
    finally:
        feeds.shutdown()


def _visit(browser, base, name):  # noqa: F811
    v = Visit(browser, base, name, locale="fr-FR")
    v.context.close()  # a context with a browser's user agent (a headless one is classified as a script)
    v.context = browser.new_context(locale="fr-FR", user_agent=CHROME, viewport={"width": 1280, "height": 900})
    v.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    left = []

    def only_loopback(route):
        host = urlsplit(route.request.url).hostname
        if host not in ("127.0.0.1", "localhost"):
            return route.abort()
        if urlsplit(route.request.url).path.startswith("/c/"):
            # Chromium follows a redirect without asking this handler again, so the share button's request is
            # sent from here (the app records the click) and its redirect to linkedin.com is taken here.
            response = route.fetch(max_redirects=0)
            location = response.headers.get("location", "")
            if urlsplit(location).hostname == "www.linkedin.com":
                left.append(location)
                return route.fulfill(status=200, content_type="text/html", body="<title>LinkedIn</title>")
            return route.fulfill(response=response)
        return route.continue_()

    v.context.route("**/*", only_loopback)
    v.page = v.context.new_page()
    v.page.on("console", v._console)
    v.left = left
    return v


def test_feed_to_article_to_share_to_confirmed_post(browser, site):  # noqa: F811
    base, feeds_base = site
    comms = _visit(browser, base, "share-comms")
    try:
        comms.sign_in("comms@acme.example", PASSWORD)
        page = comms.go("/app/feeds")
        comms.check("feeds-empty")
        page.get_by_label("S'abonner à un flux (adresse RSS ou Atom)").fill(f"{feeds_base}/rss.xml")
        page.get_by_role("button", name="S'abonner", exact=True).click()
        page.wait_for_load_state("networkidle")
        assert page.locator(".feed-item").count() == 2  # the local feed's two items with links
        comms.check("feeds-inbox")
        page.locator(".feed-item").first.get_by_role("button", name="En faire un article").click()
        page.wait_for_load_state("networkidle")
        assert re.search(r"/app/newsletter/articles/\d+", page.url)
        page.get_by_label(re.compile("Le proposer dès maintenant")).check()
        page.get_by_role("button", name="Enregistrer").click()
        page.wait_for_load_state("networkidle")
        comms.check("article")
    finally:
        comms.close()

    ana = _visit(browser, base, "share-employee")
    try:
        ana.sign_in("ana@acme.example", PASSWORD)
        page = ana.go("/me/share")
        card = page.locator("article.share-card").first
        assert card.locator("[data-status]").get_attribute("data-status") == "not_shared"
        assert "Pas encore partagé" in card.inner_text()
        assert card.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")  # through the app
        ana.check("share-center")
        card.get_by_role("button", name="Copier le texte").first.click()
        page.wait_for_function("() => document.getElementById('copy-status').textContent === 'Copié'")
        copied = page.evaluate("navigator.clipboard.readText()")
        my_link = re.search(r"http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]+", copied).group(0)
        assert copied.startswith("Page one") and copied.endswith(my_link)
        with ana.context.expect_page() as popup:
            card.get_by_role("link", name="Partager sur LinkedIn").click()
        popup.value.wait_for_load_state()
        (shared,) = ana.left
        assert parse_qs(urlsplit(shared).query)["url"] == [my_link]  # my own link went to LinkedIn
        popup.value.close()
        page.reload()
        card = page.locator("article.share-card").first
        assert card.locator("[data-status]").get_attribute("data-status") == "shared"
        r = httpx.get(my_link, headers={"user-agent": LINKEDIN_BOT}, follow_redirects=False)
        assert r.status_code == 302
        page.reload()
        card = page.locator("article.share-card").first
        assert card.locator("[data-status]").get_attribute("data-status") == "confirmed"
        assert "Confirmé" in card.inner_text()
        ana.check("share-confirmed")
        ana.page.set_viewport_size({"width": 390, "height": 844})  # a phone
        ana.check("share-phone")
    finally:
        ana.close()
