"""Deploying signatures to Microsoft 365 through the real engine, msal and httpx, against the local fake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from service.connections.throttle import RetryPolicy
from service.db import session_scope
from service.directory.sync import DirectoryPerson, Listing, apply_listing
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import Deployment, DeploymentItem, SignatureState
from signatures.deploy.targets.base import MailboxSignature
from signatures.deploy.targets.microsoft import MicrosoftTarget
from tests.fakes.microsoft import FakeMicrosoft
from tests.ms_support import TENANT, connect, connection, default_template, ms_settings

FAST = RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake():
    with FakeMicrosoft(tenant_id=TENANT) as f:
        yield f
        assert f.errors == []


@pytest.fixture
def mss(settings, fake):
    return ms_settings(settings, fake, ms_concurrency=4)


def people(fake: FakeMicrosoft, count: int, *, missing: tuple[str, ...] = ()) -> list[str]:
    emails = []
    for i in range(count):
        email = f"user{i}@contoso.example"
        fake.add_user(email, display_name=f"User {i}", jobTitle="Engineer", owa_options={"timezone": "UTC"})
        emails.append(email)
    return emails + list(missing)


def seed(db, tenant, emails: list[str], aliases: dict[str, tuple[str, ...]] | None = None) -> None:
    listing = Listing(people=[DirectoryPerson(source_id=f"id-{e}", email=e, first_name=e.split("@")[0],
                                              last_name="Test", title="Engineer",
                                              aliases=(aliases or {}).get(e, ()))
                              for e in emails])  # fmt: skip
    with session_scope(db) as s:
        apply_listing(s, org_id=tenant.org_id, source="microsoft", listing=listing, dry_run=False)
    default_template(db, tenant.org_id)


def deploy(db, tenant, mss, conn_id, *, dry_run=False, target_factory=None, **flt) -> Deployment:
    with session_scope(db) as s:
        dep_id = deploy_engine.create_deployment(
            s, org_id=tenant.org_id, provider="microsoft", dry_run=dry_run, target_filter=flt
        ).id
    factory = target_factory or (lambda: MicrosoftTarget.from_connection(connection(db, conn_id), mss))
    return deploy_engine.execute(db, dep_id, make_target=lambda s, d: factory(), policy=FAST)


def items(db, dep_id) -> dict[str, DeploymentItem]:
    with Session(db) as s:
        rows = s.exec(select(DeploymentItem).where(DeploymentItem.deployment_id == dep_id)).all()
        return {i.mailbox: i for i in rows}


def set_writes(fake: FakeMicrosoft) -> list:
    return [w for w in fake.writes if w.via == "exchange"]


def test_dry_run_apply_then_second_run_writes_nothing(db, tenant, fake, mss):
    emails = people(fake, 5)
    seed(db, tenant, emails, aliases={emails[0]: ("sales@contoso.example",)})
    conn_id = connect(db, tenant.org_id, fake, mss)

    dry = deploy(db, tenant, mss, conn_id, dry_run=True)
    assert dry.status == "done", dry.message
    assert dry.counts == {"added": 5} and dry.writes == 0
    assert set_writes(fake) == []
    assert fake.request_count("exchange", cmdlet="Get-OrganizationConfig") >= 1  # the roaming check ran

    applied = deploy(db, tenant, mss, conn_id)
    assert applied.status == "done", applied.message
    assert applied.counts == {"applied": 5} and applied.writes == 5
    rows = items(db, applied.id)
    for email in emails:
        assert fake.visible_signature(email) == rows[email].html
        config = fake.message_configuration(email)
        assert config["SignatureText"] == rows[email].text
        assert config["AutoAddSignature"] and config["AutoAddSignatureOnReply"]
        assert fake.user_configuration(email)["timezone"] == "UTC"  # the user's other options survive
    assert {a["outcome"] for a in rows[emails[0]].addresses} == {"applied"}  # aliases share the mailbox
    anchors = {r.headers.get("x-anchormailbox") for r in fake.requests if r.cmdlet == "Set-MailboxMessageConfiguration"}
    assert anchors == {f"UPN:{e}" for e in emails}

    again = deploy(db, tenant, mss, conn_id)
    assert again.counts == {"unchanged": 5} and again.writes == 0
    assert len(set_writes(fake)) == 5

    target = MicrosoftTarget.from_connection(connection(db, conn_id), mss)
    assert target.current(emails[1]) == {emails[1]: rows[emails[1]].html}


def test_roaming_on_stops_dry_run_and_apply_and_nothing_is_reported_applied(db, tenant, fake, mss):
    fake.set_roaming(True)
    emails = people(fake, 3)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss)

    dry = deploy(db, tenant, mss, conn_id, dry_run=True)
    assert dry.status == "failed"
    assert "Roaming signatures are ON" in dry.message
    assert "PostponeRoamingSignaturesUntilLater $true" in dry.message and "add-in" in dry.message

    applied = deploy(db, tenant, mss, conn_id)
    assert applied.status == "failed" and "Roaming signatures are ON" in applied.message
    assert "applied" not in applied.counts and applied.writes == 0
    assert fake.writes == []  # not even the "successful" write that changes nothing
    with Session(db) as s:
        assert s.exec(select(SignatureState)).all() == []
    assert {i.outcome for i in items(db, applied.id).values()} == {None}

    # The admin postpones roaming signatures: the same deployment content now really reaches users.
    fake.set_roaming(False)
    after = deploy(db, tenant, mss, conn_id)
    assert after.status == "done" and after.counts == {"applied": 3}
    assert fake.ignored_writes == []


def test_roaming_turned_on_mid_run_stops_before_the_write(db, tenant, fake, mss):
    emails = people(fake, 3)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss)
    fake.set_roaming(True)
    # The first Get-OrganizationConfig (the pre-flight check) still says "postponed"; the tenant flips after it.
    fake.inject(
        200, cmdlet="Get-OrganizationConfig", times=1, body={"value": [{"PostponeRoamingSignaturesUntilLater": True}]}
    )
    conn = connection(db, conn_id)
    dep = deploy(
        db,
        tenant,
        mss,
        conn_id,
        target_factory=lambda: MicrosoftTarget.from_connection(conn, mss).__class__(
            MicrosoftTarget.from_connection(conn, mss).client, concurrency=2, roaming_recheck=0.0
        ),
    )
    assert dep.status == "failed" and "Roaming signatures are ON" in dep.message
    assert fake.writes == [] and "applied" not in dep.counts


def test_throttling_with_decimal_retry_after_and_503_is_retried(db, tenant, fake, mss):
    emails = people(fake, 4)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss)
    fake.inject(429, cmdlet="Set-MailboxMessageConfiguration", mailbox=emails[0], retry_after="0.35", times=2)
    fake.inject(503, cmdlet="Set-MailboxMessageConfiguration", mailbox=emails[1], retry_after="0.1", times=1)
    fake.inject(503, cmdlet="Set-MailboxMessageConfiguration", mailbox=emails[2], times=1)  # no header: backoff
    started = time.monotonic()
    dep = deploy(db, tenant, mss, conn_id)
    assert dep.status == "done" and dep.counts == {"applied": 4}
    assert time.monotonic() - started >= 0.7  # the two decimal Retry-After waits were honoured
    assert fake.request_count("exchange", cmdlet="Set-MailboxMessageConfiguration", status=429) == 2
    assert fake.request_count("exchange", cmdlet="Set-MailboxMessageConfiguration", status=503) == 2
    assert len([w for w in set_writes(fake) if w.mailbox == emails[0]]) == 1
    assert {i.attempts for i in items(db, dep.id).values()} == {1}  # retries live inside one attempt


def test_write_rate_limit_is_absorbed(db, tenant, fake, mss):
    emails = people(fake, 8)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss)
    fake.set_write_rate(20, burst=2)
    dep = deploy(db, tenant, mss, conn_id)
    assert dep.status == "done" and dep.counts == {"applied": 8}
    assert len(set_writes(fake)) == 8


def test_at_most_four_requests_in_flight_per_mailbox(db, tenant, fake, mss):
    emails = people(fake, 1)
    conn_id = connect(db, tenant.org_id, fake, mss)
    fake.set_latency(0.15, "exchange")
    target = MicrosoftTarget.from_connection(connection(db, conn_id), mss)
    target.check()
    sigs = [
        MailboxSignature(
            mailbox=emails[0],
            addresses=(emails[0],),
            html=f"<p>v{i}</p>",
            text=f"v{i}",
            reply_html="",
            reply_text="",
            content_hash=str(i),
        )
        for i in range(10)
    ]
    threads = [threading.Thread(target=target.write, args=(s,)) for s in sigs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.max_concurrency_seen[emails[0]] == 4  # the limit was reached, never exceeded
    assert fake.concurrency_rejections.get(emails[0], 0) == 0
    assert len(set_writes(fake)) == 10


def test_unknown_mailbox_is_skipped_with_a_reason(db, tenant, fake, mss):
    emails = people(fake, 2, missing=("ghost@contoso.example",))
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss)
    dep = deploy(db, tenant, mss, conn_id)
    assert dep.status == "done" and dep.counts == {"applied": 2, "skipped": 1}
    ghost = items(db, dep.id)["ghost@contoso.example"]
    assert ghost.outcome == "skipped" and "No Exchange Online mailbox" in ghost.reason


def test_missing_exchange_role_stops_before_writing(db, tenant, fake, mss):
    emails = people(fake, 3)
    seed(db, tenant, emails)
    app = fake.register_app(
        secret="a-long-enough-secret",
        graph_roles=["User.Read.All"],
        exchange_roles=["Exchange.ManageAsApp"],
        exchange_admin_role=False,
    )
    conn_id = connect(db, tenant.org_id, fake, mss, secret="a-long-enough-secret", client_id=app.client_id)
    dep = deploy(db, tenant, mss, conn_id)
    assert dep.status == "failed" and "Exchange Administrator" in dep.message
    assert fake.writes == [] and dep.counts.get("not_attempted") == 3


def test_forbidden_write_stops_the_job_once(db, tenant, fake, mss):
    emails = people(fake, 12)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss)
    fake.inject(403, cmdlet="Set-MailboxMessageConfiguration", times=None)
    dep = deploy(db, tenant, mss, conn_id)
    assert dep.status == "failed" and "Exchange.ManageAsApp" in dep.message
    attempts = fake.request_count("exchange", cmdlet="Set-MailboxMessageConfiguration")
    assert attempts <= 4  # at most the writes already in flight when the first 403 came back
    assert dep.counts.get("not_attempted", 0) >= 12 - 4 * 2


def test_rejected_token_is_a_configuration_error(db, tenant, fake, mss):
    emails = people(fake, 2)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss)
    fake.inject(401, service="exchange", times=None)
    dep = deploy(db, tenant, mss, conn_id)
    assert dep.status == "failed" and "token" in dep.message
    assert fake.writes == []


def test_resume_after_sigkill_writes_no_mailbox_twice(db, tenant, fake, mss, tmp_path):
    emails = people(fake, 12)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss)
    with session_scope(db) as s:
        dep_id = deploy_engine.create_deployment(s, org_id=tenant.org_id, provider="microsoft", dry_run=False).id
    fake.set_latency(0.25, "exchange")
    env = dict(os.environ, RELAIS_DATA_DIR=str(mss.data_dir), RELAIS_SECRET_KEY="test-secret-key",
               RELAIS_MS_AUTHORITY_HOST=fake.authority_host, RELAIS_MS_GRAPH_ENDPOINT=fake.graph_endpoint,
               RELAIS_MS_EXCHANGE_ENDPOINT=fake.exchange_endpoint, RELAIS_MS_CA_BUNDLE=fake.ca_file,
               RELAIS_MS_CONCURRENCY="3", RELAIS_SEED_DEMO="false",
               RELAIS_PUBLIC_BASE_URL="https://relais.test")  # fmt: skip
    script = (
        "import sys\n"
        "from service.db import make_engine\n"
        "from service.settings import Settings\n"
        "from signatures.deploy import engine as e\n"
        "from signatures.deploy.registry import make_target\n"
        "settings = Settings()\n"
        "eng = make_engine(sys.argv[1])\n"
        "e.execute(eng, int(sys.argv[2]), make_target=lambda s, d: make_target(s, d, settings))\n"
    )
    url = db.url.render_as_string(hide_password=False)
    child = subprocess.Popen([sys.executable, "-c", script, url, str(dep_id)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while len(set_writes(fake)) < 4 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        assert child.poll() is None, "the worker finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    with Session(db) as s:
        writing = [
            i
            for i in s.exec(select(DeploymentItem).where(DeploymentItem.deployment_id == dep_id)).all()
            if i.state == "writing"
        ]
    assert writing, "the kill should leave mailboxes marked writing"
    time.sleep(0.3)  # let requests the dead worker already sent finish on the server
    fake.set_latency(0, "exchange")
    resumed = deploy_engine.execute(
        db, dep_id, policy=FAST,
        make_target=lambda s, d: MicrosoftTarget.from_connection(connection(db, conn_id), mss))  # fmt: skip
    assert resumed.status == "done", resumed.message
    per_mailbox: dict[str, int] = {}
    for w in set_writes(fake):
        per_mailbox[w.mailbox] = per_mailbox.get(w.mailbox, 0) + 1
    assert per_mailbox == {e: 1 for e in emails}, "a mailbox was written twice (or not at all)"
    assert sum(resumed.counts.get(k, 0) for k in ("applied", "unchanged")) == 12
    assert fake.request_count("exchange", cmdlet="Get-MailboxMessageConfiguration") >= len(writing)
