"""The directory sync page: source, last sync, next scheduled one, "sync now" with its progress, the history
with filters; refusals, role checks, another organisation's ids, and a provider failing, in English and French.
Syncs run against the Google fake (its public HTTP contract); the queued job is run by the test, step by step."""

import json

import pytest
from sqlmodel import Session, select

from service.app import create_app
from service.connections.models import Provider
from service.directory.models import DirectorySync, Employee
from service.directory.runs import error_of, request_sync, run_sync
from service.models import Role
from tests.conftest import make_tenant
from tests.fakes.google import fake_google
from tests.page_support import csrf_of, make_user, signed_in_client

ADMIN = "admin@example.com"


@pytest.fixture
def queued():
    return []


@pytest.fixture
def site(db, settings, tenant, queued):
    """The app with the queue held by the test: "sync now" only queues, the test runs the job."""
    app = create_app(settings=settings, engine=db, run_task=lambda task, *args: queued.append(args[0]))
    make_user(db, tenant.org_id, Role.it)
    make_user(db, tenant.org_id, Role.comms)
    return app


@pytest.fixture
def google(db, settings, tenant, client):
    with fake_google() as fake:
        fake.add_user(ADMIN, admin=True)
        fake.seed_users(5)
        settings.google_api_endpoint = fake.url
        settings.google_token_uri = fake.token_uri
        body = {"config": {"admin_subject": ADMIN}, "secret": json.dumps(fake.service_account_info())}
        put = client.put("/api/connections/google", headers=tenant.headers(Role.it), json=body)
        assert put.status_code == 200, put.text
        yield fake


def _sync_now(client, provider="google", **headers):
    page = client.get("/app/directory/sync")
    return client.post("/app/directory/sync", data={"provider": provider, "csrf": csrf_of(page.text)},
                       headers=headers, follow_redirects=False)  # fmt: skip


def test_sync_now_shows_progress_then_the_counts_and_the_history(site, google, db, settings, queued):
    it = signed_in_client(site, "it@acme.example")
    r = _sync_now(it)
    assert r.status_code == 303 and r.headers["location"].startswith("/app/directory/sync/"), r.text
    run_page = it.get(r.headers["location"])
    assert run_page.status_code == 200
    assert "queued" in run_page.text and 'hx-trigger="every 2s"' in run_page.text  # polls while it runs
    twice = _sync_now(it)  # one at a time per source
    assert twice.status_code == 409 and "already under way" in twice.text
    assert len(queued) == 1
    run_sync(db, settings, queued[0])
    partial = it.get(f"/app/directory/sync/{queued[0]}", headers={"HX-Request": "true", "HX-Target": "sync-progress"})
    assert partial.status_code == 200 and "<html" not in partial.text
    assert 'hx-trigger="every 2s"' not in partial.text  # done: the polling stops
    assert "done" in partial.text and ">6<" in partial.text  # six people created (the admin and five)
    status = it.get("/app/directory/sync")
    assert "Google Workspace" in status.text and "Next scheduled sync" in status.text
    assert f'href="/app/directory/sync/{queued[0]}"' in status.text and "sync now" in status.text
    with Session(db) as s:
        row = s.get(DirectorySync, queued[0])
        assert (row.state, row.created, row.trigger, row.requested_by) == ("done", 6, "manual", "it@acme.example")
        assert len(s.exec(select(Employee)).all()) == 6
    run_sync(db, settings, queued[0])  # the job delivered twice: the finished run is left alone
    with Session(db) as s:
        assert s.get(DirectorySync, queued[0]).created == 6
    filtered = it.get("/app/directory/sync", params={"state": "failed"})
    assert "No sync matches" in filtered.text
    by_source = it.get("/app/directory/sync", params={"source": "google", "trigger": "manual"})
    assert f'href="/app/directory/sync/{queued[0]}"' in by_source.text


def test_a_failed_sync_says_what_to_fix_in_english_and_french(site, google, db, settings, tenant, queued):
    google.revoke_delegation(google.service_account_info()["client_id"])
    with Session(db) as s:
        sync_id = request_sync(s, org_id=tenant.org_id, provider=Provider.google, trigger="schedule",
                               requested_by=None).id  # fmt: skip
        s.commit()
    run_sync(db, settings, sync_id)
    with Session(db) as s:
        row = s.get(DirectorySync, sync_id)
        assert row.state == "failed" and row.error_msgid and row.finished_at
    it = signed_in_client(site, "it@acme.example")
    english = it.get(f"/app/directory/sync/{sync_id}")
    assert "The sync failed." in english.text
    french = it.get(f"/app/directory/sync/{sync_id}", headers={"Accept-Language": "fr"})
    assert "La synchronisation a échoué." in french.text and "The sync failed." not in french.text


