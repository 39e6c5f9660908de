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
``settings.newsletter_lease_s``) sends, so two workers never send the same issue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter import rendering as r
from newsletter.mailer import Mailer, Outgoing, PermanentFailure, TransientFailure, Unconfirmed
from newsletter.models import (
    NETWORKS,
    Article,
    Delivery,
    DeliveryState,
    Issue,
    IssueArticle,
    IssueStatus,
    NewsletterPreference,
)
from service.db import utcnow
from service.directory.models import Employee, EmployeeGroup
from service.errors import Invalid, NotFound
from service.links import Channel, TrackedLink, employee_url, link_key, mint, share_placeholder
from service.models import Brand, Organisation
from service.settings import Settings
from signatures.context import BrandData
from signatures.service import brand_data

log = logging.getLogger(__name__)

MAX_TRANSIENT_ATTEMPTS = 8


# ---------------------------------------------------------------- what every message of an issue shares


@dataclass
class IssueContext:
    org_id: int
    issue: Issue
    view: r.IssueView
    brand: BrandData
    articles: list[Article]
    compiled: r.CompiledEmail
    base_url: str
    sender: str
    domain: str
    key: bytes = b""  # HMAC key of per-employee link tokens
    specs: list | None = None  # the issue's link specs, minted once per send
    stencil: r.Stencil | None = None  # the issue rendered once (see rendering.Stencil); None: not built yet
    stencil_ok: bool | None = None  # checked against a full render on the first recipient; False: use Jinja


def load_context(session: Session, *, org_id: int, issue_id: int, settings: Settings) -> IssueContext:
    issue = session.get(Issue, issue_id)
    if issue is None or issue.org_id != org_id:
        raise NotFound(f"There is no newsletter issue {issue_id} in this organisation.")
    rows = session.exec(
        select(Article).join(IssueArticle, col(IssueArticle.article_id) == col(Article.id))
        .where(IssueArticle.issue_id == issue_id).order_by(col(IssueArticle.position))
    ).all()  # fmt: skip
    brand_row = session.exec(select(Brand).where(Brand.org_id == org_id)).first()
    if brand_row is not None:
        brand = brand_data(brand_row)
    else:
        org = session.get(Organisation, org_id)
        brand = BrandData(company_name=org.name if org else "")
    paragraphs = tuple(p.strip() for p in issue.intro.replace("\r\n", "\n").split("\n\n") if p.strip())
    view = r.IssueView(issue.id, issue.subject, issue.preheader, paragraphs, issue.language)
    domain = urlsplit(settings.public_base_url).hostname or "relais.invalid"
    return IssueContext(org_id, issue, view, brand, list(rows), r.compiled_email(), settings.public_base_url,
                        settings.smtp_from, domain, link_key(settings))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Recipient:
    employee_id: int
    email: str
    first_name: str
    full_name: str
    unsubscribe_token: str
    delivery_id: int | None = None


@dataclass(frozen=True, slots=True)
class ArticleSpecs:
    """The shared link rows of one article in one issue; each recipient's URLs are derived from them."""

    article: Article
    read: TrackedLink
    intents: tuple[tuple[str, TrackedLink], ...]  # (network, share-intent spec), in NETWORKS order


def issue_specs(session: Session, ctx: IssueContext) -> list[ArticleSpecs]:
    """Mint (idempotently) the read, share and share-intent specs of every article: ~90 rows per issue,
    none per recipient. A share-intent's destination holds a placeholder that the redirect fills with the
    clicking employee's own /s/ URL."""
    if ctx.specs is not None:
        return ctx.specs
    out = []
    for a in ctx.articles:
        read = mint(session, org_id=ctx.org_id, channel=Channel.newsletter, article_id=a.id, issue_id=ctx.issue.id,
                    destination=r.with_utm(a.url, source="newsletter", medium="email",
                                           campaign=f"issue-{ctx.issue.id}"))  # fmt: skip
        intents = []
        for n in NETWORKS:
            share = mint(session, org_id=ctx.org_id, channel=Channel.share, article_id=a.id, network=n,
                         destination=r.with_utm(a.url, source=n, medium="email" if n == "email" else "social",
                                                campaign="employee-advocacy"))  # fmt: skip
            session.flush()
            intent = mint(session, org_id=ctx.org_id, channel=Channel.share_intent, article_id=a.id,
                          issue_id=ctx.issue.id, network=n, destination=r.intent_url(
                              n, share_url=share_placeholder(share), title=a.title, text_x=a.text_x,
                              hashtags=a.hashtags, email_body=a.description))  # fmt: skip
            intents.append((n, intent))
        out.append(ArticleSpecs(a, read, tuple(intents)))
    session.flush()
    ctx.specs = out
    return out


