"""Figures people can read: names next to ids in the JSON and CSV, a CSV Excel opens in French, both
leaderboards counting the same audience clicks, per-reason verdict counts, and audiences that reach nobody
refused. Clicks are made the way visitors make them: GETs of the public tracked links."""

import csv
import io

from sqlmodel import Session

from newsletter.models import Article
from service.directory.models import Employee
from service.links import Channel, mint
from service.models import Role
from tests.campaign_helpers import make_campaign

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
CURL = "curl/8.5.0"
LINKEDIN = "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"


def _people(db, org_id) -> tuple[int, int]:
    with Session(db) as s:
        zoe = Employee(
            org_id=org_id,
            email="zoe@acme.example",
            first_name="Zoé",
            last_name="Lefèvre",
            department="Ventes",
            office="Lyon",
            source_id="zoe",
        )
        bob = Employee(
            org_id=org_id,
            email="bob@acme.example",
            first_name="Bob",
            last_name="Martin",
            department="R&D",
            office="Paris",
            source_id="bob",
        )
        s.add_all([zoe, bob])
        s.commit()
        return zoe.id, bob.id


def _link(db, org_id, channel, **kw):
    with Session(db, expire_on_commit=False) as s:
        link = mint(s, org_id=org_id, channel=channel, destination="https://acme.example/offre", **kw)
        s.commit()
        return link


def _visit(client, link, ua, times=1):
    prefix = {Channel.share: "s"}.get(link.channel, "c")
    for i in range(times):
        # a different visitor each time (the address is part of the visitor hash), so no burst rule fires
        headers = {"user-agent": ua, "x-forwarded-for": f"203.0.113.{10 + i}"}
        assert client.get(f"/{prefix}/{link.token}", headers=headers, follow_redirects=False).status_code == 302


def _scenario(client, tenant, db):
    zoe, bob = _people(db, tenant.org_id)
    campaign = make_campaign(client, tenant, "Salon de l'été", state="active")
    with Session(db) as s:
        article = Article(org_id=tenant.org_id, url="https://acme.example/rentree", title="Rentrée : nos offres")
        s.add(article)
        s.commit()
        article_id = article.id
    banner = _link(db, tenant.org_id, Channel.signature_banner, employee_id=zoe, campaign_id=campaign["id"])
    share = _link(db, tenant.org_id, Channel.share, employee_id=zoe, article_id=article_id, network="linkedin")
    press = _link(db, tenant.org_id, Channel.share_intent, employee_id=zoe, article_id=article_id, network="linkedin")
    read = _link(db, tenant.org_id, Channel.newsletter, employee_id=zoe, article_id=article_id)
    field = _link(db, tenant.org_id, Channel.signature_field, employee_id=bob)
    _visit(client, banner, CHROME, 2)  # Zoé's audience: 2 on her signature banner
    _visit(client, share, CHROME, 1)  # ... and 1 on the post she shared
    _visit(client, press, CHROME, 3)  # her own share-button presses: not audience clicks
    _visit(client, read, CHROME, 4)  # her own reading: not audience clicks
    _visit(client, field, CHROME, 2)  # Bob's audience: 2
    _visit(client, banner, CURL, 1)  # a script
    _visit(client, share, LINKEDIN, 1)  # LinkedIn's preview crawler
    return zoe, bob, campaign, article_id


def test_figures_name_people_campaigns_and_articles(client, tenant, db):
    zoe, _bob, campaign, article_id = _scenario(client, tenant, db)
    h = tenant.headers(Role.comms)
    by_employee = client.get("/api/analytics/clicks", params={"group_by": "employee"}, headers=h).json()
    row = next(r for r in by_employee if r["employee"] == zoe)
    assert (row["employee_name"], row["employee_email"]) == ("Zoé Lefèvre", "zoe@acme.example")
    by_campaign = client.get("/api/analytics/clicks", params={"group_by": "campaign"}, headers=h).json()
    assert next(r for r in by_campaign if r["campaign"] == campaign["id"])["campaign_name"] == "Salon de l'été"
    by_article = client.get("/api/analytics/clicks", params={"group_by": "article"}, headers=h).json()
    assert next(r for r in by_article if r["article"] == article_id)["article_title"] == "Rentrée : nos offres"