def test_sync_now_refuses_bad_input_inline(site, db):
    it = signed_in_client(site, "it@acme.example")
    empty = it.get("/app/directory/sync")
    assert empty.status_code == 200 and "No provider is connected" in empty.text and "No sync yet" in empty.text
    none = _sync_now(it)  # no Google connection
    assert none.status_code == 409 and "There is no google connection to sync from" in none.text
    french = _sync_now(it, **{"Accept-Language": "fr"})
    assert french.status_code == 409 and "connexion google depuis laquelle synchroniser" in french.text
    assert "There is no google connection" not in french.text
    bad = _sync_now(it, provider="ldap")
    assert bad.status_code == 422 and "Choose the directory to sync" in bad.text
    assert it.get("/app/directory/sync", params={"page": "x"}).status_code == 422  # FastAPI's own refusal
    with Session(db) as s:
        assert s.exec(select(DirectorySync)).all() == []


def test_roles_and_other_organisations(site, db, tenant, client):
    comms = signed_in_client(site, "comms@acme.example")
    assert comms.get("/app/directory/sync").status_code == 403
    other = make_tenant(db, "globex")
    with Session(db) as s:
        theirs = DirectorySync(org_id=other.org_id, source="csv", trigger="import", state="done")
        s.add(theirs)
        s.commit()
        theirs_id = theirs.id
    assert comms.get(f"/app/directory/sync/{theirs_id}").status_code == 403
    it = signed_in_client(site, "it@acme.example")
    assert it.get(f"/app/directory/sync/{theirs_id}").status_code == 404
    assert it.get("/app/directory/sync/999999").status_code == 404
    assert f"/app/directory/sync/{theirs_id}" not in it.get("/app/directory/sync").text
    page = it.get("/app/directory/sync")
    no_csrf = it.post("/app/directory/sync", data={"provider": "google"})
    assert no_csrf.status_code == 403 and csrf_of(page.text)


def test_a_csv_import_applied_is_in_the_history(site, db):
    it = signed_in_client(site, "it@acme.example")
    page = it.get("/app/directory/import")
    csv = b"email,first_name,last_name\nana@acme.example,Ana,Lopes\n"
    dry = it.post(
        "/app/directory/import", data={"csrf": csrf_of(page.text)}, files={"file": ("p.csv", csv, "text/csv")}
    )
    assert dry.status_code == 200, dry.text
    token = dry.text.split('name="token" value="')[1].split('"')[0]
    applied = it.post("/app/directory/import/apply", data={"csrf": csrf_of(page.text), "token": token},
                      follow_redirects=False)  # fmt: skip
    assert applied.status_code == 303
    with Session(db) as s:
        (row,) = s.exec(select(DirectorySync)).all()
        assert (row.source, row.trigger, row.state, row.created) == ("csv", "import", "done", 1)
    history = it.get("/app/directory/sync")
    assert "CSV import" in history.text and "CSV file" in history.text


def test_the_api_lists_the_syncs_in_english(site, google, db, settings, tenant, client, queued):
    google.revoke_delegation(google.service_account_info()["client_id"])
    other = make_tenant(db, "globex")
    with Session(db) as s:
        sync_id = request_sync(s, org_id=tenant.org_id, provider=Provider.google, trigger="manual",
                               requested_by="it@acme.example").id  # fmt: skip
        s.add(DirectorySync(org_id=other.org_id, source="csv", trigger="import", state="done"))
        s.commit()
    run_sync(db, settings, sync_id)
    r = client.get("/api/directory/syncs", headers={**tenant.headers(Role.it), "Accept-Language": "fr"})
    assert r.status_code == 200 and r.json()["total"] == 1  # not the other organisation's
    (item,) = r.json()["items"]
    with Session(db) as s:
        english = str(error_of(s.get(DirectorySync, sync_id)))
    assert item["state"] == "failed" and item["error"] == english and english.startswith("Google")  # not French
    assert client.get("/api/directory/syncs", params={"state": "done"}, headers=tenant.headers(Role.it)).json() == {
        "total": 0, "items": []}  # fmt: skip
    assert client.get("/api/directory/syncs", params={"state": "x"}, headers=tenant.headers(Role.it)).status_code == 422
    assert client.get("/api/directory/syncs", headers=tenant.headers(Role.comms)).status_code == 403
