"""The stencil (the issue rendered once per send, per-recipient slots filled by a join) gives exactly the bytes of
the full Jinja render; the pieces it relies on (line-local quoted-printable, tags broken over lines, C-speed
dot-stuffing) are checked against their references."""

import binascii
import email
import email.policy
import logging
import random
import re

import lxml.html
import pytest
from jinja2 import Environment
from sqlmodel import Session

from newsletter.audience import ensure_preferences
from newsletter.composition import (
    build_outgoing,
    build_stenciled,
    load_context,
    mint_for,
    portal_url,
    prepare_stencil,
    recipient_of,
    recipient_urls,
)
from newsletter.mailer import MemoryMailer, dot_stuff
from newsletter.models import Article, ArticleKind, Issue, IssueArticle
from newsletter.rendering import (
    IssueView,
    RecipientView,
    break_tags,
    compiled_email,
    labels_for,
    quoted_printable,
    render_email,
)
from newsletter.sending import send_issue
from service.brand import brand_for
from service.directory.models import Employee

NAMES = [
    ("Zoé", "Lefèvre"), ("<b>Ana</b> & Co", "O'Brien"), ('Jean "JJ"', "Dupont"), ("{0} {x}", "}{"),
    ("Ünïcødé 😀", "Ærø"), ("." , "Dot"), ("Trailing ", "Space"), ("A" * 90, "Long-name " * 9),
    ("=3D=", "Equals"), ("", "Nofirst"), ("Tab\tbed", "X"), ("Multi\nLine", "Carriage\rReturn"),
]  # fmt: skip


def _issue(engine, org_id: int, *, description_extra: str = "") -> tuple[int, list[int]]:
    with Session(engine) as s:
        brand = brand_for(s, org_id)
        brand.company_name, brand.logo_url = "Acme & <Fils> «SA»", "https://acme.example/logo.png?a=1&b=2"
        s.add(brand)
        arts = []
        for i in range(4):
            arts.append(Article(
                org_id=org_id, url=f"https://news.example/a/{i}?x=1&y=é", kind=list(ArticleKind)[i % 2],
                title=f"Titre {i} : l'été <em>chaud</em> & \"sec\" {{braces}} {'x' * (60 * i)}",
                description=("Résumé = deux lignes.\n. \nUne ligne qui commence par un point, " * (i + 1))
                + description_extra,
                image_url=None if i == 2 else f"https://news.example/img/{i}.png", site_name=None if i == 1 else "News",
                text_x=f"À lire {i} #tag", text_linkedin="Texte <proposé> pour LinkedIn & co.",
                hashtags=["RH", "emploi"]))  # fmt: skip
        s.add_all(arts)
        issue = Issue(
            org_id=org_id,
            subject="La lettre — été {1}",
            preheader="Dix articles & <plus>",
            intro="Bonjour à tous.\r\n\r\nBonne lecture {0}.",
        )
        s.add(issue)
        s.flush()
        for pos, a in enumerate(arts):
            s.add(IssueArticle(issue_id=issue.id, article_id=a.id, position=pos))
        emps = [Employee(org_id=org_id, email=f"p{i}@acme.example", first_name=first, last_name=last,
                         source_id=f"p{i}") for i, (first, last) in enumerate(NAMES)]  # fmt: skip
        s.add_all(emps)
        s.commit()
        return issue.id, [e.id for e in emps]


def _recipients(session, ctx, emp_ids):
    tokens = ensure_preferences(session, org_id=ctx.org_id, employee_ids=emp_ids)
    return [recipient_of(session.get(Employee, e), tokens[e]) for e in emp_ids]


def _parts(data: bytes) -> tuple[str, str]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    return tuple(msg.get_body((kind,)).get_content().replace("\r\n", "\n") for kind in ("plain", "html"))


def test_stencil_equals_full_jinja_render_for_every_recipient(db, tenant, settings):
    issue_id, emp_ids = _issue(db, tenant.org_id)
    with Session(db, expire_on_commit=False) as s:
        ctx = load_context(s, org_id=tenant.org_id, issue_id=issue_id, settings=settings)
        recipients = _recipients(s, ctx, emp_ids)
        assert prepare_stencil(s, ctx, recipients[0]) is True and ctx.stencil is not None
        views = mint_for(s, ctx, recipients)
    date, boundary = "Mon, 02 Mar 2026 10:00:00 -0000", "=_rlx_0123456789abcdef01234567"
    for rc in recipients:
        fast = build_stenciled(ctx, rc, boundary=boundary, date=date)
        slow = build_outgoing(ctx, rc, views[rc.employee_id], boundary=boundary, date=date)
        assert fast.data == slow.data and fast.message_id == slow.message_id and fast.recipient == slow.recipient
        # and the decoded parts are the Jinja render itself
        html, text = render_email(ctx.compiled, issue=ctx.view, brand=ctx.brand,
                                  employee=RecipientView(rc.first_name, rc.email), articles=views[rc.employee_id],
                                  unsubscribe_url=f"https://relais.test/u/{rc.unsubscribe_token}",
                                  portal_url=portal_url(ctx, rc))  # fmt: skip
        got_text, got_html = _parts(fast.data)
        one_lf = {ord("\r"): "\n"}
        assert got_html == html.replace("\r\n", "\n").translate(one_lf)
        assert got_text == text.replace("\r\n", "\n").translate(one_lf)
        # CRLF line ends only (header values lose CR/LF): what lets the mailer skip its line-end scan
        assert fast.crlf and fast.data.count(b"\r") == fast.data.count(b"\n") == fast.data.count(b"\r\n")
        if "<" in rc.first_name:
            assert "&lt;b&gt;Ana&lt;/b&gt; &amp; Co" in got_html and "<b>Ana</b> & Co" in got_text
        if '"' in rc.first_name:
            assert "Jean &#34;JJ&#34;" in got_html
        if rc.first_name.startswith("Ü"):
            assert "Ünïcødé 😀" in got_html
    # every recipient's own links are in their message
    rc = recipients[1]
    for url in recipient_urls(ctx, rc.employee_id):
        assert url in _parts(build_stenciled(ctx, rc).data)[1]


