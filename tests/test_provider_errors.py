"""Provider failures as sentences: directory list pages retried like writes (and a sentence with a 4xx/502, never
a bare 500, when they can't be), and Google's known failures worded by one function, identically in the
connection test, the directory sync and deployments."""

from __future__ import annotations

import json

import pytest

from service.connections import google
from service.models import Role
from tests.fakes.google import SCOPE_GMAIL_BASIC, SCOPE_GROUP_READONLY, SCOPE_USER_READONLY, fake_google
from tests.fakes.microsoft import FakeMicrosoft
from tests.ms_support import TENANT

ADMIN = "admin@example.com"

# ---------------------------------------------------------------- Microsoft: list pages retried like writes


@pytest.fixture
def msapi(client, tenant, settings):
    """The app, its settings pointing at a Microsoft fake, and a saved connection."""
    with FakeMicrosoft(tenant_id=TENANT, page_size=3, delta_page_size=2) as fake:
        settings.ms_authority_host, settings.ms_ca_bundle = fake.authority_host, fake.ca_file
        settings.ms_graph_endpoint, settings.ms_exchange_endpoint = fake.graph_endpoint, fake.exchange_endpoint
        settings.deploy_retry_minutes = 0.02  # 1.2 s of retries before a persistent failure is reported
        for i in range(7):
            fake.add_user(f"p{i}@contoso.example", givenName=f"P{i}", surname="Test")
        r = client.put(
            "/api/connections/microsoft",
            headers=tenant.headers(Role.it),
            json={"config": {"tenant_id": fake.tenant_id, "client_id": fake.client_id}, "secret": fake.client_secret},
        )
        assert r.status_code == 200, r.text
        yield fake
        assert fake.errors == []


def ms_sync(client, tenant):
    return client.post("/api/directory/sync/microsoft", params={"dry_run": "false"}, headers=tenant.headers(Role.it))


def test_throttled_and_unavailable_graph_pages_are_retried(client, tenant, msapi):
    msapi.inject(429, service="graph", path_contains="/v1.0/users?", retry_after="0.2", times=1)
    msapi.inject(503, service="graph", path_contains="/users/delta", retry_after="0.1", times=1)
    first = ms_sync(client, tenant)
    assert first.status_code == 200 and first.json()["created"] == 7, first.text
    assert msapi.request_count("graph", status=429) == 1 and msapi.request_count("graph", status=503) == 1

    msapi.add_user("new@contoso.example", givenName="New", surname="Person")
    msapi.inject(429, service="graph", path_contains="/users/delta", retry_after="0.15", times=2)
    delta = ms_sync(client, tenant)  # incremental: the stored delta link, throttled twice
    assert delta.status_code == 200 and delta.json()["created"] == 1, delta.text


def test_a_page_that_keeps_failing_is_a_502_sentence(client, tenant, msapi):
    msapi.inject(503, service="graph", path_contains="/v1.0/users", times=None)
    r = ms_sync(client, tenant)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "directory_sync_failed"
    assert error["message"].startswith("Microsoft Graph kept failing while the directory was listed")


def test_an_hour_long_retry_after_stops_the_sync_with_the_time(client, tenant, msapi):
    msapi.inject(429, service="graph", path_contains="/users/delta", retry_after="3600", times=None)
    r = ms_sync(client, tenant)
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert message.startswith("Microsoft Graph asked to retry after ") and "run it again then" in message


def test_a_missing_graph_permission_is_a_422_naming_it(client, tenant, msapi):
    msapi.inject(403, service="graph", path_contains="/v1.0/users", times=None)
    r = ms_sync(client, tenant)
    assert r.status_code == 422 and "User.Read.All" in r.json()["error"]["message"]


# ---------------------------------------------------------------- Google: pages and one mapping of failures


@pytest.fixture
def gfake():
    with fake_google() as f:
        f.add_user(ADMIN, admin=True)
        f.add_user("ann.lee@example.com")
        yield f


@pytest.fixture
def app(db, settings):
    """Deployments run inline, as the worker would run them."""
    from service.app import create_app
    from service.connections.throttle import RetryPolicy
    from signatures.deploy import engine as deploy_engine
    from signatures.deploy.registry import make_target

    def run_inline(_task, dep_id: int) -> None:
        policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
        deploy_engine.execute(db, dep_id, make_target=lambda s, d: make_target(s, d, settings), policy=policy)

    return create_app(settings=settings, engine=db, run_task=run_inline)


@pytest.fixture
def gapi(client, tenant, settings, gfake):
    settings.google_api_endpoint = gfake.url
    settings.google_token_uri = gfake.token_uri

    def connect(info: dict | None = None, admin: str = ADMIN) -> dict:
        info = info or gfake.service_account_info()
        r = client.put(
            "/api/connections/google",
            headers=tenant.headers(Role.it),
            json={"config": {"admin_subject": admin}, "secret": json.dumps(info)},
        )
        assert r.status_code == 200, r.text
        return info

    return connect


