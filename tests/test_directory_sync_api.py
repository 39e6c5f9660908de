"""`POST /api/directory/sync/{provider}`: a dry run reports, an apply syncs (Google fake here; the Graph
directory is covered in tests/test_microsoft_directory.py)."""

import json

from sqlmodel import Session, select

from service.directory.models import Employee
from service.models import Role
from tests.fakes.google import fake_google

ADMIN = "admin@example.com"


def test_sync_over_the_api(client, tenant, db, settings):
    h = tenant.headers(Role.it)
    missing = client.post("/api/directory/sync/google", headers=h)
    assert missing.status_code == 404 and "PUT /api/connections/google" in missing.json()["error"]["message"]
    with fake_google() as fake:
        fake.add_user(ADMIN, admin=True)
        fake.seed_users(5)
        settings.google_api_endpoint = fake.url
        settings.google_token_uri = fake.token_uri
        put = client.put(
            "/api/connections/google",
            headers=h,
            json={"config": {"admin_subject": ADMIN}, "secret": json.dumps(fake.service_account_info())},
        )
        assert put.status_code == 200, put.text
        assert "private_key" not in put.text and put.json()["has_secret"] is True
        dry = client.post("/api/directory/sync/google", headers=h)
        assert dry.status_code == 200 and dry.json()["dry_run"] is True and dry.json()["created"] == 6
        with Session(db) as s:
            assert s.exec(select(Employee)).all() == []
        applied = client.post("/api/directory/sync/google", params={"dry_run": "false"}, headers=h).json()
        assert applied["created"] == 6
        assert client.post("/api/directory/sync/google", headers=tenant.headers(Role.comms)).status_code == 403
    with Session(db) as s:
        assert len(s.exec(select(Employee).where(Employee.source == "google")).all()) == 6
