"""Recognition: my figures, contests (metrics, eligibility, ties, best post, announcement), the ambassador's
public page and widget — and that no employee-facing page names a colleague who did not agree to it."""

import re
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from advocacy.recognition.figures import my_figures
from advocacy.recognition.models import Contest, ContestWinner, Metric, OwnDevice
from advocacy.recognition.scoring import standings
from service.clicks.models import Verdict
from service.clicks.reports import click_counts
from service.db import utcnow
from service.links import Channel
from service.models import Role
from tests.conftest import make_tenant
from tests.page_support import csrf_of, make_user, signed_in_client
from tests.recognition_support import article, click, contest, employee, post, share_spec


@pytest.fixture
def people(db, tenant):
    """Ana (signed in, private), Bob (private), Cleo (shows her rank), Dan, Eve, Fay in Sales; Gus alone in Legal."""
    ids = {
        "ana": employee(db, tenant.org_id, "Ana", user=True),
        "bob": employee(db, tenant.org_id, "Bob"),
        "cleo": employee(db, tenant.org_id, "Cleo", rank_visible=True, public=True),
        "dan": employee(db, tenant.org_id, "Dan"),
        "eve": employee(db, tenant.org_id, "Eve"),
        "fay": employee(db, tenant.org_id, "Fay"),
        "gus": employee(db, tenant.org_id, "Gus", "Legal", user=True),
    }
    make_user(db, tenant.org_id, Role.comms)
    return ids


def _window():
    now = utcnow()
    return now - timedelta(days=2), now - timedelta(minutes=1)


def _scores(db, contest_id: int) -> dict[int, tuple]:
    with Session(db) as s:
        c = s.get(Contest, contest_id)
        assert c is not None
        return {st.employee_id: (st.rank, st.score, st.secondary) for st in standings(s, c)}


# ---------------------------------------------------------------- my figures


def test_my_figures_equal_the_click_reports_and_show_raw_traffic_beside_human(app, db, tenant, people):
    org, ana = tenant.org_id, people["ana"]
    now = utcnow()
    for verdict, n in ((Verdict.human, 4), (Verdict.scanner, 3), (Verdict.crawler, 2)):
        for i in range(n):
            click(db, org, employee_id=ana, channel=Channel.signature_field, verdict=verdict, visitor=f"s{i}",
                  at=now - timedelta(days=i))  # fmt: skip
    click(db, org, employee_id=ana, channel=Channel.share, verdict=Verdict.human, at=now - timedelta(days=40))
    click(db, org, employee_id=people["bob"], channel=Channel.signature_field, verdict=Verdict.human)
    start, end = now.date() - timedelta(days=29), now.date()
    with Session(db) as s:
        mine = my_figures(s, org_id=org, employee_id=ana, start=start, end=end)
        report = click_counts(s, org_id=org, start=start, end=end, employee_id=ana, group_by=["channel"])
    assert (
        {r["channel"]: (r["human"], r["raw"]) for r in report}
        == {c: (v["human"], v["raw"]) for c, v in mine["by_channel"].items() if v["raw"]}
        == {"signature_field": (4, 9)}
    )
    page = signed_in_client(app, "ana@acme.example").get("/me/figures")
    assert page.status_code == 200
    row = re.search(r"Signature links</th>(.*?)</tr>", page.text, re.S)
    assert row and re.findall(r'class="num">([^<]+)<', row.group(1)) == ["4", "3", "2", "9"]
    assert "Raw traffic" in page.text and "mail security scanners" in page.text and "data-chart=" in page.text
    assert "<script>" not in page.text  # the chart reads its data from the attribute


def test_my_rank_is_mine_and_the_leaderboard_shows_only_colleagues_who_opted_in(app, db, tenant, people):
    org = tenant.org_id
    for who, n in (("bob", 5), ("cleo", 3), ("ana", 2)):
        for i in range(n):
            click(db, org, employee_id=people[who], channel=Channel.signature_field, verdict=Verdict.human,
                  visitor=f"{who}{i}")  # fmt: skip
    page = signed_in_client(app, "ana@acme.example").get("/me/figures").text
    assert "You are number 3 of 3" in page and "Only you see your rank" in page
    assert "Cleo Zed" in page and "Bob" not in page  # Bob did not opt in: no name, no figure
    assert "1 colleague who keeps their figures private is not listed." in page


