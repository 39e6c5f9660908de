"""The Outlook add-in endpoints: manifest and script, and the signature endpoint with tokens signed by the fake's
published keys (valid) or forged in the ways a validator must refuse."""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.db import session_scope
from service.directory.sync import DirectoryPerson, Listing, apply_listing
from tests.fakes.microsoft import FakeMicrosoft
from tests.ms_support import TENANT, connect, default_template, ms_settings

API_APP = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
ANN_OID = "0a0a0a0a-1111-2222-3333-444444444444"


@pytest.fixture
def fake():
    with FakeMicrosoft(tenant_id=TENANT) as f:
        yield f


@pytest.fixture
def addin(db, tenant, settings, fake):
    mss = ms_settings(settings, fake, addin_client_id=API_APP, addin_allowed_origins=["https://outlook.office.com"])
    connect(db, tenant.org_id, fake, mss)
    with session_scope(db) as s:
        apply_listing(s, org_id=tenant.org_id, source="microsoft", dry_run=False, listing=Listing(people=[
            DirectoryPerson(source_id=ANN_OID, email="ann@contoso.example", first_name="Ann", last_name="Lee",
                            title="Engineer"),
            DirectoryPerson(source_id=str(uuid.uuid4()), email="bob@contoso.example", first_name="Bob",
                            last_name="Stone"),
        ]))  # fmt: skip
    default_template(db, tenant.org_id)
    app = create_app(settings=mss, engine=db)
    with TestClient(app) as client:
        yield client


def get(client, token, kind="new", *, param="kind", **headers):
    return client.get(f"/addin/signature?{param}={kind}", headers={"Authorization": f"Bearer {token}", **headers})


def test_valid_token_gets_the_current_signature_for_new_and_reply(addin, fake):
    token = fake.issue_user_token(ANN_OID, aud=API_APP)
    new = get(addin, token)
    assert new.status_code == 200, new.text
    assert new.json()["kind"] == "new" and "Ann" in new.json()["html"] and "Engineer" in new.json()["html"]
    assert new.headers["cache-control"] == "no-store"
    reply = get(addin, token, "reply")
    assert reply.status_code == 200 and reply.json()["kind"] == "reply"
    assert reply.json()["html"] != new.json()["html"]  # the compact layout has a shorter reply signature
    assert get(addin, token, "forward").status_code == 422


def test_the_former_variant_parameter_still_works_for_cached_scripts(addin, fake):
    token = fake.issue_user_token(ANN_OID, aud=API_APP)
    reply = get(addin, token, "reply", param="variant")
    assert reply.status_code == 200 and reply.json()["kind"] == "reply"
    assert reply.json()["html"] == get(addin, token, "reply").json()["html"]
    assert get(addin, token, "new", param="variant").json()["kind"] == "new"
    both = addin.get("/addin/signature?kind=reply&variant=new", headers={"Authorization": f"Bearer {token}"})
    assert both.json()["kind"] == "reply"  # the current name wins


def test_user_found_by_preferred_username_when_oid_unknown(addin, fake):
    token = fake.issue_user_token(str(uuid.uuid4()), aud=API_APP, preferred_username="BOB@contoso.example")
    resp = get(addin, token)
    assert resp.status_code == 200 and "Bob" in resp.json()["html"]


@pytest.mark.parametrize(
    "case", ["expired", "audience", "tenant", "issuer", "wrong_key", "unsigned", "scope", "garbage", "missing"]
)
def test_bad_tokens_are_refused_with_401(addin, fake, case):
    now = time.time()
    token = {
        "expired": lambda: fake.issue_user_token(ANN_OID, aud=API_APP, exp=now - 600, iat=now - 4000, nbf=now - 4000),
        "audience": lambda: fake.issue_user_token(ANN_OID, aud=str(uuid.uuid4())),
        "tenant": lambda: fake.issue_user_token(ANN_OID, aud=API_APP, tid=str(uuid.uuid4())),
        "issuer": lambda: fake.issue_user_token(ANN_OID, aud=API_APP, iss=fake.issuer(str(uuid.uuid4()))),
        "wrong_key": lambda: fake.issue_wrong_key_token(ANN_OID, aud=API_APP),
        "unsigned": lambda: fake.issue_unsigned_token(ANN_OID, aud=API_APP),
        "scope": lambda: fake.issue_user_token(ANN_OID, aud=API_APP, scp="Mail.Read"),
        "garbage": lambda: "not.a.jwt",
        "missing": lambda: "",
    }[case]()
    resp = get(addin, token)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "unauthorized" and "html" not in resp.json()
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_unknown_user_is_404_and_keys_are_cached_then_refetched_on_rotation(addin, fake):
    assert get(addin, fake.issue_user_token(ANN_OID, aud=API_APP)).status_code == 200
    assert (
        get(
            addin, fake.issue_user_token(str(uuid.uuid4()), aud=API_APP, preferred_username="nobody@contoso.example")
        ).status_code
        == 404
    )
    assert fake.request_count("authority", path_contains="/keys") == 1  # cached across requests
    fake.rotate_signing_key()
    time.sleep(0.6)  # past the validator's minimum refetch interval
    assert get(addin, fake.issue_user_token(ANN_OID, aud=API_APP)).status_code == 200
    assert fake.request_count("authority", path_contains="/keys") == 2  # unknown kid → fetched again