def _views(ctx: IssueContext, specs: list[ArticleSpecs], read_url, share_url) -> list[r.ArticleView]:
    labels = r.labels_for(ctx.issue.language)
    views = []
    for spec in specs:
        a = spec.article
        buttons = tuple(r.ShareButton(n, *r.NETWORK_STYLE[n], share_url(intent)) for n, intent in spec.intents)
        views.append(r.ArticleView(a.id, a.title, a.description, a.image_url, a.site_name,
                                   labels.get(a.kind.value, a.kind.value), a.text_linkedin, read_url(spec.read),
                                   buttons))  # fmt: skip
    return views


def mint_for(session: Session, ctx: IssueContext, recipients: list[Recipient]) -> dict[int, list[r.ArticleView]]:
    """Every tracked link of these recipients' emails (read, share intent carrying the share link): derived
    per employee from the issue's specs, so no row is written per recipient."""
    specs = issue_specs(session, ctx)
    out: dict[int, list[r.ArticleView]] = {}
    for rc in recipients:

        def url(spec, e=rc.employee_id):
            return employee_url(spec, e, ctx.base_url, ctx.key)

        out[rc.employee_id] = _views(ctx, specs, url, url)
    return out


def recipient_urls(ctx: IssueContext, employee_id: int) -> list[str]:
    """This employee's tracked URLs in stencil slot order (per article: read, then each share button)."""
    base, key = ctx.base_url, ctx.key
    urls = []
    for spec in ctx.specs:
        urls.append(employee_url(spec.read, employee_id, base, key))
        urls.extend(employee_url(intent, employee_id, base, key) for _, intent in spec.intents)
    return urls


def _unsubscribe_url(ctx: IssueContext, rc: Recipient) -> str:
    return f"{ctx.base_url.rstrip('/')}/u/{rc.unsubscribe_token}"


def _outgoing(ctx: IssueContext, rc: Recipient, text_qp: bytes, html_qp: bytes, *, boundary: str | None = None,
              date: str | None = None) -> Outgoing:  # fmt: skip
    msg_id = r.message_id(ctx.issue.id, rc.employee_id, ctx.domain)
    head, b = r.message_head(sender=ctx.sender, to_name=rc.full_name, to_email=rc.email, subject=ctx.issue.subject,
                             msg_id=msg_id, unsubscribe_url=_unsubscribe_url(ctx, rc), language=ctx.issue.language,
                             extra_headers={"X-Relais-Issue": str(ctx.issue.id)}, boundary=boundary,
                             date=date)  # fmt: skip
    return Outgoing(sender=r.envelope_sender(ctx.sender), recipient=rc.email,
                    data=r.assemble(head, b, text_qp, html_qp), message_id=msg_id, crlf=True)  # fmt: skip


def build_stenciled(ctx: IssueContext, rc: Recipient, *, boundary: str | None = None,
                    date: str | None = None) -> Outgoing:  # fmt: skip
    """The recipient's message from the issue's stencil: the same bytes as `build_outgoing` (the Jinja path)."""
    values = [rc.first_name, rc.email, _unsubscribe_url(ctx, rc), *recipient_urls(ctx, rc.employee_id)]
    text_qp, html_qp = ctx.stencil.fill(values)
    return _outgoing(ctx, rc, text_qp, html_qp, boundary=boundary, date=date)


