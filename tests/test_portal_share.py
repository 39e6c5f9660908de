"""The share center (/me/share): my own token in every share URL and text (never a colleague's), the status
going from not shared to shared (a real share-button redirect) to confirmed (a link-preview crawler fetching
my /s/ link), X's counter, copy buttons, the image through the app, leaders' social proof with names only
for those who agreed, and another organisation's articles out of sight."""

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlmodel import Session

from advocacy.share.center import SHARE_NETWORKS, share_center
from newsletter.articles import x_length
from newsletter.models import Article, Issue, IssueArticle, IssueStatus
from portal.visibility import set_choices
from service.app import create_app
from service.db import utcnow
from service.directory.models import Employee
from service.links import link_key, parse_employee_token
from service.models import Role
from tests.conftest import make_tenant
from tests.feed_support import start_feeds
from tests.page_support import browser_client, make_user, sign_in

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
LINKEDIN_BOT = "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"


@pytest.fixture
def images():
    server, base = start_feeds()
    yield base
    server.shutdown()


@pytest.fixture
def world(db, tenant, settings, images):
    """Ana (employee, managed by Léa), Bob (managed by Max); Léa and Max are leaders, only Max named."""
    other = make_tenant(db, "globex")
    with Session(db) as s:
        people = {}
        for key, email, manager in (("lea", "lea@acme.example", None), ("max", "max@acme.example", None),
                                    ("ana", "ana@acme.example", "Lea@acme.example"),
                                    ("bob", "bob@acme.example", "max@acme.example")):  # fmt: skip
            e = Employee(org_id=tenant.org_id, email=email, display_name=key.title(), source_id=key,
                         manager_email=manager)  # fmt: skip
            s.add(e)
            s.flush()
            people[key] = e.id
        shared = Article(org_id=tenant.org_id, url="https://acme.example/news/lyon", title="Lyon ouvre",
                         description="Un entrepôt bas carbone.", text_x="Notre entrepôt de Lyon ouvre",
                         hashtags=["Lyon"], image_url=f"{images}/img/cover.png", shareable=True)  # fmt: skip
        in_issue = Article(org_id=tenant.org_id, url="https://acme.example/news/salon", title="Le salon",
                           image_url=f"{images}/not-an-image.png")  # fmt: skip
        hidden = Article(org_id=tenant.org_id, url="https://acme.example/news/draft", title="Brouillon caché")
        s.add_all([shared, in_issue, hidden])
        s.flush()
        issue = Issue(org_id=tenant.org_id, subject="Lettre", status=IssueStatus.sent, finished_at=utcnow())
        s.add(issue)
        s.flush()
        s.add(IssueArticle(issue_id=issue.id, article_id=in_issue.id, position=0))
        s.add(Article(org_id=other.org_id, url="https://globex.example/x", title="Globex secret", shareable=True))
        set_choices(s, org_id=tenant.org_id, employee_id=people["max"], leader_name_visible=True)
        s.commit()
        ids = {"shared": shared.id, "in_issue": in_issue.id, "hidden": hidden.id}
    for key in ("ana", "lea", "max"):
        make_user(db, tenant.org_id, Role.employee, email=f"{key}@acme.example")
    app = create_app(settings=settings.model_copy(update={"fetch_allow_private": True}), engine=db)
    return app, people, ids


def _client(app, who):
    client = browser_client(app)
    client.__enter__()
    assert sign_in(client, f"{who}@acme.example").status_code == 303
    return client


def _share_links(html):
    return [(n, h) for h, n in re.findall(r'href="([^"]+)" data-share="([a-z]+)"', html)]


def _token(url):
    return urlsplit(url).path.rsplit("/", 1)[1]


def test_every_share_url_and_text_carries_my_own_token(world, settings):
    app, people, ids = world
    ana = _client(app, "ana")
    page = ana.get("/me/share")
    assert page.status_code == 200
    assert "Lyon ouvre" in page.text and "Le salon" in page.text  # shareable, and in a sent issue
    assert "Brouillon caché" not in page.text and "Globex secret" not in page.text
    key = link_key(settings)
    links = _share_links(page.text)
    assert [n for n, _ in links] == list(SHARE_NETWORKS) * 2
    for _network, href in links:
        assert href.startswith("https://relais.test/c/")
        spec, employee = parse_employee_token(_token(href), key)
        assert employee == people["ana"]
    own = re.findall(r"https://relais\.test/s/([A-Za-z0-9_-]+)", page.text)
    assert len(own) == 2 * len(SHARE_NETWORKS)  # one /s/ link in each ready-made text
    assert {parse_employee_token(t, key)[1] for t in own} == {people["ana"]}
    # copy buttons name the text they copy; X's counter counts the link as 23
    assert len(re.findall(r'data-copy-field="t-\d+-[a-z]+"', page.text)) == 2 * len(SHARE_NETWORKS)
    n = x_length("Notre entrepôt de Lyon ouvre", ["Lyon"])
    assert f"{n} of 280 characters on X" in page.text
    # Bob's page: his own tokens, none of Ana's
    with Session(app.state.engine) as s:
        bob_cards = share_center(s, org_id=s.get(Employee, people["bob"]).org_id, employee_id=people["bob"],
                                 settings=settings)  # fmt: skip
        assert all(parse_employee_token(_token(sh.share_url), key)[1] == people["bob"]
                   for c in bob_cards for sh in c.shares)  # fmt: skip
    assert not re.search(r"<script>[^<]", page.text)  # no inline script


