"""A 2xx means the change is committed: the request's commit runs before the response is sent, a commit the
database refuses becomes an error response (and nothing changes), and jobs a request queues go out only after
its commit."""

import threading

import httpx
from sqlalchemy import text
from sqlmodel import Session, select

from service.app import create_app
from service.db import make_engine
from service.models import ApiKey, Role
from signatures.deploy.models import Deployment
from tests.deploy_support import seed
from tests.live_server import live_server


def _impatient_engine(db):
    """A second engine on the same database whose writers give up after half a second."""
    url = db.url.render_as_string(hide_password=False)
    if db.dialect.name == "sqlite":
        return make_engine(url, busy_timeout=0.5)
    return make_engine(url, connect_args={"options": "-c lock_timeout=500"})


class HeldLock:
    """Another writer holding the database (SQLite) or the key's row (PostgreSQL) until released."""

    def __init__(self, db, key_id: int):
        self.conn = db.connect()
        if db.dialect.name == "sqlite":
            self.conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self.conn.begin()
            self.conn.execute(text("SELECT id FROM apikey WHERE id = :id FOR UPDATE"), {"id": key_id})

    def release(self):
        self.conn.rollback()
        self.conn.close()


def _key_id(db, org_id: int, role: Role) -> int:
    with Session(db) as s:
        return s.exec(select(ApiKey.id).where(ApiKey.org_id == org_id, ApiKey.role == role)).one()


def test_a_revocation_the_database_refuses_is_an_error_and_the_key_keeps_working(db, settings, tenant):
    app = create_app(settings=settings, engine=_impatient_engine(db))
    it_key = _key_id(db, tenant.org_id, Role.it)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        lock = HeldLock(db, it_key)
        try:
            r = client.delete(f"/api/keys/{it_key}", headers=tenant.headers())
        finally:
            lock.release()
        assert r.status_code == 503, r.text
        body = r.json()["error"]
        assert body["code"] == "unavailable" and "nothing was saved" in body["message"]
        assert r.headers["Retry-After"] == "1"
        with Session(db) as s:
            assert s.get(ApiKey, it_key).revoked_at is None
        assert client.get("/api/employees", headers=tenant.headers(Role.it)).status_code == 200


def test_a_revocation_answered_200_is_effective_on_the_next_request(app, db, tenant):
    it_key = _key_id(db, tenant.org_id, Role.it)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(20):  # a race would show up in some rounds: check each round at once
            assert client.get("/api/employees", headers=tenant.headers(Role.it)).status_code == 200
            r = client.delete(f"/api/keys/{it_key}", headers=tenant.headers())
            assert r.status_code == 200
            with Session(db) as s:  # a separate connection, read as soon as the answer arrived
                assert s.get(ApiKey, it_key).revoked_at is not None
            assert client.get("/api/employees", headers=tenant.headers(Role.it)).status_code == 401
            with Session(db) as s:
                s.get(ApiKey, it_key).revoked_at = None
                s.commit()


def test_a_change_waiting_for_the_lock_is_answered_only_once_saved(db, settings, tenant):
    """While another writer holds the lock, the client waits; the 200 comes with the change saved."""
    app = create_app(settings=settings, engine=db)  # patient writers (30 s)
    it_key = _key_id(db, tenant.org_id, Role.it)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        lock = HeldLock(db, it_key)
        answered = threading.Event()
        result = {}

        def revoke():
            result["response"] = client.delete(f"/api/keys/{it_key}", headers=tenant.headers())
            answered.set()

        worker = threading.Thread(target=revoke)
        worker.start()
        assert not answered.wait(1.0), "answered while the change could not have been committed"
        lock.release()
        worker.join(30)
        assert result["response"].status_code == 200
        with Session(db) as s:
            assert s.get(ApiKey, it_key).revoked_at is not None


def test_jobs_go_out_after_the_commit_and_never_on_rollback(db, settings, tenant):
    """The worker is handed a deployment only once its row is committed; a refused commit queues nothing."""
    seed(db, tenant, count=2)
    seen = []

    def run_task(_task, deployment_id):
        with Session(db) as s:  # what a worker on another connection would see
            seen.append(s.get(Deployment, deployment_id) is not None)

    app = create_app(settings=settings, engine=_impatient_engine(db), run_task=run_task)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        h = tenant.headers(Role.it)
        assert client.post("/api/deployments", json={"provider": "file"}, headers=h).status_code == 202
        assert seen == [True]
        # The key's row is locked (PostgreSQL) or the whole database is (SQLite): authenticating writes it.
        lock = HeldLock(db, _key_id(db, tenant.org_id, Role.it))
        try:
            r = client.post("/api/deployments", json={"provider": "file"}, headers=h)
        finally:
            lock.release()
        assert r.status_code == 503, r.text
        assert seen == [True], "a job was queued for a deployment that was never saved"
        with Session(db) as s:
            assert len(s.exec(select(Deployment)).all()) == 1
