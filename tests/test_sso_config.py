"""Single sign-on settings: the API (admin keys) and the Administration page save the same thing, check it, and
never give the client secret back."""

import html

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from service.models import Role
from service.sso.models import SsoConfig, SsoDomain
from tests.conftest import make_tenant
from tests.page_support import csrf_of, make_user, signed_in_client
from tests.sso_support import TENANT_ID

GROUP = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def body(**overrides) -> dict:
    return {
        "provider": "microsoft", "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e", "client_secret": "Sec8Q~x" * 5,
        "tenant_id": TENANT_ID.upper(), "domains": ["Acme.example", "@acme.example", "acme.fr"],
        "group_roles": [{"group": GROUP, "role": "it"}], "default_role": "comms", **overrides,
    }  # fmt: skip


def test_put_then_get_never_returns_the_secret(client, tenant, db):
    r = client.put("/api/sso", json=body(), headers=tenant.headers())
    assert r.status_code == 200, r.text
    public = r.json()
    assert public["client_secret_set"] is True and "Sec8Q~x" not in r.text
    assert public["tenant_id"] == TENANT_ID and public["domains"] == ["acme.example", "acme.fr"]
    assert public["redirect_uri"] == "https://relais.test/sign-in/sso/callback"
    assert client.get("/api/sso", headers=tenant.headers()).json() == public
    # the secret can be left out to keep it
    again = client.put("/api/sso", json=body(client_secret=None, default_role="deny"), headers=tenant.headers())
    assert again.status_code == 200 and again.json()["client_secret_set"] is True
    with Session(db) as s:
        row = s.exec(select(SsoConfig)).one()
        assert row.client_secret_encrypted and "Sec8Q~x" not in row.client_secret_encrypted
        assert row.default_role == "deny"
        assert sorted(d.domain for d in s.exec(select(SsoDomain))) == ["acme.example", "acme.fr"]


def test_bad_settings_are_refused_with_a_sentence(client, tenant):
    cases = [
        (body(tenant_id="contoso"), "Directory (tenant) id"),
        (body(domains=["not a domain"]), "example.com"),
        (body(domains=[]), "domains"),
        (body(group_roles=[{"group": "Marketing", "role": "comms"}]), "object id"),
        (body(default_role="admin"), "default_role"),
        (body(group_roles=[{"group": GROUP, "role": "employee"}]), "group_roles"),
        (body(provider="google", tenant_id=""), "Google ID tokens carry no groups"),
        (body(client_secret=None), "client secret"),
    ]
    for payload, words in cases:
        r = client.put("/api/sso", json=payload, headers=tenant.headers())
        assert r.status_code == 422, (payload, r.text)
        assert words in r.text, (words, r.text)
        assert set(r.json()["error"]) >= {"code", "message"}
    assert client.get("/api/sso", headers=tenant.headers()).status_code == 404


def test_a_domain_belongs_to_one_organisation(client, tenant, db):
    other = make_tenant(db, slug="beta")
    assert client.put("/api/sso", json=body(), headers=tenant.headers()).status_code == 200
    r = client.put("/api/sso", json=body(domains=["acme.fr"]), headers=other.headers())
    assert r.status_code == 409 and r.json()["error"]["details"] == {"domain": "acme.fr"}
    make_user(db, other.org_id, Role.comms, email="someone@beta.example")
    r = client.put("/api/sso", json=body(domains=["acme.example", "beta.example"]), headers=tenant.headers())
    assert r.status_code == 409 and "another organisation's users" in r.text


def test_google_settings_and_delete(client, tenant, db):
    google = body(provider="google", tenant_id="", group_roles=[], client_id="123-abc.apps.googleusercontent.com")
    r = client.put("/api/sso", json=google, headers=tenant.headers())
    assert r.status_code == 200 and r.json()["tenant_id"] == "" and r.json()["group_roles"] == []
    assert client.delete("/api/sso", headers=tenant.headers()).status_code == 204
    assert client.get("/api/sso", headers=tenant.headers()).status_code == 404
    with Session(db) as s:
        assert s.exec(select(SsoDomain)).all() == []
    assert client.delete("/api/sso", headers=tenant.headers()).status_code == 404