def prepare_stencil(session: Session, ctx: IssueContext, first: Recipient) -> bool:
    """Build the issue's stencil once per send and check it on ``first`` against the full Jinja render, byte
    for byte. Returns whether the stencil is used (if not, every message goes through Jinja)."""
    if ctx.stencil_ok is not None:
        return ctx.stencil_ok
    specs = issue_specs(session, ctx)
    ctx.stencil = r.make_stencil(ctx.compiled, issue=ctx.view, brand=ctx.brand,
                                 articles=_views(ctx, specs, lambda s: "", lambda s: ""))  # fmt: skip
    ok = False
    if ctx.stencil is not None:
        views = mint_for(session, ctx, [first])[first.employee_id]
        date, boundary = "Thu, 01 Jan 2026 00:00:00 -0000", "=_rlx_check"
        ok = (
            build_stenciled(ctx, first, boundary=boundary, date=date).data
            == build_outgoing(ctx, first, views, boundary=boundary, date=date).data
        )
    if not ok:
        log.warning(
            "newsletter.send.stencil_unused", extra={"issue_id": ctx.issue.id, "built": ctx.stencil is not None}
        )
    ctx.stencil_ok = ok
    return ok


def build_outgoing(ctx: IssueContext, rc: Recipient, views: list[r.ArticleView], *, test: bool = False,
                   boundary: str | None = None, date: str | None = None) -> Outgoing:  # fmt: skip
    """The recipient's message through the full Jinja render (test sends, previews, and the reference the
    stencil is checked against)."""
    unsubscribe = _unsubscribe_url(ctx, rc)
    html, text = r.render_email(ctx.compiled, issue=ctx.view, brand=ctx.brand,
                                employee=r.RecipientView(rc.first_name, rc.email), articles=views,
                                unsubscribe_url=unsubscribe)  # fmt: skip
    if not test:
        return _outgoing(ctx, rc, r._qp(text), r._qp(html), boundary=boundary, date=date)
    msg_id = f"<test-{ctx.issue.id}.{secrets.token_hex(6)}@{ctx.domain}>"
    data = r.build_message(sender=ctx.sender, to_name=rc.full_name, to_email=rc.email,
                           subject=f"[TEST] {ctx.issue.subject}", html=html, text=text, msg_id=msg_id,
                           unsubscribe_url=unsubscribe, language=ctx.issue.language,
                           extra_headers={"X-Relais-Issue": str(ctx.issue.id)}, boundary=boundary,
                           date=date)  # fmt: skip
    return Outgoing(sender=r.envelope_sender(ctx.sender), recipient=rc.email, data=data, message_id=msg_id, crlf=True)


# ---------------------------------------------------------------- audience


def audience_query(org_id: int, audience: dict):
    """Active employees of the organisation in the audience, minus those who unsubscribed."""
    query = select(Employee).where(Employee.org_id == org_id, col(Employee.active).is_(True))
    if not audience.get("everyone", False):
        conditions = []
        if audience.get("departments"):
            conditions.append(col(Employee.department).in_(audience["departments"]))
        if audience.get("offices"):
            conditions.append(col(Employee.office).in_(audience["offices"]))
        if audience.get("groups"):
            members = select(EmployeeGroup.employee_id).where(
                EmployeeGroup.org_id == org_id, col(EmployeeGroup.group_key).in_(audience["groups"])
            )
            conditions.append(col(Employee.id).in_(members))
        if not conditions:
            return query.where(sa.false())
        query = query.where(sa.or_(*conditions))
    opted_out = select(NewsletterPreference.employee_id).where(
        NewsletterPreference.org_id == org_id, col(NewsletterPreference.subscribed).is_(False)
    )
    return query.where(col(Employee.id).not_in(opted_out)).order_by(col(Employee.id))


def _insert_ignore(session: Session, table, rows: list[dict]) -> None:
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    for i in range(0, len(rows), 2000):
        session.execute(insert(table).on_conflict_do_nothing(), rows[i : i + 2000])


def ensure_preferences(session: Session, *, org_id: int, employee_ids: list[int]) -> dict[int, str]:
    """Every recipient gets a preference row (its token is the /u/ address); returns employee_id -> token."""
    tokens: dict[int, str] = {}
    for i in range(0, len(employee_ids), 5000):
        chunk = employee_ids[i : i + 5000]
        q = select(NewsletterPreference.employee_id, NewsletterPreference.token).where(
            col(NewsletterPreference.employee_id).in_(chunk)
        )
        tokens.update(session.exec(q).all())
    missing = [{"org_id": org_id, "employee_id": e, "token": secrets.token_urlsafe(16), "subscribed": True,
                "updated_at": utcnow()} for e in employee_ids if e not in tokens]  # fmt: skip
    if missing:
        _insert_ignore(session, NewsletterPreference.__table__, missing)
        ids = [m["employee_id"] for m in missing]
        q = select(NewsletterPreference.employee_id, NewsletterPreference.token).where(
            col(NewsletterPreference.employee_id).in_(ids)
        )
        tokens.update(session.exec(q).all())
    return tokens


