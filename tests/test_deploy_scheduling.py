"""What the scheduler re-deploys: only mailboxes whose signature changed since it was last written, and not
mailboxes the provider already refused for the same content."""

from sqlmodel import select

from service.db import session_scope, utcnow
from service.directory.models import Employee
from service.features import load_tasks
from service.jobs import get_huey
from signatures.deploy.scheduling import changed_mailboxes
from signatures.deploy.targets.base import SkipMailbox
from signatures.deploy.targets.files import FileTarget
from tests.deploy_support import ScriptedTarget, new_deployment, run, seed


def changed(db, tenant):
    with session_scope(db) as s:
        return sorted(changed_mailboxes(s, org_id=tenant.org_id, provider="file", at=utcnow()))


def test_changes_are_found_and_refusals_not_retried_forever(db, tenant, tmp_path):
    seed(db, tenant, count=4)
    assert len(changed(db, tenant)) == 4  # nothing written yet
    target = ScriptedTarget(tmp_path / "out", faults={"p3@acme.example": [SkipMailbox("Mail service not enabled")]})
    run(db, new_deployment(db, tenant), target)
    assert changed(db, tenant) == []  # written, or refused for this very content

    with session_scope(db) as s:  # a directory change: p1's title
        s.exec(select(Employee).where(Employee.email == "p1@acme.example")).one().title = "Head of Sales"
    assert changed(db, tenant) == ["p1@acme.example"]
    run(db, new_deployment(db, tenant, emails=["p1@acme.example"]), FileTarget(tmp_path / "out"))
    assert changed(db, tenant) == []


def test_the_worker_registers_every_schedule():
    load_tasks()
    names = {name.rsplit(".", 1)[1] for name in get_huey()._registry._registry}
    assert {
        "run_deployment",
        "redeploy_changed",
        "sync_directories",
        "watchdog",
        "daily_rollup",
        "fold_clicks",
        "newsletter_send_due",
    } <= names


def test_a_campaign_starting_or_pausing_re_deploys_only_its_audience(client, db, tenant, tmp_path):
    from service.models import Role
    from tests.campaign_helpers import make_campaign

    seed(db, tenant, count=6)  # p1, p3, p5 are in Sales
    target = FileTarget(tmp_path / "out")
    run(db, new_deployment(db, tenant), target)
    assert changed(db, tenant) == []

    campaign = make_campaign(client, tenant, "spring", state="active", audience={"departments": ["Sales"]})
    sales = ["p1@acme.example", "p3@acme.example", "p5@acme.example"]
    assert changed(db, tenant) == sales
    dep = run(db, new_deployment(db, tenant, emails=changed(db, tenant)), target)
    assert dep.counts == {"applied": 3}
    assert changed(db, tenant) == []
    assert 'alt="spring banner"' in (tmp_path / "out" / "p1@acme.example.html").read_text()
    assert "spring banner" not in (tmp_path / "out" / "p0@acme.example.html").read_text()

    paused = client.patch(
        f"/api/campaigns/{campaign['id']}", json={"state": "paused"}, headers=tenant.headers(Role.comms)
    )
    assert paused.status_code == 200, paused.text
    assert changed(db, tenant) == sales
