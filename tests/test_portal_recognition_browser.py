"""The recognition journey in Debian's chromium: comms creates contests, an employee sees them and the live
standings, comms announces the winners, the employee sees the announcement; then the public ambassador page.
axe-core checks every page (0 serious or critical), and no CSP violation may reach the console."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from advocacy.recognition.contests import person_name
from portal.visibility import consenting
from service.accounts.service import create_user
from service.db import utcnow
from service.directory.models import Employee
from service.models import Role
from tests.page_support import PASSWORD
from tests.test_pages_browser import Visit, browser, site  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
PARIS = ZoneInfo("Europe/Paris")  # the demo organisation's zone


def _local(moment) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def test_contest_journey_and_the_public_ambassador(browser, site, db):  # noqa: F811
    base, logins, _sink = site
    with Session(db) as s:
        # the demo: the first employee agreed to everything and the fourth to nothing; both posted this week
        people = s.exec(select(Employee).order_by(col(Employee.id)).limit(4)).all()
        ambassador, colleague = people[0], people[3]
        assert consenting(s, ambassador.org_id, "public_ambassador") == {ambassador.id}
        create_user(s, org_id=ambassador.org_id, email=ambassador.email, role=Role.employee, password=PASSWORD)
        s.commit()
        name, hidden = person_name(ambassador), person_name(colleague)
    comms = Visit(browser, base, "recognition-comms")
    employee = Visit(browser, base, "recognition-employee", width=390)  # a phone
    try:
        comms.sign_in(*logins["comms"])
        page = comms.go("/app/contests")
        comms.check("contests")
        now = utcnow()
        page.get_by_label("Title").fill("Sprint de la semaine")
        page.get_by_label("Articles shared").check()
        page.get_by_label("Starts (your organisation's time zone)").fill(_local(now - timedelta(days=3)))
        page.get_by_label("Ends (your organisation's time zone)").fill(_local(now - timedelta(minutes=5)))
        page.get_by_role("button", name="Create the contest").click()
        page.wait_for_load_state("networkidle")
        assert "/app/contests/" in page.url and page.get_by_text("Sprint de la semaine").count() >= 1
        assert page.get_by_text(hidden).count() >= 1  # comms sees every participant
        comms.check("contest")
        contest_url = page.url.removeprefix(base)

        employee.sign_in(ambassador.email, PASSWORD)
        page = employee.go("/me/contests")
        assert page.get_by_role("link", name="Sprint de la semaine").count() == 1
        employee.check("my-contests")
        page.get_by_role("link", name="Défi LinkedIn de décembre").click()  # the demo's running contest
        page.wait_for_load_state("networkidle")
        board = page.locator("#contest-board")
        assert board.get_attribute("hx-trigger") == "every 15s"  # live standings
        assert name in board.inner_text() and hidden not in page.content()
        assert "Score = posts confirmed during the contest" in board.inner_text()  # the formula, in words
        employee.check("contest-live")
        page = employee.go("/me/figures")
        assert page.locator("canvas[data-chart]").count() == 1
        employee.check("figures")

        page = comms.go(contest_url)
        page.get_by_role("button", name="Announce the winners").click()
        page.wait_for_load_state("networkidle")
        assert page.locator("ul.winners li").count() >= 1
        comms.check("announced")

        page = employee.go("/me")
        page.wait_for_selector("section#contest-notice h3")  # loaded by htmx from the overview
        notice = page.locator("section#contest-notice").inner_text()
        assert "Sprint de la semaine" in notice and name in notice and hidden not in page.content()
        employee.check("overview-notice")
        employee.go("/me/contests")
        assert "Winners announced" in employee.page.content()
    finally:
        comms.close()
        employee.close()
    public = Visit(browser, base, "recognition-public")
    try:
        page = public.go("/ambassador/acme")
        assert name in page.locator("main").inner_text() and hidden not in page.content()
        assert public.context.cookies() == []  # no cookie of any kind
        public.check("ambassador")
        page = public.go("/ambassador/acme/widget")
        assert name in page.inner_text("body")
        public.check("widget")
    finally:
        public.close()
