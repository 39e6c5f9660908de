"""A deployment that cannot start (no connection, an unusable key) ends `failed` once, with one sentence, and is
never retried: through the API, through the queue's task and watchdog, and on the command line."""

from __future__ import annotations

import json
import re

from sqlmodel import Session
from typer.testing import CliRunner

import main
from service.app import create_app
from service.models import Role
from service.settings import get_settings
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import Deployment
from signatures.deploy.registry import make_target


def test_without_a_connection_the_api_deployment_fails_once_with_a_sentence(db, settings, tenant):
    runs = []

    def run_inline(_task, dep_id: int) -> None:
        runs.append(dep_id)
        deploy_engine.execute(db, dep_id, make_target=lambda s, d: make_target(s, d, settings))

    from fastapi.testclient import TestClient

    with TestClient(create_app(settings=settings, engine=db, run_task=run_inline)) as client:
        h = tenant.headers(Role.it)
        r = client.post("/api/deployments", headers=h, json={"provider": "google", "dry_run": False})
        assert r.status_code == 202, r.text
        dep = client.get(f"/api/deployments/{r.json()['id']}", headers=h).json()
    assert dep["status"] == "failed" and dep["finished_at"]
    assert dep["message"].count(".") <= 2 and "PUT /api/connections/google" in dep["message"], dep["message"]
    # Nothing picks it up again: not the watchdog, not a second run of the queued task.
    assert r.json()["id"] not in deploy_engine.claimable(db)
    assert deploy_engine.execute(db, r.json()["id"], make_target=lambda s, d: make_target(s, d, settings)) is None
    assert runs == [r.json()["id"]]


def test_an_unreadable_key_fails_once(db, settings, tenant):
    from service.connections.models import Provider
    from service.connections.service import save_connection
    from service.db import session_scope

    key = {"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com", "token_uri": "https://x",
           "private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"}  # fmt: skip
    with session_scope(db) as s:
        save_connection(s, org_id=tenant.org_id, provider=Provider.google, config={"admin_subject": "a@example.com"},
                        secret=json.dumps(key), settings=settings)  # fmt: skip
        dep_id = deploy_engine.create_deployment(s, org_id=tenant.org_id, provider="google", dry_run=True).id
    dep = deploy_engine.execute(db, dep_id, make_target=lambda s, d: make_target(s, d, settings))
    assert (
        dep.status == "failed" and "could not be loaded" in dep.message and "upload the JSON key again" in dep.message
    )
    with Session(db) as s:
        assert s.get(Deployment, dep_id).status == "failed"


def test_the_cli_dry_run_without_a_connection_prints_one_sentence(db, settings, tenant, monkeypatch):
    monkeypatch.setenv("RELAIS_DATABASE_URL", db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RELAIS_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main.cli, ["deploy", "--provider", "google", "--dry-run"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert "failed" in result.output and "PUT /api/connections/google" in result.output.replace("\n", " ")
    printed = [line for line in result.output.strip().splitlines() if not re.match(r"\d{4}-\d\d-\d\dT", line)]
    assert len(printed) <= 4, result.output  # the progress bar, the outcome, the sentence (log lines aside)