def test_team_figures_only_for_groups_at_least_the_minimum_size(app, db, tenant, people, settings):
    click(db, tenant.org_id, employee_id=people["bob"], channel=Channel.signature_banner, verdict=Verdict.human)
    sales = signed_in_client(app, "ana@acme.example").get("/me/figures").text
    assert "Sales, 6 people:" in sales
    legal = signed_in_client(app, "gus@acme.example").get("/me/figures").text
    assert "at least 5 people" in legal and "Legal, 1 people" not in legal
    from service.app import create_app

    strict = create_app(settings=settings.model_copy(update={"min_group_size": 7}), engine=db)
    hidden = signed_in_client(strict, "ana@acme.example").get("/me/figures").text
    assert "at least 7 people" in hidden and "Sales, 6 people" not in hidden


# ---------------------------------------------------------------- contest metrics


def test_contest_metrics_count_only_human_clicks_of_the_audience(app, db, tenant, people):
    org, ana, bob = tenant.org_id, people["ana"], people["bob"]
    start, end = _window()
    a1, a2, a3 = article(db, org, "One"), article(db, org, "Two"), article(db, org, "Three")
    s1, s2 = share_spec(db, org, a1), share_spec(db, org, a2)
    inside = start + timedelta(hours=1)
    post(db, org, ana, s1, a1, at=inside, clicks=3)  # a new post, 3 people clicked
    share = dict(employee_id=ana, channel=Channel.share, link_id=s1, article_id=a1, network="linkedin")
    click(db, org, verdict=Verdict.scanner, at=inside + timedelta(minutes=9), visitor="scan", **share)
    click(db, org, verdict=Verdict.crawler, at=inside + timedelta(minutes=9), visitor="crawler", **share)
    # Ana's own clicks on her post: the same visitor read her newsletter, and another one is her portal session
    click(db, org, employee_id=ana, channel=Channel.newsletter, verdict=Verdict.human, at=inside, visitor="ana-phone",
          article_id=a1)  # fmt: skip
    click(db, org, verdict=Verdict.human, at=inside + timedelta(minutes=20), visitor="ana-phone", **share)
    with Session(db) as s:
        s.add(OwnDevice(org_id=org, employee_id=ana, visitor="ana-laptop", seen_on=inside.date()))
        s.commit()
    click(db, org, verdict=Verdict.human, at=inside + timedelta(minutes=21), visitor="ana-laptop", **share)
    # a human click after the contest and a post confirmed before it count for nothing
    click(db, org, verdict=Verdict.human, at=end + timedelta(seconds=30), visitor="late", **share)
    post(db, org, bob, s2, a2, at=start - timedelta(minutes=5), clicks=4)
    # share buttons: a human press counts as an article shared, a scanner's does not
    intent = dict(employee_id=ana, channel=Channel.share_intent, link_id=99, network="x")
    click(db, org, verdict=Verdict.human, at=inside, article_id=a2, visitor="ana-phone", **intent)
    click(db, org, verdict=Verdict.scanner, at=inside, article_id=a3, visitor="scan", **intent)
    click(db, org, employee_id=bob, channel=Channel.share_intent, verdict=Verdict.scanner, at=inside, article_id=a3,
          link_id=99)  # fmt: skip

    assert _scores(db, contest(db, org, Metric.confirmed_posts, start, end)) == {ana: (1, 1.0, 3)}
    assert _scores(db, contest(db, org, Metric.clicks_per_share, start, end)) == {ana: (1, 3.0, 1)}
    assert _scores(db, contest(db, org, Metric.articles_shared, start, end)) == {ana: (1, 2.0, 1)}


