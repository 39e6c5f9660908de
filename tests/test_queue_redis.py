"""Huey on Redis: a deployment queued by one process is run by a worker in another (as on several machines)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from sqlmodel import Session, select

from signatures.deploy.models import Deployment
from tests.deploy_support import seed

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.mark.timeout(120)
def test_a_deployment_queued_on_redis_is_run_by_a_separate_worker(db, tenant, tmp_path):
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    seed(db, tenant, count=3)
    env = dict(
        os.environ,
        RELAIS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        RELAIS_DATA_DIR=str(tmp_path / "data"),
        RELAIS_REDIS_URL=REDIS_URL,
        RELAIS_SEED_DEMO="false",
    )
    worker = subprocess.Popen(
        [sys.executable, "main.py", "worker"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        time.sleep(3)  # the worker is up and has already looked for orphans: only the queue can reach it now
        queued = subprocess.run(
            [sys.executable, "main.py", "deploy", "--provider", "file", "--queue"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,  # a loaded machine starts Python slowly
        )
        assert queued.returncode == 0, queued.stdout + queued.stderr
        assert "queued" in queued.stdout
        deadline, dep = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            with Session(db) as s:
                dep = s.exec(select(Deployment)).first()
            if dep is not None and dep.status in ("done", "failed"):
                break
            time.sleep(0.3)
        assert dep is not None and dep.status == "done" and dep.counts == {"applied": 3}
    finally:
        worker.kill()
        output = worker.communicate()[0].decode()
        client.flushdb()
    assert "Worker started (Redis queue)" in output