def test_only_admin_keys(client, tenant):
    for role in (Role.comms, Role.it):
        assert client.put("/api/sso", json=body(), headers=tenant.headers(role)).status_code == 403
        assert client.get("/api/sso", headers=tenant.headers(role)).status_code == 403


# ---------------------------------------------------------------- the Administration page


def test_the_page_guides_and_saves(app, tenant, db):
    make_user(db, tenant.org_id, Role.admin, email="admin@acme.example")
    client = signed_in_client(app, "admin@acme.example")
    page = client.get("/app/admin/sso")
    assert page.status_code == 200
    for words in ("https://relais.test/sign-in/sso/callback", "openid, email and profile", "App registrations",
                  "OAuth client ID", "Google ID tokens carry no groups", "Not set."):  # fmt: skip
        assert words in page.text, words
    assert 'href="/app/admin/sso" aria-current="page"' in page.text  # in the Administration navigation
    form = {
        "csrf": csrf_of(page.text), "provider": "microsoft", "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
        "client_secret": "Page8Q~secret-value", "tenant_id": TENANT_ID, "domains": "acme.example\nacme.fr",
        "group_roles": f"{GROUP} comms\n", "default_role": "deny", "enabled": "on",
    }  # fmt: skip
    saved = client.post("/app/admin/sso", data=form, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/app/admin/sso?toast=saved"
    page = client.get("/app/admin/sso")
    assert "Page8Q~secret-value" not in page.text and "Set. Leave empty to keep the stored one." in page.text
    assert f"{GROUP} comms" in page.text and "acme.fr" in page.text
    with Session(db) as s:
        row = s.exec(select(SsoConfig)).one()
        assert row.allow_passwords is False and row.group_roles == [{"group": GROUP, "role": "comms"}]


def test_the_page_shows_mistakes_beside_their_field(app, tenant, db):
    make_user(db, tenant.org_id, Role.admin, email="admin@acme.example")
    client = signed_in_client(app, "admin@acme.example")
    csrf = csrf_of(client.get("/app/admin/sso").text)
    base = {"csrf": csrf, "provider": "microsoft", "client_id": "x", "client_secret": "s", "tenant_id": TENANT_ID,
            "domains": "acme.example", "default_role": "deny", "group_roles": ""}  # fmt: skip
    for change, words in (
        ({"group_roles": "just-a-name"}, "a group's object id, a space, then a role"),
        ({"tenant_id": ""}, "Directory (tenant) id"),
        ({"domains": "nope"}, "example.com"),
        ({"provider": "okta"}, "Choose Microsoft Entra ID or Google."),
    ):
        r = client.post("/app/admin/sso", data=base | change)
        # run-time sentences are escaped on the page (an apostrophe becomes &#39;)
        assert r.status_code == 422 and words in html.unescape(r.text), (change, r.text[-2000:])
        assert 'aria-invalid="true"' in r.text or "alert-error" in r.text
    french = client.post("/app/admin/sso", data=base | {"domains": "nope"}, headers={"accept-language": "fr"})
    assert "Écrivez chaque domaine comme example.com" in french.text


def test_the_page_is_for_administrators_only(app, tenant, db):
    make_user(db, tenant.org_id, Role.it, email="it@acme.example")
    client = signed_in_client(app, "it@acme.example")
    assert client.get("/app/admin/sso").status_code == 403
    assert client.post("/app/admin/sso", data={"csrf": "x"}).status_code == 403
    assert "/app/admin/sso" not in client.get("/app/deployments").text


def test_the_page_in_french(app, tenant, db):
    from service.accounts.models import User

    admin_id = make_user(db, tenant.org_id, Role.admin, email="admin@acme.example")
    with Session(db) as s:
        s.get(User, admin_id).language = "fr"
        s.commit()
    client = signed_in_client(app, "admin@acme.example")
    page = client.get("/app/admin/sso")
    assert "Authentification unique" in page.text and "La première mise en place" in page.text
    assert "Setting it up the first time" not in page.text


def test_api_and_page_agree(app, tenant, db):
    with TestClient(app) as api:
        api.put("/api/sso", json=body(), headers=tenant.headers())
    make_user(db, tenant.org_id, Role.admin, email="admin@acme.example")
    page = signed_in_client(app, "admin@acme.example").get("/app/admin/sso").text
    assert f"{GROUP} it" in page and "acme.fr" in page and TENANT_ID in page
