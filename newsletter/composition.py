"""What every message of an issue is made of: the issue's context (brand, articles, compiled template), its
recipients, their tracked links (derived per employee from specs minted once per issue), and the message bytes,
through the issue's stencil or the full Jinja render (the two give the same bytes)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from newsletter.mailer import Outgoing
from newsletter.models import NETWORKS, Article, Issue, IssueArticle
from newsletter.rendering import (
    NETWORK_STYLE,
    ArticleView,
    CompiledEmail,
    IssueView,
    RecipientView,
    ShareButton,
    Stencil,
    assemble,
    build_message,
    compiled_email,
    envelope_sender,
    intent_url,
    labels_for,
    make_stencil,
    message_head,
    message_id,
    quoted_printable,
    render_email,
    with_utm,
)
from service.accounts.open_links import PATH as OPEN_PATH
from service.accounts.open_links import expiry_from, open_key, open_url
from service.brand import brand_for
from service.db import row_id
from service.errors import NotFound
from service.links import Channel, TrackedLink, employee_url, link_key, mint, share_placeholder
from service.settings import Settings
from signatures.context import BrandData
from signatures.service import brand_data

log = logging.getLogger(__name__)


@dataclass
class IssueContext:
    org_id: int
    issue: Issue
    view: IssueView
    brand: BrandData
    articles: list[Article]
    compiled: CompiledEmail
    base_url: str
    sender: str
    domain: str
    key: bytes = b""  # HMAC key of per-employee link tokens
    open_key: bytes = b""  # HMAC key of the "Open my space" links (service.accounts.open_links)
    open_expires: int = 0  # when this send's "Open my space" links stop working (unix seconds)
    specs: list | None = None  # the issue's link specs, minted once per send
    stencil: Stencil | None = None  # the issue rendered once (see rendering.Stencil); None: not built yet
    stencil_ok: bool | None = None  # checked against a full render on the first recipient; False: use Jinja


def load_context(session: Session, *, org_id: int, issue_id: int, settings: Settings) -> IssueContext:
    issue = session.get(Issue, issue_id)
    if issue is None or issue.org_id != org_id:
        raise NotFound(f"There is no newsletter issue {issue_id} in this organisation.")
    rows = session.exec(
        select(Article).join(IssueArticle, col(IssueArticle.article_id) == col(Article.id))
        .where(IssueArticle.issue_id == issue_id).order_by(col(IssueArticle.position))
    ).all()  # fmt: skip
    brand = brand_data(brand_for(session, org_id))
    paragraphs = tuple(p.strip() for p in issue.intro.replace("\r\n", "\n").split("\n\n") if p.strip())
    view = IssueView(row_id(issue), issue.subject, issue.preheader, paragraphs, issue.language)
    domain = urlsplit(settings.public_base_url).hostname or "relais.invalid"
    return IssueContext(org_id, issue, view, brand, list(rows), compiled_email(), settings.public_base_url,
                        settings.smtp_from, domain, link_key(settings), open_key(settings), expiry_from())  # fmt: skip


@dataclass(frozen=True, slots=True)
class Recipient:
    employee_id: int
    email: str
    first_name: str
    full_name: str
    unsubscribe_token: str
    delivery_id: int | None = None


def recipient_of(emp, token: str, delivery_id: int | None = None) -> Recipient:
    """``emp``: an Employee or a row with its id, email, first_name, last_name and display_name."""
    full = emp.display_name or " ".join(p for p in (emp.first_name, emp.last_name) if p)
    return Recipient(emp.id, emp.email, emp.first_name or full or "", full, token, delivery_id)


@dataclass(frozen=True, slots=True)
class ArticleSpecs:
    """The shared link rows of one article in one issue; each recipient's URLs are derived from them."""

    article: Article
    read: TrackedLink
    intents: tuple[tuple[str, TrackedLink], ...]  # (network, share-intent spec), in NETWORKS order


