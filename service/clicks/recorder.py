"""Durable click recording by group commit.

Every request hands its row to one background writer thread per process and waits; the writer takes
everything queued (up to `max_batch` rows), inserts it in one transaction, commits (SQLite: its own
connection with `synchronous=FULL`, so the commit is fsync'd; PostgreSQL: a normal commit, which waits
for the WAL flush) and only then wakes the waiting requests. So a 302 is sent only after its click is on
disk: killing the server (even SIGKILL) loses no click it answered, and one commit is shared by all the
requests that arrived while the previous one was being written.

If the database refuses a batch, the writer retries it row by row (one bad row can't sink the others);
if the database is down the waiting requests get an error after a few retries (a 503: the person can
click again) rather than a redirect whose click was never written.
"""

import asyncio
import contextlib
import hashlib
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import event, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from service.clicks.models import Click, Impression, TrackingOptOut, TrackingSettings, Verdict, VisitorSalt
from service.clicks.verdicts import BURST_WINDOW, BurstDetector
from service.db import make_engine
from service.links import Channel, resolve

log = logging.getLogger("relais.clicks")

CLICK = Click.__table__
IMPRESSION = Impression.__table__


@dataclass(slots=True)
class _Item:
    ops: list[tuple[str, dict]]
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None
    done: threading.Event | None = None
    error: BaseException | None = None


class RecordingFailed(Exception):
    """The database did not take the click: the request must not answer with a redirect."""