def test_the_csv_opens_in_excel_in_french(client, tenant, db):
    zoe, _bob, campaign, _article = _scenario(client, tenant, db)
    h = {**tenant.headers(Role.comms), "accept-language": "fr-FR,fr;q=0.9,en;q=0.8"}
    r = client.get("/api/analytics/clicks.csv", params={"group_by": "campaign,employee"}, headers=h)
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    text = r.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("campaign;campaign_name;employee;employee_name;employee_email;human")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    mine = next(r for r in rows if r["employee"] == str(zoe) and r["campaign"] == str(campaign["id"]))
    assert (mine["campaign_name"], mine["employee_name"], mine["human"]) == ("Salon de l'été", "Zoé Lefèvre", "2")

    english = client.get(
        "/api/analytics/clicks.csv", params={"group_by": "employee"}, headers=tenant.headers(Role.comms)
    )
    assert english.content.decode("utf-8-sig").startswith("employee,employee_name,employee_email,human")
    forced = client.get(
        "/api/analytics/clicks.csv", params={"group_by": "employee", "sep": ";"}, headers=tenant.headers(Role.comms)
    )
    assert forced.content.decode("utf-8-sig").startswith("employee;employee_name")
    bad = client.get("/api/analytics/clicks.csv", params={"sep": "|"}, headers=tenant.headers(Role.comms))
    assert bad.status_code == 422 and "separator" in bad.json()["error"]["message"]


def test_both_leaderboards_count_the_same_audience_clicks(client, tenant, db):
    zoe, bob, _campaign, _article = _scenario(client, tenant, db)
    h = tenant.headers(Role.comms)
    board = {r["employee_id"]: r["human"] for r in client.get("/api/analytics/leaderboard", headers=h).json()}
    assert board == {zoe: 3, bob: 2}  # not Zoé's 3 share presses and 4 reading clicks
    newsletter = client.get("/api/newsletter/leaderboard", headers=h).json()["leaderboard"]
    clicks = {r["employee_id"]: r["share_clicks"] + r["signature_clicks"] for r in newsletter}
    assert clicks == board
    only_shares = client.get("/api/analytics/leaderboard", params={"channel": "share"}, headers=h).json()
    assert [(r["employee_id"], r["human"]) for r in only_shares] == [(zoe, 1)]
    own = client.get("/api/analytics/leaderboard", params={"channel": "share_intent"}, headers=h).json()
    assert own == []


def test_verdict_reasons_are_counted(client, tenant, db):
    _scenario(client, tenant, db)
    body = client.get("/api/analytics/verdicts", headers=tenant.headers(Role.comms)).json()
    verdicts = body["verdicts"]
    assert verdicts["human"]["clicks"] == 12
    assert verdicts["scanner"]["clicks"] == 1 and verdicts["scanner"]["reasons"] == {"ua_script": 1}
    assert verdicts["crawler"]["clicks"] == 1 and verdicts["crawler"]["reasons"] == {"ua_preview": 1}
    assert client.get("/api/analytics/verdicts", headers=tenant.headers(Role.it)).status_code == 403


def test_audiences_that_reach_nobody_are_refused(client, tenant, db):
    _people(db, tenant.org_id)
    h = tenant.headers(Role.comms)
    refused = client.post(
        "/api/newsletter/issues", json={"subject": "Octobre", "audience": {"departments": ["ventes"]}}, headers=h
    )
    assert refused.status_code == 422
    message = refused.json()["error"]["message"]
    assert "reach 0 people" in message and "did you mean 'Ventes'?" in message
    office = client.post(
        "/api/newsletter/issues", json={"subject": "x", "audience": {"offices": ["Nantes"]}}, headers=h
    )
    assert office.status_code == 422 and "office 'Nantes'" in office.json()["error"]["message"]
    ok = client.post(
        "/api/newsletter/issues", json={"subject": "Octobre", "audience": {"departments": ["Ventes"]}}, headers=h
    )
    assert ok.status_code == 201, ok.text
    patched = client.patch(
        f"/api/newsletter/issues/{ok.json()['id']}", json={"audience": {"departments": ["Nope"]}}, headers=h
    )
    assert patched.status_code == 422

    from tests.campaign_helpers import png, upload

    banner = upload(client, tenant, png()).json()
    body = {
        "name": "Nulle part",
        "destination_url": "https://acme.example/x",
        "banner_id": banner["id"],
        "alt": "x",
        "state": "scheduled",
        "starts_at": "2030-01-01T00:00:00Z",
        "audience": {"departments": ["Marketing"]},
    }
    campaign = client.post("/api/campaigns", json=body, headers=h)
    assert campaign.status_code == 422 and "department 'Marketing'" in campaign.json()["error"]["message"]
