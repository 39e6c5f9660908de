"""Durable click recording by group commit.

Every request hands its row to one background writer thread per process and waits. Requests gather on their
event loop while a commit runs; when it ends, everything gathered goes to the writer as the next batch (at
most one commit in flight per loop). The writer inserts the batch in one statement on its own autocommit
connection (SQLite: a multi-row INSERT with `synchronous=FULL`, so the commit is fsync'd; PostgreSQL: COPY
and a normal commit, which waits for the WAL flush) and only then wakes the waiting requests. So a 302 is
sent only after its click is on disk: killing the server (even SIGKILL) loses no click it answered.

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import event, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from service.clicks.models import Click, Impression, TrackingOptOut, TrackingSettings, Verdict, VisitorSalt
from service.clicks.verdicts import BURST_RELABEL, BurstDetector, burst_since, message_key
from service.db import get_existing, make_engine, table_of
from service.links import ResolvedLink, resolve

log = logging.getLogger(__name__)

CLICK = table_of(Click)
IMPRESSION = table_of(Impression)


@dataclass(slots=True)
class _Item:
    ops: list[tuple[str, dict]]
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None
    done: threading.Event | None = None
    error: BaseException | None = None


class _InsertPlan:
    """A table's multi-row INSERT for one dialect: column order, SQLAlchemy's bind processors, SQL per size."""

    def __init__(self, table, dialect, columns: tuple[str, ...]):
        self.dialect, self.columns = dialect, columns
        self.processors = [
            (i, p)
            for i, c in enumerate(columns)
            if (p := table.c[c].type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]
        self.head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "  # noqa: S608 (the table's own names)
        self.copy = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        self.row = "(" + ", ".join([mark] * len(columns)) + ")"
        self._sql: dict[int, str] = {}

    def values(self, rows: list[dict]):
        columns, processors = self.columns, self.processors
        for row in rows:
            values = [row[c] for c in columns]
            for i, process in processors:
                values[i] = process(values[i])
            yield values

    def statement(self, rows: list[dict]) -> tuple[str, list]:
        n = len(rows)
        sql = self._sql.get(n)
        if sql is None:
            sql = self._sql[n] = self.head + ", ".join([self.row] * n)
        params: list = []
        for values in self.values(rows):
            params.extend(values)
        return sql, params


@dataclass(slots=True)
class _Gate:
    """Per event loop: requests waiting for the next batch, and whether a batch is at the writer."""

    pending: deque = field(default_factory=deque)
    busy: bool = False


class RecordingFailed(Exception):
    """The database did not take the click: the request must not answer with a redirect."""


class ClickRecorder:
    """One writer thread per process (started on demand, exits after `idle` seconds without work)."""

    def __init__(self, engine: Engine, *, max_batch: int = 1024, idle: float = 5.0, retries: int = 3):
        self.engine = engine
        self.max_batch = max_batch
        self.idle = idle
        self.retries = retries
        self._queue: queue.SimpleQueue[tuple[list[_Item], _Gate | None]] = queue.SimpleQueue()
        self._gates: dict[asyncio.AbstractEventLoop, _Gate] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._writer_engine: Engine | None = None
        self._conn: Connection | None = None
        self._plans: dict[str, _InsertPlan] = {}
        self._stop_checkpoints = threading.Event()
        self._checkpoint_in_writer = False
        self.batches = 0
        self.rows = 0

    # -------------------------------------------------------------- submitting

    async def record(self, ops: list[tuple[str, dict]]) -> None:
        """Queue rows and wait until they are committed. ops: ("click"|"impression", row) or ("relabel", {...}).

        Requests gather on their event loop, not in the writer's queue: while a batch is being committed the
        ones arriving wait in `pending`, and when the commit ends they all go to the writer as the next batch
        (one thread wake-up and one loop wake-up per batch, not per request: each costs a GIL hand-off)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        item = _Item(ops, loop=loop, future=future)
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gate(loop)
        gate.pending.append(item)
        if not gate.busy:
            gate.busy = True
            loop.call_soon(self._hand_over, gate)  # requests parsed in this loop iteration join the batch
        await future

    def record_blocking(self, ops: list[tuple[str, dict]], timeout: float = 30.0) -> None:
        done = threading.Event()
        item = _Item(ops, done=done)
        self._submit([item])
        if not done.wait(timeout):
            raise RecordingFailed("the click writer did not answer in time")
        if item.error is not None:
            raise RecordingFailed(str(item.error)) from item.error

    def _gate(self, loop: asyncio.AbstractEventLoop) -> "_Gate":
        for old in [lp for lp in self._gates if lp.is_closed()]:  # loops of finished test clients
            del self._gates[old]
        gate = self._gates[loop] = _Gate()
        return gate

    def _hand_over(self, gate: "_Gate") -> None:
        """On the loop: send what is pending as one batch (at most max_batch rows); the gate stays busy."""
        batch: list[_Item] = []
        count = 0
        pending = gate.pending
        while pending and (count < self.max_batch or not batch):
            item = pending.popleft()
            batch.append(item)
            count += len(item.ops)
        self._submit(batch, gate)

    def _finished(self, gate: "_Gate", items: list[_Item]) -> None:
        """On the loop, after the writer committed a batch: wake its requests, send the next batch at once."""
        _wake(items)
        if gate.pending:
            self._hand_over(gate)
        else:
            gate.busy = False

    def _submit(self, batch: list[_Item], gate: "_Gate | None" = None) -> None:
        with self._lock:
            self._queue.put((batch, gate))
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
            def _writer_pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA synchronous=FULL")  # every commit fsyncs the WAL
                cur.execute("PRAGMA wal_autocheckpoint=0")  # no checkpoint inside a click commit: see _checkpoints
                cur.close()

            self._writer_engine = eng
            self._stop_checkpoints = threading.Event()
            threading.Thread(
                target=self._checkpoints,
                args=(eng, self._stop_checkpoints),
                name="relais-click-checkpoint",
                daemon=True,
            ).start()
        else:
            self._writer_engine = make_engine(url.render_as_string(hide_password=False))
        return self._writer_engine

    WAL_LIMIT = 32768  # frames (128 MB of 4 kB pages): past this the writer checkpoints itself once

    def _checkpoints(self, eng: Engine, stop: threading.Event) -> None:
        """SQLite: copy the WAL into the database from a connection of its own, once a second.

        By default the connection whose commit takes the WAL past 1000 pages checkpoints inside that commit
        (copying ~4 MB and syncing the database file: tens of ms for every request waiting on it, several
        times a second at full load). The writer's connection has auto-checkpoints off instead; this thread
        runs PASSIVE checkpoints, which never block the writer. Under sustained load the WAL cannot restart
        while commits keep coming, so past WAL_LIMIT frames the writer runs one PASSIVE checkpoint between
        two batches (little is left to copy by then); the next commit then starts the WAL from the top."""
        last = -1
        try:
            raw = eng.raw_connection()
        except Exception:
            return
        try:
            while not stop.wait(1.0):
                if self.batches == last:
                    continue
                last = self.batches
                try:
                    cur = raw.cursor()
                    _busy, frames, _done = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    cur.close()
                except Exception as exc:
                    log.warning("service.clicks.checkpoint_failed", extra={"error": str(exc)[:200]})
                    continue
                if frames > self.WAL_LIMIT:
                    self._checkpoint_in_writer = True
        finally:
            with contextlib.suppress(Exception):
                raw.close()

    def _connection(self) -> Connection:
        """The writer's own connection, held while it runs (no pool checkout or pre-ping per batch).

        Autocommit: a batch that is one INSERT is its own transaction (SQLite: one step, one fsync;
        PostgreSQL: one round trip); batches of several statements open a transaction explicitly."""
        if self._conn is None:
            self._conn = self._engine_for_writer().connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        self._stop_checkpoints.set()
                        self._close()
                        if self._writer_engine is not None and self._writer_engine is not self.engine:
                            self._writer_engine.dispose()
                        self._writer_engine = None
                        return
                continue
            # group commit: a batch is everything that arrived while the previous commit ran (see `record`);
            # batches from other loops or threads waiting now share this commit too
            batches = [first]
            count = sum(len(i.ops) for i in first[0])
            while count < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                batches.append(more)
                count += sum(len(i.ops) for i in more[0])
            batch = [item for items, _gate in batches for item in items]
            self._write(batch)
            self._resolve(batches)
            if self._checkpoint_in_writer:
                self._checkpoint_in_writer = False
                with contextlib.suppress(Exception):
                    self._connection().exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

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
                log.warning("service.clicks.write_retried", extra={"attempt": attempt + 1, "error": str(exc)[:200]})
                self._close()
                time.sleep(0.05 * 4**attempt)
                if self._writer_engine is not None and self._writer_engine is not self.engine:
                    self._writer_engine.dispose()
        if error is not None:
            log.error(
                "service.clicks.write_failed", extra={"rows": sum(len(i.ops) for i in batch), "error": str(error)[:200]}
            )
        self.batches += 1
        for item in batch:
            if error is not None and item.error is None:
                item.error = error

    def _commit(self, batch: list[_Item]) -> None:
        clicks: list[dict] = []
        impressions: list[dict] = []
        relabels: list[dict] = []
        for item in batch:
            for kind, row in item.ops:
                (clicks if kind == "click" else impressions if kind == "impression" else relabels).append(row)
        conn = self._connection()
        work = [(CLICK, clicks)] if clicks else []
        if impressions:
            work.append((IMPRESSION, impressions))
        single = len(work) == 1 and not relabels
        if not single:
            conn.exec_driver_sql("BEGIN")
        try:
            for table, rows in work:
                self._insert(conn, table, rows)  # autocommit when alone: committed (and synced) on return
            for r in relabels:
                conn.execute(
                    update(CLICK)
                    .where(
                        CLICK.c.visitor == r["visitor"],
                        CLICK.c.link_id.in_(r["link_ids"]),
                        CLICK.c.occurred_at >= r["since"],
                        CLICK.c.verdict == Verdict.human,
                    )
                    .values(verdict=BURST_RELABEL.verdict, reasons=BURST_RELABEL.reason_text)
                )
            if not single:
                conn.exec_driver_sql("COMMIT")
        except BaseException:
            if not single:
                with contextlib.suppress(Exception):
                    conn.exec_driver_sql("ROLLBACK")
            raise
        self.rows += len(clicks) + len(impressions)

    def _insert(self, conn: Connection, table, rows: list[dict]) -> None:
        """All rows in ONE multi-row INSERT sent through the driver: one statement to step (SQLite) or send
        (PostgreSQL). The writer thread gives the GIL back during each blocking call and then waits for it
        (up to the switch interval while the event loop is busy), so fewer calls is a shorter commit;
        SQLAlchemy's own executemany/multi-values paths also cost 35-100 µs of Python per row."""
        dialect = conn.dialect
        plan = self._plans.get(table.name)
        if plan is None or plan.dialect is not dialect or plan.columns != tuple(rows[0]):
            plan = self._plans[table.name] = _InsertPlan(table, dialect, tuple(rows[0]))
        if dialect.name == "postgresql":
            # COPY: no statement to parse or plan per batch, the cheapest way into PostgreSQL.
            import psycopg

            try:
                driver = conn.connection.driver_connection
                assert driver is not None  # an open connection always has its DBAPI connection
                with driver.cursor() as cur, cur.copy(plan.copy) as copy:
                    for values in plan.values(rows):
                        copy.write_row(values)
            except psycopg.errors.IntegrityError as exc:
                raise IntegrityError(plan.copy, None, exc) from exc
            return
        sql, params = plan.statement(rows)
        conn.exec_driver_sql(sql, tuple(params))  # SQLAlchemy still wraps errors (IntegrityError, disconnects)

    def _write_one_by_one(self, batch: list[_Item]) -> None:
        """After a refused batch: each request's rows alone, so one bad row fails only its own request."""
        for item in batch:
            try:
                self._commit([item])
            except Exception as exc:
                item.error = exc

    def _resolve(self, batches: list[tuple[list[_Item], "_Gate | None"]]) -> None:
        for items, gate in batches:
            if gate is None:  # record_blocking: each item has its Event
                for item in items:
                    assert item.done is not None
                    item.done.set()
                continue
            loop = items[0].loop  # a gate's items were recorded on its loop
            assert loop is not None
            with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): nobody is waiting any more
                loop.call_soon_threadsafe(self._finished, gate, items)


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
        self._links: dict[str, ResolvedLink] = {}
        self._policies: dict[int, _Policy] = {}
        self._salt: tuple[date, str] | None = None

    # links are immutable (the destination is part of what a token stands for), so caching them is safe
    def cached_link(self, token: str) -> ResolvedLink | None:
        return self._links.get(token)

    def load_link(self, token: str) -> ResolvedLink | None:
        with Session(self.engine) as session:
            link = resolve(session, token, key=self.link_key, base_url=self.base_url)
        if link is None:
            return None
        if len(self._links) > 100_000:
            self._links.clear()
        self._links[token] = link
        return link

    def cached_policy(self, org_id: int) -> _Policy | None:
        policy = self._policies.get(org_id)
        if policy is None or policy.expires < self.clock():
            return None
        return policy

    def load_policy(self, org_id: int) -> _Policy:
        with Session(self.engine) as session:
            settings = session.get(TrackingSettings, org_id)
            opted = session.execute(
                select(col(TrackingOptOut.employee_id)).where(col(TrackingOptOut.org_id) == org_id)
            ).scalars()
            policy = _Policy(
                self.clock() + self.POLICY_TTL, settings.attribution if settings else True, frozenset(opted.all())
            )
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

    def burst(self, link: ResolvedLink, visitor: str, now: datetime) -> dict | None:
        """Record the hit; when it makes a burst, return the relabel op for the window's earlier hits."""
        key = message_key(link)
        if key is None:
            return None
        hits = self.bursts.hit((visitor, *key), link.id)
        if not hits:
            return None
        return {"visitor": visitor, "link_ids": hits, "since": burst_since(now)}


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
        return get_existing(session, VisitorSalt, today).salt  # written by us or by the writer that won the race
