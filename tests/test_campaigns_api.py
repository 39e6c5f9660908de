"""Campaigns API: uploads refused with clear errors, campaigns and variants, who sees what, banners in signatures."""

import io
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from PIL import Image
from sqlmodel import Session, select

from service.clicks.models import Impression
from service.links import TrackedLink
from service.models import Role
from signatures.campaigns.service import next_rotation_change, rotation_fingerprint
from tests.campaign_helpers import add_employees, make_campaign, png, upload, use_default_template


def test_upload_accepts_real_images_and_serves_them_immutably(client, tenant):
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif")):
        r = upload(client, tenant, png(fmt=fmt), name=f"b.{ext}")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["url"].endswith(f".{ext}") and (body["width"], body["height"]) == (600, 150)
        path = urlsplit(body["url"]).path
        got = client.get(path)
        assert got.status_code == 200 and "immutable" in got.headers["cache-control"]
    again = upload(client, tenant, png(fmt="PNG")).json()
    assert again["url"] == upload(client, tenant, png(fmt="PNG")).json()["url"]  # content-hash name
    assert upload(client, tenant, png(color="#FF0000")).json()["url"] != again["url"]  # new banner, new URL


def test_a_php_file_renamed_png_is_refused(client, tenant):
    r = upload(client, tenant, b"<?php system($_GET['c']); ?>\n", name="banner.png")
    assert r.status_code == 422
    assert "not a PNG, JPG or GIF" in r.json()["error"]["message"]


def test_a_50_megapixel_image_is_refused_before_decoding(client, tenant):
    buf = io.BytesIO()
    Image.new("1", (10000, 5000)).save(buf, "PNG")  # 50 MP, a few KB compressed
    r = upload(client, tenant, buf.getvalue())
    assert r.status_code == 422
    assert "10000 × 5000 px" in r.json()["error"]["message"]


