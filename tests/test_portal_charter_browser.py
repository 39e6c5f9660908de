"""The charter in Debian's chromium: comms edit the draft with its live preview and publish a major version;
an employee reads the portal's charter page, comments on the draft, and — from a newsletter share button, not
signed in — reads and accepts the charter on the one-time page, then goes on to the network with their own
/s/ link. The browser's proxy is a closed loopback port, so the network's address is seen (as the request the
browser makes) and nothing leaves the machine. axe-core on every page."""

import contextlib
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from sqlmodel import Session, col, select

from advocacy.charter.models import CharterAcceptance, Surface
from newsletter.composition import issue_specs, load_context
from newsletter.models import Issue
from service.directory.models import Employee
from service.links import employee_url, link_key
from service.models import Role
from tests.live_server import free_port
from tests.page_support import PASSWORD, make_user
from tests.test_pages_browser import Visit, browser, site  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


class OfflineVisit(Visit):
    """A visit whose browser reaches only this machine: other hosts go through a closed loopback proxy."""

    def __init__(self, chromium, base: str, name: str, locale: str, width: int):
        super().__init__(chromium, base, name, locale, width)
        self.context.close()
        closed = {"server": f"http://127.0.0.1:{free_port()}", "bypass": "127.0.0.1"}
        self.context = chromium.new_context(locale=locale, viewport={"width": width, "height": 900}, proxy=closed)
        self.page = self.context.new_page()
        self.page.on("console", self._console)


def test_comms_publish_a_charter_version(browser, site):  # noqa: F811
    base, logins, _sink = site
    v = Visit(browser, base, "charter-comms")
    try:
        v.sign_in(*logins["comms"])
        page = v.go("/app/charter")
        assert "Version in force: 1.0" in page.locator(".subtitle").inner_text()
        v.check("charter")
        body = page.get_by_label("Text (Markdown)")
        body.fill(body.input_value() + "\n\n## Nouveau passage\n\nSoyez **vous-même**. <script>alert(1)</script>\n")
        page.wait_for_function("() => document.querySelector('#charter-preview strong')?.textContent === 'vous-même'")
        assert page.locator("#charter-preview script").count() == 0
        page.get_by_role("button", name="Save the draft").click()
        page.wait_for_load_state("networkidle")
        page.locator("input[name=bump][value=major]").check()
        page.get_by_label("What changed (shown to employees)").fill("Un passage sur l'authenticité.")
        page.get_by_role("button", name="Publish", exact=True).click()
        page.wait_for_load_state("networkidle")
        assert "Version in force: 2.0" in page.locator(".subtitle").inner_text()
        assert page.get_by_text("Un passage sur l'authenticité.").count() == 1
        v.check("charter-published")
    finally:
        v.close()


def test_an_employee_reads_comments_accepts_then_shares(browser, site, db, settings):  # noqa: F811
    base, _logins, _sink = site
    with Session(db) as s:
        emp = s.exec(select(Employee).where(col(Employee.active)).order_by(col(Employee.id))).first()
        org_id, employee_id, email = emp.org_id, emp.id, emp.email
        issue = s.exec(select(Issue).where(Issue.org_id == org_id)).first()
        live = settings.model_copy(update={"public_base_url": base})
        ctx = load_context(s, org_id=org_id, issue_id=issue.id, settings=live)
        intent = dict(issue_specs(s, ctx)[0].intents)["linkedin"]
        share_button = employee_url(intent, employee_id, base, link_key(live))
        s.commit()
    make_user(db, org_id, Role.employee, email=email)
    # in the portal, signed in: the charter page, a comment on the draft
    v = Visit(browser, base, "charter-employee", locale="fr-FR")
    try:
        v.sign_in(email, PASSWORD)
        page = v.go("/me")
        assert "attend votre acceptation" in page.content()
        page = v.go("/me/charter")
        v.check("charter")
        page.locator("details.comment-new summary").first.click()
        page.locator("details.comment-new[open] textarea").fill("Peut-on citer nos clients publics ?")
        page.locator("details.comment-new[open]").get_by_role("button", name="Envoyer le commentaire").click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_text("Peut-on citer nos clients publics ?").count() == 1
        assert page.locator(".comment-meta strong", has_text="Vous").count() == 1
        v.check("charter-commented")
    finally:
        v.close()
    # from the newsletter, not signed in: the one-time page, then the network with the employee's own link
    v = OfflineVisit(browser, base, "charter-accept", locale="fr-FR", width=390)  # a phone
    opened: list[str] = []
    v.page.on("request", lambda r: opened.append(r.url) if "linkedin.com" in r.url else None)

    try:
        page = v.page
        page.goto(share_button)
        page.wait_for_load_state("networkidle")
        assert "/me/charter/accept" in page.url
        assert page.get_by_role("heading", name=re.compile("Avant de partager")).count() == 1
        v.check("accept")
        with page.expect_request(lambda r: "linkedin.com" in r.url):  # the thank-you page goes on by itself
            page.get_by_role("button", name=re.compile("J’accepte la charte")).click()
        assert len(opened) == 1 and opened[0].startswith("https://www.linkedin.com/")
        shared = unquote(parse_qs(urlsplit(opened[0]).query)["url"][0])
        assert shared.startswith(f"{base}/s/")
        # one time only: the next press goes straight to the network
        with page.expect_request(lambda r: "linkedin.com" in r.url), contextlib.suppress(PlaywrightError):
            page.goto(share_button)  # the closed proxy: the browser shows its error page
        assert len(opened) == 2 and opened[1].startswith("https://www.linkedin.com/")
    finally:
        v.close()
    with Session(db) as s:
        row = s.exec(select(CharterAcceptance).where(CharterAcceptance.employee_id == employee_id)).one()
        assert row.surface is Surface.newsletter and row.major == 1
