"""The deployment engine: plan, then write only what changed, resumably.

Every step is recorded in the database before and after it happens, so a worker killed at any moment
(SIGKILL included) can be replaced by another that finishes the job:
- planning inserts all items in one transaction (a crash re-plans from scratch);
- an item is marked `writing` (committed) before its mailbox is written and `done` after; items found
  `writing` on resume are written with `verify_first`, so the target reads the mailbox and writes only
  if the signature is not already there — no mailbox is written twice;
- the running worker holds a lease (worker id + heartbeat) that another worker takes over when the
  heartbeat goes stale or the owning process is gone;
- on PostgreSQL other workers help (`assist`): every worker claims items in batches (`_Claims`: an UPDATE that
  re-checks each item is still free, so two workers never hold one item); the `writing` items of a worker that
  died are claimed again and verified first. The lease holder plans, waits for the helpers' items, and finishes.
"""

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from service.connections.throttle import AdaptiveLimit, Deferred, GaveUp, RetryPolicy, call_with_retry
from service.db import aware, get_existing, row_id, session_scope, utcnow
from service.errors import AppError
from signatures.deploy.models import (
    Deployment,
    DeploymentItem,
    DeploymentStatus,
    DeploymentWorker,
    ItemState,
    SignatureState,
)
from signatures.deploy.planning import check_filter, plan, select_employees
from signatures.deploy.registry import mailbox_target
from signatures.deploy.targets.base import (
    AddressResult,
    ConfigurationError,
    MailboxSignature,
    NotVisible,
    Outcome,
    SignatureTarget,
    SkipMailbox,
    TargetError,
    WriteResult,
)

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
HEARTBEAT_EVERY = 2.0
RECORD_EVERY = 0.1  # seconds between transactions recording finished mailboxes
TargetFactory = Callable[[Session, Deployment], SignatureTarget]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------- creating


def create_deployment(
    session: Session, *, org_id: int, provider: str, dry_run: bool, target_filter: dict | None = None,
    created_by: str = "", reason: str = "manual",
) -> Deployment:  # fmt: skip
    mailbox_target(provider)  # an unknown target is refused before anything is created
    dep = Deployment(
        org_id=org_id,
        provider=provider,
        dry_run=dry_run,
        target_filter=check_filter(target_filter or {}),
        created_by=created_by,
        reason=reason,
    )
    session.add(dep)
    session.flush()
    log.info("signatures.deploy.created", extra={"deployment_id": dep.id, "provider": provider, "dry_run": dry_run})
    return dep


RETRYABLE = (Outcome.failed.value, Outcome.deferred.value, Outcome.unconfirmed.value)


def retry_failed(session: Session, *, deployment: Deployment, created_by: str) -> Deployment:
    """A new deployment of just the mailboxes that failed, were deferred or unconfirmed, or never attempted."""
    mailboxes = session.exec(
        select(DeploymentItem.mailbox).where(
            DeploymentItem.deployment_id == deployment.id,
            col(DeploymentItem.outcome).in_(RETRYABLE) | (DeploymentItem.state != ItemState.done),
        )
    ).all()
    return create_deployment(
        session,
        org_id=deployment.org_id,
        provider=deployment.provider,
        dry_run=False,
        target_filter={"emails": list(mailboxes)},
        created_by=created_by,
        reason=f"retry of #{deployment.id}",
    )


def has_open_deployment(session: Session, *, org_id: int, provider: str) -> bool:
    return (
        session.exec(
            select(Deployment.id).where(
                Deployment.org_id == org_id,
                Deployment.provider == provider,
                Deployment.dry_run == False,  # noqa: E712
                col(Deployment.status).in_([DeploymentStatus.queued, DeploymentStatus.running]),
            )
        ).first()
        is not None
    )


# ---------------------------------------------------------------- leases