def test_cors_for_the_add_in_origin(addin, fake):
    pre = addin.options(
        "/addin/signature",
        headers={
            "Origin": "https://outlook.office.com/",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "https://outlook.office.com"
    assert "Authorization" in pre.headers["access-control-allow-headers"]
    resp = get(addin, fake.issue_user_token(ANN_OID, aud=API_APP), Origin="https://outlook.office.com")
    assert resp.headers["access-control-allow-origin"] == "https://outlook.office.com"
    refused = get(addin, "x", Origin="https://outlook.office.com")
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"]
    evil = addin.options(
        "/addin/signature", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers


def test_manifest_script_page_and_icons(addin):
    resp = addin.get("/addin/manifest.xml")
    assert resp.status_code == 200
    root = ET.fromstring(resp.content)
    xml = resp.text
    assert root.tag.endswith("OfficeApp")
    assert 'LaunchEvent Type="OnNewMessageCompose" FunctionName="onNewMessageCompose"' in xml
    assert '<Runtime resid="Autorun">' in xml and '<SourceLocation resid="Autorun"/>' in xml
    assert "https://relais.test/addin/launchevent.js" in xml and f"<Id>{API_APP}</Id>" in xml
    js = addin.get("/addin/launchevent.js")
    assert js.status_code == 200 and "setSignatureAsync" in js.text
    assert 'Office.actions.associate("onNewMessageCompose"' in js.text
    assert '"/addin/signature?kind=" + kind' in js.text and "variant" not in js.text
    assert "https://relais.test/addin/signature" in js.text.replace('" + "', "") or "https://relais.test" in js.text
    assert "async " not in js.text and "await " not in js.text  # classic Outlook: ES2016
    page = addin.get("/addin/launchevent.html")
    assert "office.js" in page.text and "/addin/launchevent.js" in page.text
    icon = addin.get("/addin/icon-64.png")
    assert icon.status_code == 200 and icon.content.startswith(b"\x89PNG")
    assert addin.get("/addin/icon-7.png").status_code == 404


def test_classic_outlook_allow_list_names_the_event_script(client, settings):
    r = client.get("/.well-known/microsoft-officeaddins-allowed.json")
    assert r.status_code == 200
    assert r.json() == {"allowed": [f"{settings.public_base_url}/addin/launchevent.js"]}


# ---------------------------------------------------------------- identity from verified claims only


def test_the_manifest_audience_form_is_accepted(addin, fake):
    """The manifest's WebApplicationInfo names api://<public host>/<client id>: tokens for it are accepted."""
    manifest = addin.get("/addin/manifest.xml")
    resource = manifest.text.split("<Resource>")[1].split("</Resource>")[0]
    assert resource == f"api://relais.test/{API_APP}"
    assert get(addin, fake.issue_user_token(ANN_OID, aud=resource)).status_code == 200
    assert get(addin, fake.issue_user_token(ANN_OID, aud=f"api://evil.example/{API_APP}")).status_code == 401


def test_the_unverified_email_claim_never_identifies_a_user(addin, fake):
    token = fake.issue_user_token(str(uuid.uuid4()), aud=API_APP, extra_claims={"email": "bob@contoso.example"})
    assert get(addin, token).status_code == 404


def test_a_guest_is_not_identified_by_their_names(addin, fake):
    token = fake.issue_user_token(
        str(uuid.uuid4()), aud=API_APP, preferred_username="bob@contoso.example",
        extra_claims={"idp": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/"},
    )  # fmt: skip
    assert get(addin, token).status_code == 404
