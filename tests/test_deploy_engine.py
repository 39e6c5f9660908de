"""The deployment engine with the folder-export target: dry run, incremental apply, failures by kind,
resume after a crash, leases, and the real job queue."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from service.db import session_scope, utcnow
from service.directory.models import Employee
from service.models import Role
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import Deployment, DeploymentItem, ItemState, SignatureState
from signatures.deploy.targets.base import (
    AddressResult,
    ConfigurationError,
    Outcome,
    SkipMailbox,
    TransientError,
    WriteResult,
)
from signatures.deploy.targets.files import FileTarget
from signatures.layouts import LAYOUTS
from signatures.models import AssignmentKind, SignatureTemplate, TemplateAssignment, TemplateVersion
from tests.deploy_support import FAST, ScriptedTarget, new_deployment, run, seed


def items(db, dep_id):
    with Session(db) as s:
        return {i.mailbox: i for i in s.exec(select(DeploymentItem).where(DeploymentItem.deployment_id == dep_id))}


def test_dry_run_then_apply_then_nothing_to_do(db, tenant, tmp_path):
    seed(db, tenant)
    target = FileTarget(tmp_path / "out")
    dry = run(db, new_deployment(db, tenant, dry_run=True), target)
    assert dry.status == "done" and dry.counts == {"added": 6} and dry.writes == 0
    assert not list((tmp_path / "out").glob("*.html"))
    first = items(db, dry.id)["p0@acme.example"]
    assert [a["address"] for a in first.addresses] == ["p0@acme.example", "alias0@acme.example"]
    assert {a["action"] for a in first.addresses} == {"added"}

    applied = run(db, new_deployment(db, tenant), target)
    assert applied.status == "done" and applied.counts == {"applied": 6} and applied.writes == 7
    assert (tmp_path / "out" / "alias0@acme.example.html").read_text() == first.html
    with Session(db) as s:
        assert len(s.exec(select(SignatureState)).all()) == 7

    again = run(db, new_deployment(db, tenant), target)
    assert again.counts == {"unchanged": 6} and again.writes == 0
    assert run(db, new_deployment(db, tenant, dry_run=True), target).counts == {"unchanged": 6}


def test_only_changed_mailboxes_are_rewritten(db, tenant, tmp_path):
    tid = seed(db, tenant)
    target = FileTarget(tmp_path / "out")
    run(db, new_deployment(db, tenant), target)
    with session_scope(db) as s:  # Sales gets its own template: only the Sales mailboxes change
        t = SignatureTemplate(org_id=tenant.org_id, name="Sales")
        s.add(t)
        s.flush()
        s.add(TemplateVersion(template_id=t.id, version=1, new_source=LAYOUTS["classic"].new_source))
        s.add(TemplateAssignment(org_id=tenant.org_id, template_id=t.id, kind=AssignmentKind.department, value="Sales"))
    dry = run(db, new_deployment(db, tenant, dry_run=True), target)
    assert dry.counts == {"changed": 3, "unchanged": 3}
    applied = run(db, new_deployment(db, tenant), target)
    assert applied.counts == {"applied": 3, "unchanged": 3} and applied.writes == 3
    assert {v["template_id"] for v in applied.template_versions} == {tid, tid + 1}


def test_filters_and_deactivated_people(db, tenant, tmp_path):
    seed(db, tenant)
    with session_scope(db) as s:
        s.exec(select(Employee).where(Employee.email == "p1@acme.example")).one().active = False
    target = FileTarget(tmp_path / "out")
    assert run(db, new_deployment(db, tenant, departments=["Sales"]), target).total == 2
    assert run(db, new_deployment(db, tenant, dry_run=True, groups=["leaders"]), target).total == 1
    assert run(db, new_deployment(db, tenant, dry_run=True, emails=["p4@acme.example"]), target).total == 1
    assert not (tmp_path / "out" / "p1@acme.example.html").exists()


def test_transient_errors_are_retried_and_hopeless_mailboxes_skipped_or_failed(db, tenant, tmp_path):
    seed(db, tenant)
    target = ScriptedTarget(tmp_path / "out", faults={
        "p1@acme.example": [TransientError("429 rate limited", retry_after=0.01), TransientError("503")],
        "p2@acme.example": [SkipMailbox("Mail service not enabled for this user")],
        "p3@acme.example": [TransientError("503")] * 5,
    })  # fmt: skip
    dep = run(db, new_deployment(db, tenant), target)
    assert dep.status == "done"
    assert dep.counts == {"applied": 4, "skipped": 1, "failed": 1}
    got = items(db, dep.id)
    assert got["p1@acme.example"].outcome == "applied"
    assert got["p2@acme.example"].reason == "Mail service not enabled for this user"
    assert "gave up after 3 attempts" in got["p3@acme.example"].reason

    retry_id = None
    with session_scope(db) as s:
        retry_id = deploy_engine.retry_failed(s, deployment=s.get(Deployment, dep.id), created_by="t").id
    retried = run(db, retry_id, target)
    assert retried.total == 1 and retried.counts == {"applied": 1}


def test_a_configuration_error_stops_the_whole_deployment_once(db, tenant, tmp_path):
    seed(db, tenant, count=40)
    target = ScriptedTarget(tmp_path / "out")
    target.concurrency = 2
    target.faults = {
        f"p{i}@acme.example": [ConfigurationError("Domain-wide delegation is not granted")] for i in range(40)
    }
    dep = run(db, new_deployment(db, tenant), target)
    assert dep.status == "failed" and dep.message == "Domain-wide delegation is not granted"
    assert len(target.calls) <= 4, "the engine kept writing after a configuration error"
    assert dep.counts["not_attempted"] >= 36


def test_configuration_checked_before_anything_is_written(db, tenant, tmp_path):
    seed(db, tenant)

    class Refusing(ScriptedTarget):
        def check(self):
            raise ConfigurationError("Roaming signatures are on")

    target = Refusing(tmp_path / "out")
    for dry in (True, False):
        dep = run(db, new_deployment(db, tenant, dry_run=dry), target)
        assert dep.status == "failed" and "Roaming" in dep.message
    assert target.calls == []


def test_resume_after_a_crash_verifies_instead_of_rewriting(db, tenant, tmp_path):
    seed(db, tenant)
    target = ScriptedTarget(tmp_path / "out")
    dep_id = new_deployment(db, tenant)
    # A worker on this host planned, wrote two mailboxes, then died before recording them.
    deploy_engine.execute(db, dep_id, make_target=lambda s, d: _planner_only(target), policy=FAST)
    with session_scope(db) as s:
        dep = s.get(Deployment, dep_id)
        dep.status, dep.worker, dep.heartbeat_at = "running", f"{os.uname().nodename}:999999", utcnow()
        for item in s.exec(select(DeploymentItem).where(DeploymentItem.deployment_id == dep_id)).all()[:2]:
            item.state = ItemState.writing
            target.write(deploy_engine.mailbox_signature(item))
            s.add(item)
    target.calls.clear()
    resumed = run(db, dep_id, target)
    assert resumed.status == "done" and resumed.counts == {"applied": 6}
    verified = [c for c in target.calls if c.verify_first]
    assert len(verified) == 2
    assert target.address_writes == 7  # 2 before the crash + 5 after: every address written exactly once
    assert len(list((tmp_path / "out").glob("*.reply.html"))) == 7


def _planner_only(target):
    class StopAfterPlan(type(target)):
        def check(self):
            raise ConfigurationError("stop after planning")

    t = StopAfterPlan(target.folder)
    return t


def test_a_live_workers_lease_is_respected_and_a_stale_one_taken_over(db, tenant, tmp_path):
    seed(db, tenant)
    dep_id = new_deployment(db, tenant)
    with session_scope(db) as s:
        dep = s.get(Deployment, dep_id)
        dep.status, dep.worker, dep.heartbeat_at = "running", "other-host:42", utcnow()
    assert run(db, dep_id, FileTarget(tmp_path / "out")) is None
    assert dep_id not in deploy_engine.claimable(db)
    with session_scope(db) as s:
        s.get(Deployment, dep_id).heartbeat_at = utcnow() - deploy_engine.LEASE * 2
    assert dep_id in deploy_engine.claimable(db)
    assert run(db, dep_id, FileTarget(tmp_path / "out")).status == "done"


def test_api_dry_run_items_diff_and_progress(client, tenant, db, app, tmp_path):
    seed(db, tenant)
    app.state.run_task = lambda _task, dep_id: run(db, dep_id, FileTarget(tmp_path / "api-out"))
    h = tenant.headers(Role.it)
    r = client.post("/api/deployments", json={"provider": "file"}, headers=h)
    assert r.status_code == 202, r.text
    dep = client.get(f"/api/deployments/{r.json()['id']}", headers=h).json()
    assert dep["dry_run"] is True and dep["status"] == "done" and dep["counts"] == {"added": 6}
    page = client.get(f"/api/deployments/{dep['id']}/items", params={"outcome": "added", "limit": 2}, headers=h)
    assert page.json()["total"] == 6 and len(page.json()["items"]) == 2
    diff = client.get(f"/api/deployments/{dep['id']}/diff", params={"mailbox": "p1@acme.example"}, headers=h)
    assert diff.status_code == 200 and "nothing yet" in diff.text and "<table" in diff.text
    applied = client.post("/api/deployments", json={"provider": "file", "dry_run": False}, headers=h).json()
    assert client.get(f"/api/deployments/{applied['id']}", headers=h).json()["counts"] == {"applied": 6}
    bad = client.post("/api/deployments", json={"provider": "file", "departments": "Sales"}, headers=h)
    assert bad.status_code == 422
    comms = client.post("/api/deployments", json={"provider": "file"}, headers=tenant.headers(Role.comms))
    assert comms.status_code == 403
    assert client.post(f"/api/deployments/{applied['id']}/retry", headers=h).status_code == 409


@pytest.mark.timeout(120)
def test_a_real_worker_process_picks_up_queued_deployments(db, tenant, tmp_path):
    seed(db, tenant)
    dep_id = new_deployment(db, tenant)
    env = dict(
        os.environ,
        RELAIS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        RELAIS_DATA_DIR=str(tmp_path / "data"),
        RELAIS_SEED_DEMO="false",
    )
    root = Path(__file__).resolve().parent.parent
    worker = subprocess.Popen(
        [sys.executable, str(root / "main.py"), "worker"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            with Session(db) as s:
                status = s.get(Deployment, dep_id).status
            if status in ("done", "failed"):
                break
            time.sleep(0.3)
        assert status == "done"
        exported = tmp_path / "data" / "export" / f"org-{tenant.org_id}"
        assert len(list(exported.glob("*.reply.html"))) == 7
    finally:
        worker.kill()
        worker.wait()


def test_unchanged_outcomes_record_address_results(db, tenant, tmp_path):
    seed(db, tenant, count=1)
    target = FileTarget(tmp_path / "out")
    run(db, new_deployment(db, tenant), target)
    dep = run(db, new_deployment(db, tenant, force=True), target)
    assert dep.counts == {"unchanged": 1} and dep.writes == 0  # forced, but the files already match
    item = items(db, dep.id)["p0@acme.example"]
    assert [a["outcome"] for a in item.addresses] == ["unchanged", "unchanged"]
    assert AddressResult("x", Outcome.applied).reason == "" and WriteResult().writes == 0