def recipient_of(emp, token: str, delivery_id: int | None = None) -> Recipient:
    """``emp``: an Employee or a row with its id, email, first_name, last_name and display_name."""
    full = emp.display_name or " ".join(p for p in (emp.first_name, emp.last_name) if p)
    return Recipient(emp.id, emp.email, emp.first_name or full or "", full, token, delivery_id)


# ---------------------------------------------------------------- the job


@dataclass
class SendReport:
    issue_id: int
    status: str
    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    unconfirmed: int = 0  # accepting: end of data written, the 250 not seen (counted as sent, never resent)
    failed: int = 0
    skipped: int = 0
    waiting_for_smtp: bool = False
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def progress(session: Session, *, issue_id: int) -> SendReport:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"There is no newsletter issue {issue_id}.")
    counts = dict(session.exec(select(Delivery.state, sa.func.count()).where(Delivery.issue_id == issue_id)
                               .group_by(Delivery.state)).all())  # fmt: skip
    rep = SendReport(issue_id=issue_id, status=issue.status.value)
    for state in DeliveryState:
        n = counts.get(state, 0)
        setattr(rep, "unconfirmed" if state is DeliveryState.accepting else state.value, n)
        rep.total += n
    errors = session.exec(
        select(Delivery.email, Delivery.last_error)
        .where(Delivery.issue_id == issue_id, Delivery.state == DeliveryState.failed)
        .limit(50)
    ).all()
    rep.errors = [{"email": e, "error": err} for e, err in errors]
    return rep


class LeaseLost(RuntimeError):
    pass


def _acquire(engine: Engine, issue_id: int, runner: str, lease_s: float, wait: bool) -> Issue | None:
    """Take the issue's lease (waiting for a dead sender's lease to expire), freeze the audience on first start
    and put ``sending`` rows back to ``pending``. Returns None when the issue is already sent."""
    while True:
        with Session(engine, expire_on_commit=False) as session:
            issue = session.get(Issue, issue_id)
            if issue is None:
                raise NotFound(f"There is no newsletter issue {issue_id}.")
            if issue.status is IssueStatus.sent:
                return None
            now = utcnow()
            stale = now - timedelta(seconds=lease_s)
            t = Issue.__table__
            got = session.execute(sa.update(t).where(t.c.id == issue_id, sa.or_(
                t.c.runner.is_(None), t.c.runner == runner, t.c.heartbeat_at < stale)).values(
                runner=runner, heartbeat_at=now)).rowcount  # fmt: skip
            if got == 1:
                session.refresh(issue)
                if issue.status in (IssueStatus.draft, IssueStatus.scheduled):
                    _freeze_audience(session, issue)
                d = Delivery.__table__
                session.execute(sa.update(d).where(d.c.issue_id == issue_id, d.c.state == DeliveryState.sending)
                                .values(state=DeliveryState.pending))  # fmt: skip
                session.commit()
                return issue
            session.rollback()
        if not wait:
            raise Invalid(f"Issue {issue_id} is being sent by another worker.", status_code=409)
        log.info("newsletter.send.waiting_for_lease", extra={"issue_id": issue_id})
        time.sleep(min(1.0, lease_s / 4))


def _freeze_audience(session: Session, issue: Issue) -> None:
    if not session.exec(select(IssueArticle.id).where(IssueArticle.issue_id == issue.id)).first():
        raise Invalid("This issue has no articles yet: add at least one before sending.")
    emps = session.exec(audience_query(issue.org_id, issue.audience or {})).all()
    now = utcnow()
    _insert_ignore(session, Delivery.__table__, [
        {"org_id": issue.org_id, "issue_id": issue.id, "employee_id": e.id, "email": e.email,
         "state": DeliveryState.pending, "attempts": 0, "updated_at": now} for e in emps])  # fmt: skip
    ensure_preferences(session, org_id=issue.org_id, employee_ids=[e.id for e in emps])
    issue.status = IssueStatus.sending
    issue.started_at = now
    issue.updated_at = now
    session.add(issue)
    log.info("newsletter.send.audience_frozen", extra={"issue_id": issue.id, "recipients": len(emps)})