def test_a_real_send_goes_through_the_stencil(db, tenant, settings, caplog):
    issue_id, emp_ids = _issue(db, tenant.org_id)
    mailer = MemoryMailer()
    with caplog.at_level(logging.INFO, logger="newsletter"):
        rep = send_issue(db, issue_id, mailer, settings)
    assert rep.sent == len(NAMES) == len(mailer.outbox)
    assert "newsletter.send.started" in caplog.messages and "newsletter.send.stencil_unused" not in caplog.messages
    assert all(m.crlf for m in mailer.outbox)


def test_content_that_cannot_be_stenciled_falls_back_to_jinja(db, tenant, settings, caplog):
    # a NUL in the content (the stencil's marker character) makes a stencil impossible
    issue_id, emp_ids = _issue(db, tenant.org_id)
    with Session(db, expire_on_commit=False) as s:
        ctx = load_context(s, org_id=tenant.org_id, issue_id=issue_id, settings=settings)
        ctx.view = IssueView(ctx.view.id, ctx.view.subject, "a NUL \x00 here", ctx.view.intro_paragraphs, "fr")
        recipients = _recipients(s, ctx, emp_ids)
        assert prepare_stencil(s, ctx, recipients[0]) is False and ctx.stencil is None
        s.commit()
    if db.dialect.name == "sqlite":  # PostgreSQL text cannot hold a NUL at all: end to end where it can exist
        with Session(db) as s:
            s.get(Issue, issue_id).preheader = "a NUL \x00 here"
            s.commit()
    mailer = MemoryMailer()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="newsletter"):
        rep = send_issue(db, issue_id, mailer, settings)
    assert rep.sent == len(NAMES) and len(mailer.outbox) == len(NAMES)
    assert ("newsletter.send.stencil_unused" in caplog.messages) == (db.dialect.name == "sqlite")
    text, html = _parts(mailer.outbox[0].data)
    assert "Bonjour Zoé" in text and "Zoé" in html


@pytest.mark.parametrize("seed", range(20))
def test_quoted_printable_is_line_local(seed):
    rng = random.Random(seed)
    alphabet = ["a", "b", " ", "\t", ".", "=", "é", "€", "\n", "\n", "\r", "\r\n", "x" * 80, "😀", "<", "{"]
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    cut = sorted(rng.sample(range(len(lines) + 1), min(4, len(lines) + 1)))
    chunks = ["".join(lines[a:b]) for a, b in zip([0, *cut], [*cut, len(lines)], strict=True)]
    assert b"".join(quoted_printable(c) for c in chunks) == quoted_printable(text)
    decoded = binascii.a2b_qp(quoted_printable(text).replace(b"\r\n", b"\n")).decode()
    assert decoded == text.replace("\r\n", "\n").replace("\r", "\n")


def test_tags_over_several_lines_are_the_same_html():
    source = compiled_email().html_source
    broken = break_tags(source.replace("\n", " "))  # any newline in the source comes from break_tags
    assert broken.count("\n") > 80 and 'href="{{ a.read_url }}"\n>' in broken

    def tree(html: str):
        doc = lxml.html.document_fromstring(html)
        return [(el.tag, dict(el.attrib), el.text, el.tail) for el in doc.iter() if isinstance(el.tag, str)]

    render = Environment(autoescape=True).from_string  # noqa: S701 - a test of our own template
    ctx = {"issue": {"language": "fr", "subject": "S", "preheader": "P", "intro_paragraphs": ["i"]},
           "brand": {"primary_color": "#123", "font_stack": "Arial", "company_name": "C", "logo_url": "https://l"},
           "employee": {"first_name": "F"}, "labels": labels_for("fr"), "unsubscribe_url": "https://u",
           "articles": [{"read_url": "https://r", "image_url": "https://i", "title": "T", "kind_label": "K",
                         "site_name": "N", "description": "D", "suggested": "S",
                         "shares": [{"label": "L", "color": "#000", "url": "https://s"}]}]}  # fmt: skip
    plain = re.sub(r"<!--.*?-->", "", render(source.replace("\n", " ")).render(ctx), flags=re.S)
    lined = re.sub(r"<!--.*?-->", "", render(broken).render(ctx), flags=re.S)
    assert tree(plain) == tree(lined)


def _dot_stuff_reference(data: bytes) -> bytes:
    data = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", data)
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


@pytest.mark.parametrize("seed", range(20))
def test_dot_stuffing_matches_the_reference(seed):
    rng = random.Random(seed)
    parts = [b".", b"..", b"\r\n", b"\r\n", b"\n", b"\r", b"a", b"=2E", b" "]
    if seed % 2:
        parts = [b".", b"\r\n", b"a", b"\r\n."]  # only CRLF line ends: the fast path
    data = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 200)))
    assert dot_stuff(data) == _dot_stuff_reference(data)
    if seed % 2:
        assert dot_stuff(data, crlf=True) == _dot_stuff_reference(data)
