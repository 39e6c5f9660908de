"""A real worker process SIGKILLed half way through a Gmail deployment, then started again: every mailbox
ends up with its signature and no signature is written twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from service.connections.models import Provider
from service.connections.service import save_connection
from service.db import session_scope
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import Deployment, DeploymentItem
from tests.fakes.google import fake_google
from tests.google_support import ADMIN, seed_workspace

ROOT = Path(__file__).resolve().parent.parent
MAILBOXES = 300


def start_worker(db, settings, fake, log_path: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        RELAIS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        RELAIS_DATA_DIR=str(settings.data_dir),
        RELAIS_PUBLIC_BASE_URL=settings.public_base_url,
        RELAIS_SEED_DEMO="false",
        RELAIS_SECRET_KEY=settings.secret_key.get_secret_value(),
        RELAIS_GOOGLE_API_ENDPOINT=fake.url,
        RELAIS_GOOGLE_TOKEN_URI=fake.token_uri,
        RELAIS_GOOGLE_CONCURRENCY="8",
        RELAIS_LOG_LEVEL="WARNING",
    )
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "worker"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )


def progress(db, dep_id) -> tuple[str, int]:
    with Session(db) as s:
        dep = s.get(Deployment, dep_id)
        return dep.status.value, dep.done


@pytest.mark.timeout(240)
def test_sigkill_half_way_then_restart_writes_everything_once(db, tenant, settings, tmp_path):
    with fake_google(latency=0.03, write_limit_per_s=200) as fake:
        fake.add_user(ADMIN, admin=True)
        emails = seed_workspace(db, tenant.org_id, fake, MAILBOXES, aliases_every=10)
        with session_scope(db) as s:
            save_connection(
                s,
                org_id=tenant.org_id,
                provider=Provider.google,
                config={"admin_subject": ADMIN},
                secret=json.dumps(fake.service_account_info()),
                settings=settings,
            )
            dep_id = deploy_engine.create_deployment(s, org_id=tenant.org_id, provider="google", dry_run=False).id
        log_path = tmp_path / "worker.log"
        worker = start_worker(db, settings, fake, log_path)
        killed_at = None
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status, done = progress(db, dep_id)
                if done >= MAILBOXES // 2:
                    worker.send_signal(signal.SIGKILL)
                    worker.wait(timeout=10)
                    killed_at = done
                    break
                assert status in ("queued", "running"), log_path.read_text()
                time.sleep(0.02)
            assert killed_at is not None, "the worker never got half way: " + log_path.read_text()[-2000:]
            assert killed_at < MAILBOXES, "killed too late to test anything"
            writes_before_restart = len(fake.writes)
            assert writes_before_restart > 0

            worker = start_worker(db, settings, fake, log_path)
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and progress(db, dep_id)[0] not in ("done", "failed"):
                time.sleep(0.1)
            status, done = progress(db, dep_id)
        finally:
            worker.kill()
            worker.wait(timeout=10)
        assert (status, done) == ("done", MAILBOXES), log_path.read_text()[-3000:]
        with Session(db) as s:
            dep = s.get(Deployment, dep_id)
            html = {i.mailbox: i.html for i in s.exec(select(DeploymentItem).where(
                DeploymentItem.deployment_id == dep_id))}  # fmt: skip
        assert dep.counts == {"applied": MAILBOXES}, dep.counts
        for email in emails:
            for send_as in fake.send_as(email):
                assert send_as["signature"] == html[email], f"{send_as['sendAsEmail']} lacks its signature"
        assert fake.duplicate_writes() == []
        expected_writes = MAILBOXES + MAILBOXES // 10  # every tenth user has an alias
        assert len(fake.writes) == expected_writes
        assert dep.writes <= expected_writes  # a write that landed as the worker died is not counted twice