def outcomes(client, tenant) -> tuple[dict[str, str], dict, dict]:
    """(failed connection-test checks, the sync's answer, the deployment) for the saved Google connection."""
    h = tenant.headers(Role.it)
    test = client.post("/api/connections/google/test", headers=h).json()
    failed = {c["name"]: c["message"] for c in test["checks"] if not c["ok"]}
    sync = client.post("/api/directory/sync/google", headers=h)
    sync_body = {"status": sync.status_code, **(sync.json().get("error") or {})}
    dep = client.post("/api/deployments", headers=h, json={"provider": "google", "dry_run": False})
    assert dep.status_code == 202, dep.text
    return failed, sync_body, client.get(f"/api/deployments/{dep.json()['id']}", headers=h).json()


def test_google_pages_throttled_for_an_hour_are_a_502_sentence(client, tenant, gapi, gfake):
    gapi()
    gfake.rate_limit("users.list", times=None, retry_after=3600)
    r = client.post("/api/directory/sync/google", headers=tenant.headers(Role.it))
    assert r.status_code == 502
    assert r.json()["error"]["message"].startswith("Google's Directory API asked to retry after ")


def test_a_wrong_key_is_called_a_wrong_key_everywhere(client, tenant, gapi, gfake):
    gapi()
    gfake.replace_key()
    failed, sync, dep = outcomes(client, tenant)
    assert set(failed.values()) == {google.BAD_KEY} and "directory_token" in failed
    assert sync == {"status": 422, "code": "directory_sync_failed", "message": google.BAD_KEY}
    assert dep["status"] == "failed" and dep["message"] == google.BAD_KEY
    assert "does not exist" not in json.dumps([failed, sync, dep])


def test_no_delegation_at_all_is_named(client, tenant, gapi, gfake):
    info = gapi()
    gfake.revoke_delegation(info["client_id"])
    failed, sync, dep = outcomes(client, tenant)
    directory_sentence = google.delegation_missing(info["client_id"], (SCOPE_USER_READONLY, SCOPE_GROUP_READONLY))
    gmail_sentence = google.delegation_missing(info["client_id"], (SCOPE_GMAIL_BASIC,))
    assert failed == {"directory_token": directory_sentence, "gmail_token": gmail_sentence}
    assert sync["status"] == 422 and sync["message"] == directory_sentence
    assert dep["status"] == "failed" and dep["message"] == gmail_sentence


def test_missing_scopes_are_named_not_called_missing_delegation(client, tenant, gapi, gfake):
    info = gapi()
    gfake.delegate(info["client_id"], [SCOPE_USER_READONLY, SCOPE_GROUP_READONLY])  # Gmail's scope left out
    failed, sync, dep = outcomes(client, tenant)
    sentence = google.scopes_missing(info["client_id"], (SCOPE_GMAIL_BASIC,))
    assert failed == {"gmail_token": sentence}
    assert sync["status"] == 200  # the directory's scopes are granted
    assert dep["status"] == "failed" and dep["message"] == sentence


def test_an_admin_subject_who_is_not_an_admin_is_told_so_everywhere(client, tenant, gapi, gfake):
    gapi(admin="ann.lee@example.com")
    failed, sync, dep = outcomes(client, tenant)
    sentence = google.not_an_admin("ann.lee@example.com")
    assert failed == {"directory_read": sentence}
    assert sync["status"] == 422 and sync["message"] == sentence
    assert dep["status"] == "done"  # Gmail does not need an admin


def test_an_unknown_admin_and_an_unknown_mailbox(client, tenant, gapi, gfake, db):
    gapi(admin="gone@example.com")
    failed, sync, dep = outcomes(client, tenant)
    sentence = google.admin_unknown("gone@example.com")
    assert set(failed.values()) == {sentence}
    assert sync["status"] == 422 and sync["message"] == sentence
    assert dep["status"] == "failed" and dep["message"] == sentence

    # A mailbox Google does not know is that mailbox's problem: skipped with the reason, the rest written.
    from service.db import session_scope
    from service.directory.sync import DirectoryPerson, Listing, apply_listing
    from tests.ms_support import default_template

    gapi()
    people = [DirectoryPerson(source_id=e, email=e) for e in ("ann.lee@example.com", "left@example.com")]
    with session_scope(db) as s:
        apply_listing(s, org_id=tenant.org_id, source="google", listing=Listing(people=people), dry_run=False)
    default_template(db, tenant.org_id)
    h = tenant.headers(Role.it)
    dep_id = client.post("/api/deployments", headers=h, json={"provider": "google", "dry_run": False}).json()["id"]
    dep = client.get(f"/api/deployments/{dep_id}", headers=h).json()
    assert dep["status"] == "done" and dep["counts"] == {"applied": 1, "skipped": 1}, dep
    items = client.get(f"/api/deployments/{dep_id}/items", headers=h).json()["items"]
    reason = next(i["reason"] for i in items if i["mailbox"] == "left@example.com")
    assert reason == "left@example.com does not exist in Google Workspace (invalid_grant: Invalid email or User ID)."
