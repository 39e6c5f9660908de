"""The public tracking routes, attribution privacy, figures, CSV, leaderboard and the retention roll-up."""

import csv
import io
import math
import secrets
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from service.clicks.models import Click, ClickDaily, Impression, Verdict
from service.clicks.reports import click_counts, rollup_and_purge
from service.links import Channel, mint, url_for
from service.models import Role
from tests.campaign_helpers import add_employees

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def _link(db, org_id, **kw):
    kw.setdefault("channel", Channel.signature_field)
    kw.setdefault("destination", "https://acme.example/page?x=1")
    with Session(db, expire_on_commit=False) as s:
        link = mint(s, org_id=org_id, **kw)
        s.commit()
        return link


def _clicks(db):
    with Session(db) as s:
        return s.exec(select(Click).order_by(Click.id)).all()


def test_redirect_headers_and_a_recorded_click(client, tenant, db):
    (emp,) = add_employees(db, tenant.org_id, [("a@acme.example", "Sales", "Paris", [])])
    link = _link(db, tenant.org_id, employee_id=emp)
    r = client.get(f"/c/{link.token}", headers={"user-agent": CHROME}, follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "https://acme.example/page?x=1"
    assert r.headers["cache-control"] == "no-store" and r.headers["x-robots-tag"] == "noindex"
    (click,) = _clicks(db)
    assert (click.verdict, click.employee_id, click.channel, click.link_id) == (
        Verdict.human,
        emp,
        Channel.signature_field,
        link.id,
    )
    assert len(click.visitor) == 16 and "testclient" not in click.visitor


def test_head_redirects_but_is_not_counted(client, tenant, db):
    link = _link(db, tenant.org_id)
    r = client.head(f"/c/{link.token}", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("https://acme.example/")
    assert _clicks(db) == []


def test_unknown_and_malformed_tokens_get_a_plain_404_page(client, tenant, db):
    link = _link(db, tenant.org_id)
    for path in (
        f"/c/{secrets.token_urlsafe(16)}",
        "/c/short",
        f"/c/{link.token[:-1]}",
        f"/c/{'A' * 200}",
        f"/s/{link.token}",
    ):  # a /c/ token is not a share link
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 404, path
        assert "This link does not exist" in r.text and "Traceback" not in r.text
        assert r.headers["cache-control"] == "no-store"
    assert _clicks(db) == []


def test_open_redirect_attempts_go_nowhere_else(client, tenant, db):
    link = _link(db, tenant.org_id)
    for suffix in (
        "?url=https://evil.example",
        "?next=//evil.example",
        "/https://evil.example",
        "%2F%2Fevil.example",
        "?destination=javascript:alert(1)",
    ):
        r = client.get(f"/c/{link.token}{suffix}", follow_redirects=False)
        if r.status_code == 302:
            assert r.headers["location"] == "https://acme.example/page?x=1", suffix
        else:
            assert r.status_code == 404, suffix


def test_tokens_are_unguessable(db, tenant):
    with Session(db) as s:
        tokens = [
            mint(s, org_id=tenant.org_id, channel=Channel.newsletter, destination=f"https://acme.example/{i}").token
            for i in range(300)
        ]
    assert len(set(tokens)) == 300
    for t in tokens:
        assert len(t) >= 22  # 16 random bytes in URL-safe base64: 128 bits
    # the alphabet is used evenly (no counter, no timestamp): per-position entropy close to 6 bits
    joined = "".join(t[:21] for t in tokens)  # the 22nd character carries only 2 bits
    counts = {c: joined.count(c) for c in set(joined)}
    entropy = -sum(n / len(joined) * math.log2(n / len(joined)) for n in counts.values())
    assert entropy > 5.8
    assert len(set(t[:4] for t in tokens)) > 295  # no shared prefix


def test_share_links_use_s_and_the_same_verdicts(client, tenant, db):
    (emp,) = add_employees(db, tenant.org_id, [("b@acme.example", "Sales", "Paris", [])])
    link = _link(db, tenant.org_id, channel=Channel.share, employee_id=emp, article_id=42, network="linkedin")
    assert url_for(link, "https://relais.test").endswith(f"/s/{link.token}")
    bot = "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"
    assert client.get(f"/s/{link.token}", headers={"user-agent": bot}, follow_redirects=False).status_code == 302
    assert client.get(f"/s/{link.token}", headers={"user-agent": CHROME}, follow_redirects=False).status_code == 302
    assert client.get(f"/c/{link.token}", follow_redirects=False).status_code == 404
    with Session(db) as s:
        rows = click_counts(s, org_id=tenant.org_id, article_id=42, network="linkedin", group_by=["employee"])
    assert rows == [{"employee": emp, "human": 1, "scanner": 0, "crawler": 1, "raw": 2, "unique_clickers": 1}]


def test_scanners_are_redirected_and_labelled_and_a_burst_relabels_earlier_hits(client, tenant, db):
    (emp,) = add_employees(db, tenant.org_id, [("c@acme.example", "Sales", "Paris", [])])
    banner = _link(db, tenant.org_id, channel=Channel.signature_banner, employee_id=emp, campaign_id=1)
    field = _link(db, tenant.org_id, channel=Channel.signature_field, employee_id=emp)
    for link in (banner, field):  # a gateway opens every link of the message at once, with a browser agent
        assert client.get(f"/c/{link.token}", headers={"user-agent": CHROME}, follow_redirects=False).status_code == 302
    r = client.get(f"/c/{field.token}", headers={"user-agent": "curl/8.5"}, follow_redirects=False)
    assert r.status_code == 302
    rows = _clicks(db)
    assert [r.verdict for r in rows] == [Verdict.scanner] * 3
    assert rows[0].reasons == "burst" and "burst" in rows[1].reasons and rows[2].reasons == "ua_script"


def test_attribution_switch_and_employee_opt_out(client, tenant, db):
    h = tenant.headers(Role.comms)
    a, b = add_employees(
        db, tenant.org_id, [("d@acme.example", "Sales", "Paris", []), ("e@acme.example", "Sales", "Paris", [])]
    )
    la, lb = _link(db, tenant.org_id, employee_id=a), _link(db, tenant.org_id, employee_id=b)
    assert client.get("/api/tracking/settings", headers=h).json() == {"attribution": True, "retention_days": 90}
    assert client.put(f"/api/tracking/opt-outs/{b}", headers=h).status_code == 200
    assert [o["employee_id"] for o in client.get("/api/tracking/opt-outs", headers=h).json()] == [b]
    client.get(f"/c/{la.token}", headers={"user-agent": CHROME}, follow_redirects=False)
    client.get(f"/c/{lb.token}", headers={"user-agent": CHROME + " x"}, follow_redirects=False)
    assert [c.employee_id for c in _clicks(db)] == [a, None]
    r = client.put("/api/tracking/settings", json={"attribution": False, "retention_days": 30}, headers=h)
    assert r.json() == {"attribution": False, "retention_days": 30}
    client.app.state.tracker.POLICY_TTL = 0  # the next request re-reads the policy (normally within 5 s)
    client.app.state.tracker._policies.clear()
    client.get(f"/c/{la.token}", headers={"user-agent": CHROME + " y"}, follow_redirects=False)
    assert [c.employee_id for c in _clicks(db)] == [a, None, None]
    assert client.delete(f"/api/tracking/opt-outs/{b}", headers=h).status_code == 204
    again = client.delete(f"/api/tracking/opt-outs/{b}", headers=h)
    assert again.status_code == 404 and again.json()["error"]["message"] == f"Employee {b} has not opted out."
    for missing in (999999, 2**63):  # an unknown id, and one no database row can have: 404, never a 500
        put = client.put(f"/api/tracking/opt-outs/{missing}", headers=h)
        assert (
            put.status_code == 404 and put.json()["error"]["message"] == f"No employee {missing} in this organisation."
        )
        delete = client.delete(f"/api/tracking/opt-outs/{missing}", headers=h)
        assert delete.status_code == 404 and "No employee" in delete.json()["error"]["message"]


def _seed(db, org_id, emp_ids, link_ids, days_ago: int, verdict=Verdict.human, visitor="v1", n=1, campaign_id=7):
    with Session(db) as s:
        at = datetime.now(UTC) - timedelta(days=days_ago)
        for i in range(n):
            s.add(
                Click(
                    org_id=org_id,
                    link_id=link_ids[0],
                    employee_id=emp_ids[0],
                    campaign_id=campaign_id,
                    channel=Channel.signature_banner,
                    occurred_at=at,
                    verdict=verdict,
                    visitor=f"{visitor}{i % 2}",
                )
            )
        s.commit()


def test_figures_csv_leaderboard_and_rollup(client, tenant, db):
    h = tenant.headers(Role.comms)
    a, b = add_employees(
        db, tenant.org_id, [("f@acme.example", "Sales", "Paris", []), ("g@acme.example", "Finance", "Lyon", [])]
    )
    la = _link(db, tenant.org_id, channel=Channel.signature_banner, employee_id=a, campaign_id=7)
    lb = _link(db, tenant.org_id, channel=Channel.signature_banner, employee_id=b, campaign_id=7)
    _seed(db, tenant.org_id, [a], [la.id], 1, n=4)  # 4 human clicks from 2 visitors
    _seed(db, tenant.org_id, [a], [la.id], 1, verdict=Verdict.scanner, n=3)
    _seed(db, tenant.org_id, [b], [lb.id], 200, n=2)  # old: rolled up below
    with Session(db) as s:
        for _ in range(10):
            s.add(
                Impression(
                    org_id=tenant.org_id,
                    link_id=la.id,
                    employee_id=a,
                    campaign_id=7,
                    occurred_at=datetime.now(UTC) - timedelta(days=1),
                    verdict=Verdict.human,
                )
            )
        s.commit()
    rows = client.get("/api/analytics/clicks", params={"group_by": "campaign,department"}, headers=h).json()
    sales = next(r for r in rows if r["department"] == "Sales")
    assert (sales["human"], sales["raw"], sales["scanner"], sales["unique_clickers"]) == (4, 7, 3, 2)
    assert sales["impressions"] == 10 and sales["ctr"] == 0.4
    board = client.get("/api/analytics/leaderboard", headers=h).json()
    assert [(x["employee_id"], x["human"], x["rank"]) for x in board] == [(a, 4, 1), (b, 2, 2)]
    with Session(db) as s:
        stats = rollup_and_purge(s)
        s.commit()
        assert stats["clicks"] == 2  # the raw clicks past retention are gone; the summary keeps their day
        old_day = (datetime.now(UTC) - timedelta(days=200)).date()
        assert all(c.occurred_at.date() != old_day for c in s.exec(select(Click)).all())
        assert [r.clicks for r in s.exec(select(ClickDaily).where(ClickDaily.day == old_day)).all()] == [2]
    board = client.get("/api/analytics/leaderboard", headers=h).json()
    assert [(x["employee_id"], x["human"]) for x in board] == [(a, 4), (b, 2)]  # figures survive the roll-up
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    body = client.get(
        "/api/analytics/clicks.csv", params={"group_by": "employee,day", "start": day, "end": day}, headers=h
    ).content
    assert body.startswith("\ufeff".encode())  # Excel reads UTF-8 only with a BOM
    table = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [(r["employee"], r["day"], r["human"], r["raw"]) for r in table] == [(str(a), day, "4", "7")]
    assert client.get("/api/analytics/clicks", params={"group_by": "planet"}, headers=h).status_code == 422
    assert client.get("/api/analytics/clicks", headers=tenant.headers(Role.it)).status_code == 403


def test_ab_variants_have_their_own_figures(client, tenant, db):
    from service.directory.models import Employee
    from signatures.campaigns.service import banner_for
    from tests.campaign_helpers import png, upload

    ids = add_employees(db, tenant.org_id, [(f"p{i}@acme.example", "Sales", "Paris", []) for i in range(12)])
    a = upload(client, tenant, png(color="#112233")).json()
    b = upload(client, tenant, png(color="#334455")).json()
    now = datetime.now(UTC)
    body = {
        "name": "ab",
        "destination_url": "https://acme.example/ab",
        "state": "active",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=9)).isoformat(),
        "variants": [{"banner_id": a["id"], "alt": "A"}, {"banner_id": b["id"], "alt": "B"}],
    }
    assert client.post("/api/campaigns", json=body, headers=tenant.headers(Role.comms)).status_code == 201
    shown = {"A": 0, "B": 0}
    with Session(db) as s:
        for emp_id in ids:
            banner = banner_for(s, employee=s.get(Employee, emp_id), at=now)
            s.commit()
            for _ in range(2 if banner.alt == "A" else 1):  # A's banner is clicked twice per person, B's once
                token = banner.href.split("/c/", 1)[1]
                r = client.get(f"/c/{token}", headers={"user-agent": CHROME}, follow_redirects=False)
                assert r.status_code == 302
            client.get(banner.image_url.split("relais.test", 1)[-1], headers={"user-agent": CHROME})
            shown[banner.alt] += 1
    assert shown["A"] > 0 and shown["B"] > 0  # both variants reach people
    rows = client.get("/api/analytics/clicks", params={"group_by": "variant"}, headers=tenant.headers(Role.comms))
    assert rows.status_code == 200, rows.text
    by_variant = {r["variant"]: r for r in rows.json()}
    assert by_variant["a"]["raw"] == 2 * shown["A"] and by_variant["b"]["raw"] == shown["B"]
    assert by_variant["a"]["impressions"] == shown["A"] and by_variant["b"]["impressions"] == shown["B"]