@dataclass
class _Item:
    recipient: Recipient
    views: list[r.ArticleView] | None  # None: built from the issue's stencil
    attempts: int = 0
    msg: Outgoing | None = None  # built ahead by the claim loop


class _Sender:
    def __init__(self, engine: Engine, ctx: IssueContext, mailer: Mailer, settings: Settings, runner: str,
                 on_progress: Callable[[SendReport], None] | None, batch_size: int, backoff_base: float):  # fmt: skip
        self.engine = engine
        self.ctx = ctx
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
        self._accepts: list[tuple[int, object, asyncio.Future]] = []
        self._accept_scheduled = False
        self._sent: list[int] = []
        self._next_slot = 0.0
        self._last_progress = 0.0
        self._last_heartbeat = time.monotonic()
        self.waiting_for_smtp = False
        # statements built once (Core, expanding IN): per message, the bookkeeping is one execute and a commit
        d, e, p = Delivery.__table__, Employee.__table__, NewsletterPreference.__table__
        ids, now = sa.bindparam("ids", expanding=True), sa.bindparam("now", type_=d.c.updated_at.type)
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
        t = Issue.__table__
        got = session.execute(sa.update(t).where(t.c.id == self.ctx.issue.id, t.c.runner == self.runner)
                              .values(heartbeat_at=utcnow())).rowcount  # fmt: skip
        if got != 1:
            raise LeaseLost(f"issue {self.ctx.issue.id}: another worker took over the send")
        self._last_heartbeat = time.monotonic()

    def _claim(self) -> list[_Item]:
        """Next batch of pending deliveries: links minted, state `sending`, committed together."""
        s = self.session
        d = Delivery.__table__
        rows = s.connection().execute(self._claim_stmt, {"issue": self.ctx.issue.id, "limit": self.batch_size}).all()
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
        views: dict[int, list[r.ArticleView]] = {}
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
        d = Delivery.__table__
        values = {"state": state, "updated_at": utcnow()}
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
        rep = progress(self.session, issue_id=self.ctx.issue.id)
        rep.waiting_for_smtp = self.waiting_for_smtp
        self.on_progress(rep)

    # -- group commit of "accepting", then the end-of-data dots

    async def _accept(self, delivery_id: int, conn) -> None:
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
                    log.info("newsletter.send.smtp_back", extra={"issue_id": self.ctx.issue.id})
                self.waiting_for_smtp = False
                return conn
            except PermanentFailure:
                raise
            except TransientFailure as exc:
                if not self.waiting_for_smtp:
                    log.warning(
                        "newsletter.send.smtp_unavailable", extra={"issue_id": self.ctx.issue.id, "error": str(exc)}
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
        rc = item.recipient
        msg = item.msg or self._build(item)
        while True:
            if conn is None or not getattr(conn, "usable", True):
                conn = await self._connect()
            await self._pace()
            try:
                await conn.transmit(msg)
            except PermanentFailure as exc:
                self._set_state(rc.delivery_id, DeliveryState.failed, str(exc))
                log.warning("newsletter.send.refused", extra={"issue_id": self.ctx.issue.id, "code": exc.code})
                conn = await self._reset(conn)
                return conn
            except TransientFailure as exc:
                conn = await self._after_transient(item, exc, conn)
                if item.attempts >= MAX_TRANSIENT_ATTEMPTS:
                    return conn
                continue
            try:
                await self._accept(rc.delivery_id, conn)
            except TransientFailure as exc:  # the dot could not be written: not delivered
                self._set_state(rc.delivery_id, DeliveryState.sending)
                conn = await self._after_transient(item, exc, conn)
                if item.attempts >= MAX_TRANSIENT_ATTEMPTS:
                    return conn
                continue
            try:
                await conn.confirm()
            except Unconfirmed as exc:
                self._set_state(rc.delivery_id, DeliveryState.accepting, f"unconfirmed: {exc}")
                return None
            except PermanentFailure as exc:
                self._set_state(rc.delivery_id, DeliveryState.failed, str(exc))
                return conn
            except TransientFailure as exc:  # 4xx to the dot: certainly not accepted
                self._set_state(rc.delivery_id, DeliveryState.sending)
                conn = await self._after_transient(item, exc, conn)
                if item.attempts >= MAX_TRANSIENT_ATTEMPTS:
                    return conn
                continue
            self._sent.append(rc.delivery_id)
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
                    item.recipient.delivery_id,
                    DeliveryState.failed,
                    f"gave up after {item.attempts} temporary failures: {exc}",
                )
                return await self._reset(conn)
            conn = await self._reset(conn)
            await asyncio.sleep(min(self.backoff_base * 2 ** (item.attempts - 1), 60.0))
            return conn
        log.info("newsletter.send.connection_lost", extra={"issue_id": self.ctx.issue.id, "error": str(exc)})
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
                    if w.exception() is not None:
                        raise w.exception()
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
    runner = f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"
    issue = _acquire(engine, issue_id, runner, settings.newsletter_lease_s, wait_for_lease)
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
        t = Issue.__table__
        values = {"runner": None, "heartbeat_at": None, "updated_at": utcnow()}
        if left == 0:
            values.update(status=IssueStatus.sent, finished_at=utcnow())
        session.execute(sa.update(t).where(t.c.id == issue_id, t.c.runner == runner).values(**values))
        session.commit()
        rep = progress(session, issue_id=issue_id)
    log.info("newsletter.send.finished", extra={"issue_id": issue_id, "sent": rep.sent, "failed": rep.failed})
    if on_progress:
        on_progress(rep)
    return rep


