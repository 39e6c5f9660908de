"""Queue tasks for deployments: run one, pick up orphaned ones, and the schedules that keep mailboxes current."""

import logging
import threading

from huey import crontab
from sqlmodel import Session, select

from service.connections.models import ProviderConnection
from service.connections.throttle import RetryPolicy
from service.db import session_scope, utcnow
from service.jobs import engine, get_huey
from service.settings import get_settings
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import Deployment
from signatures.deploy.registry import make_target
from signatures.deploy.scheduling import changed_mailboxes

log = logging.getLogger(__name__)
huey = get_huey()


def retry_policy(settings) -> RetryPolicy:
    return RetryPolicy(
        budget_seconds=settings.deploy_retry_minutes * 60, defer_after=settings.deploy_defer_after_minutes * 60
    )


def run(deployment_id: int, on_progress=None, *, db=None):
    """Run one deployment here, on `db` (the CLI's engine) or the worker's."""
    settings = get_settings()
    return deploy_engine.execute(
        db or engine(),
        deployment_id,
        make_target=_target_factory(settings),
        policy=retry_policy(settings),
        on_progress=on_progress,
    )


def _target_factory(settings):
    return lambda session, dep: make_target(session, dep, settings)


@huey.task(retries=2, retry_delay=10)
def run_deployment(deployment_id: int) -> None:
    invite_helpers(deployment_id)
    run(deployment_id)


def invite_helpers(deployment_id: int) -> None:
    """Ask `deploy_helpers` more workers to share the deployment (PostgreSQL: SQLite has a single writer). They
    start a second later, once this worker holds the lease; idle workers pick them up, busy ones later (then
    finding the deployment done, they return at once)."""
    settings = get_settings()
    if not settings.deploy_helpers or engine().dialect.name != "postgresql":
        return
    with Session(engine()) as session:
        dep = session.get(Deployment, deployment_id)
    if dep is not None and not dep.dry_run:
        for _ in range(settings.deploy_helpers):
            assist_deployment.schedule((deployment_id,), delay=1)


@huey.task()
def assist_deployment(deployment_id: int) -> None:
    settings = get_settings()
    deploy_engine.assist(engine(), deployment_id, make_target=_target_factory(settings), policy=retry_policy(settings))


def pick_up_orphans() -> None:
    """Queue the deployments that wait for a worker or whose worker is gone."""
    for dep_id in deploy_engine.claimable(engine()):
        log.info("signatures.deploy.resuming", extra={"deployment_id": dep_id})
        run_deployment(dep_id)


_first_thread = threading.Lock()  # taken once, never released


@huey.on_startup()
def on_worker_start() -> None:
    """A worker that starts (after a crash, say) resumes orphaned deployments — once per process, although
    Huey runs startup hooks in every consumer thread."""
    if _first_thread.acquire(blocking=False):
        pick_up_orphans()


@huey.periodic_task(crontab(minute="*"))
def watchdog() -> None:
    """Leases that stopped beating (a worker on another machine died) are taken over here."""
    pick_up_orphans()


@huey.periodic_task(crontab(minute=f"*/{max(1, get_settings().redeploy_every_minutes)}"))
def redeploy_changed() -> None:
    """Keep mailboxes current: after a template, brand, directory or banner change, deploy what changed."""
    with Session(engine()) as session:
        connections = session.exec(select(ProviderConnection).where(ProviderConnection.auto_deploy == True)).all()  # noqa: E712
    for conn in connections:
        with session_scope(engine()) as session:
            changed = changed_mailboxes(session, org_id=conn.org_id, provider=conn.provider.value, at=utcnow())
            if not changed or deploy_engine.has_open_deployment(
                session, org_id=conn.org_id, provider=conn.provider.value
            ):
                continue
            dep = deploy_engine.create_deployment(
                session,
                org_id=conn.org_id,
                provider=conn.provider.value,
                dry_run=False,
                target_filter={"emails": changed},
                created_by="scheduler",
                reason=f"scheduled: {len(changed)} signature(s) changed",
            )
        log.info("signatures.deploy.scheduled", extra={"deployment_id": dep.id, "mailboxes": len(changed)})
        run_deployment(dep.id)