def test_a_share_link_click_from_the_employees_own_browser_is_a_self_click(app, db, tenant, people, settings):
    """End to end through the tracking routes: Ana opens her figures, then clicks her own share link from the same
    browser; a colleague's click on it counts."""
    from fastapi.testclient import TestClient

    from service.links import employee_url, link_key

    org, ana = tenant.org_id, people["ana"]
    a1 = article(db, org)
    spec_id = share_spec(db, org, a1)
    with Session(db) as s:
        from service.links import TrackedLink

        spec = s.get(TrackedLink, spec_id)
        assert spec is not None
        url = employee_url(spec, ana, "https://testserver", link_key(settings)).removeprefix("https://testserver")
    start = utcnow() - timedelta(minutes=5)
    cid = contest(db, org, Metric.clicks_per_share, start, start + timedelta(hours=1))
    ua = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"}
    portal = signed_in_client(app, "ana@acme.example")
    portal.headers.update(ua)
    assert portal.get("/me/figures").status_code == 200
    assert portal.get(url, follow_redirects=False).status_code == 302  # Ana, on her own post
    public = TestClient(app, base_url="https://testserver")
    assert public.get(url, headers={"user-agent": "LinkedInBot/1.0"}, follow_redirects=False).status_code == 302
    other = {"user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15"}
    assert public.get(url, headers=other, follow_redirects=False).status_code == 302  # a reader of the post
    assert _scores(db, cid) == {ana: (1, 1.0, 1)}  # one post, one click: not Ana's own


def test_eligibility_by_department_and_group(app, db, tenant, people):
    org = tenant.org_id
    start, end = _window()
    a1 = article(db, org)
    s1 = share_spec(db, org, a1)
    post(db, org, people["ana"], s1, a1, at=start + timedelta(hours=1))
    post(db, org, people["gus"], s1, a1, at=start + timedelta(hours=2))
    legal = contest(db, org, Metric.confirmed_posts, start, end, audience={"departments": ["Legal"]})
    assert set(_scores(db, legal)) == {people["gus"]}
    with Session(db) as s:
        from service.directory.models import EmployeeGroup

        s.add(EmployeeGroup(org_id=org, employee_id=people["ana"], group_key="ambassadors@acme.example"))
        s.commit()
    group = contest(db, org, Metric.confirmed_posts, start, end, audience={"groups": ["ambassadors@acme.example"]})
    assert set(_scores(db, group)) == {people["ana"]}
    # an employee who is not eligible doesn't see the contest
    ana = signed_in_client(app, "ana@acme.example")
    assert ana.get(f"/me/contests/{legal}").status_code == 404
    assert "December challenge" in ana.get("/me/contests").text  # the group one
    assert ana.get(f"/me/contests/{group}").status_code == 200


def test_ties_go_to_more_clicks_then_to_who_got_there_first_then_share_the_place(db, tenant, people):
    org = tenant.org_id
    start, end = _window()
    a1 = article(db, org)
    s1 = share_spec(db, org, a1)
    t = start + timedelta(hours=1)
    post(db, org, people["ana"], s1, a1, at=t, clicks=1)
    post(db, org, people["bob"], s1, a1, at=t + timedelta(hours=1), clicks=2)  # more clicks: first
    post(db, org, people["cleo"], s1, a1, at=t + timedelta(hours=2), clicks=1)  # as Ana, but later: after her
    post(db, org, people["dan"], s1, a1, at=t + timedelta(hours=2), clicks=1)  # same as Cleo in every way
    scores = _scores(db, contest(db, org, Metric.confirmed_posts, start, end))
    assert scores == {people["bob"]: (1, 1.0, 2), people["ana"]: (2, 1.0, 1), people["cleo"]: (3, 1.0, 1),
                      people["dan"]: (3, 1.0, 1)}  # fmt: skip


# ---------------------------------------------------------------- pages: comms runs a contest


def test_comms_creates_a_contest_with_inline_errors_and_csrf(app, db, tenant, people):
    comms = signed_in_client(app, "comms@acme.example")
    page = comms.get("/app/contests")
    assert page.status_code == 200 and "New contest" in page.text
    token = csrf_of(page.text)
    form = {"csrf": token, "title": "Winter", "metric": "confirmed_posts", "eligibility": "everyone",
            "starts_at": "2026-12-10T09:00", "ends_at": "2026-12-01T09:00", "winners": "3"}  # fmt: skip
    bad = comms.post("/app/contests", data=form)
    assert bad.status_code == 422 and "The contest must end after it starts." in bad.text
    missing = comms.post("/app/contests", data={**form, "eligibility": "department", "ends_at": "2026-12-20T09:00"})
    assert missing.status_code == 422 and "Choose the department" in missing.text
    no_csrf = comms.post("/app/contests", data={k: v for k, v in form.items() if k != "csrf"})
    assert no_csrf.status_code == 403
    ok = comms.post("/app/contests", data={**form, "ends_at": "2026-12-20T09:00"}, follow_redirects=False)
    assert ok.status_code == 303
    with Session(db) as s:
        c = s.exec(select(Contest)).one()
        # entered in the organisation's zone (UTC here), stored in UTC
        assert c.starts_at.isoformat() == "2026-12-10T09:00:00+00:00" and c.audience == {"everyone": True}