def test_status_goes_from_not_shared_to_shared_to_confirmed(world, settings):
    app, people, ids = world
    ana = _client(app, "ana")
    page = ana.get("/me/share")
    card = page.text.split(f'aria-labelledby="a-{ids["shared"]}"')[1].split("</article>")[0]
    assert 'data-status="not_shared"' in card
    linkedin = dict(_share_links(card))["linkedin"]
    r = ana.get(linkedin, headers={"user-agent": CHROME}, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("https://www.linkedin.com/sharing/")
    my_share = parse_qs(urlsplit(r.headers["location"]).query)["url"][0]
    assert my_share.startswith("https://relais.test/s/")
    assert parse_employee_token(_token(unquote(my_share)), link_key(settings))[1] == people["ana"]
    card = ana.get("/me/share").text.split(f'aria-labelledby="a-{ids["shared"]}"')[1].split("</article>")[0]
    assert 'data-status="shared"' in card
    crawler = browser_client(app)
    r = crawler.get(urlsplit(my_share).path, headers={"user-agent": LINKEDIN_BOT}, follow_redirects=False)
    assert r.status_code == 302 and "utm_source=linkedin" in r.headers["location"]
    text = ana.get("/me/share").text
    card = text.split(f'aria-labelledby="a-{ids["shared"]}"')[1].split("</article>")[0]
    assert 'data-status="confirmed"' in card and "Confirmed" in card
    other = text.split(f'aria-labelledby="a-{ids["in_issue"]}"')[1].split("</article>")[0]
    assert 'data-status="not_shared"' in other  # per article
    fr = ana.get("/me/share", headers={"accept-language": "fr"}).text
    assert "Confirmé" in fr and "Copier le texte" in fr


def test_the_image_comes_through_the_app(world):
    app, people, ids = world
    ana = _client(app, "ana")
    page = ana.get("/me/share").text
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert all(s.startswith(("/", "https://relais.test/")) for s in srcs)  # no other host on the page
    assert f"/me/share/{ids['shared']}/image" in srcs
    img = ana.get(f"/me/share/{ids['shared']}/image")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png" and img.content[:4] == b"\x89PNG"
    dl = ana.get(f"/me/share/{ids['shared']}/image?download=1")
    assert dl.headers["content-disposition"].startswith("attachment;") and dl.content == img.content
    assert ana.get(f"/me/share/{ids['in_issue']}/image").status_code == 404  # says PNG, is HTML: refused
    assert ana.get(f"/me/share/{ids['hidden']}/image").status_code == 404  # not curated


def test_leaders_who_shared_are_counted_and_named_only_with_their_yes(world, settings):
    app, people, ids = world
    for leader in ("lea", "max"):
        client = _client(app, leader)
        card = client.get("/me/share").text.split(f'aria-labelledby="a-{ids["shared"]}"')[1].split("</article>")[0]
        assert client.get(dict(_share_links(card))["x"], headers={"user-agent": CHROME},
                          follow_redirects=False).status_code == 302  # fmt: skip
    ana = _client(app, "ana")
    card = ana.get("/me/share").text.split(f'aria-labelledby="a-{ids["shared"]}"')[1].split("</article>")[0]
    assert "2 leaders shared it" in card and "Max" in card and "Lea" not in card
    other = ana.get("/me/share").text.split(f'aria-labelledby="a-{ids["in_issue"]}"')[1].split("</article>")[0]
    assert "leaders shared it" not in other and "leader shared it" not in other


def test_another_organisations_article_and_non_employees(world, db):
    app, people, ids = world
    other = make_tenant(db, "initech")
    with Session(db) as s:
        s.add(Employee(org_id=other.org_id, email="zed@initech.example", source_id="zed"))
        s.commit()
    make_user(db, other.org_id, Role.employee, email="zed@initech.example")
    zed = browser_client(app)
    zed.__enter__()
    assert sign_in(zed, "zed@initech.example").status_code == 303
    page = zed.get("/me/share")
    assert page.status_code == 200 and "Lyon ouvre" not in page.text and "Nothing to share yet" in page.text
    assert zed.get(f"/me/share/{ids['shared']}/image").status_code == 404
    make_user(db, make_tenant(db, "hooli").org_id, Role.it, email="it@hooli.example")
    it = browser_client(app)
    assert sign_in(it, "it@hooli.example").status_code == 303
    assert it.get("/me/share").status_code == 403  # not linked to an employee
    assert browser_client(app).get("/me/share", follow_redirects=False).status_code == 303  # signed out


def test_sharing_is_locked_until_the_charter_is_accepted(world, db, tenant):
    from advocacy.charter.models import Surface
    from advocacy.charter.service import Bump, accept, publish, save_draft

    app, people, ids = world
    comms_id = make_user(db, tenant.org_id, Role.comms)
    with Session(db) as s:
        save_draft(s, org_id=tenant.org_id, title="Charte", body="Nous partageons ce qui est public.")
        publish(s, org_id=tenant.org_id, user_id=comms_id, bump=Bump.major, changelog="Première version")
        s.commit()
    ana = _client(app, "ana")
    locked = ana.get("/me/share").text
    assert "Sharing unlocks once you have accepted" in locked and 'href="/me/charter"' in locked
    assert _share_links(locked) == [] and "data-copy-field" not in locked and "/s/" not in locked
    assert "Lyon ouvre" in locked  # the articles are still there to read
    with Session(db) as s:
        accept(s, org_id=tenant.org_id, employee_id=people["ana"], surface=Surface.portal)
        s.commit()
    unlocked = ana.get("/me/share").text
    assert "Sharing unlocks" not in unlocked and len(_share_links(unlocked)) == 2 * len(SHARE_NETWORKS)