def share_specs(session: Session, *, org_id: int, article: Article, issue_id: int | None,
                networks: tuple[str, ...] = NETWORKS, texts: dict[str, str] | None = None,
                ) -> list[tuple[str, TrackedLink, TrackedLink]]:  # fmt: skip
    """Per network: the article's share spec (the employee's own /s/ link: one per article and network, the same
    from a newsletter or the share center) and a share-intent spec whose destination holds a placeholder that
    the redirect fills with the clicking employee's /s/ URL. ``texts``: the post text per network (X's by
    default)."""
    out = []
    for n in networks:
        share = mint(session, org_id=org_id, channel=Channel.share, article_id=article.id, network=n,
                     destination=with_utm(article.url, source=n, medium="email" if n == "email" else "social",
                                          campaign="employee-advocacy"))  # fmt: skip
        session.flush()
        text = (texts or {}).get(n, article.text_x)
        body = (texts or {}).get("email", article.description)
        intent = mint(session, org_id=org_id, channel=Channel.share_intent, article_id=article.id, issue_id=issue_id,
                      network=n, destination=intent_url(n, share_url=share_placeholder(share), title=article.title,
                                                        text_x=text, hashtags=article.hashtags,
                                                        email_body=body))  # fmt: skip
        out.append((n, share, intent))
    return out


def issue_specs(session: Session, ctx: IssueContext) -> list[ArticleSpecs]:
    """Mint (idempotently) the read, share and share-intent specs of every article: ~90 rows per issue,
    none per recipient."""
    if ctx.specs is not None:
        return ctx.specs
    out = []
    for a in ctx.articles:
        read = mint(session, org_id=ctx.org_id, channel=Channel.newsletter, article_id=a.id, issue_id=ctx.issue.id,
                    destination=with_utm(a.url, source="newsletter", medium="email",
                                         campaign=f"issue-{ctx.issue.id}"))  # fmt: skip
        intents = tuple((n, intent) for n, _share, intent in share_specs(session, org_id=ctx.org_id, article=a,
                                                                         issue_id=ctx.issue.id))  # fmt: skip
        out.append(ArticleSpecs(a, read, intents))
    session.flush()
    ctx.specs = out
    return out


def _views(ctx: IssueContext, specs: list[ArticleSpecs], read_url, share_url) -> list[ArticleView]:
    labels = labels_for(ctx.issue.language)
    views = []
    for spec in specs:
        a = spec.article
        buttons = tuple(ShareButton(n, *NETWORK_STYLE[n], share_url(intent)) for n, intent in spec.intents)
        views.append(ArticleView(row_id(a), a.title, a.description, a.image_url, a.site_name,
                                 labels.get(a.kind.value, a.kind.value), a.text_linkedin, read_url(spec.read),
                                 buttons))  # fmt: skip
    return views


def mint_for(session: Session, ctx: IssueContext, recipients: list[Recipient]) -> dict[int, list[ArticleView]]:
    """Every tracked link of these recipients' emails (read, share intent carrying the share link): derived
    per employee from the issue's specs, so no row is written per recipient."""
    specs = issue_specs(session, ctx)
    out: dict[int, list[ArticleView]] = {}
    for rc in recipients:

        def url(spec, e=rc.employee_id):
            return employee_url(spec, e, ctx.base_url, ctx.key)

        out[rc.employee_id] = _views(ctx, specs, url, url)
    return out


def recipient_urls(ctx: IssueContext, employee_id: int) -> list[str]:
    """This employee's tracked URLs in stencil slot order (per article: read, then each share button)."""
    base, key = ctx.base_url, ctx.key
    urls = []
    assert ctx.specs is not None, "issue_specs() mints the specs before any recipient's URLs"
    for spec in ctx.specs:
        urls.append(employee_url(spec.read, employee_id, base, key))
        urls.extend(employee_url(intent, employee_id, base, key) for _, intent in spec.intents)
    return urls


def unsubscribe_url(ctx: IssueContext, rc: Recipient) -> str:
    return f"{ctx.base_url.rstrip('/')}/u/{rc.unsubscribe_token}"


TEST_PORTAL_TOKEN = "test-copy"  # noqa: S105 - test copies and previews sign no one in: /sign-in/open/ refuses it


