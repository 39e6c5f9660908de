"""Several worker processes share one deployment (PostgreSQL, Huey on Redis), and one of them is SIGKILLed half
way: every mailbox gets its signature once, none is lost, and the deployment ends `done`. On SQLite (one
writer) no helper is invited: a single worker runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlmodel import Session, col, select

from service.connections.models import Provider
from service.connections.service import save_connection
from service.db import session_scope
from signatures.deploy.models import Deployment, DeploymentItem
from tests.fakes.google import fake_google
from tests.google_support import ADMIN, seed_workspace

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/12"
MAILBOXES = 240


def _start(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "worker", "--threads", "1"],
        env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _worker_env(db, settings, fake, queue: str) -> dict:
    return dict(
        os.environ,
        RELAIS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        RELAIS_DATA_DIR=str(settings.data_dir),
        RELAIS_PUBLIC_BASE_URL=settings.public_base_url,
        RELAIS_SEED_DEMO="false",
        RELAIS_SECRET_KEY=settings.secret_key.get_secret_value(),
        RELAIS_GOOGLE_API_ENDPOINT=fake.url,
        RELAIS_GOOGLE_TOKEN_URI=fake.token_uri,
        RELAIS_GOOGLE_CONCURRENCY="4",
        RELAIS_REDIS_URL=REDIS_URL,
        RELAIS_QUEUE_NAME=queue,
        RELAIS_DEPLOY_HELPERS="2",
        RELAIS_LOG_LEVEL="INFO",
    )


def _holders(db, dep_id: int) -> set[str]:
    with Session(db) as s:
        return set(s.exec(select(DeploymentItem.worker).where(
            DeploymentItem.deployment_id == dep_id, col(DeploymentItem.worker).is_not(None))).all())  # fmt: skip


def _state(db, dep_id: int) -> Deployment:
    with Session(db) as s:
        return s.get(Deployment, dep_id)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("victim", ["helper", "lease holder"])
def test_three_workers_share_a_deployment_and_survive_a_sigkill(db, tenant, settings, tmp_path, victim):
    queue = f"relais-test-{uuid.uuid4().hex[:8]}"
    with fake_google(latency=0.03, write_limit_per_s=150) as fake:
        fake.add_user(ADMIN, admin=True)
        emails = seed_workspace(db, tenant.org_id, fake, MAILBOXES, aliases_every=10)
        with session_scope(db) as s:
            save_connection(s, org_id=tenant.org_id, provider=Provider.google, config={"admin_subject": ADMIN},
                            secret=json.dumps(fake.service_account_info()), settings=settings)  # fmt: skip
        env = _worker_env(db, settings, fake, queue)
        log = tmp_path / "workers.log"
        workers = [_start(env, log) for _ in range(3)]
        try:
            time.sleep(2.5)  # the workers are up: only the queue reaches them now
            queued = subprocess.run([sys.executable, "main.py", "deploy", "--provider", "google", "--queue"],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
            assert queued.returncode == 0, queued.stdout + queued.stderr
            with Session(db) as s:
                # the CLI's (the scheduler may have queued its own "signatures changed" run meanwhile)
                dep_id = s.exec(select(Deployment.id).where(Deployment.created_by == "cli")).one()
            is_postgres = db.dialect.name == "postgresql"
            killed = None
            deadline = time.monotonic() + 200
            while time.monotonic() < deadline:
                dep = _state(db, dep_id)
                if dep.status.value in ("done", "failed"):
                    break
                if is_postgres and killed is None and dep.done >= MAILBOXES // 2:
                    holders = _holders(db, dep_id)
                    assert len(holders) >= 2, f"the deployment was not shared: {holders}"
                    pids = {int(h.rsplit(":", 1)[1]) for h in holders}
                    leader = int(dep.worker.rsplit(":", 1)[1])
                    pick = [w for w in workers if w.pid == leader] if victim == "lease holder" else \
                        [w for w in workers if w.pid in pids - {leader}]  # fmt: skip
                    assert pick, (victim, pids, leader)
                    killed = pick[0]
                    killed.send_signal(signal.SIGKILL)
                    killed.wait(timeout=10)
                time.sleep(0.05)
            dep = _state(db, dep_id)
        finally:
            for w in workers:
                w.kill()
                w.wait(timeout=10)
            redis.Redis.from_url(REDIS_URL).delete(*[k for k in redis.Redis.from_url(REDIS_URL).keys(f"*{queue}*")]
                                                   or ["-"])  # fmt: skip
        output = log.read_text()[-4000:]
        assert dep.status.value == "done" and dep.done == MAILBOXES, output
        assert dep.counts == {"applied": MAILBOXES}, (dep.counts, output)
        assert fake.duplicate_writes() == [], "a mailbox was written twice"
        assert len(fake.writes) == MAILBOXES + MAILBOXES // 10  # every tenth user has an alias: nothing lost
        with Session(db) as s:
            html = {i.mailbox: i.html for i in s.exec(select(DeploymentItem).where(
                DeploymentItem.deployment_id == dep_id))}  # fmt: skip
        for email in emails:
            for send_as in fake.send_as(email):
                assert send_as["signature"] == html[email]
        holders = _holders(db, dep_id)
        if is_postgres:
            assert killed is not None and len(holders) >= 2
        else:
            assert len(holders) == 1, f"SQLite has one writer: no helper should take part, yet {holders} did"
