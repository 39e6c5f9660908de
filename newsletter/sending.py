"""The send job: every recipient of an issue gets exactly one email, across crashes and restarts.

State of one (issue, employee) ``Delivery`` row::

    pending ──claim+commit──▶ sending ──(body on the wire)──commit──▶ accepting ──250──▶ sent
       ▲                        │                                       │  └──5xx──▶ failed
       └──── resume / 4xx ──────┘ (the server never saw the end-of-data dot: it discarded the message)

* ``sending`` is committed (with the recipient's tracked links) before the SMTP transaction starts.
* ``accepting`` is committed after MAIL/RCPT/DATA and the whole body are on the wire and *before* the
  end-of-data dot is written; the dot is written synchronously right after that commit, with no await in
  between (several connections' commits are grouped into one transaction).
* On resume (after SIGKILL, a crash or a lost lease) ``sending`` rows go back to ``pending`` and are sent
  again: the server never received their dot, and RFC 5321 §3.8 makes it discard an unfinished transaction.
  ``accepting`` rows are never sent again: they count as sent ("unconfirmed" when the 250 was not seen).
* The residual window: a SIGKILL landing between the ``accepting`` commit returning and the 3-byte write
  of the dot (a few interpreter instructions, no I/O) would leave one recipient unmailed but counted;
  a machine losing power at the same instant, the same. Nothing can make it duplicate a message.

Only the holder of the issue's lease (``Issue.runner``, renewed as it goes; presumed dead after
``settings.newsletter_lease_s``; see newsletter.lease) sends, so two workers never send the same issue. What a
message is made of lives in newsletter.composition, who gets one in newsletter.audience.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.composition import (
    IssueContext,
    Recipient,
    build_outgoing,
    build_stenciled,
    issue_specs,
    load_context,
    mint_for,
    prepare_stencil,
    recipient_of,
)
from newsletter.lease import acquire_lease, new_runner, release_lease, renew_lease
from newsletter.mailer import Mailer, MailerConnection, Outgoing, PermanentFailure, TransientFailure, Unconfirmed
from newsletter.models import Delivery, DeliveryState, NewsletterPreference
from newsletter.progress import SendReport, progress
from newsletter.rendering import ArticleView
from service.db import row_id, table_of, utcnow
from service.directory.models import Employee
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_TRANSIENT_ATTEMPTS = 8


@dataclass
class _Item:
    recipient: Recipient
    views: list[ArticleView] | None  # None: built from the issue's stencil
    attempts: int = 0
    msg: Outgoing | None = None  # built ahead by the claim loop

    @property
    def delivery_id(self) -> int:
        assert self.recipient.delivery_id is not None  # the sender's recipients are claimed from delivery rows
        return self.recipient.delivery_id


class _Sender:
    def __init__(self, engine: Engine, ctx: IssueContext, mailer: Mailer, settings: Settings, runner: str,
                 on_progress: Callable[[SendReport], None] | None, batch_size: int, backoff_base: float):  # fmt: skip
        self.engine = engine
        self.ctx = ctx
        self.issue_id = row_id(ctx.issue)
        self.mailer = mailer
        self.settings = settings
        self.runner = runner
        self.on_progress = on_progress
        self.batch_size = batch_size
        self.backoff_base = backoff_base
        self.concurrency = settings.newsletter_concurrency
        self.rate = settings.newsletter_rate_per_s
        self.session = Session(engine, expire_on_commit=False)
        self.queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._accepts: list[tuple[int, MailerConnection, asyncio.Future]] = []
        self._accept_scheduled = False
        self._sent: list[int] = []
        self._next_slot = 0.0
        self._last_progress = 0.0
        self._last_heartbeat = time.monotonic()
        self.waiting_for_smtp = False
        # statements built once (Core, expanding IN): per message, the bookkeeping is one execute and a commit
        d, e, p = table_of(Delivery), table_of(Employee), table_of(NewsletterPreference)
        ids: sa.BindParameter[list[int]] = sa.bindparam("ids", expanding=True)
        now = sa.bindparam("now", type_=d.c.updated_at.type)
        self._claim_stmt = (
            sa.select(d.c.id.label("delivery_id"), e.c.id, e.c.email, e.c.first_name, e.c.last_name, e.c.display_name,
                      e.c.active, p.c.token, p.c.subscribed)
            .select_from(d.join(e, e.c.id == d.c.employee_id).outerjoin(p, p.c.employee_id == d.c.employee_id))
            .where(d.c.issue_id == sa.bindparam("issue"), d.c.state == DeliveryState.pending)
            .order_by(d.c.id).limit(sa.bindparam("limit"))
        )  # fmt: skip
        self._accepting_stmt = (
            sa.update(d)
            .where(d.c.id.in_(ids))
            .values(state=DeliveryState.accepting, attempts=d.c.attempts + 1, updated_at=now)
        )
        self._sent_stmt = (
            sa.update(d)
            .where(d.c.id.in_(ids), d.c.state == DeliveryState.accepting)
            .values(state=DeliveryState.sent, sent_at=now, updated_at=now)
        )

    # -- database (synchronous, in the loop thread: each is one short transaction)

    def _heartbeat(self, session: Session) -> None:
        renew_lease(session, self.issue_id, self.runner)
        self._last_heartbeat = time.monotonic()

    def _claim(self) -> list[_Item]:
        """Next batch of pending deliveries: links minted, state `sending`, committed together."""
        s = self.session
        d = table_of(Delivery)
        rows = s.connection().execute(self._claim_stmt, {"issue": self.issue_id, "limit": self.batch_size}).all()
        if not rows:
            return []
        now = utcnow()
        gone = [row.delivery_id for row in rows if not row.active]
        opted_out = [row.delivery_id for row in rows if row.active and row.subscribed is False]
        if gone or opted_out:
            s.execute(
                sa.update(d)
                .where(d.c.id.in_(gone + opted_out))
                .values(
                    state=DeliveryState.skipped,
                    updated_at=now,
                    last_error=sa.case((d.c.id.in_(gone), "left the organisation"), else_="unsubscribed"),
                )
            )
        recipients = [recipient_of(row, row.token or "", row.delivery_id) for row in rows
                      if row.active and row.subscribed is not False]  # fmt: skip
        views: dict[int, list[ArticleView]] = {}
        if recipients:
            issue_specs(s, self.ctx)  # minted (idempotently) and committed with the first claim
            if not prepare_stencil(s, self.ctx, recipients[0]):
                views = mint_for(s, self.ctx, recipients)
        if recipients:
            s.execute(sa.update(d).where(d.c.id.in_([rc.delivery_id for rc in recipients]))
                      .values(state=DeliveryState.sending, updated_at=now))  # fmt: skip
        self._heartbeat(s)
        s.commit()
        return [_Item(rc, views.get(rc.employee_id)) for rc in recipients]

    def _flush_sent(self) -> None:
        if not self._sent:
            return
        ids, self._sent = self._sent, []
        self.session.connection().execute(self._sent_stmt, {"ids": ids, "now": utcnow()})
        self.session.commit()

    def _set_state(self, delivery_id: int, state: DeliveryState, error: str | None = None) -> None:
        d = table_of(Delivery)
        values: dict[str, object] = {"state": state, "updated_at": utcnow()}
        if error is not None:
            values["last_error"] = error[:500]
        self.session.execute(sa.update(d).where(d.c.id == delivery_id).values(**values))
        self.session.commit()

    def _report(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < 0.5:
            return
        self._last_progress = now
        rep = progress(self.session, issue_id=self.issue_id)
        rep.waiting_for_smtp = self.waiting_for_smtp
        self.on_progress(rep)

    # -- group commit of "accepting", then the end-of-data dots

    async def _accept(self, delivery_id: int, conn: MailerConnection) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._accepts.append((delivery_id, conn, fut))
        if not self._accept_scheduled:
            self._accept_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_accepts)
        await fut

    def _flush_accepts(self) -> None:
        batch, self._accepts, self._accept_scheduled = self._accepts, [], False
        try:
            self.session.connection().execute(self._accepting_stmt, {"ids": [b[0] for b in batch], "now": utcnow()})
            self.session.commit()
        except Exception as exc:  # the database is unavailable: no dot is written, nothing is delivered
            self.session.rollback()
            for _, _, fut in batch:
                fut.set_exception(exc)
            return
        for _, conn, fut in batch:  # right after the commit, no await in between
            try:
                conn.end_data()
            except TransientFailure as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(None)

    # -- SMTP

    async def _connect(self):
        delay = self.backoff_base / 2
        while True:
            try:
                conn = await self.mailer.connect()
                if self.waiting_for_smtp:
                    log.info("newsletter.send.smtp_back", extra={"issue_id": self.issue_id})
                self.waiting_for_smtp = False
                return conn
            # a PermanentFailure (e.g. a refused login) is not caught: it stops the send, since waiting won't help
            except TransientFailure as exc:
                if not self.waiting_for_smtp:
                    log.warning(
                        "newsletter.send.smtp_unavailable", extra={"issue_id": self.issue_id, "error": str(exc)}
                    )
                self.waiting_for_smtp = True
                self._report()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _pace(self) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _worker(self) -> None:
        conn = None
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    return
                conn = await self._deliver(item, conn)
        finally:
            if conn is not None:
                await conn.close()

    def _build(self, item: _Item) -> Outgoing:
        if item.views is None:
            return build_stenciled(self.ctx, item.recipient)
        return build_outgoing(self.ctx, item.recipient, item.views)

    async def _deliver(self, item: _Item, conn):
        msg = item.msg or self._build(item)
        while True:
            if conn is None or not getattr(conn, "usable", True):
                conn = await self._connect()
            await self._pace()
            try:
                await conn.transmit(msg)
            except PermanentFailure as exc:
                self._set_state(item.delivery_id, DeliveryState.failed, str(exc))
                log.warning("newsletter.send.refused", extra={"issue_id": self.issue_id, "code": exc.code})
                conn = await self._reset(conn)
                return conn
            except TransientFailure as exc:
                conn = await self._after_transient(item, exc, conn)
                if item.attempts >= MAX_TRANSIENT_ATTEMPTS:
                    return conn
                continue
            try:
                await self._accept(item.delivery_id, conn)
            except TransientFailure as exc:  # the dot could not be written: not delivered
                self._set_state(item.delivery_id, DeliveryState.sending)
                conn = await self._after_transient(item, exc, conn)
                if item.attempts >= MAX_TRANSIENT_ATTEMPTS:
                    return conn
                continue
            try:
                await conn.confirm()
            except Unconfirmed as exc:
                self._set_state(item.delivery_id, DeliveryState.accepting, f"unconfirmed: {exc}")
                return None
            except PermanentFailure as exc:
                self._set_state(item.delivery_id, DeliveryState.failed, str(exc))
                return conn
            except TransientFailure as exc:  # 4xx to the dot: certainly not accepted
                self._set_state(item.delivery_id, DeliveryState.sending)
                conn = await self._after_transient(item, exc, conn)
                if item.attempts >= MAX_TRANSIENT_ATTEMPTS:
                    return conn
                continue
            self._sent.append(item.delivery_id)
            if len(self._sent) >= 100:
                self._flush_sent()
            self._report()
            return conn

    async def _reset(self, conn):
        try:
            await conn.reset()
            return conn
        except TransientFailure:
            await conn.close()
            return None

    async def _after_transient(self, item: _Item, exc: TransientFailure, conn):
        if exc.code is not None:  # the server answered 4xx for this message: counts towards giving up
            item.attempts += 1
            if item.attempts >= MAX_TRANSIENT_ATTEMPTS:
                self._set_state(
                    item.delivery_id,
                    DeliveryState.failed,
                    f"gave up after {item.attempts} temporary failures: {exc}",
                )
                return await self._reset(conn)
            conn = await self._reset(conn)
            await asyncio.sleep(min(self.backoff_base * 2 ** (item.attempts - 1), 60.0))
            return conn
        log.info("newsletter.send.connection_lost", extra={"issue_id": self.issue_id, "error": str(exc)})
        if conn is not None:
            await conn.close()
        return None

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        try:
            while True:
                if self.queue.qsize() > self.concurrency * 2:
                    await asyncio.sleep(0.002)
                    if time.monotonic() - self._last_heartbeat > self.settings.newsletter_lease_s / 3:
                        self._heartbeat(self.session)
                        self.session.commit()
                    continue
                items = self._claim()
                if not items:
                    break
                for item in items:  # built here, between the connections' round trips, not on their critical path
                    item.msg = self._build(item)
                    self.queue.put_nowait(item)
                    await asyncio.sleep(0)
            for _ in workers:
                self.queue.put_nowait(None)
            while not all(w.done() for w in workers):
                done, _ = await asyncio.wait(workers, timeout=self.settings.newsletter_lease_s / 3,
                                             return_when=asyncio.FIRST_EXCEPTION)  # fmt: skip
                for w in done:
                    if (error := w.exception()) is not None:
                        raise error
                self._flush_sent()
                self._heartbeat(self.session)
                self.session.commit()
            for w in workers:
                w.result()
        finally:
            for w in workers:
                w.cancel()
            try:
                self._flush_sent()
            except Exception:
                log.exception("newsletter.send.flush_failed")


def send_issue(engine: Engine, issue_id: int, mailer: Mailer, settings: Settings,
               on_progress: Callable[[SendReport], None] | None = None, *, wait_for_lease: bool = True,
               batch_size: int = 50, backoff_base: float = 1.0) -> SendReport:  # fmt: skip
    """Send (or resume sending) an issue to its audience. Safe to call again after any crash."""
    runner = new_runner()
    issue = acquire_lease(engine, issue_id, runner, settings.newsletter_lease_s, wait_for_lease)
    if issue is None:
        with Session(engine) as session:
            return progress(session, issue_id=issue_id)
    with Session(engine, expire_on_commit=False) as session:
        ctx = load_context(session, org_id=issue.org_id, issue_id=issue_id, settings=settings)
    sender = _Sender(engine, ctx, mailer, settings, runner, on_progress, batch_size, backoff_base)
    log.info("newsletter.send.started", extra={"issue_id": issue_id, "runner": runner})
    try:
        asyncio.run(sender.run())
    finally:
        sender.session.close()
    with Session(engine, expire_on_commit=False) as session:
        left = session.exec(select(sa.func.count()).select_from(Delivery).where(
            Delivery.issue_id == issue_id, col(Delivery.state).in_([DeliveryState.pending,
                                                                    DeliveryState.sending]))).one()  # fmt: skip
        release_lease(session, issue_id, runner, finished=left == 0)
        session.commit()
        rep = progress(session, issue_id=issue_id)
    log.info("newsletter.send.finished", extra={"issue_id": issue_id, "sent": rep.sent, "failed": rep.failed})
    if on_progress:
        on_progress(rep)
    return rep