def test_roles_and_other_organisations(app, db, tenant, people):
    start, end = _window()
    other = make_tenant(db, slug="globex")
    theirs = contest(db, other.org_id, Metric.confirmed_posts, start, end)
    ours = contest(db, tenant.org_id, Metric.confirmed_posts, start, end)
    comms = signed_in_client(app, "comms@acme.example")
    assert comms.get(f"/app/contests/{theirs}").status_code == 404
    assert comms.get(f"/app/contests/{ours}").status_code == 200
    token = csrf_of(comms.get(f"/app/contests/{ours}").text)
    assert comms.post(f"/app/contests/{theirs}/announce", data={"csrf": token}).status_code == 404
    assert comms.post(f"/app/contests/{ours}/announce").status_code == 403  # no CSRF token
    ana = signed_in_client(app, "ana@acme.example")
    assert ana.get(f"/me/contests/{theirs}").status_code == 404
    assert ana.get("/app/contests").status_code == 403 and ana.get(f"/app/contests/{ours}").status_code == 403
    make_user(db, tenant.org_id, Role.it)
    assert signed_in_client(app, "it@acme.example").get("/app/contests").status_code == 403
    from tests.page_support import browser_client

    assert browser_client(app).get("/me/contests", follow_redirects=False).status_code == 303


def test_announcement_names_only_consenting_winners_to_employees(app, db, tenant, people):
    org = tenant.org_id
    start, end = _window()
    a1 = article(db, org)
    s1 = share_spec(db, org, a1)
    post(db, org, people["bob"], s1, a1, at=start + timedelta(hours=1), clicks=5)  # private, first
    post(db, org, people["cleo"], s1, a1, at=start + timedelta(hours=2), clicks=1)  # public, second
    cid = contest(db, org, Metric.confirmed_posts, start, end, winners=2)
    ana = signed_in_client(app, "ana@acme.example")
    live = ana.get(f"/me/contests/{cid}/board").text
    assert "Cleo Zed" in live and "Bob" not in live and "not listed" in live
    comms = signed_in_client(app, "comms@acme.example")
    page = comms.get(f"/app/contests/{cid}").text
    assert "Bob Zed" in page and "Cleo Zed" in page  # comms sees everyone, and who is shown to colleagues
    assert comms.post(f"/app/contests/{cid}/announce", data={"csrf": csrf_of(page)}).status_code == 200
    again = comms.post(f"/app/contests/{cid}/announce", data={"csrf": csrf_of(page)})
    assert again.status_code == 409 and "announced already" in again.text
    with Session(db) as s:
        assert [(w.place, w.employee_id) for w in s.exec(select(ContestWinner))] == [(1, people["bob"]),
                                                                                    (2, people["cleo"])]  # fmt: skip
    for url in ("/me/contests", f"/me/contests/{cid}", "/me/contests/notice", "/me"):
        html = ana.get(url).text
        assert "Bob" not in html, url
    notice = ana.get("/me/contests/notice").text
    assert "a colleague" in notice and "Cleo Zed" in notice and "December challenge" in notice
    assert 'hx-get="/me/contests/notice"' in ana.get("/me").text  # the overview loads the notice


