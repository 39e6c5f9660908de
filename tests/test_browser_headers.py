"""Browser-facing hardening: security headers on every HTML and asset response, CSRF on the /u/ form, and
the preferences token never in a Referer."""

import re
import secrets

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from newsletter.models import NewsletterPreference
from service.app import create_app
from service.assets import store_asset
from tests.campaign_helpers import add_employees, png


def _script_src(csp: str) -> str:
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if " " in d.strip())
    return directives.get("script-src", directives.get("default-src", ""))


def _check_html(r):
    h = r.headers
    csp = h["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in _script_src(csp)
    assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"
    assert h["strict-transport-security"].startswith("max-age=")


@pytest.fixture
def token(db, tenant):
    (emp,) = add_employees(db, tenant.org_id, [("ann@acme.example", "Sales", "Paris", [])])
    value = secrets.token_urlsafe(16)
    with Session(db) as s:
        s.add(NewsletterPreference(org_id=tenant.org_id, employee_id=emp, token=value))
        s.commit()
    return value


def test_html_pages_carry_the_headers(client, token, settings):
    _check_html(client.get(f"/u/{token}"))
    _check_html(client.get("/c/unknowntoken"))
    asset = store_asset(settings, png(), "png")
    r = client.get(f"/assets/{asset}")
    assert r.status_code == 200 and "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_api_docs_allow_only_their_own_inline_script_by_hash(client):
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "'unsafe-inline'" not in _script_src(csp), path
        assert ("'sha256-" in _script_src(csp)) == ("<script>" in r.text.replace(" ", "")), path
        assert "frame-ancestors 'none'" in csp


def test_json_gets_nosniff_and_hsts_and_http_gets_no_hsts(client, tenant, db, settings):
    r = client.get("/api/organisation", headers=tenant.headers())
    assert r.headers["x-content-type-options"] == "nosniff" and "strict-transport-security" in r.headers
    plain = settings.model_copy(update={"public_base_url": "http://127.0.0.1:8000"})
    with TestClient(create_app(settings=plain, engine=db)) as c:
        assert "strict-transport-security" not in c.get("/health").headers


def test_the_preferences_form_needs_its_anti_forgery_value(client, token):
    page = client.get(f"/u/{token}")
    assert '<meta name="referrer" content="no-referrer">' in page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    assert client.post(f"/u/{token}", data={"action": "untrack"}).status_code == 403
    assert client.post(f"/u/{token}", data={"action": "untrack", "csrf": "0" * 32}).status_code == 403
    forged = client.post(f"/u/{token}", data={"action": "untrack", "csrf": csrf},
                         headers={"Origin": "https://evil.example"})  # fmt: skip
    assert forged.status_code == 403
    cross = client.post(
        f"/u/{token}", data={"action": "untrack", "csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    same = client.post(
        f"/u/{token}", data={"action": "untrack", "csrf": csrf}, headers={"Origin": "https://relais.test"}
    )
    assert same.status_code == 200 and same.headers["referrer-policy"] == "no-referrer"


def test_rfc8058_one_click_from_the_mailbox_provider_still_works(client, token):
    r = client.post(f"/u/{token}", content="List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 200 and "no longer receive the internal newsletter" in r.text  # no Accept-Language: English
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}
    forged = client.post(f"/u/{token}", content="List-Unsubscribe=One-Click", headers=headers)
    assert forged.status_code == 403