def test_a_truncated_gif_is_refused(client, tenant):
    buf = io.BytesIO()
    Image.effect_noise((300, 100), 64).convert("P").save(buf, "GIF")
    data = buf.getvalue()
    r = upload(client, tenant, data[: len(data) // 2], name="b.gif")
    assert r.status_code == 422
    assert "truncated or damaged" in r.json()["error"]["message"]


def test_oversized_files_and_empty_files_are_refused(client, tenant):
    assert "limit is 1 MB" in upload(client, tenant, b"\x89PNG" + b"0" * 1_100_000).json()["error"]["message"]
    assert "empty" in upload(client, tenant, b"").json()["error"]["message"]


def test_campaign_crud_states_and_validation(client, tenant):
    h = tenant.headers(Role.comms)
    c = make_campaign(client, tenant, "spring", state="draft")
    assert c["state"] == "draft" and c["variants"][0]["key"] == "a"
    dest = c["variants"][0]["destination"]
    q = parse_qs(urlsplit(dest).query)
    assert q["utm_source"] == ["email-signature"] and q["utm_campaign"] == ["spring"] and q["utm_content"] == ["a"]
    r = client.patch(f"/api/campaigns/{c['id']}", json={"state": "scheduled", "utm": {"utm_source": "sig"}}, headers=h)
    assert r.json()["state"] == "active"
    assert "utm_source=sig" in r.json()["variants"][0]["destination"]
    future = make_campaign(client, tenant, "later", days=(3, 10))
    assert future["state"] == "scheduled"
    past = make_campaign(client, tenant, "over", days=(-10, -1))
    assert past["state"] == "ended"
    assert client.delete(f"/api/campaigns/{c['id']}", headers=h).status_code == 409
    draft = make_campaign(client, tenant, "throwaway", state="draft")
    assert client.delete(f"/api/campaigns/{draft['id']}", headers=h).status_code == 204
    bad = dict(name="x", banner_id=1, alt="x", starts_at="2026-01-01T00:00:00")
    for body, status in (
        (dict(bad, destination_url="https://a.example"), 422),  # naive datetime
        (dict(bad, destination_url="javascript:alert(1)", starts_at="2026-01-01T00:00:00Z"), 422),
        (
            dict(
                bad,
                destination_url="https://a.example",
                starts_at="2026-01-01T00:00:00Z",
                ends_at="2025-01-01T00:00:00Z",
            ),
            422,
        ),
    ):
        assert client.post("/api/campaigns", json=body, headers=h).status_code == status
    assert (
        client.post(
            "/api/campaigns",
            json=dict(bad, name="spring", destination_url="https://a.example", starts_at="2026-01-01T00:00:00Z"),
            headers=h,
        ).status_code
        == 409
    )
    states = {x["name"]: x["state"] for x in client.get("/api/campaigns", headers=h).json()}
    assert states == {"spring": "active", "later": "scheduled", "over": "ended"}
    assert [x["name"] for x in client.get("/api/campaigns?state=ended", headers=h).json()] == ["over"]


def test_who_sees_what_follows_audiences_and_the_default(client, tenant, db):
    h = tenant.headers(Role.comms)
    sales, eng, vip = add_employees(
        db,
        tenant.org_id,
        [
            ("s@acme.example", "Sales", "Paris", []),
            ("e@acme.example", "Engineering", "Lyon", []),
            ("v@acme.example", "Engineering", "Lyon", ["vip"]),
        ],
    )
    only_sales = make_campaign(client, tenant, "sales", audience={"departments": ["Sales"]})
    vip_c = make_campaign(client, tenant, "vip", audience={"groups": ["vip"]}, priority=5)
    fallback = make_campaign(client, tenant, "brand", audience={"everyone": False}, days=(-1, None))
    rot = client.get("/api/campaigns/rotation", headers=h).json()
    by = {p["employee_id"]: p for p in rot["placements"]}
    assert by[sales]["campaign_id"] == only_sales["id"]
    assert by[vip]["campaign_id"] == vip_c["id"]
    assert by[eng]["campaign_id"] is None
    client.put("/api/campaign-settings", json={"default_campaign_id": fallback["id"]}, headers=h)
    rot = client.get("/api/campaigns/rotation", params={"employee_id": eng}, headers=h).json()
    assert rot["placements"][0]["campaign_id"] == fallback["id"] and rot["placements"][0]["is_default"]
    # previewable for any date: next month the sales campaign has not ended, in a year it has
    later = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    rot = client.get("/api/campaigns/rotation", params={"at": later, "employee_id": sales}, headers=h).json()
    assert rot["placements"][0]["campaign_id"] == fallback["id"]
    assert client.get("/api/campaigns/rotation", params={"at": "2026-01-01T00:00:00"}, headers=h).status_code == 422


def test_the_signature_carries_the_banner_and_its_image_counts_loads(client, tenant, db):
    use_default_template(client, tenant)
    (emp,) = add_employees(db, tenant.org_id, [("ann@acme.example", "Sales", "Paris", [])])
    make_campaign(client, tenant, "spring")
    html1 = client.get(f"/api/employees/{emp}/signature?format=html", headers=tenant.headers(Role.it)).text
    html2 = client.get(f"/api/employees/{emp}/signature?format=html", headers=tenant.headers(Role.it)).text
    assert html1 == html2  # idempotent minting: identical HTML, identical content hash
    img = re.search(r'src="https://relais\.test/i/([\w-]+)"', html1)
    href = re.search(r'href="https://relais\.test/c/([\w-]+)"', html1)
    assert img and href, html1
    assert 'alt="spring banner"' in html1
    r = client.get(f"/i/{img.group(1)}", headers={"user-agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/124"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "immutable" in r.headers["cache-control"]
    assert client.head(f"/i/{img.group(1)}").status_code == 200
    with Session(db) as s:
        loads = s.exec(select(Impression)).all()
        assert len(loads) == 1 and loads[0].employee_id == emp  # HEAD is not a load
        link = s.exec(select(TrackedLink).where(TrackedLink.token == href.group(1))).one()
        assert "utm_campaign=spring" in link.destination and link.employee_id == emp
    assert client.get(f"/c/{img.group(1)}").status_code == 404  # an image token is not a click link


def test_rotation_fingerprint_changes_only_when_placements_change(client, tenant, db):
    add_employees(db, tenant.org_id, [(f"p{i}@acme.example", "Sales", "Paris", []) for i in range(5)])
    c = make_campaign(client, tenant, "one", days=(-1, 20))
    now = datetime.now(UTC)
    with Session(db) as s:
        fp1 = rotation_fingerprint(s, org_id=tenant.org_id, at=now)
        assert fp1 == rotation_fingerprint(s, org_id=tenant.org_id, at=now + timedelta(seconds=1))
        change = next_rotation_change(s, org_id=tenant.org_id, after=now)
        assert now < change <= now + timedelta(days=7)
    client.patch(
        f"/api/campaigns/{c['id']}",
        json={"variants": [{"banner_id": c["variants"][0]["banner_id"], "alt": "new alt"}]},
        headers=tenant.headers(Role.comms),
    )
    with Session(db) as s:
        assert rotation_fingerprint(s, org_id=tenant.org_id, at=now) != fp1
        before_end = rotation_fingerprint(s, org_id=tenant.org_id, at=now + timedelta(days=19))
        after_end = rotation_fingerprint(s, org_id=tenant.org_id, at=now + timedelta(days=21))
        assert before_end != after_end


def test_ab_variants_split_employees(client, tenant, db):
    ids = add_employees(db, tenant.org_id, [(f"ab{i}@acme.example", "Sales", "Paris", []) for i in range(200)])
    b1 = upload(client, tenant, png(color="#111111")).json()["id"]
    b2 = upload(client, tenant, png(color="#222222")).json()["id"]
    now = datetime.now(UTC)
    r = client.post(
        "/api/campaigns",
        headers=tenant.headers(Role.comms),
        json={
            "name": "ab",
            "destination_url": "https://acme.example/ab",
            "state": "scheduled",
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "variants": [{"banner_id": b1, "alt": "A"}, {"banner_id": b2, "alt": "B", "weight": 3}],
        },
    )
    assert r.status_code == 201, r.text
    placements = client.get("/api/campaigns/rotation", headers=tenant.headers(Role.comms)).json()["placements"]
    keys = [p["variant_key"] for p in placements if p["employee_id"] in ids]
    assert 25 <= keys.count("a") <= 75 and keys.count("a") + keys.count("b") == 200


def test_a_variant_may_open_its_own_page_and_only_an_http_one(client, tenant, db):
    add_employees(db, tenant.org_id, [(f"v{i}@acme.example", "Sales", "Paris", []) for i in range(3)])
    c = make_campaign(client, tenant, "pages", days=(-1, 20))
    banner = c["variants"][0]["banner_id"]
    now = datetime.now(UTC)
    with Session(db) as s:
        before = rotation_fingerprint(s, org_id=tenant.org_id, at=now)
    bad = client.patch(
        f"/api/campaigns/{c['id']}",
        json={"variants": [{"banner_id": banner, "alt": "A", "destination_url": "javascript:alert(1)"}]},
        headers=tenant.headers(Role.comms),
    )
    assert bad.status_code == 422 and "http(s)" in bad.json()["error"]["message"]
    r = client.patch(
        f"/api/campaigns/{c['id']}",
        json={"variants": [{"banner_id": banner, "alt": "A", "destination_url": "https://acme.example/other?x=1"}]},
        headers=tenant.headers(Role.comms),
    )
    assert r.status_code == 200, r.text
    v = r.json()["variants"][0]
    assert v["destination_url"] == "https://acme.example/other?x=1"
    assert v["destination"].startswith("https://acme.example/other?x=1&utm_source=")
    with Session(db) as s:  # a new page is a new banner link: the deployments re-render
        assert rotation_fingerprint(s, org_id=tenant.org_id, at=now) != before