def test_announcing_a_running_contest_is_refused(app, db, tenant, people):
    now = utcnow()
    cid = contest(db, tenant.org_id, Metric.confirmed_posts, now - timedelta(days=1), now + timedelta(days=1))
    comms = signed_in_client(app, "comms@acme.example")
    page = comms.get(f"/app/contests/{cid}")
    assert 'hx-trigger="every 15s"' in page.text  # the live standings poll while it runs
    r = comms.post(f"/app/contests/{cid}/announce", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 422 and "still running" in r.text


def test_best_post_is_picked_by_comms_among_confirmed_posts(app, db, tenant, people):
    org = tenant.org_id
    start, end = _window()
    a1 = article(db, org, "Lyon opens")
    s1 = share_spec(db, org, a1)
    other = share_spec(db, org, a1, network="x")
    post(db, org, people["ana"], s1, a1, at=start + timedelta(hours=1), clicks=1)
    post(db, org, people["cleo"], s1, a1, at=start + timedelta(hours=2), clicks=7)
    cid = contest(db, org, Metric.best_post, start, end, winners=2)
    comms = signed_in_client(app, "comms@acme.example")
    page = comms.get(f"/app/contests/{cid}").text
    assert "Pick the best posts" in page and "Lyon opens" in page
    token = csrf_of(page)
    nothing = comms.post(f"/app/contests/{cid}/announce", data={"csrf": token})
    assert nothing.status_code == 422 and "Pick the best posts first" in nothing.text
    unknown = comms.post(f"/app/contests/{cid}/picks", data={"csrf": token, f"place-{people['bob']}-{other}": "1"})
    assert unknown.status_code == 422 and "confirmed during this contest" in unknown.text
    same = comms.post(f"/app/contests/{cid}/picks", data={"csrf": token, f"place-{people['ana']}-{s1}": "1",
                                                          f"place-{people['cleo']}-{s1}": "1"})  # fmt: skip
    assert same.status_code == 422 and "different place" in same.text
    picked = comms.post(f"/app/contests/{cid}/picks", data={"csrf": token, f"place-{people['ana']}-{s1}": "1",
                                                            f"place-{people['cleo']}-{s1}": "2"},
                        follow_redirects=False)  # fmt: skip
    assert picked.status_code == 303
    assert comms.post(f"/app/contests/{cid}/announce", data={"csrf": token}).status_code == 200
    with Session(db) as s:
        assert [(w.place, w.employee_id, w.network) for w in s.exec(select(ContestWinner))] == [
            (1, people["ana"], "linkedin"), (2, people["cleo"], "linkedin")]  # fmt: skip
    cleo_view = signed_in_client(app, "ana@acme.example").get(f"/me/contests/{cid}").text
    assert "Place 1" in cleo_view and "Cleo Zed" in cleo_view


# ---------------------------------------------------------------- ambassador: public page and widget


def _last_month(days_back: int = 0):
    first_of_this = utcnow().replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    return first_of_this - timedelta(days=3 + days_back)


def test_public_page_shows_only_an_ambassador_who_agreed(app, db, tenant, people, client):
    org = tenant.org_id
    a1 = article(db, org)
    s1 = share_spec(db, org, a1)
    post(db, org, people["bob"], s1, a1, at=_last_month(), clicks=9)  # last month's top: not public
    r = client.get("/ambassador/acme")
    assert r.status_code == 200 and "No ambassador to show" in r.text and "Bob" not in r.text
    post(db, org, people["cleo"], s1, a1, at=_last_month(1), clicks=2)  # second, and she agreed
    r = client.get("/ambassador/acme")
    assert "Cleo Zed" in r.text and "Bob" not in r.text
    assert r.headers["cache-control"] == "public, max-age=3600" and "set-cookie" not in r.headers
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    w = client.get("/ambassador/acme/widget")
    assert w.status_code == 200 and "Cleo Zed" in w.text and "<script" not in w.text
    csp = w.headers["content-security-policy"]
    assert "frame-ancestors https://relais.test" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert "x-frame-options" not in w.headers and "set-cookie" not in w.headers
    assert client.get("/ambassador/nobody").status_code == 404
    # comms sees the real top and who each page shows
    panel = signed_in_client(app, "comms@acme.example").get("/app/contests").text
    assert "Bob Zed" in panel and "On the public page: Cleo Zed" in panel


def test_a_widget_without_a_website_can_be_framed_by_nobody(app, db, people, client):
    other = make_tenant(db, slug="initech", with_brand=False)
    w = client.get("/ambassador/initech/widget")
    assert w.status_code == 200 and "frame-ancestors 'none'" in w.headers["content-security-policy"]
    assert w.headers["x-frame-options"] == "DENY"
    assert other.org_id


def test_website_origin_refuses_anything_but_an_http_origin():
    from advocacy.recognition.public import website_origin

    assert website_origin("https://www.acme.example/about?x=1") == "https://www.acme.example"
    assert website_origin("http://acme.example:8080/") == "http://acme.example:8080"
    for bad in (None, "", "javascript:alert(1)", "https://a.example; script-src *", "ftp://acme.example"):
        assert website_origin(bad) is None


def test_the_dashboard_panel_and_portal_name_the_ambassador_by_consent(app, db, tenant, people):
    org = tenant.org_id
    a1 = article(db, org)
    s1 = share_spec(db, org, a1)
    post(db, org, people["bob"], s1, a1, at=_last_month(), clicks=9)
    dashboard = signed_in_client(app, "comms@acme.example").get("/app/dashboard").text
    assert "Ambassador of the month" in dashboard and "Bob Zed" in dashboard
    portal = signed_in_client(app, "ana@acme.example").get("/me/contests").text
    assert "No ambassador to show for last month." in portal and "Bob" not in portal


def test_french_pages(app, db, tenant, people):
    start, end = _window()
    cid = contest(db, tenant.org_id, Metric.clicks_per_share, start, end)
    ana = signed_in_client(app, "ana@acme.example")
    ana.headers["accept-language"] = "fr"
    assert "Mes chiffres" in ana.get("/me/figures").text
    assert "Classement" in ana.get(f"/me/contests/{cid}").text
    assert "Ambassadeur" in ana.get("/ambassador/acme", headers={"accept-language": "fr"}).text


def test_results_go_into_the_next_newsletter_draft_with_only_consenting_names(app, db, tenant, people):
    from newsletter.models import Issue, IssueStatus

    org = tenant.org_id
    start, end = _window()
    a1 = article(db, org)
    s1 = share_spec(db, org, a1)
    post(db, org, people["bob"], s1, a1, at=start + timedelta(hours=1), clicks=5)
    post(db, org, people["cleo"], s1, a1, at=start + timedelta(hours=2), clicks=1)
    cid = contest(db, org, Metric.confirmed_posts, start, end, winners=2, title="Défi de l'hiver")
    comms = signed_in_client(app, "comms@acme.example")
    token = csrf_of(comms.get(f"/app/contests/{cid}").text)
    early = comms.post(f"/app/contests/{cid}/newsletter", data={"csrf": token})
    assert early.status_code == 422 and "Announce the winners first" in early.text
    assert comms.post(f"/app/contests/{cid}/announce", data={"csrf": token}).status_code == 200
    none = comms.post(f"/app/contests/{cid}/newsletter", data={"csrf": token})
    assert none.status_code == 422 and "no draft newsletter issue" in none.text
    with Session(db) as s:
        s.add(Issue(org_id=org, subject="Old", status=IssueStatus.sent))
        s.add(Issue(org_id=org, subject="Next", intro="Bonjour,"))
        s.commit()
    added = comms.post(f"/app/contests/{cid}/newsletter", data={"csrf": token}, follow_redirects=False)
    assert added.status_code == 303 and "/app/newsletter/issues/" in added.headers["location"]
    with Session(db) as s:
        issue = s.exec(select(Issue).where(Issue.subject == "Next")).one()
        assert issue.intro == "Bonjour,\n\nRésultats du concours : Défi de l'hiver\n1. un·e collègue\n2. Cleo Zed"
    twice = comms.post(f"/app/contests/{cid}/newsletter", data={"csrf": token})
    assert twice.status_code == 409


def test_an_employee_who_opted_out_of_tracking_scores_nowhere(app, db, tenant, people, settings):
    """Their clicks are recorded without them (service.clicks.optout), so no board, contest or ambassador has them."""
    from fastapi.testclient import TestClient

    from service.clicks.models import TrackingOptOut
    from service.links import TrackedLink, employee_url, link_key

    org, cleo = tenant.org_id, people["cleo"]
    with Session(db) as s:
        s.add(TrackingOptOut(org_id=org, employee_id=cleo, set_by="employee"))
        s.commit()
    a1 = article(db, org)
    spec_id = share_spec(db, org, a1)
    with Session(db) as s:
        spec = s.get(TrackedLink, spec_id)
        assert spec is not None
        url = employee_url(spec, cleo, "https://testserver", link_key(settings)).removeprefix("https://testserver")
    start = utcnow() - timedelta(minutes=5)
    cid = contest(db, org, Metric.confirmed_posts, start, start + timedelta(hours=1))
    public = TestClient(app, base_url="https://testserver")
    for ua in ("LinkedInBot/1.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15"):
        assert public.get(url, headers={"user-agent": ua}, follow_redirects=False).status_code == 302
    assert _scores(db, cid) == {}
    page = signed_in_client(app, "ana@acme.example").get(f"/me/contests/{cid}").text
    assert "Cleo" not in page and "not listed" not in page