def send_test(engine: Engine, issue_id: int, address: str, mailer: Mailer, settings: Settings, *,
              org_id: int | None = None, employee_id: int | None = None) -> str:  # fmt: skip
    """Send one copy to ``address``, rendered for ``employee_id`` (default: the first of the audience).
    Deliveries are not touched. Returns the Message-ID."""
    if "@" not in address or any(c in address for c in " \r\n<>,"):
        raise Invalid(f"{address!r} is not an email address.")
    with Session(engine, expire_on_commit=False) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or (org_id is not None and issue.org_id != org_id):
            raise NotFound(f"There is no newsletter issue {issue_id} in this organisation.")
        ctx = load_context(session, org_id=issue.org_id, issue_id=issue_id, settings=settings)
        rc = preview_recipient(session, ctx, employee_id)
        views = mint_for(session, ctx, [rc])[rc.employee_id]
        session.commit()
    msg = build_outgoing(ctx, Recipient(rc.employee_id, address, rc.first_name, rc.full_name, rc.unsubscribe_token),
                         views, test=True)  # fmt: skip

    async def go() -> None:
        conn = await mailer.connect()
        try:
            await conn.transmit(msg)
            conn.end_data()
            await conn.confirm()
        finally:
            await conn.close()

    asyncio.run(go())
    log.info("newsletter.send.test_sent", extra={"issue_id": issue_id})
    return msg.message_id


def preview_recipient(session: Session, ctx: IssueContext, employee_id: int | None) -> Recipient:
    if employee_id is not None:
        emp = session.get(Employee, employee_id)
        if emp is None or emp.org_id != ctx.org_id:
            raise NotFound(f"There is no employee {employee_id} in this organisation.")
    else:
        emp = session.exec(audience_query(ctx.org_id, ctx.issue.audience or {})).first()
        if emp is None:
            raise Invalid("The audience of this issue is empty: choose an employee to preview it for.")
    token = ensure_preferences(session, org_id=ctx.org_id, employee_ids=[emp.id])[emp.id]
    return recipient_of(emp, token)


def preview(session: Session, *, org_id: int, issue_id: int, employee_id: int | None,
            settings: Settings) -> tuple[str, str]:  # fmt: skip
    """The HTML and text that this employee would receive (their own links are minted)."""
    ctx = load_context(session, org_id=org_id, issue_id=issue_id, settings=settings)
    rc = preview_recipient(session, ctx, employee_id)
    views = mint_for(session, ctx, [rc])[rc.employee_id]
    unsubscribe = _unsubscribe_url(ctx, rc)
    return r.render_email(ctx.compiled, issue=ctx.view, brand=ctx.brand,
                          employee=r.RecipientView(rc.first_name, rc.email), articles=views,
                          unsubscribe_url=unsubscribe)  # fmt: skip
