"""A fresh install, as `make run` leaves it: the demo organisation seeded with the default http base URL.

Templates save (the local http logo is a warning that names the brand field), the brand changes one field at a
time, template errors come in one family with the author's line numbers, and a deployment that would write to
mailboxes refuses to start until RELAIS_PUBLIC_BASE_URL is https."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from service.app import create_app
from service.connections.throttle import RetryPolicy
from service.db import session_scope
from service.demo import seed_demo
from service.settings import Settings
from signatures.deploy import engine as deploy_engine
from signatures.deploy.registry import make_target
from signatures.models import SignatureTemplate, TemplateVersion
from tests.fakes.google import fake_google

FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
ADMIN = "admin@acme.example"


@pytest.fixture
def fresh_settings(tmp_path) -> Settings:
    # public_base_url left at its default: http://127.0.0.1:8000
    return Settings(data_dir=tmp_path / "data", seed_demo=False, secret_key="test-secret-key", _env_file=None)


@pytest.fixture
def fresh(db, fresh_settings):
    """(client, admin headers) on a freshly seeded demo organisation; deferred jobs run inline."""
    with session_scope(db) as s:
        key = seed_demo(s, fresh_settings)

    def run_inline(_task, dep_id: int) -> None:
        deploy_engine.execute(db, dep_id, make_target=lambda s, d: make_target(s, d, fresh_settings), policy=FAST)

    app = create_app(settings=fresh_settings, engine=db, run_task=run_inline)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {key}"}


def test_templates_save_on_a_fresh_install_with_a_warning_naming_the_brand_field(fresh, db):
    client, admin = fresh
    logo = client.get("/api/brand", headers=admin).json()["logo_url"]
    assert logo.startswith("http://127.0.0.1:8000/assets/")

    created = client.post("/api/templates", json={"name": "Mine", "layout": "classic"}, headers=admin)
    assert created.status_code == 201, created.text
    warning = next(w for w in created.json()["warnings"] if w["rule"] == "img-https")
    assert warning["field"] == "logo_url" and "RELAIS_PUBLIC_BASE_URL" in warning["message"]
    assert warning["message"].startswith("the brand's logo_url:")

    with Session(db) as s:  # the seeded template, saved again unchanged
        seeded = s.exec(select(SignatureTemplate).where(SignatureTemplate.name == "Corporate")).one()
        version = s.exec(select(TemplateVersion).where(TemplateVersion.template_id == seeded.id)).one()
        body = {"new_source": version.new_source, "reply_source": version.reply_source}
    again = client.put(f"/api/templates/{seeded.id}", json=body, headers=admin)
    assert again.status_code == 200, again.text
    assert again.json()["current_version"] == 2


def test_brand_errors_name_the_field_not_line_1(fresh):
    client, admin = fresh
    # A brand change goes through the templates' lint (docs/security.md): the brand is refused, naming its field.
    refused = client.patch("/api/brand", json={"logo_url": "https://cdn.acme.example/logo.svg"}, headers=admin)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert "the brand's logo_url" in error["message"] and "line 1" not in error["message"]
    assert error["details"]["errors"][0]["field"] == "logo_url"


def test_brand_changes_one_field_at_a_time(fresh):
    client, admin = fresh
    before = client.get("/api/brand", headers=admin).json()
    patched = client.patch("/api/brand", json={"primary_color": "#AA0000"}, headers=admin)
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert after["primary_color"] == "#AA0000"
    assert {k: v for k, v in after.items() if k not in ("primary_color", "updated_at")} == {
        k: v for k, v in before.items() if k not in ("primary_color", "updated_at")
    }
    assert client.get("/api/brand", headers=admin).json()["primary_color"] == "#AA0000"

    bad = client.patch("/api/brand", json={"primary_color": "red"}, headers=admin)
    assert bad.status_code == 422 and "primary_color" in bad.json()["error"]["message"]
    unknown = client.patch("/api/brand", json={"colour": "#000000"}, headers=admin)
    assert unknown.status_code == 422 and "colour" in unknown.json()["error"]["message"]
    cleared = client.patch("/api/brand", json={"company_name": None}, headers=admin)
    assert cleared.status_code == 422 and "company_name" in cleared.json()["error"]["message"]
    assert client.get("/api/brand", headers=admin).json()["primary_color"] == "#AA0000"


SYNTAX = "<p>Hello</p>\n<p>{{ employee.full_name </p>\n"
SANDBOX = "<p>Hello</p>\n<p>\n{{ ''.__class__.__mro__ }}</p>\n"
UNKNOWN = "<p>Hello</p>\n\n\n<p>{{ nobody.name }}</p>\n"
BAD_IMG = '<table>\n<tr>\n<td>{{ employee.full_name }}</td>\n</tr>\n</table>\n<img src="http://x.example/a.png">\n'


@pytest.mark.parametrize(
    ("source", "line", "rule"), [(SYNTAX, 2, "compile"), (SANDBOX, 3, "render"), (UNKNOWN, 4, "render")]
)
def test_template_errors_are_one_family_with_source_lines(fresh, source, line, rule):
    client, admin = fresh
    lint = client.post("/api/templates/lint", json={"source": source}, headers=admin)
    assert lint.status_code == 200
    assert lint.json()["ok"] is False
    assert [(i["rule"], i["line"]) for i in lint.json()["issues"]] == [(rule, line)]
    saved = client.post("/api/templates", json={"name": f"Bad {rule} {line}", "new_source": source}, headers=admin)
    assert saved.status_code == 422
    error = saved.json()["error"]
    assert error["code"] == "template_invalid" and f"line {line}:" in error["message"]
    assert error["details"]["errors"][0]["line"] == line


def test_lint_issues_point_at_the_authors_line(fresh):
    client, admin = fresh
    report = client.post("/api/templates/lint", json={"source": BAD_IMG}, headers=admin).json()
    img = {i["rule"]: i for i in report["issues"] if i["rule"].startswith("img-")}
    assert img["img-https"]["line"] == 6 and img["img-alt"]["line"] == 6 and img["img-https"]["field"] is None
    assert img["img-https"]["severity"] == "error"


def test_a_reply_signature_is_always_there(fresh):
    client, admin = fresh
    source = "<p>{{ employee.full_name }} — NEW MAIL ONLY {{ brand.company_name }}</p>"
    created = client.post("/api/templates", json={"name": "No reply", "new_source": source}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["reply_origin"] == "derived"
    tid = created.json()["id"]
    emp = client.get("/api/employees", params={"limit": 1}, headers=admin).json()["items"][0]
    params = {"employee_id": emp["id"], "kind": "reply", "format": "text"}
    reply = client.get(f"/api/templates/{tid}/preview", params=params, headers=admin).text
    assert "NEW MAIL ONLY" not in reply and emp["email"] in reply

    stated = client.put(
        f"/api/templates/{tid}", json={"new_source": source, "reply_source": "<p>R {{ employee.email }}</p>"},
        headers=admin,
    )  # fmt: skip
    assert stated.json()["reply_origin"] == "stated"
    kept = client.put(f"/api/templates/{tid}", json={"new_source": source + "<p>v3</p>"}, headers=admin)
    assert kept.json()["reply_origin"] == "kept"
    reply = client.get(f"/api/templates/{tid}/preview", params=params, headers=admin).text
    assert reply == f"R {emp['email']}"


def test_deploying_to_mailboxes_needs_https(fresh, fresh_settings, db):
    client, admin = fresh
    with fake_google() as fake:
        fake.add_user(ADMIN, admin=True)
        fresh_settings.google_api_endpoint = fake.url
        fresh_settings.google_token_uri = fake.token_uri
        conn = {"config": {"admin_subject": ADMIN}, "secret": json.dumps(fake.service_account_info())}
        assert client.put("/api/connections/google", json=conn, headers=admin).status_code == 200

        dry = client.post("/api/deployments", json={"provider": "google", "dry_run": True}, headers=admin)
        dry = client.get(f"/api/deployments/{dry.json()['id']}", headers=admin).json()
        assert dry["status"] == "done" and "RELAIS_PUBLIC_BASE_URL" in dry["message"]

        real = client.post("/api/deployments", json={"provider": "google", "dry_run": False}, headers=admin)
        real = client.get(f"/api/deployments/{real.json()['id']}", headers=admin).json()
        assert real["status"] == "failed"
        assert real["message"].startswith("RELAIS_PUBLIC_BASE_URL is http://127.0.0.1:8000, not https")
        assert fake.writes == []

        # https base URL, but the logo was uploaded under the old http one: named, with the new address
        fresh_settings.public_base_url = "https://relais.acme.example"
        again = client.post("/api/deployments", json={"provider": "google", "dry_run": False}, headers=admin)
        again = client.get(f"/api/deployments/{again.json()['id']}", headers=admin).json()
        assert again["status"] == "failed" and "logo_url" in again["message"]
        assert "https://relais.acme.example/assets/" in again["message"] and fake.writes == []
