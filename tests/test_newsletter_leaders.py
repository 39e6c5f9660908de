"""Leaders first: an issue's leaders' wave (directory managers, a group) goes out hours before everyone else's;
the second wave excludes the first's recipients, waits for its time (scheduled times, no sleeping), and a
worker killed during or between the waves resumes without mailing anyone twice (a real aiosmtpd sink)."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from newsletter.jobs import send_due
from newsletter.mailer import SmtpMailer
from newsletter.models import Delivery, DeliveryState, Issue, IssueStatus
from newsletter.sending import send_issue
from service.app import create_app
from service.db import utcnow
from service.directory.models import Employee, EmployeeGroup
from service.models import Role
from tests.newsletter_support import Sink, free_port, start_pages, start_sink
from tests.page_support import csrf_of, make_user, signed_in_client
from tests.test_newsletter import make_issue

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pages():
    server, base = start_pages()
    yield base
    server.shutdown()


@pytest.fixture
def nl_settings(settings):
    update = {"fetch_allow_private": True, "smtp_port": free_port(), "smtp_from": "Comms <comms@acme.example>",
              "newsletter_lease_s": 1.0}  # fmt: skip
    return settings.model_copy(update=update)


def team(db, org_id: int, managers: int, reports: int, *, group_member: bool = True) -> dict[str, list[int]]:
    """`managers` managers, each with reports (manager_email, in any case); one report is in the group
    "leaders"; one inactive manager's reports do not make anyone a leader."""
    with Session(db) as s:
        bosses = [Employee(org_id=org_id, email=f"boss{i}@acme.example", first_name=f"Chef{i}", source_id=f"b{i}")
                  for i in range(managers)]  # fmt: skip
        staff = [Employee(org_id=org_id, email=f"staff{i}@acme.example", first_name=f"Équipe{i}", source_id=f"s{i}",
                          manager_email=f"BOSS{i % managers}@acme.example") for i in range(reports)]  # fmt: skip
        s.add_all(bosses + staff)
        s.flush()
        if group_member:
            s.add(EmployeeGroup(org_id=org_id, employee_id=staff[0].id, group_key="leaders@acme.example"))
        s.commit()
        return {"bosses": [e.id for e in bosses], "staff": [e.id for e in staff]}


def _addresses(sink: Sink) -> list[str]:
    with sink.lock:
        return [m["To"].addresses[0].addr_spec for m in sink.messages]


def test_leaders_go_first_the_rest_at_their_time_and_nobody_twice(db, tenant, nl_settings, pages):
    ids = team(db, tenant.org_id, managers=2, reports=5)
    leaders = {"managers": True, "audience": {"groups": ["leaders@acme.example"]}, "hours": 3}
    sink = Sink()
    controller = start_sink(nl_settings.smtp_port, sink)
    try:
        with TestClient(create_app(settings=nl_settings, engine=db)) as client:
            h = tenant.headers(Role.comms)
            issue_id = make_issue(client, tenant, pages)
            # who the leaders are: managers or a group, validated with a sentence
            r = client.patch(f"/api/newsletter/issues/{issue_id}", json={"leaders": {"managers": False}}, headers=h)
            assert r.status_code == 422 and "say who the leaders are" in r.text
            r = client.patch(f"/api/newsletter/issues/{issue_id}", json={"leaders": {**leaders, "hours": 0}}, headers=h)
            assert r.status_code == 422
            r = client.patch(f"/api/newsletter/issues/{issue_id}", json={"leaders": leaders}, headers=h)
            assert r.status_code == 200 and r.json()["leaders"]["hours"] == 3
            at = (utcnow() - timedelta(minutes=1)).isoformat()
            r = client.post(f"/api/newsletter/issues/{issue_id}/schedule", json={"at": at}, headers=h)
            assert r.status_code == 200
            assert send_due(db, nl_settings) == [issue_id]
            first = set(_addresses(sink))
            assert first == {"boss0@acme.example", "boss1@acme.example", "staff0@acme.example"}
            with Session(db) as s:
                issue = s.get(Issue, issue_id)
                assert issue.status is IssueStatus.waiting
                assert issue.second_wave_at == issue.scheduled_at + timedelta(hours=3)
            prog = client.get(f"/api/newsletter/issues/{issue_id}/progress", headers=h).json()
            assert prog["status"] == "waiting" and prog["waves"] == [
                {"wave": 1, "total": 3, "done": 3}, {"wave": 2, "total": 0, "done": 0}]  # fmt: skip
            # not its time yet: the worker leaves it, and a direct send sends nothing
            assert send_due(db, nl_settings) == []
            assert send_issue(db, issue_id, SmtpMailer(nl_settings), nl_settings).sent == 3
            assert len(_addresses(sink)) == 3
            # its time comes (the clock is the stored time: moved, not slept); a newcomer joined meanwhile
            with Session(db) as s:
                issue = s.get(Issue, issue_id)
                issue.second_wave_at = utcnow() - timedelta(seconds=1)
                s.add(issue)
                s.add(Employee(org_id=tenant.org_id, email="new@acme.example", first_name="Nouvelle", source_id="n"))
                s.commit()
            assert send_due(db, nl_settings) == [issue_id]
            prog = client.get(f"/api/newsletter/issues/{issue_id}/progress", headers=h).json()
            assert prog["status"] == "sent" and prog["sent"] == 8
            assert prog["waves"] == [{"wave": 1, "total": 3, "done": 3}, {"wave": 2, "total": 5, "done": 5}]
            assert send_due(db, nl_settings) == []
            # the issue page shows both waves
            make_user(db, tenant.org_id, Role.comms)
            page = signed_in_client(client.app, "comms@acme.example").get(f"/app/newsletter/issues/{issue_id}")
            assert "Leaders" in page.text and "Everyone else" in page.text
    finally:
        controller.stop()
    got = _addresses(sink)
    assert len(got) == len(set(got)) == 8
    assert set(got) - first == {f"staff{i}@acme.example" for i in range(1, 5)} | {"new@acme.example"}
    with Session(db) as s:
        waves = dict(s.exec(select(Delivery.employee_id, Delivery.wave).where(Delivery.issue_id == issue_id)).all())
    assert {waves[e] for e in ids["bosses"]} == {1} and waves[ids["staff"][0]] == 1
    assert {waves[e] for e in ids["staff"][1:]} == {2}