def portal_url(ctx: IssueContext, rc: Recipient, *, test: bool = False) -> str:
    """The recipient's signed "Open my space" link; a dead one in test copies and previews, which go to or are
    seen by someone else than the employee they are rendered for."""
    if test:
        return f"{ctx.base_url.rstrip('/')}{OPEN_PATH}{TEST_PORTAL_TOKEN}"
    return open_url(ctx.base_url, rc.employee_id, ctx.open_expires, ctx.open_key)


def _outgoing(ctx: IssueContext, rc: Recipient, text_qp: bytes, html_qp: bytes, *, boundary: str | None = None,
              date: str | None = None) -> Outgoing:  # fmt: skip
    msg_id = message_id(row_id(ctx.issue), rc.employee_id, ctx.domain)
    head, b = message_head(sender=ctx.sender, to_name=rc.full_name, to_email=rc.email, subject=ctx.issue.subject,
                           msg_id=msg_id, unsubscribe_url=unsubscribe_url(ctx, rc), language=ctx.issue.language,
                           extra_headers={"X-Relais-Issue": str(ctx.issue.id)}, boundary=boundary,
                           date=date)  # fmt: skip
    return Outgoing(sender=envelope_sender(ctx.sender), recipient=rc.email,
                    data=assemble(head, b, text_qp, html_qp), message_id=msg_id, crlf=True)  # fmt: skip


def build_stenciled(ctx: IssueContext, rc: Recipient, *, boundary: str | None = None,
                    date: str | None = None) -> Outgoing:  # fmt: skip
    """The recipient's message from the issue's stencil: the same bytes as `build_outgoing` (the Jinja path)."""
    values = [rc.first_name, rc.email, unsubscribe_url(ctx, rc), portal_url(ctx, rc),
              *recipient_urls(ctx, rc.employee_id)]  # fmt: skip
    assert ctx.stencil is not None, "prepare_stencil() builds the stencil before it is used"
    text_qp, html_qp = ctx.stencil.fill(values)
    return _outgoing(ctx, rc, text_qp, html_qp, boundary=boundary, date=date)


def prepare_stencil(session: Session, ctx: IssueContext, first: Recipient) -> bool:
    """Build the issue's stencil once per send and check it on ``first`` against the full Jinja render, byte
    for byte. Returns whether the stencil is used (if not, every message goes through Jinja)."""
    if ctx.stencil_ok is not None:
        return ctx.stencil_ok
    specs = issue_specs(session, ctx)
    ctx.stencil = make_stencil(ctx.compiled, issue=ctx.view, brand=ctx.brand,
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


def build_outgoing(ctx: IssueContext, rc: Recipient, views: list[ArticleView], *, test: bool = False,
                   boundary: str | None = None, date: str | None = None) -> Outgoing:  # fmt: skip
    """The recipient's message through the full Jinja render (test sends, previews, and the reference the
    stencil is checked against)."""
    unsubscribe = unsubscribe_url(ctx, rc)
    html, text = render_email(ctx.compiled, issue=ctx.view, brand=ctx.brand,
                              employee=RecipientView(rc.first_name, rc.email), articles=views,
                              unsubscribe_url=unsubscribe, portal_url=portal_url(ctx, rc, test=test))  # fmt: skip
    if not test:
        return _outgoing(ctx, rc, quoted_printable(text), quoted_printable(html), boundary=boundary, date=date)
    msg_id = f"<test-{ctx.issue.id}.{secrets.token_hex(6)}@{ctx.domain}>"
    data = build_message(sender=ctx.sender, to_name=rc.full_name, to_email=rc.email,
                         subject=f"[TEST] {ctx.issue.subject}", html=html, text=text, msg_id=msg_id,
                         unsubscribe_url=unsubscribe, language=ctx.issue.language,
                         extra_headers={"X-Relais-Issue": str(ctx.issue.id)}, boundary=boundary,
                         date=date)  # fmt: skip
    return Outgoing(sender=envelope_sender(ctx.sender), recipient=rc.email, data=data, message_id=msg_id, crlf=True)
