"""Deployments to Gmail end to end: the API, the engine and GoogleTarget against the fake Google server."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from service.app import create_app
from service.connections.throttle import RetryPolicy
from service.db import session_scope
from service.models import Role
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import DeploymentItem
from signatures.deploy.registry import make_target
from signatures.layouts import LAYOUTS
from signatures.models import AssignmentKind, SignatureTemplate, TemplateAssignment
from signatures.service import add_version, current_banner, render_employee
from tests.fakes.google import fake_google
from tests.google_support import ADMIN, seed_workspace

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def edit_template(engine, org_id: int, name: str, marker: str) -> None:
    with session_scope(engine) as s:
        template = s.exec(
            select(SignatureTemplate).where(SignatureTemplate.org_id == org_id, SignatureTemplate.name == name)
        ).one()
        source = LAYOUTS["classic"].new_source.replace("</table>", f"<tr><td>{marker}</td></tr></table>", 1)
        add_version(
            s, template=template, new_source=source, reply_source=LAYOUTS["classic"].reply_source, created_by="test"
        )


@pytest.fixture
def fake():
    with fake_google() as f:
        f.add_user(ADMIN, admin=True)
        yield f


@pytest.fixture
def gapp(db, settings, fake, tenant):
    settings.google_api_endpoint = fake.url
    settings.google_token_uri = fake.token_uri
    settings.google_concurrency = 4
    settings.google_writes_per_second = 500.0

    def run_inline(_task, dep_id: int) -> None:
        deploy_engine.execute(db, dep_id, make_target=lambda s, d: make_target(s, d, settings), policy=FAST)

    app = create_app(settings=settings, engine=db, run_task=run_inline)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        r = client.put(
            "/api/connections/google",
            headers=tenant.headers(Role.it),
            json={"config": {"admin_subject": ADMIN}, "secret": json.dumps(fake.service_account_info())},
        )
        assert r.status_code == 200, r.text
        yield client


def deploy(client, tenant, dry_run=False, **body):
    r = client.post(
        "/api/deployments", headers=tenant.headers(Role.it), json={"provider": "google", "dry_run": dry_run, **body}
    )
    assert r.status_code == 202, r.text
    return client.get(f"/api/deployments/{r.json()['id']}", headers=tenant.headers(Role.it)).json()


def items(client, tenant, dep_id) -> dict[str, dict]:
    r = client.get(f"/api/deployments/{dep_id}/items", params={"limit": 1000}, headers=tenant.headers(Role.it))
    return {i["mailbox"]: i for i in r.json()["items"]}


def test_dry_run_apply_then_only_what_a_template_edit_changed(gapp, tenant, db, fake):
    emails = seed_workspace(db, tenant.org_id, fake, 9, aliases_every=4)  # user00000, 4, 8 have an alias
    sales = {e for i, e in enumerate(emails) if i % 3 == 0}
    preview = deploy(gapp, tenant, dry_run=True)
    assert preview["status"] == "done" and preview["counts"] == {"added": 9} and fake.writes == []
    first = items(gapp, tenant, preview["id"])["user00000@example.com"]
    assert [(a["address"], a["action"]) for a in first["addresses"]] == [
        ("user00000@example.com", "added"),
        ("user00000.alias@example.com", "added"),
    ]

    applied = deploy(gapp, tenant)
    assert applied["status"] == "done" and applied["counts"] == {"applied": 9} and applied["writes"] == 12
    assert len(fake.writes) == 12 and fake.duplicate_writes() == []
    with Session(db) as s:
        html = {i.mailbox: i.html for i in s.exec(select(DeploymentItem).where(
            DeploymentItem.deployment_id == applied["id"]))}  # fmt: skip
    for email in emails:
        assert {a["sendAsEmail"]: a["signature"] for a in fake.send_as(email)} == {
            a["sendAsEmail"]: html[email] for a in fake.send_as(email)
        }

    again = deploy(gapp, tenant)
    assert again["counts"] == {"unchanged": 9} and again["writes"] == 0 and len(fake.writes) == 12

    edit_template(db, tenant.org_id, "Sales", "New: spring offer")
    preview = deploy(gapp, tenant, dry_run=True)
    assert preview["counts"] == {"changed": 3, "unchanged": 6}
    changed = {m for m, i in items(gapp, tenant, preview["id"]).items() if i["outcome"] == "changed"}
    assert changed == sales
    diff = gapp.get(
        f"/api/deployments/{preview['id']}/diff",
        params={"mailbox": "user00003@example.com"},
        headers=tenant.headers(Role.it),
    )
    assert diff.status_code == 200 and "spring" in diff.text and "last written" in diff.text
    fake.reset_counters()
    applied = deploy(gapp, tenant)
    assert applied["counts"] == {"applied": 3, "unchanged": 6}
    assert {w.user for w in fake.writes} == sales and len(fake.writes) == 4  # user00000 has an alias
    assert fake.requests["sendAs.list"] == 3, "unchanged mailboxes are not even read"
    assert all("spring offer" in fake.signature(e) for e in sales)


def test_throttling_and_server_errors_are_retried_until_applied(gapp, tenant, db, fake):
    emails = seed_workspace(db, tenant.org_id, fake, 6)
    fake.rate_limit("sendAs.patch", user=emails[0], retry_after=1)
    fake.rate_limit("sendAs.patch", user=emails[1])  # no Retry-After: exponential backoff
    fake.user_rate_limit("sendAs.patch", user=emails[2], retry_in=1)
    fake.server_error("sendAs.patch", user=emails[3], status=500, times=2)
    fake.server_error("sendAs.list", user=emails[4], status=503)
    fake.drop("sendAs.patch", user=emails[5], after_apply=True)
    dep = deploy(gapp, tenant)
    assert dep["status"] == "done" and dep["counts"] == {"applied": 6}, dep
    assert all(f.exhausted for f in fake.faults)
    assert fake.duplicate_writes() == [] and len(fake.writes) == 6 and dep["writes"] == 6
    attempts = {m: i["attempts"] for m, i in items(gapp, tenant, dep["id"]).items()}
    assert attempts == dict.fromkeys(emails, 1)  # retried inside one attempt, not re-queued


def test_mailboxes_google_refuses_are_skipped_with_the_reason(gapp, tenant, db, fake):
    emails = seed_workspace(db, tenant.org_id, fake, 4)
    fake.set_mailbox(emails[0], False)
    fake.inject("signature_too_long", "sendAs.patch", user=emails[1], times=None)
    dep = deploy(gapp, tenant)
    assert dep["status"] == "done" and dep["counts"] == {"skipped": 2, "applied": 2}
    got = items(gapp, tenant, dep["id"])
    assert "Mail service not enabled" in got[emails[0]]["reason"]
    assert "Gmail's limit is 10,000" in got[emails[1]]["reason"]
    assert {w.user for w in fake.writes} == set(emails[2:])


def test_missing_delegation_fails_the_deployment_once_with_one_message(gapp, tenant, db, fake):
    seed_workspace(db, tenant.org_id, fake, 30)
    fake.inject("unauthorized_client", "token", times=None)
    dep = deploy(gapp, tenant)
    assert dep["status"] == "failed" and "Domain-wide delegation is not granted for client ID" in dep["message"]
    # 1 token request, then one per scope to tell "no delegation" from "some scopes missing" (3 scopes)
    assert fake.requests["token"] <= 5 and fake.writes == [] and fake.requests["sendAs.list"] == 0
    assert dep["counts"]["not_attempted"] == 30


def test_delegation_lost_mid_deployment_stops_after_a_few_calls(gapp, tenant, db, fake):
    emails = seed_workspace(db, tenant.org_id, fake, 40)
    for email in emails:  # the admin subject still gets tokens, so check() passes
        fake.inject("unauthorized_client", "token", user=email, times=None)
    dep = deploy(gapp, tenant)
    assert dep["status"] == "failed" and dep["message"].startswith("Domain-wide delegation is not granted")
    assert fake.requests["token"] <= 12, "the engine kept asking for tokens after a configuration error"
    assert dep["counts"]["not_attempted"] >= 28 and fake.writes == []


def test_retry_deploys_only_the_mailboxes_that_failed(gapp, tenant, db, fake):
    emails = seed_workspace(db, tenant.org_id, fake, 5)
    for email in emails[:2]:
        fake.server_error("sendAs.patch", user=email, status=500, times=None)
    dep = deploy(gapp, tenant)
    assert dep["counts"] == {"failed": 2, "applied": 3}
    assert "gave up after 4 attempts" in items(gapp, tenant, dep["id"])[emails[0]]["reason"]
    fake.clear_faults()
    fake.reset_counters()
    r = gapp.post(f"/api/deployments/{dep['id']}/retry", headers=tenant.headers(Role.it))
    assert r.status_code == 202, r.text
    retried = gapp.get(f"/api/deployments/{r.json()['id']}", headers=tenant.headers(Role.it)).json()
    assert retried["total"] == 2 and retried["counts"] == {"applied": 2}
    assert {w.user for w in fake.writes} == set(emails[:2]) and fake.requests["sendAs.list"] == 2


def test_the_plan_renders_exactly_what_render_employee_renders(gapp, tenant, db, fake):
    """The plan reads shared things once (brand, rotation, groups, template per department/groups): the HTML
    must be identical to rendering each employee on its own, banner included."""
    from service.db import utcnow
    from service.directory.models import EmployeeGroup
    from signatures.deploy.planning import plan, select_employees
    from signatures.models import SignatureKind
    from tests.campaign_helpers import make_campaign

    emails = seed_workspace(db, tenant.org_id, fake, 7)
    make_campaign(gapp, tenant, "spring")
    with session_scope(db) as s:
        vip = s.exec(select(SignatureTemplate).where(SignatureTemplate.name == "Sales")).one()
        s.add(TemplateAssignment(org_id=tenant.org_id, template_id=vip.id, kind=AssignmentKind.group, value="vip"))
        emp = next(e for e in select_employees(s, org_id=tenant.org_id, target_filter={}) if e.email == emails[1])
        s.add(EmployeeGroup(org_id=tenant.org_id, employee_id=emp.id, group_key="vip"))
    at = utcnow()
    with Session(db) as s:
        employees = select_employees(s, org_id=tenant.org_id, target_filter={})
        planned = {
            mp.employee.email: mp for mp in plan(s, org_id=tenant.org_id, provider="google", employees=employees, at=at)
        }
        for emp in employees:
            banner = current_banner(s, employee=emp, at=at)
            version, new = render_employee(s, employee=emp, kind=SignatureKind.new, banner=banner)
            _v, reply = render_employee(s, employee=emp, kind=SignatureKind.reply, version=version, banner=banner)
            mp = planned[emp.email]
            assert (mp.html, mp.reply_html, mp.template) == (
                new.html,
                reply.html,
                (version.template_id, version.version),
            )
    assert all("spring banner" in mp.html for mp in planned.values())
    sales_template = planned[emails[0]].template
    assert planned[emails[1]].template == sales_template != planned[emails[2]].template  # by group, not department