def test_the_leaders_wave_is_set_on_the_issue_page(db, tenant, nl_settings, pages, app):
    team(db, tenant.org_id, managers=1, reports=2)
    make_user(db, tenant.org_id, Role.comms)
    with TestClient(create_app(settings=nl_settings, engine=db)) as api:
        issue_id = make_issue(api, tenant, pages, n_articles=1)
    comms = signed_in_client(app, "comms@acme.example")
    page = comms.get(f"/app/newsletter/issues/{issue_id}")
    assert "Leaders first" in page.text and "leaders@acme.example" in page.text
    form = {"csrf": csrf_of(page.text), "subject": "La lettre", "everyone": "on", "language": "fr",
            "leaders_on": "on", "leaders_managers": "on", "leaders_groups": "leaders@acme.example",
            "leaders_hours": "6"}  # fmt: skip
    with Session(db) as s:
        from newsletter.models import IssueArticle

        article_id = s.exec(select(IssueArticle.article_id).where(IssueArticle.issue_id == issue_id)).one()
    form[f"article_{article_id}"] = "1"
    r = comms.post(f"/app/newsletter/issues/{issue_id}", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    with Session(db) as s:
        assert s.get(Issue, issue_id).leaders == {"managers": True, "hours": 6, "audience": {
            **s.get(Issue, issue_id).leaders["audience"], "groups": ["leaders@acme.example"]}}  # fmt: skip
    bad = comms.post(f"/app/newsletter/issues/{issue_id}", data={**form, "leaders_managers": "", "leaders_groups": ""},
                     follow_redirects=False)  # fmt: skip
    assert bad.status_code == 422 and "say who the leaders are" in bad.text


def test_killed_during_and_between_waves_resumes_without_mailing_anyone_twice(db, tenant, nl_settings, pages, tmp_path):
    n_bosses, n_staff = 16, 16
    team(db, tenant.org_id, managers=n_bosses, reports=n_staff, group_member=False)
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        issue_id = make_issue(client, tenant, pages, n_articles=2)
        r = client.patch(f"/api/newsletter/issues/{issue_id}", json={"leaders": {"managers": True, "hours": 2}},
                         headers=tenant.headers(Role.comms))  # fmt: skip
        assert r.status_code == 200
    sink = Sink()
    controller = start_sink(nl_settings.smtp_port, sink)
    env = {**os.environ, "RELAIS_DATABASE_URL": db.url.render_as_string(hide_password=False),
           "RELAIS_DATA_DIR": str(tmp_path / "cli"), "RELAIS_SMTP_PORT": str(nl_settings.smtp_port),
           "RELAIS_SMTP_HOST": "127.0.0.1", "RELAIS_PUBLIC_BASE_URL": "https://relais.test",
           "RELAIS_NEWSLETTER_LEASE_S": "1", "RELAIS_NEWSLETTER_RATE_PER_S": "25", "RELAIS_SEED_DEMO": "false",
           "RELAIS_SECRET_KEY": "test-secret-key"}  # fmt: skip
    cmd = [sys.executable, str(ROOT / "main.py"), "newsletter", "send", str(issue_id)]

    def kill_at(threshold: int) -> None:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        while len(sink.ids()) < threshold and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def run() -> None:
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    try:
        kill_at(6)  # during the leaders' wave
        run()
        with Session(db) as s:
            issue = s.get(Issue, issue_id)
            assert issue.status is IssueStatus.waiting and len(sink.ids()) == n_bosses
            # a crash between the waves: the last deliveries were written, the issue not yet marked waiting
            issue.status, issue.second_wave_at = IssueStatus.sending, utcnow() + timedelta(hours=2)
            s.add(issue)
            s.commit()
        run()  # resumes: nothing left in the first wave, the second not due: it waits again, mails nobody
        with Session(db) as s:
            assert s.get(Issue, issue_id).status is IssueStatus.waiting and len(sink.ids()) == n_bosses
            issue = s.get(Issue, issue_id)
            issue.second_wave_at = utcnow() - timedelta(seconds=1)  # its time has come
            s.add(issue)
            s.commit()
        kill_at(n_bosses + 5)  # during the second wave
        run()
    finally:
        controller.stop()
    ids = sink.ids()
    with Session(db) as s:
        emps = s.exec(select(Employee.id).where(Employee.org_id == tenant.org_id)).all()
        rows = s.exec(select(Delivery.state, Delivery.wave).where(Delivery.issue_id == issue_id)).all()
        assert s.get(Issue, issue_id).status is IssueStatus.sent
    assert set(ids) == {f"<issue-{issue_id}.emp-{e}@relais.test>" for e in emps}
    assert [k for k, v in ids.items() if v > 1] == []
    assert all(st in (DeliveryState.sent, DeliveryState.accepting) for st, _ in rows) and len(rows) == len(emps)
    assert sorted(w for _, w in rows) == [1] * n_bosses + [2] * n_staff