def _owner_is_gone(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return True
    except PermissionError:
        return False
    return False


def claim(engine: Engine, deployment_id: int, me: str) -> bool:
    """Take the deployment if nobody live holds it (compare-and-swap on the owner)."""
    with session_scope(engine) as session:
        dep = session.get(Deployment, deployment_id)
        if dep is None or dep.status not in (DeploymentStatus.queued, DeploymentStatus.running):
            return False
        stale = dep.heartbeat_at is None or dep.heartbeat_at < utcnow() - LEASE
        if dep.worker not in (None, me) and not stale and not _owner_is_gone(dep.worker):
            return False
        owner_clause = col(Deployment.worker).is_(None) if dep.worker is None else col(Deployment.worker) == dep.worker
        result = session.exec(
            update(Deployment).where(col(Deployment.id) == deployment_id, owner_clause)
            .values(worker=me, heartbeat_at=utcnow(), status=DeploymentStatus.running,
                    started_at=dep.started_at or utcnow())
        )  # fmt: skip
        return result.rowcount == 1


def claimable(engine: Engine) -> list[int]:
    """Deployments waiting for a worker, or whose worker died: what a starting worker picks up."""
    with Session(engine) as session:
        rows = session.exec(
            select(Deployment).where(col(Deployment.status).in_([DeploymentStatus.queued, DeploymentStatus.running]))
        ).all()
        cutoff = utcnow() - LEASE
        return [
            row_id(d)
            for d in rows
            if d.status == DeploymentStatus.queued
            or d.heartbeat_at is None
            or d.heartbeat_at < cutoff
            or _owner_is_gone(d.worker)
        ]


# ---------------------------------------------------------------- running


@dataclass
class Progress:
    deployment_id: int
    status: str
    total: int
    done: int
    counts: dict
    eta_seconds: float | None


def progress_of(dep: Deployment) -> Progress:
    eta = None
    if dep.started_at and dep.done and dep.total > dep.done and dep.status == DeploymentStatus.running:
        elapsed = (utcnow() - dep.started_at).total_seconds()
        eta = round(elapsed / dep.done * (dep.total - dep.done), 1)
    return Progress(row_id(dep), dep.status.value, dep.total, dep.done, dict(dep.counts), eta)


# Deployments being run by this process. A worker's threads share its id (host:pid), so the lease alone
# would let two threads of one worker run the same deployment (each Huey worker thread runs the startup
# hook that re-queues orphans, so a deployment can be queued twice).
_running_here: set[int] = set()
_running_lock = threading.Lock()


def execute(
    engine: Engine, deployment_id: int, *, make_target: TargetFactory, policy: RetryPolicy | None = None,
    on_progress: Callable[[Progress], None] | None = None, me: str | None = None,
) -> Deployment | None:  # fmt: skip
    """Run (or resume) a deployment to the end. Returns None if another live worker (or another thread of
    this one) holds it."""
    with _running_lock:
        if deployment_id in _running_here:
            return None
        _running_here.add(deployment_id)
    try:
        return _execute(engine, deployment_id, make_target=make_target, policy=policy, on_progress=on_progress, me=me)
    finally:
        with _running_lock:
            _running_here.discard(deployment_id)


def _execute(
    engine: Engine, deployment_id: int, *, make_target: TargetFactory, policy: RetryPolicy | None,
    on_progress: Callable[[Progress], None] | None, me: str | None,
) -> Deployment | None:  # fmt: skip
    me = me or worker_id()
    if not claim(engine, deployment_id, me):
        return None
    policy = policy or RetryPolicy()
    try:
        with session_scope(engine) as session:
            dep = get_existing(session, Deployment, deployment_id)
            target = make_target(session, dep)
            dry_run = dep.dry_run
    except (ConfigurationError, AppError) as exc:  # no connection, an unknown provider, an unreadable key
        return _cannot_start(engine, deployment_id, exc.message)
    except Exception as exc:  # a bug: fail once, loudly, rather than be retried every minute for ever
        log.exception("signatures.deploy.cannot_start", extra={"deployment_id": deployment_id})
        return _cannot_start(engine, deployment_id, f"The deployment could not start: {exc!r}")
    # Planning runs beside the writes: items are committed in chunks and written as soon as they exist, so
    # rendering thousands of signatures does not delay the first write (see _plan_missing).
    planner = _Planner(engine, deployment_id)
    if dry_run:
        planner.run()
    else:
        planner.start()
    try:
        try:
            warnings = target.check()
        except ConfigurationError as exc:
            planner.join()
            return _finish(engine, deployment_id, DeploymentStatus.failed, exc.message)
        if dry_run:
            return _finish(engine, deployment_id, DeploymentStatus.done, "\n".join(warnings))
        try:
            _write_all(engine, deployment_id, target, policy, me, on_progress, planner)
        except ConfigurationError as exc:
            log.warning("signatures.deploy.stopped", extra={"deployment_id": deployment_id, "reason": exc.message})
            planner.join()
            return _finish(engine, deployment_id, DeploymentStatus.failed, exc.message)
        planner.join()
        return _finish(engine, deployment_id, DeploymentStatus.done, "\n".join(warnings))
    finally:
        planner.join(reraise=False)


def assist(
    engine: Engine, deployment_id: int, *, make_target: TargetFactory, policy: RetryPolicy | None = None,
    me: str | None = None,
) -> Deployment | None:  # fmt: skip
    """Help the worker holding a running deployment's lease: claim and write items until none are left. Should
    that worker die, take its lease over and finish the deployment (planning what it had not planned)."""
    me = me or worker_id()
    with _running_lock:
        if deployment_id in _running_here:  # this process runs it already
            return None
        _running_here.add(deployment_id)
    try:
        with session_scope(engine) as session:
            dep = session.get(Deployment, deployment_id)
            if dep is None or dep.dry_run or dep.status is not DeploymentStatus.running or dep.worker == me:
                return None
            try:
                target = make_target(session, dep)
            except (ConfigurationError, AppError):
                return None  # the lease holder met the same problem and reports it
        policy = policy or RetryPolicy()
        try:
            target.check()
            _write_all(engine, deployment_id, target, policy, me, None, leader=False)
        except ConfigurationError as exc:
            return _finish(engine, deployment_id, DeploymentStatus.failed, exc.message)
        if _lease_holder_gone(engine, deployment_id):
            log.info("signatures.deploy.taking_over", extra={"deployment_id": deployment_id, "worker": me})
            return _execute(engine, deployment_id, make_target=make_target, policy=policy, on_progress=None, me=me)
        return None
    finally:
        with _running_lock:
            _running_here.discard(deployment_id)


def _cannot_start(engine: Engine, deployment_id: int, message: str) -> Deployment:
    """A deployment whose target cannot even be built ends `failed` once, with the sentence: retrying cannot help
    (a configuration problem), so neither the queue's retries nor the watchdog pick it up again."""
    log.warning("signatures.deploy.cannot_start", extra={"deployment_id": deployment_id, "reason": message})
    return _finish(engine, deployment_id, DeploymentStatus.failed, message)


PLAN_CHUNK = 50
FIRST_PLAN_CHUNK = 10
# Serialises the read-modify-write of a deployment's counters between the planner and the writer.
_counters_lock = threading.Lock()


class _Planner:
    """Plans a deployment in a thread, committing items in chunks; the writer polls for new pending items
    until `finished` is set. A crash mid-plan is finished by the next run: only employees without an item
    are planned (so planning is idempotent)."""

    def __init__(self, engine: Engine, deployment_id: int):
        self.engine, self.deployment_id = engine, deployment_id
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run_catching, name="deploy-plan", daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            _plan_missing(self.engine, self.deployment_id)
        finally:
            self.finished.set()

    def _run_catching(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # re-raised in the deployment's thread by join()
            self.error = exc

    def join(self, reraise: bool = True) -> None:
        if self.thread is not None:
            self.thread.join()
        if reraise and self.error is not None:
            error, self.error = self.error, None
            raise error


def _plan_missing(engine: Engine, deployment_id: int) -> None:
    # expire_on_commit=False: the plan's generator keeps using its employees and rotation across commits.
    with Session(engine, expire_on_commit=False) as session:
        dep = get_existing(session, Deployment, deployment_id)
        have = set(session.exec(select(DeploymentItem.employee_id).where(
            DeploymentItem.deployment_id == deployment_id)).all())  # fmt: skip
        employees = [
            e for e in select_employees(session, org_id=dep.org_id, target_filter=dep.target_filter) if e.id not in have
        ]
        with _counters_lock, session_scope(engine) as s:
            row = _locked(s, deployment_id)
            row.total = len(have) + len(employees)
            s.add(row)
        if not employees:
            return
        chunk: list = []
        plans = plan(
            session,
            org_id=dep.org_id,
            provider=dep.provider,
            employees=employees,
            at=utcnow(),
            force=bool(dep.target_filter.get("force")),
        )
        size = FIRST_PLAN_CHUNK  # a small first chunk: the first writes start sooner
        for mp in plans:
            chunk.append(mp)
            if len(chunk) >= size:
                _insert_plans(engine, session, dep, chunk)
                chunk, size = [], PLAN_CHUNK
        _insert_plans(engine, session, dep, chunk)


def _insert_plans(engine: Engine, session: Session, dep: Deployment, plans: list) -> None:
    """Commit one chunk of items (with whatever the plan wrote, e.g. minted banner links), then count it."""
    counts: dict[str, int] = {}
    versions: set[tuple[int, int]] = set()
    for mp in plans:
        if mp.template:
            versions.add(mp.template)
        done = dep.dry_run or mp.action in ("unchanged", "skipped")
        outcome = mp.action if dep.dry_run else (mp.action if done else None)
        addresses = [dict(a, outcome=a["action"] if dep.dry_run else None) for a in mp.addresses]
        if not dep.dry_run and mp.action == "unchanged":
            addresses = [dict(a, outcome="unchanged") for a in mp.addresses]
        session.add(DeploymentItem(
            deployment_id=row_id(dep), employee_id=mp.employee.id, mailbox=mp.employee.email,
            state=ItemState.done if done else ItemState.pending, outcome=outcome, reason=mp.reason,
            content_hash=mp.content_hash, html=mp.html, text=mp.text, reply_html=mp.reply_html,
            reply_text=mp.reply_text, addresses=addresses,
        ))  # fmt: skip
        if outcome:
            counts[outcome] = counts.get(outcome, 0) + 1
    session.commit()
    with _counters_lock, session_scope(engine) as s:
        row = _locked(s, row_id(dep))
        merged = dict(row.counts)
        for key, n in counts.items():
            merged[key] = merged.get(key, 0) + n
        row.counts = merged
        row.done += sum(counts.values())
        known = {(v["template_id"], v["version"]) for v in row.template_versions}
        row.template_versions = [{"template_id": t, "version": v} for t, v in sorted(known | versions)]
        s.add(row)


def _finish(engine: Engine, deployment_id: int, status: DeploymentStatus, message: str) -> Deployment:
    """Close the deployment. The final counts are recounted from the items: the running counters are kept
    for progress only, and a crash between an item's commit and its counter's could leave them short."""
    with _counters_lock, session_scope(engine) as session:
        dep = _locked(session, deployment_id)
        dep.status, dep.message, dep.finished_at, dep.heartbeat_at = status, message, utcnow(), utcnow()
        rows = session.exec(select(DeploymentItem.state, DeploymentItem.outcome, func.count(), func.sum(
            DeploymentItem.writes)).where(DeploymentItem.deployment_id == deployment_id)
            .group_by(DeploymentItem.state, col(DeploymentItem.outcome))).all()  # fmt: skip
        counts: dict[str, int] = {}
        for state, outcome, n, _writes in rows:
            if state == ItemState.done and outcome:
                counts[outcome] = counts.get(outcome, 0) + n
            elif status == DeploymentStatus.failed:
                counts["not_attempted"] = counts.get("not_attempted", 0) + n
        dep.counts = counts
        dep.message = "\n".join(filter(None, [message, *_notes(counts)]))
        dep.done = sum(n for state, _o, n, _w in rows if state == ItemState.done)
        dep.writes = sum(w or 0 for *_rest, w in rows)
        session.add(dep)
    log.info(
        "signatures.deploy.finished", extra={"deployment_id": deployment_id, "status": status.value, "counts": counts}
    )
    with Session(engine) as session:
        return get_existing(session, Deployment, deployment_id)


def _notes(counts: dict[str, int]) -> list[str]:
    """What the counts alone do not say: mailboxes left for a later run, and why."""
    notes = []
    if n := counts.get(Outcome.deferred.value):
        notes.append(
            f"{n} mailbox(es) deferred: the provider asked to wait longer than a deployment holds a mailbox; "
            "the next scheduled run retries them (each mailbox's reason says until when)."
        )
    if n := counts.get(Outcome.unconfirmed.value):
        notes.append(
            f"{n} mailbox(es) written but unconfirmed: the write is not known to be visible to its user "
            "(each mailbox's reason says why); they are written again once the cause is fixed."
        )
    return notes


def mailbox_signature(item: DeploymentItem, verify_first: bool | None = None) -> MailboxSignature:
    """What to write for an item; `verify_first` (default: the item is `writing`) reads the mailbox first."""
    return MailboxSignature(
        mailbox=item.mailbox,
        addresses=tuple(a["address"] for a in item.addresses),
        html=item.html,
        text=item.text,
        reply_html=item.reply_html,
        reply_text=item.reply_text,
        content_hash=item.content_hash,
        verify_first=item.state == ItemState.writing if verify_first is None else verify_first,
    )


def write_with_retries(
    target: SignatureTarget, signature: MailboxSignature, policy: RetryPolicy, limit: AdaptiveLimit | None = None
) -> WriteResult:
    """Write one mailbox with the shared retry policy. ConfigurationError propagates (stops everything)."""
    attempts = {"n": 0}

    def attempt() -> WriteResult:
        attempts["n"] += 1
        return target.write(signature)

    try:
        result = call_with_retry(attempt, policy=policy, bucket=getattr(target, "bucket", None), limit=limit)
    except Deferred as exc:
        log.info("signatures.deploy.mailbox_deferred", extra={"mailbox": signature.mailbox, "reason": exc.message})
        reason = f"{exc.message}; the next scheduled run retries it"
        return WriteResult([AddressResult(a, Outcome.deferred, reason) for a in signature.addresses])
    except SkipMailbox as exc:
        return WriteResult([AddressResult(a, Outcome.skipped, exc.message) for a in signature.addresses])
    except GaveUp as exc:
        return WriteResult([AddressResult(a, Outcome.failed, str(exc)) for a in signature.addresses])
    except ConfigurationError:
        raise
    except TargetError as exc:
        return WriteResult([AddressResult(a, Outcome.failed, exc.message) for a in signature.addresses])
    except Exception as exc:  # a bug or an unexpected library error: fail this mailbox, keep going
        log.exception("signatures.deploy.mailbox_crashed", extra={"mailbox": signature.mailbox})
        return WriteResult(
            [AddressResult(a, Outcome.failed, f"unexpected error: {exc!r}") for a in signature.addresses]
        )
    if signature.verify_first:
        # Planned as a change, found already in place: the attempt before the restart landed.
        for r in result.results:
            if r.outcome is Outcome.unchanged:
                r.outcome, r.reason = Outcome.applied, "written before the worker restarted (verified, not rewritten)"
    return result


EXPLAINED = (Outcome.failed, Outcome.skipped, Outcome.deferred, Outcome.unconfirmed)  # outcomes whose reason is kept


def _mailbox_outcome(results: list[AddressResult]) -> Outcome:
    outcomes = {r.outcome for r in results}
    for o in (Outcome.failed, Outcome.unconfirmed, Outcome.deferred, Outcome.applied, Outcome.skipped):
        if o in outcomes:
            return o
    return Outcome.unchanged


class _Claims:
    """The items one worker takes to write, a batch at a time: pending ones, and `writing` ones whose worker is
    gone (verified before writing). Each UPDATE re-checks the item is still free, so two workers racing for a
    batch never both get an item; on PostgreSQL, SKIP LOCKED lets them take different batches without waiting."""

    def __init__(self, engine: Engine, deployment_id: int, me: str):
        self.engine, self.deployment_id, self.me = engine, deployment_id, me
        self.last_beat = 0.0

    def _free(self, verify: bool, live: set[str]):
        if not verify:
            return col(DeploymentItem.state) == ItemState.pending
        return and_(
            col(DeploymentItem.state) == ItemState.writing,
            or_(col(DeploymentItem.worker).is_(None), col(DeploymentItem.worker).not_in(live)),
        )

    def take(self, n: int) -> list[tuple[int, MailboxSignature]]:
        if n <= 0:
            return []
        out: list[tuple[int, MailboxSignature]] = []
        with session_scope(self.engine) as session:
            self.beat(session)
            live: set[str] = set()
            for verify in (False, True):  # orphans only when nothing is pending: they are rare (a crash)
                want = n - len(out)
                if want <= 0:
                    break
                if verify:
                    live = live_workers(session, self.deployment_id) | {self.me}
                free = self._free(verify, live)
                ids = session.exec(
                    select(DeploymentItem.id).where(DeploymentItem.deployment_id == self.deployment_id, free)
                    .order_by(col(DeploymentItem.id)).limit(want).with_for_update(skip_locked=True)
                ).all()  # fmt: skip
                if not ids:
                    continue
                got = session.exec(
                    update(DeploymentItem).where(col(DeploymentItem.id).in_(ids), free)
                    .values(state=ItemState.writing, worker=self.me, attempts=DeploymentItem.attempts + 1,
                            updated_at=utcnow())
                    .returning(col(DeploymentItem.id)).execution_options(synchronize_session=False)
                ).all()  # fmt: skip
                taken = [i for (i,) in got]
                if taken:
                    items = session.exec(select(DeploymentItem).where(col(DeploymentItem.id).in_(taken))).all()
                    out.extend((row_id(i), mailbox_signature(i, verify_first=verify)) for i in items)
        return sorted(out, key=lambda pair: pair[0])

    def beat(self, session: Session, *, every: float = HEARTBEAT_EVERY) -> None:
        """Say this worker is alive (at most every `every` seconds): its `writing` items stay its own."""
        now = time.monotonic()
        if now - self.last_beat < every:
            return
        self.last_beat = now
        row = session.get(DeploymentWorker, (self.deployment_id, self.me))
        if row is None:
            session.add(DeploymentWorker(deployment_id=self.deployment_id, worker=self.me))
        else:
            row.heartbeat_at = utcnow()
            session.add(row)

    def held_by_others(self) -> int:
        """Items other live workers are writing (the lease holder waits for them before finishing)."""
        with Session(self.engine) as session:
            return session.exec(
                select(func.count()).select_from(DeploymentItem).where(
                    DeploymentItem.deployment_id == self.deployment_id, DeploymentItem.state != ItemState.done,
                    or_(col(DeploymentItem.worker).is_(None), col(DeploymentItem.worker) != self.me))
            ).one()  # fmt: skip


def live_workers(session: Session, deployment_id: int) -> set[str]:
    """The workers taking part in a deployment that are still alive (fresh heartbeat, process not gone)."""
    cutoff = utcnow() - LEASE
    rows = session.exec(select(DeploymentWorker).where(DeploymentWorker.deployment_id == deployment_id)).all()
    return {r.worker for r in rows if aware(r.heartbeat_at) >= cutoff and not _owner_is_gone(r.worker)}


def _planned_all(engine: Engine, deployment_id: int) -> bool:
    """True once planning has inserted every item (a helper has nothing more to wait for)."""
    with Session(engine) as session:
        dep = get_existing(session, Deployment, deployment_id)
        if dep.status not in (DeploymentStatus.queued, DeploymentStatus.running):
            return True
        items = session.exec(
            select(func.count()).select_from(DeploymentItem).where(DeploymentItem.deployment_id == deployment_id)
        ).one()
        return dep.total > 0 and items >= dep.total


def _lease_holder_gone(engine: Engine, deployment_id: int) -> bool:
    with Session(engine) as session:
        dep = get_existing(session, Deployment, deployment_id)
        if dep.status not in (DeploymentStatus.queued, DeploymentStatus.running):
            return False
        stale = dep.heartbeat_at is None or aware(dep.heartbeat_at) < utcnow() - LEASE
        return stale or _owner_is_gone(dep.worker)


def _write_all(
    engine, deployment_id, target, policy, me, on_progress, planner: _Planner | None = None, *, leader: bool = True
) -> None:
    """Write every item this worker can claim. The lease holder (`leader`) returns once every item is done, the
    ones its helpers hold included; a helper returns when nothing is left to claim, or when the lease holder is
    gone (so that `assist` can take over)."""
    claims = _Claims(engine, deployment_id, me)
    concurrency = max(1, target.concurrency)
    limit = AdaptiveLimit(concurrency)
    stop = threading.Event()
    in_flight: dict[Future, int] = {}
    last_beat = last_record = time.monotonic()
    results: list[tuple[int, WriteResult]] = []  # finished, not yet recorded
    confirm = _Confirmation(target)
    drained = False  # True once nothing is left to claim

    planned = {"all": leader and planner is None, "checked": 0.0}

    def planning() -> bool:
        if planner is not None:
            return not planner.finished.is_set()
        # a helper: planning happens in the lease holder's process; ask the database, at most every 0.2 s
        if not planned["all"] and time.monotonic() - planned["checked"] > 0.2:
            planned["all"], planned["checked"] = _planned_all(engine, deployment_id), time.monotonic()
        return not planned["all"]

    def others_still_writing() -> bool:
        return leader and claims.held_by_others() > 0

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deploy") as pool:
        try:
            while (not drained and not stop.is_set()) or in_flight or confirm.awaiting:
                if not drained and not stop.is_set() and len(in_flight) < concurrency:
                    was_planning = planning()  # read first: a chunk committed just before the end is not missed
                    batch = claims.take(concurrency * 2 - len(in_flight))
                    for item_id, signature in batch:
                        in_flight[pool.submit(write_with_retries, target, signature, policy, limit)] = item_id
                    if not batch and not in_flight and not confirm.awaiting:
                        if not leader and _lease_holder_gone(engine, deployment_id):
                            return  # assist() takes the lease over
                        if was_planning or others_still_writing():
                            # wait for the planner's next chunk, or for the helpers' last items (claimed again
                            # should their worker die), keeping the lease and this worker's heartbeat fresh
                            if planner is not None:
                                planner.finished.wait(0.02)
                            else:
                                time.sleep(0.05)
                            if time.monotonic() - last_beat > HEARTBEAT_EVERY:
                                dep = _record(engine, deployment_id, [], me)
                                last_beat = time.monotonic()
                                if dep.status is DeploymentStatus.failed:  # a helper met a configuration error
                                    raise ConfigurationError(dep.message)
                            continue
                        drained = True
                    elif not batch and not was_planning and not (leader and others_still_writing()):
                        drained = True
                if not in_flight and not confirm.awaiting:
                    continue
                finished: set[Future] = set()
                if in_flight:
                    timeout = 0.05 if planning() or confirm.awaiting else HEARTBEAT_EVERY
                    finished, _ = wait(list(in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
                elif not drained:
                    time.sleep(0.02)  # writes await confirmation while the planner works on the next chunk
                for fut in finished:
                    item_id = in_flight.pop(fut)
                    try:
                        results.extend(confirm.hold(item_id, fut.result()))
                    except ConfigurationError:
                        stop.set()
                        raise
                # Writes wait for their confirmation (at most `confirm_every` seconds, or until the last write).
                idle = not in_flight and (drained or stop.is_set())
                if confirm.due(idle):
                    confirmed, problem = confirm.settle()
                    results.extend(confirmed)
                    if problem is not None:
                        stop.set()
                        raise ConfigurationError(problem.message)
                # Results are recorded in waves (one transaction every RECORD_EVERY seconds or `concurrency`
                # mailboxes), not one per finished mailbox: a mailbox not yet recorded when the worker dies
                # is still `writing`, so its next run verifies before writing, as for one in flight.
                now = time.monotonic()
                if (results and (not in_flight or len(results) >= concurrency or now - last_record >= RECORD_EVERY)) \
                        or now - last_beat > HEARTBEAT_EVERY:  # fmt: skip
                    dep = _record(engine, deployment_id, results, me)
                    results = []
                    last_beat = last_record = time.monotonic()
                    if on_progress:
                        on_progress(progress_of(dep))
                    if dep.status is DeploymentStatus.failed:  # another worker of this deployment stopped it
                        stop.set()
                        raise ConfigurationError(dep.message)
        except ConfigurationError:
            # Record what finished; let in-flight writes finish and record them; everything else stays pending.
            # Writes not yet confirmed are confirmed now (or recorded `unconfirmed` with the reason).
            for fut, item_id in list(in_flight.items()):
                with contextlib.suppress(ConfigurationError):
                    results.extend(confirm.hold(item_id, fut.result()))
            confirmed, _problem = confirm.settle()
            results.extend(confirmed)
            if results:
                _record(engine, deployment_id, results, me)
            raise
        finally:
            if limit.decreases:
                log.info(
                    "signatures.deploy.throttled",
                    extra={"deployment_id": deployment_id, "slowed_down": limit.decreases, "lowest": limit.lowest},
                )


CONFIRM_AFTER = 50  # writes awaiting confirmation that trigger one, however soon: bounds the writes a stop wastes


class _Confirmation:
    """Holds the results that claim a write landed until the target confirms the writes are visible to their users
    (`target.confirm_visible()`, read after they finished: no window in which a write is reported `applied` before
    the check that would have caught it). Targets without that check confirm at once."""

    def __init__(self, target: SignatureTarget):
        self.check = getattr(target, "confirm_visible", None)
        self.every = float(getattr(target, "confirm_every", 1.0))
        self.awaiting: list[tuple[int, WriteResult]] = []
        self.last = time.monotonic()

    def hold(self, item_id: int, result: WriteResult) -> list[tuple[int, WriteResult]]:
        if self.check is None or not any(r.outcome is Outcome.applied for r in result.results):
            return [(item_id, result)]
        self.awaiting.append((item_id, result))
        return []

    def due(self, idle: bool) -> bool:
        return bool(self.awaiting) and (
            idle or len(self.awaiting) >= CONFIRM_AFTER or time.monotonic() - self.last >= self.every
        )

    def settle(self) -> tuple[list[tuple[int, WriteResult]], NotVisible | None]:
        held, self.awaiting = self.awaiting, []
        self.last = time.monotonic()
        if not held or self.check is None:  # nothing is held for a target without the check
            return held, None
        problem = self.check()
        if problem is None:
            return held, None
        for _item_id, result in held:
            for r in result.results:
                if r.outcome is Outcome.applied:
                    r.outcome, r.reason = Outcome.unconfirmed, problem.reason
        return held, problem


def _locked(session: Session, deployment_id: int) -> Deployment:
    """The deployment row, locked until the commit (PostgreSQL): workers in other processes update its counters
    too. SQLite has a single writer, and within a process `_counters_lock` serialises them."""
    dep = session.get(Deployment, deployment_id, with_for_update=True)
    if dep is None:
        raise LookupError(f"deployment {deployment_id} is gone")
    return dep


def _record(engine: Engine, deployment_id: int, results: list[tuple[int, WriteResult]], me: str) -> Deployment:
    """Record a wave of finished mailboxes in one transaction: the items and their addresses' states are
    loaded with one query each (not one per item), and nothing is flushed until the commit."""
    with _counters_lock, session_scope(engine) as session, session.no_autoflush:
        dep = _locked(session, deployment_id)
        counts = dict(dep.counts)
        ids = [item_id for item_id, _result in results]
        items = {i.id: i for i in session.exec(select(DeploymentItem).where(col(DeploymentItem.id).in_(ids)))} \
            if ids else {}  # fmt: skip
        remembered = [
            (items[item_id], a["address"])
            for item_id, result in results
            for a in items[item_id].addresses
            if any(
                r.address == a["address"] and r.outcome in (Outcome.applied, Outcome.unchanged) for r in result.results
            )
        ]
        states = _states(session, dep, [address for _item, address in remembered])
        for item, address in remembered:
            _remember(session, dep, item, address, states)
        for item_id, result in results:
            item = items[item_id]
            by_address = {r.address: r for r in result.results}
            addresses = []
            for a in item.addresses:
                r = by_address.get(a["address"])
                addresses.append(
                    dict(
                        a,
                        outcome=r.outcome.value if r else Outcome.skipped.value,
                        reason=r.reason if r else "the provider has no such send-as address",
                    )
                )
            outcome = _mailbox_outcome(result.results)
            item.addresses, item.outcome, item.state = addresses, outcome.value, ItemState.done
            item.reason = "; ".join(sorted({r.reason for r in result.results if r.reason and r.outcome in EXPLAINED}))
            item.writes += result.writes
            item.updated_at = utcnow()
            session.add(item)
            counts[outcome.value] = counts.get(outcome.value, 0) + 1
            dep.done += 1
            dep.writes += result.writes
            if outcome is Outcome.failed:
                log.warning("signatures.deploy.mailbox_failed", extra={"mailbox": item.mailbox, "reason": item.reason})
        dep.counts = counts
        if dep.worker == me:
            dep.heartbeat_at = utcnow()
        session.add(dep)
        _Claims(engine, deployment_id, me).beat(session, every=0)
    with Session(engine) as session:
        return get_existing(session, Deployment, deployment_id)


def _states(session: Session, dep: Deployment, addresses: list[str]) -> dict[str, SignatureState]:
    wanted = sorted({a.lower() for a in addresses})
    found: dict[str, SignatureState] = {}
    for chunk in range(0, len(wanted), 500):
        for state in session.exec(select(SignatureState).where(
                SignatureState.org_id == dep.org_id, SignatureState.provider == dep.provider,
                col(SignatureState.address).in_(wanted[chunk:chunk + 500]))):  # fmt: skip
            found[state.address] = state
    return found


def _remember(session: Session, dep: Deployment, item: DeploymentItem, address: str,
              states: dict[str, SignatureState]) -> None:  # fmt: skip
    key = address.lower()
    state = states.get(key)
    if state is None:
        state = states[key] = SignatureState(org_id=dep.org_id, provider=dep.provider, address=key, content_hash="")
    state.employee_id, state.content_hash, state.html = item.employee_id, item.content_hash, item.html
    state.deployment_id, state.written_at = dep.id, utcnow()
    session.add(state)
