"""The campaign page's A/B variants editor and figures, and "who sees what on date X": every route through a
signed-in browser client, with the bad input each refuses (inline errors, 404 for another organisation's ids,
403 without the CSRF token)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from service.app import create_app
from service.clicks.models import Click, Impression, Verdict
from service.links import resolve
from service.models import Organisation, Role
from signatures.campaigns.ab_test import Arm, chi2_sf, compare
from signatures.campaigns.models import CampaignVariant
from signatures.campaigns.service import Rotation
from signatures.campaigns.variant_form import VariantRow, add_row, remove_row, shares_of, with_keys
from tests.campaign_helpers import add_employees, make_campaign, png, upload, use_default_template
from tests.conftest import make_tenant
from tests.page_support import csrf_of, make_user, signed_in_client


@pytest.fixture
def org(db, settings, tenant):
    """An organisation in Paris time with a template, six people and an active 'Spring' campaign for everyone."""
    from fastapi.testclient import TestClient

    with Session(db) as s:
        s.get(Organisation, tenant.org_id).timezone = "Europe/Paris"
        s.commit()
    app = create_app(settings=settings, engine=db)
    api = TestClient(app)
    use_default_template(api, tenant)
    people = add_employees(db, tenant.org_id, [
        ("ana@acme.example", "Sales", "Paris", []), ("ben@acme.example", "Sales", "Lyon", []),
        ("cleo@acme.example", "Marketing", "Paris", []), ("dan@acme.example", "Ops", "Lyon", []),
        ("eva@acme.example", "Ops", "Paris", []), ("fay@acme.example", "Legal", "Nice", []),
    ])  # fmt: skip
    spring = make_campaign(api, tenant, "spring", audience={"departments": ["Sales", "Marketing", "Ops"]})
    make_user(db, tenant.org_id, Role.comms)
    client = signed_in_client(app, "comms@acme.example")
    return app, api, client, tenant, people, spring


def _token(client, path="/app/campaigns/new") -> str:
    return csrf_of(client.get(path).text)


def _form(campaign: dict, variants: list[dict], **over) -> dict:
    data = {
        "name": campaign["name"], "destination_url": campaign["destination_url"], "state": "scheduled",
        "starts_at": "2026-01-01T09:00", "ends_at": "", "weight": "1", "priority": "0",
        "departments": ["Sales", "Marketing", "Ops"],
    }  # fmt: skip
    for i, v in enumerate(variants):
        data.update({f"v-{i}-{k}": str(val) for k, val in v.items()})
    return {**data, **over}


# ---------------------------------------------------------------- the variants editor


def test_adding_and_removing_variants_evens_the_shares_and_keeps_each_key(org):
    _app, _api, client, _tenant, _people, spring = org
    token = _token(client)
    first = {"key": "a", "banner_id": spring["variants"][0]["banner_id"], "alt": "Spring", "url": "", "share": "100"}
    r = client.post(
        "/app/campaigns-variants",
        data={**{f"v-0-{k}": v for k, v in first.items()}, "variant_add": "1"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert r.status_code == 200 and r.headers["hx-trigger"] == "variants-changed"
    assert 'name="v-1-key" value="b"' in r.text and r.text.count('name="v-0-share" type="number" value="50"') == 1
    assert 'value="Spring"' in r.text  # what was typed survives the swap
    rows = add_row(add_row([VariantRow(key="a", share="100")]))
    assert [r.key for r in rows] == ["a", "b", "c"] and [r.share for r in rows] == ["34", "33", "33"]
    left = remove_row(rows, 0)
    assert [r.key for r in left] == ["b", "c"] and [r.share for r in left] == ["50", "50"]
    assert [r.key for r in with_keys(add_row(left))] == ["b", "c", "a"]  # a new row takes a free letter
    r = client.post(
        "/app/campaigns-variants",
        data={"v-0-key": "a", "v-0-share": "50", "v-1-key": "b", "v-1-share": "50", "variant_remove": "0"},
        headers={"X-CSRF-Token": token},
    )
    assert 'name="v-0-key" value="b"' in r.text and "v-1-key" not in r.text and 'value="100"' in r.text
    assert "Remove variant" not in r.text  # the last variant can't be removed


def test_stored_weights_show_as_shares_adding_up_to_100():
    assert shares_of([1, 1, 1]) == [34, 33, 33] and sum(shares_of([3, 7, 11])) == 100
    assert shares_of([30, 70]) == [30, 70]


def test_saving_two_variants_stores_shares_pages_and_keys(org, db):
    _app, api, client, tenant, _people, spring = org
    b2 = upload(api, tenant, png(color="#AA3300")).json()["id"]
    path = f"/app/campaigns/{spring['id']}"
    page = client.get(path)
    assert page.status_code == 200 and 'name="v-0-key" value="a"' in page.text
    variants = [
        {"key": "a", "banner_id": spring["variants"][0]["banner_id"], "alt": "Spring A", "url": "", "share": 30},
        {"key": "", "banner_id": b2, "alt": "Spring B", "url": "https://acme.example/spring-b", "share": 70},
    ]
    r = client.post(path, data={**_form(spring, variants), "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303, r.text[-800:]
    saved = api.get(f"/api/campaigns/{spring['id']}", headers=tenant.headers(Role.comms)).json()["variants"]
    assert [(v["key"], v["weight"], v["alt"]) for v in saved] == [("a", 30, "Spring A"), ("b", 70, "Spring B")]
    assert saved[1]["destination_url"] == "https://acme.example/spring-b"
    b_page = saved[1]["destination"]
    assert b_page.startswith("https://acme.example/spring-b?") and "utm_content=b" in b_page
    assert saved[0]["destination"].startswith(spring["destination_url"])  # a keeps the campaign's page
    edit = client.get(path).text
    assert 'value="30"' in edit and 'value="70"' in edit and "Figures per variant" in edit
    assert "One variant" not in edit and "No click rate to compare yet" in edit  # nothing loaded yet


def test_the_live_preview_shows_each_variant_in_a_frame(org):
    _app, api, client, tenant, people, spring = org
    b2 = upload(api, tenant, png(color="#00AA33")).json()["id"]
    token = _token(client)
    variants = [
        {"key": "a", "banner_id": spring["variants"][0]["banner_id"], "alt": "Alt A", "url": "", "share": 50},
        {"key": "b", "banner_id": b2, "alt": "Alt B", "url": "https://acme.example/b", "share": 50},
    ]
    r = client.post(
        "/app/campaigns-live",
        data={**_form(spring, variants), "preview_employee": str(people[0])},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200 and r.text.count("<iframe") == 2 and "variant b" in r.text
    src = re.findall(r'src="(/app/campaigns-preview\?[^"]+)"', r.text)[1].replace("&amp;", "&")
    frame = client.get(src)
    assert frame.status_code == 200 and "sandbox" in frame.headers["content-security-policy"]
    assert 'alt="Alt B"' in frame.text and 'href="https://acme.example/b"' in frame.text
    assert "Ana" in frame.text  # the chosen employee's real signature


def test_bad_variants_get_inline_errors_and_nothing_is_saved(org, db):
    _app, api, client, tenant, _people, spring = org
    other = make_tenant(db, slug="other")
    foreign = upload(api, other, png(color="#123456")).json()["id"]
    path = f"/app/campaigns/{spring['id']}"
    token = _token(client, path)
    banner = spring["variants"][0]["banner_id"]

    def post(variants):
        return client.post(path, data={**_form(spring, variants), "csrf": token}, follow_redirects=False)

    r = post([{"key": "a", "banner_id": banner, "alt": "A", "share": 60},
              {"key": "b", "banner_id": banner, "alt": "B", "share": 60}])  # fmt: skip
    assert r.status_code == 422 and "must add up to 100 %; they add up to 120 %" in r.text
    r = post([{"key": "a", "banner_id": banner, "alt": "A", "share": 50},
              {"key": "b", "banner_id": banner, "alt": "B", "share": 50, "url": "javascript:alert(1)"}])  # fmt: skip
    assert r.status_code == 422 and 'id="e-v-1-url"' in r.text and "http(s) address" in r.text
    assert 'id="f-v-1-url"' in r.text and 'aria-invalid="true"' in r.text
    r = post([{"key": "a", "banner_id": banner, "alt": "", "share": 50}, {"key": "b", "alt": "B", "share": 50}])
    assert r.status_code == 422 and 'id="e-v-0-alt"' in r.text and 'id="e-v-1-banner_id"' in r.text
    r = client.post(path, data={**_form(spring, [{"key": "a", "banner_id": banner, "alt": "A", "share": 0}]),
                                "name": "", "csrf": token})  # fmt: skip
    assert r.status_code == 422 and 'id="e-v-0-share"' in r.text and 'id="e-name"' in r.text  # every error at once
    r = post([{"key": "a", "banner_id": foreign, "alt": "A", "share": 100}])
    assert r.status_code == 422 and "alert-error" in r.text  # another organisation's banner: refused, said above
    with Session(db) as s:
        rows = s.exec(select(CampaignVariant).where(CampaignVariant.campaign_id == spring["id"])).all()
        assert [(v.key, v.alt, v.banner_id) for v in rows] == [("a", "spring banner", banner)]


def test_pages_refuse_missing_csrf_and_other_organisations_campaigns(org, db):
    app, api, client, tenant, people, spring = org
    path = f"/app/campaigns/{spring['id']}"
    variants = [{"key": "a", "banner_id": spring["variants"][0]["banner_id"], "alt": "A", "share": 100}]
    assert client.post(path, data=_form(spring, variants), follow_redirects=False).status_code == 403
    assert client.post("/app/campaigns-variants", data={"variant_add": "1"}).status_code == 403
    upload_r = client.post("/app/campaigns-banner?variant=1", files={"banner": ("b.png", png(), "image/png")})
    assert upload_r.status_code == 403
    other = make_tenant(db, slug="other")
    make_user(db, other.org_id, Role.comms, email="comms@other.example")
    outsider = signed_in_client(app, "comms@other.example")
    token = _token(outsider)
    assert outsider.get(path).status_code == 404
    r = outsider.post(path, data={**_form(spring, variants), "csrf": token}, follow_redirects=False)
    assert r.status_code == 404
    assert outsider.get(f"/app/campaigns-who?campaign_id={spring['id']}").status_code == 404
    frame = outsider.get(f"/app/campaigns-who/frame?employee_id={people[0]}&at=2027-01-01T12:00:00%2B00:00")
    assert frame.status_code == 404 and "Ana" not in frame.text


def test_an_upload_answers_that_variants_picker(org):
    _app, _api, client, _tenant, _people, _spring = org
    token = _token(client)
    r = client.post(
        "/app/campaigns-banner?variant=1",
        files={"banner": ("b.png", png(color="#010203"), "image/png")},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200 and 'id="banner-picker-1"' in r.text and r.headers["hx-trigger"] == "variants-changed"
    assert re.search(r'name="v-1-banner_id" value="\d+" checked', r.text)


# ---------------------------------------------------------------- A/B figures


def _serve_and_count(db, settings, org_id, clicks_by_key: dict[str, tuple[int, int]]):
    """Render every employee's banner (minting its links), then record (image loads, human clicks) per variant
    on the links of one employee who carries it."""
    now = datetime.now(UTC)
    with Session(db) as s:
        from service.directory.models import Employee

        rotation = Rotation(s, org_id=org_id, at=now)
        seen: dict[str, int] = {}
        for emp in s.exec(select(Employee).where(Employee.org_id == org_id)).all():
            pick = rotation.pick(emp)
            banner = rotation.banner_for(emp, base_settings=settings)
            if pick is None or banner is None or pick.variant.key in seen:
                continue
            link = resolve(s, banner.href.rsplit("/", 1)[1])
            seen[pick.variant.key] = link.id
            loads, human = clicks_by_key.get(pick.variant.key, (0, 0))
            facts = dict(org_id=org_id, link_id=link.id, employee_id=emp.id, campaign_id=link.campaign_id)
            for i in range(loads):
                s.add(
                    Impression(**facts, occurred_at=now - timedelta(minutes=i + 1), verdict=Verdict.human, visitor="v")
                )
            for i in range(human):
                at = now - timedelta(minutes=i + 1)
                s.add(Click(**facts, channel=link.channel, occurred_at=at, verdict=Verdict.human, visitor=f"h{i}"))
            # a scanner's hit: counted as raw traffic, never as a click
            s.add(Click(**facts, channel=link.channel, occurred_at=now, verdict=Verdict.scanner, reasons="ua_scanner",
                        visitor="scan"))  # fmt: skip
        s.commit()
    return seen


def test_the_campaign_page_shows_each_variants_clicks_rate_and_verdict(org, db, settings):
    _app, api, client, tenant, _people, spring = org
    b2 = upload(api, tenant, png(color="#770077")).json()["id"]
    r = api.patch(f"/api/campaigns/{spring['id']}", headers=tenant.headers(Role.comms), json={"variants": [
        {"banner_id": spring["variants"][0]["banner_id"], "alt": "A"}, {"banner_id": b2, "alt": "B"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    seen = _serve_and_count(db, settings, tenant.org_id, {"a": (40, 2), "b": (40, 3)})
    assert set(seen) == {"a", "b"}  # five people in the audience: both variants are served
    page = client.get(f"/app/campaigns/{spring['id']}").text
    rows = re.findall(r'<tr><th scope="row">(\w)</th><td class="num">(\d+)</td><td class="num">(\d+)</td>', page)
    assert rows == [("a", "2", "40"), ("b", "3", "40")]
    assert "Too few clicks to tell" in page and "Variant b leads so far" in page
    fr = client.get(f"/app/campaigns/{spring['id']}", headers={"Accept-Language": "fr"}).text
    assert "Trop peu de clics" in fr


def test_the_significance_test_and_its_thresholds():
    assert round(chi2_sf(3.841, 1), 3) == 0.05 and round(chi2_sf(5.991, 2), 3) == 0.05
    assert round(chi2_sf(7.815, 3), 3) == 0.05 and round(chi2_sf(11.070, 5), 3) == 0.05
    v = compare([Arm("a", 120, 4000), Arm("b", 160, 4000)])  # 3.0 % against 4.0 %
    assert (v.outcome, v.test, v.leader, round(v.p_value, 4)) == ("significant", "z", "b", 0.015)
    v = compare([Arm("a", 120, 4000), Arm("b", 130, 4000)])
    assert v.outcome == "chance" and v.p_value > 0.5
    assert compare([Arm("a", 2, 100), Arm("b", 3, 100)]).outcome == "too_few"
    assert compare([Arm("a", 5, 0), Arm("b", 3, 100)]).outcome == "no_loads"
    assert compare([Arm("a", 120, 100), Arm("b", 3, 100)]).outcome == "no_loads"  # images blocked
    assert compare([Arm("a", 1, 10)]).outcome == "single"
    three = compare([Arm("a", 100, 4000), Arm("b", 100, 4000), Arm("c", 160, 4000)])
    assert three.test == "chi2" and three.outcome == "significant" and three.leader == "c"


# ---------------------------------------------------------------- who sees what


def test_who_sees_what_shows_real_signatures_with_the_banner_and_why(org, db):
    _app, api, client, tenant, people, spring = org
    future = datetime.now(UTC) + timedelta(days=90)
    summer = make_campaign(api, tenant, "summer", days=(80, 120), audience={"offices": ["Nice", "Lyon"]},
                           priority=1)  # fmt: skip
    day = future.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")).date().isoformat()
    r = client.get(f"/app/campaigns-who?date={day}&time=12:00")
    assert r.status_code == 200, r.text[-800:]
    # spring ended at +30 days: summer (Nice and Lyon) is the only live one; the others see no banner
    assert ">summer</a>" in r.text and ">spring</a>" not in r.text
    assert "Live but served to nobody" not in r.text
    assert "the only live campaign of the highest priority (1)" in r.text
    assert "No banner: no live campaign" in r.text
    assert "Audience: any of: offices Lyon, Nice." in r.text or "Audience: any of: offices Nice, Lyon." in r.text
    frames = [f.replace("&amp;", "&") for f in re.findall(r'src="(/app/campaigns-who/frame\?[^"]+)"', r.text)]
    assert len(frames) == 6  # the sample: 6 of the 6 people
    with_banner = [client.get(f).text for f in frames]
    assert sum('alt="summer banner"' in f for f in with_banner) == 3  # ben (Lyon), dan (Lyon), fay (Nice)
    assert all("sandbox" in client.get(f).headers["content-security-policy"] for f in frames[:1])
    assert summer["variants"][0]["image_url"].rsplit("/", 1)[1] in "".join(with_banner)  # the asset, not /i/
    assert "/i/" not in "".join(with_banner) and "/c/" not in "".join(with_banner)  # a preview mints nothing
    today = client.get("/app/campaigns-who?department=Sales").text  # today: spring for Sales
    assert ">spring</a>" in today and "Sales" in today and "Marketing · " not in today
    narrowed = client.get(f"/app/campaigns-who?date={day}&campaign_id={spring['id']}").text
    assert "Fay" not in narrowed  # Legal is not in spring's audience
    assert client.get("/app/campaigns", headers={}).text.count('href="/app/campaigns-who"') == 1


def test_who_sees_what_refuses_a_bad_date_or_time_inline(org):
    _app, _api, client, _tenant, people, _spring = org
    r = client.get("/app/campaigns-who?date=2027-02-30")
    assert r.status_code == 422 and 'id="e-date"' in r.text and "YYYY-MM-DD" in r.text
    r = client.get("/app/campaigns-who?date=2027-02-01&time=25:00")
    assert r.status_code == 422 and 'id="e-time"' in r.text
    r = client.get("/app/campaigns-who?campaign_id=abc")
    assert r.status_code == 422 and 'id="e-campaign_id"' in r.text
    fr = client.get("/app/campaigns-who?date=nope", headers={"Accept-Language": "fr"})
    assert fr.status_code == 422 and "Qui voit quoi" in fr.text and "AAAA-MM-JJ" in fr.text
    frame = client.get(f"/app/campaigns-who/frame?employee_id={people[0]}&at=2027-01-01T12:00")
    assert frame.status_code == 422 and "time zone" in frame.text