class ClickRecorder:
    """One writer thread per process (started on demand, exits after `idle` seconds without work)."""

    def __init__(self, engine: Engine, *, max_batch: int = 1024, idle: float = 5.0, retries: int = 3):
        self.engine = engine
        self.max_batch = max_batch
        self.idle = idle
        self.retries = retries
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._writer_engine: Engine | None = None
        self.batches = 0
        self.rows = 0

    # -------------------------------------------------------------- submitting

    async def record(self, ops: list[tuple[str, dict]]) -> None:
        """Queue rows and wait until they are committed. ops: ("click"|"impression", row) or ("relabel", {...})."""
        loop = asyncio.get_running_loop()
        item = _Item(ops, loop=loop, future=loop.create_future())
        self._submit(item)
        await item.future

    def record_blocking(self, ops: list[tuple[str, dict]], timeout: float = 30.0) -> None:
        item = _Item(ops, done=threading.Event())
        self._submit(item)
        if not item.done.wait(timeout):
            raise RecordingFailed("the click writer did not answer in time")
        if item.error is not None:
            raise RecordingFailed(str(item.error)) from item.error

    def _submit(self, item: _Item) -> None:
        with self._lock:
            self._queue.put(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="relais-click-writer", daemon=True)
                self._thread.start()

    # -------------------------------------------------------------- writing

    def _engine_for_writer(self) -> Engine:
        if self._writer_engine is not None:
            return self._writer_engine
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            if url.database in (None, "", ":memory:"):
                self._writer_engine = self.engine  # a private in-memory database: share the engine
                return self.engine
            eng = make_engine(url.render_as_string(hide_password=False))

            @event.listens_for(eng, "connect")
            def _full_sync(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA synchronous=FULL")  # every commit fsyncs the WAL
                cur.close()

            self._writer_engine = eng
        else:
            self._writer_engine = make_engine(url.render_as_string(hide_password=False))
        return self._writer_engine

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        if self._writer_engine is not None and self._writer_engine is not self.engine:
                            self._writer_engine.dispose()
                        self._writer_engine = None
                        return
                continue
            batch = [first]
            count = len(first.ops)
            while count < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                count += len(item.ops)
            self._write(batch)

    def _write(self, batch: list[_Item]) -> None:
        error: BaseException | None = None
        for attempt in range(self.retries):
            try:
                self._commit(batch)
                error = None
                break
            except IntegrityError:
                self._write_one_by_one(batch)
                error = None
                break
            except Exception as exc:  # the database is unavailable: wait a little and try again
                error = exc
                log.warning("clicks.writer.retry", extra={"attempt": attempt + 1, "error": str(exc)[:200]})
                time.sleep(0.05 * 4**attempt)
                if self._writer_engine is not None:
                    self._writer_engine.dispose()
        if error is not None:
            log.error("clicks.writer.failed", extra={"rows": sum(len(i.ops) for i in batch), "error": str(error)[:200]})
        self.batches += 1
        self._resolve(batch, error)

    def _commit(self, batch: list[_Item]) -> None:
        clicks, impressions, relabels = [], [], []
        for item in batch:
            for kind, row in item.ops:
                (clicks if kind == "click" else impressions if kind == "impression" else relabels).append(row)
        with self._engine_for_writer().begin() as conn:
            if clicks:
                conn.execute(insert(CLICK), clicks)
            if impressions:
                conn.execute(insert(IMPRESSION), impressions)
            for r in relabels:
                conn.execute(
                    update(CLICK)
                    .where(CLICK.c.visitor == r["visitor"], CLICK.c.link_id.in_(r["link_ids"]),
                           CLICK.c.occurred_at >= r["since"], CLICK.c.verdict == Verdict.human)
                    .values(verdict=Verdict.scanner, reasons="burst")
                )
        self.rows += len(clicks) + len(impressions)

    def _write_one_by_one(self, batch: list[_Item]) -> None:
        """After a refused batch: each request's rows alone, so one bad row fails only its own request."""
        for item in batch:
            try:
                self._commit([item])
            except Exception as exc:
                item.error = exc

    def _resolve(self, batch: list[_Item], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for item in batch:
            if error is not None and item.error is None:
                item.error = error
            if item.loop is not None:
                by_loop.setdefault(item.loop, []).append(item)
            elif item.done is not None:
                item.done.set()
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): nobody is waiting any more
                loop.call_soon_threadsafe(_wake, items)


def _wake(items: list[_Item]) -> None:
    for item in items:
        fut = item.future
        if fut is None or fut.done():
            continue
        if item.error is not None:
            fut.set_exception(RecordingFailed(str(item.error)))
        else:
            fut.set_result(None)


# ------------------------------------------------------------------ what a request needs to know, cached


@dataclass(frozen=True, slots=True)
class LinkInfo:
    id: int
    org_id: int
    channel: Channel
    employee_id: int | None
    campaign_id: int | None
    article_id: int | None
    issue_id: int | None
    network: str | None
    destination: str

    @property
    def message_key(self) -> tuple | None:
        """Links that sit in one email together (a signature, or one newsletter issue for one employee)."""
        if self.employee_id is None:  # unattributed links of many people's messages are not one message
            return None
        if self.channel in (Channel.signature_banner, Channel.signature_field):
            return ("sig", self.org_id, self.employee_id)
        if self.channel in (Channel.newsletter, Channel.share_intent) and self.issue_id is not None:
            return ("issue", self.org_id, self.issue_id, self.employee_id)
        return None


@dataclass(slots=True)
class _Policy:
    expires: float
    attribution: bool
    opted_out: frozenset[int] = field(default_factory=frozenset)


class Tracker:
    """Per-process state of the public tracking routes: caches, the burst detector and the writer."""

    POLICY_TTL = 5.0  # seconds: an opt-out or a settings change takes effect within this

    def __init__(self, engine: Engine, *, link_key: bytes | None = None, base_url: str = "",
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.engine = engine
        self.link_key, self.base_url = link_key, base_url  # employee tokens: verified with the key
        self.recorder = ClickRecorder(engine)
        self.bursts = BurstDetector()
        self.clock = clock
        self._links: dict[str, LinkInfo] = {}
        self._policies: dict[int, _Policy] = {}
        self._salt: tuple[date, str] | None = None

    # links are immutable (the destination is part of what a token stands for), so caching them is safe
    def cached_link(self, token: str) -> LinkInfo | None:
        return self._links.get(token)

    def load_link(self, token: str) -> LinkInfo | None:
        with Session(self.engine) as session:
            row = resolve(session, token, key=self.link_key, base_url=self.base_url)
        if row is None:
            return None
        info = LinkInfo(row.id, row.org_id, row.channel, row.employee_id, row.campaign_id, row.article_id,
                        row.issue_id, row.network, row.destination)
        if len(self._links) > 100_000:
            self._links.clear()
        self._links[token] = info
        return info

    def cached_policy(self, org_id: int) -> _Policy | None:
        policy = self._policies.get(org_id)
        if policy is None or policy.expires < self.clock():
            return None
        return policy

    def load_policy(self, org_id: int) -> _Policy:
        with Session(self.engine) as session:
            settings = session.get(TrackingSettings, org_id)
            opted = session.execute(select(TrackingOptOut.employee_id).where(TrackingOptOut.org_id == org_id)).scalars()
            policy = _Policy(self.clock() + self.POLICY_TTL, settings.attribution if settings else True,
                             frozenset(opted.all()))
        self._policies[org_id] = policy
        return policy

    def cached_salt(self, today: date) -> str | None:
        if self._salt is not None and self._salt[0] == today:
            return self._salt[1]
        return None

    def load_salt(self, today: date) -> str:
        self._salt = (today, daily_salt(self.engine, today))
        return self._salt[1]

    @staticmethod
    def visitor(salt: str, ip: str | None, user_agent: str | None) -> str:
        data = f"{salt}\x00{ip or ''}\x00{user_agent or ''}".encode()
        return hashlib.blake2b(data, digest_size=8).hexdigest()

    def burst(self, link: LinkInfo, visitor: str, now: datetime) -> dict | None:
        """Record the hit; when it makes a burst, return the relabel op for the window's earlier hits."""
        key = link.message_key
        if key is None:
            return None
        hits = self.bursts.hit((visitor, *key), link.id)
        if not hits:
            return None
        return {"visitor": visitor, "link_ids": hits, "since": now - _window()}


def _window() -> timedelta:
    return timedelta(seconds=BURST_WINDOW + 0.5)


def daily_salt(engine: Engine, today: date) -> str:
    """Today's random salt, shared by every process through the database (created by whoever comes first)."""
    with Session(engine) as session:
        row = session.get(VisitorSalt, today)
        if row is not None:
            return row.salt
        try:
            session.add(VisitorSalt(day=today, salt=secrets.token_hex(16)))
            session.commit()
        except IntegrityError:
            session.rollback()
        return session.get(VisitorSalt, today).salt
