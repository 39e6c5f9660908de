"""Per-recipient newsletter emails: compile once, render per recipient, build the MIME bytes by hand.

The HTML template goes through the signatures' compile step (``signatures.rendering.compile_template``:
Jinja protected, CSS inlined once with premailer, placeholders restored and checked). The inlined Jinja
source it returns is compiled here with a plain autoescaping environment (the template is a server file,
not user input, so the signature sandbox's per-attribute checks are not needed) and wrapped in the email
document shell. Per recipient only Jinja runs.

Messages are assembled as bytes (multipart/alternative, quoted-printable UTF-8 parts, CRLF): building an
``email.message.EmailMessage`` costs ~2 ms per message, more than everything else together.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import jinja2
from markupsafe import escape

from service.db import utcnow
from signatures.rendering import compile_template

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "newsletter"

NETWORK_STYLE = {  # label, button colour
    "linkedin": ("LinkedIn", "#0A66C2"),
    "x": ("X", "#000000"),
    "facebook": ("Facebook", "#1877F2"),
    "email": ("E-mail", "#4B5563"),
    "whatsapp": ("WhatsApp", "#25D366"),  # the share center only (advocacy.share): newsletters carry NETWORKS
    "bluesky": ("Bluesky", "#1185FE"),
}

LABELS = {
    "fr": {"hello": "Bonjour", "read": "Lire l'article", "share": "Partager :", "suggested": "Texte suggéré :",
           "footer": "Vous recevez cette lettre interne en tant que collaborateur de",
           "preferences": "Mes préférences", "unsubscribe": "Se désabonner", "company": "Actualité de l'entreprise",
           "sector": "Actualité du secteur", "open_space": "Ouvrir mon espace"},
    "en": {"hello": "Hello", "read": "Read the article", "share": "Share:", "suggested": "Suggested post:",
           "footer": "You receive this internal newsletter as an employee of", "preferences": "My preferences",
           "unsubscribe": "Unsubscribe", "company": "Company news", "sector": "Sector news",
           "open_space": "Open my space"},
}  # fmt: skip


def labels_for(language: str | None) -> dict[str, str]:
    return LABELS.get((language or "fr").split("-")[0].lower(), LABELS["en"])


# ---------------------------------------------------------------- share intents and UTM tags


def with_utm(url: str, *, source: str, medium: str, campaign: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [("utm_source", source), ("utm_medium", medium), ("utm_campaign", campaign)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def intent_url(network: str, *, share_url: str, title: str, text_x: str, hashtags: list[str],
               email_body: str) -> str:  # fmt: skip
    """The official share-intent URL for ``network`` carrying the employee's own /s/ link."""
    if network == "linkedin":
        return "https://www.linkedin.com/sharing/share-offsite/?" + urlencode({"url": share_url})
    if network == "x":
        params = {"text": text_x or title, "url": share_url}
        if hashtags:
            params["hashtags"] = ",".join(hashtags)
        return "https://twitter.com/intent/tweet?" + urlencode(params, quote_via=quote)
    if network == "facebook":
        return "https://www.facebook.com/sharer.php?" + urlencode({"u": share_url})
    if network == "whatsapp":  # the text and the link in one message
        return "https://wa.me/?" + urlencode({"text": f"{text_x or title} {share_url}"}, quote_via=quote)
    if network == "bluesky":  # Bluesky's compose intent takes the whole post; the link becomes a card
        tags = "".join(f" #{t}" for t in hashtags)
        return "https://bsky.app/intent/compose?" + urlencode({"text": f"{text_x or title} {share_url}{tags}"},
                                                               quote_via=quote)  # fmt: skip
    if network == "email":  # RFC 6068: every reserved character percent-encoded, line breaks as %0D%0A
        body = (email_body.strip() + "\r\n\r\n" + share_url) if email_body.strip() else share_url
        return f"mailto:?subject={quote(title, safe='')}&body={quote(body, safe='')}"
    raise ValueError(f"unknown network {network!r}")


# ---------------------------------------------------------------- templates


@dataclass(frozen=True, slots=True)
class ShareButton:
    network: str
    label: str
    color: str
    url: str


@dataclass(frozen=True, slots=True)
class ArticleView:
    id: int
    title: str
    description: str
    image_url: str | None
    site_name: str | None
    kind_label: str
    suggested: str
    read_url: str
    shares: tuple[ShareButton, ...]


@dataclass(frozen=True, slots=True)
class IssueView:
    id: int
    subject: str
    preheader: str
    intro_paragraphs: tuple[str, ...]
    language: str


@dataclass(frozen=True, slots=True)
class RecipientView:
    first_name: str
    email: str


_SHELL = (
    '<!DOCTYPE html>\n<html lang="{{ issue.language }}" xmlns="http://www.w3.org/1999/xhtml"><head>'
    '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<meta http-equiv="X-UA-Compatible" content="IE=edge">'
    '<meta name="x-apple-disable-message-reformatting">'
    '<meta name="color-scheme" content="light"><meta name="supported-color-schemes" content="light">'
    "<title>{{ issue.subject }}</title></head>"
    '<body style="margin:0;padding:0;background-color:#F3F4F6;">%s</body></html>\n'
)

_HTML_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False,  # noqa: S701
                               finalize=lambda v: "" if v is None else v)  # fmt: skip
_TEXT_ENV = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, auto_reload=False,  # noqa: S701
                               trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                               finalize=lambda v: "" if v is None else v)  # fmt: skip


@dataclass(frozen=True)
class CompiledEmail:
    html_source: str
    html: jinja2.Template
    text: jinja2.Template
    digest: str


# A tag's attributes each on their own line, and a line break before ``>`` after an attribute holding a Jinja
# expression: whitespace inside a tag means nothing in HTML, but it gives the rendered HTML short lines and puts
# every per-recipient URL on a line of its own, so quoted-printable encoding (line-local) can be done once per
# send for everything else (see `Stencil`).
_TAG = re.compile(r"""<([a-zA-Z][a-zA-Z0-9]*)((?:\s+[^\s=<>/"'{}%]+(?:=(?:"[^"]*"|'[^']*'))?)+)\s*(/?)>""")
_ATTR = re.compile(r"""\s+([^\s=<>/"'{}%]+(?:=(?:"[^"]*"|'[^']*'))?)""")


def break_tags(source: str) -> str:
    def tag(m: re.Match) -> str:
        attrs = _ATTR.findall(m.group(2))
        end = "\n" if "{{" in attrs[-1] else ""
        return "<" + m.group(1) + "".join("\n" + a for a in attrs) + end + m.group(3) + ">"

    return _TAG.sub(tag, source)


@lru_cache(maxsize=8)
def _compile(html_source: str, text_source: str) -> CompiledEmail:
    compiled = compile_template(html_source)  # protect Jinja, inline CSS once, restore and check
    full = break_tags(_SHELL % compiled.html_source)
    digest = hashlib.sha256(f"{html_source}\0{text_source}".encode()).hexdigest()[:16]
    return CompiledEmail(full, _HTML_ENV.from_string(full), _TEXT_ENV.from_string(text_source), digest)


def compiled_email() -> CompiledEmail:
    """The newsletter template, compiled once per process (per template content)."""
    return _compile((TEMPLATES / "email.html").read_text(), (TEMPLATES / "email.txt").read_text())


def render_email(compiled: CompiledEmail, *, issue: IssueView, brand, employee: RecipientView,
                 articles: list[ArticleView], unsubscribe_url: str, portal_url: str) -> tuple[str, str]:  # fmt: skip
    ctx = {"issue": issue, "brand": brand, "employee": employee, "articles": articles,
           "labels": labels_for(issue.language), "unsubscribe_url": unsubscribe_url,
           "portal_url": portal_url}  # fmt: skip
    return compiled.html.render(ctx), compiled.text.render(ctx)


# ---------------------------------------------------------------- MIME


def message_id(issue_id: int, employee_id: int, domain: str) -> str:
    """Deterministic: the same recipient of the same issue always gets the same Message-ID."""
    return f"<issue-{issue_id}.emp-{employee_id}@{domain}>"


def _header(value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76, header_name="Subject").encode(linesep="\r\n")


def quoted_printable(text: str) -> bytes:
    """UTF-8 quoted-printable, CRLF. Every line end (CRLF, LF, lone CR) becomes one line break first, so the
    encoding is strictly line-local: encoding a text = encoding its lines one by one (what `Stencil` relies on)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


def _one_line(value: str) -> str:
    """No CR or LF inside a header value (no header injection; the message has CRLF line ends only)."""
    return value.replace("\r", " ").replace("\n", " ") if "\r" in value or "\n" in value else value


@lru_cache(maxsize=16)
def _from_header(sender: str) -> str:
    s_name, s_addr = parseaddr(sender)
    return formataddr((_one_line(s_name), _one_line(s_addr)), charset="utf-8")


@lru_cache(maxsize=16)
def envelope_sender(sender: str) -> str:
    return parseaddr(sender)[1] or sender


def message_head(
    *, sender: str, to_name: str, to_email: str, subject: str, msg_id: str, unsubscribe_url: str, language: str,
    extra_headers: dict[str, str] | None = None, boundary: str | None = None, date: str | None = None,
) -> tuple[bytes, bytes]:  # fmt: skip
    """The message headers (CRLF, ending before the blank line) and the multipart boundary. Every line end of a
    message built by `assemble` is CRLF (header values lose their CR/LF, bodies are `quoted_printable` output)."""
    boundary = boundary or "=_rlx_" + secrets.token_hex(12)
    headers = [
        ("From", _from_header(sender)),
        ("To", formataddr((_one_line(to_name), _one_line(to_email)), charset="utf-8")),
        ("Subject", _header(_one_line(subject))),
        ("Date", date or format_datetime(utcnow())),
        ("Message-ID", _one_line(msg_id)),
        ("MIME-Version", "1.0"),
        ("Content-Language", _one_line(language)),
        ("List-Unsubscribe", f"<{_one_line(unsubscribe_url)}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Auto-Submitted", "auto-generated"),
        *((k, _one_line(v)) for k, v in (extra_headers or {}).items()),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8"), boundary.encode()


_PART_HEAD = b'Content-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
_PLAIN_HEAD, _HTML_HEAD = _PART_HEAD % b"plain", _PART_HEAD % b"html"


def assemble(head: bytes, boundary: bytes, text_qp: bytes, html_qp: bytes) -> bytes:
    """multipart/alternative (text, then HTML) from already quoted-printable encoded parts."""
    return b"".join((
        head, b"\r\nThis is a multipart message in MIME format.\r\n",
        b"--", boundary, b"\r\n", _PLAIN_HEAD, text_qp, b"\r\n",
        b"--", boundary, b"\r\n", _HTML_HEAD, html_qp, b"\r\n",
        b"--", boundary, b"--\r\n",
    ))  # fmt: skip


def build_message(
    *, sender: str, to_name: str, to_email: str, subject: str, html: str, text: str, msg_id: str,
    unsubscribe_url: str, language: str, extra_headers: dict[str, str] | None = None, boundary: str | None = None,
    date: str | None = None,
) -> bytes:  # fmt: skip
    """multipart/alternative (text, then HTML), UTF-8 quoted-printable, CRLF line ends."""
    head, b = message_head(sender=sender, to_name=to_name, to_email=to_email, subject=subject, msg_id=msg_id,
                           unsubscribe_url=unsubscribe_url, language=language, extra_headers=extra_headers,
                           boundary=boundary, date=date)  # fmt: skip
    return assemble(head, b, quoted_printable(text), quoted_printable(html))


# ---------------------------------------------------------------- the stencil: render once per send
#
# Everything in an issue's email is the same for every recipient except a few values: the first name and
# address, the unsubscribe URL and each article's read and share-button URLs. The stencil is the Jinja render
# of the issue with a marker in each of those places, cut into pieces once per send:
#
# * quoted-printable is line-local once every line end is one LF (see `quoted_printable`), so every run of lines holding
#   no marker is encoded once, to its final bytes;
# * the lines holding markers (short: `break_tags` gives each URL attribute its own line) are kept as format
#   strings; per recipient they are filled (HTML: each value escaped exactly as autoescaping Jinja does) and
#   encoded on their own.
#
# One join per part then gives exactly the bytes `build_message` would produce from the full Jinja render
# (tests/test_newsletter_stencil.py proves it, and the sender checks it again on the first recipient of every
# send, falling back to Jinja for the whole send if they ever differ).

_MARK = "\x00{}\x00"
_MARK_RE = re.compile("\x00([0-9]+)\x00")
FIXED_SLOTS = (
    "first_name",
    "email",
    "unsubscribe_url",
    "portal_url",
)  # then, per article: read URL, each share button URL


@dataclass(frozen=True, slots=True)
class Stencil:
    html: tuple[bytes | str, ...]  # bytes: encoded once; str: a format string of slot values, encoded per recipient
    text: tuple[bytes | str, ...]
    slots: int

    def fill(self, values: list[str]) -> tuple[bytes, bytes]:
        """(text, HTML) quoted-printable bodies for one recipient; ``values`` in slot order, not escaped."""
        html_values = [escape(v) for v in values]
        text = b"".join([p if isinstance(p, bytes) else quoted_printable(p.format(*values)) for p in self.text])
        html = b"".join([p if isinstance(p, bytes) else quoted_printable(p.format(*html_values)) for p in self.html])
        return text, html


def _cut(rendered: str, slots: int) -> tuple[bytes | str, ...] | None:
    lines = rendered.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    pieces: list[bytes | str] = []
    run: list[str] = []
    run_dynamic = False
    for line in [*lines, None]:
        dynamic = line is not None and "\x00" in line
        if run and (line is None or dynamic != run_dynamic):
            chunk = "".join(run)
            if run_dynamic:
                fmt = chunk.replace("{", "{{").replace("}", "}}")
                fmt = _MARK_RE.sub(lambda m: "{" + m.group(1) + "}", fmt)
                if "\x00" in fmt or any(int(i) >= slots for i in _MARK_RE.findall(chunk)):
                    return None  # a NUL in the content itself: no stencil for this issue
                pieces.append(fmt)
            else:
                pieces.append(quoted_printable(chunk))
            run = []
        if line is not None:
            run.append(line)
            run_dynamic = dynamic
    return tuple(pieces)


def make_stencil(compiled: CompiledEmail, *, issue: IssueView, brand, articles: list[ArticleView]) -> Stencil | None:
    """The stencil of an issue. ``articles`` are the issue's views (their URLs are replaced by slots, in order:
    read URL, then each share button). None when the content makes a stencil impossible (use `render_email`)."""
    marks = [_MARK.format(i) for i in range(len(FIXED_SLOTS))]
    views = []
    for a in articles:
        read = _MARK.format(len(marks))
        marks.append(read)
        shares = []
        for button in a.shares:
            shares.append(replace(button, url=_MARK.format(len(marks))))
            marks.append(shares[-1].url)
        views.append(replace(a, read_url=read, shares=tuple(shares)))
    html, text = render_email(compiled, issue=issue, brand=brand, employee=RecipientView(marks[0], marks[1]),
                              articles=views, unsubscribe_url=marks[2], portal_url=marks[3])  # fmt: skip
    html_pieces, text_pieces = _cut(html, len(marks)), _cut(text, len(marks))
    if html_pieces is None or text_pieces is None:
        return None
    return Stencil(html_pieces, text_pieces, len(marks))


def stencil_values(first_name: str, email: str, unsubscribe_url: str, portal_url: str,
                   articles: list[ArticleView]) -> list[str]:  # fmt: skip
    """Slot values in stencil order (for tests and for checking a stencil against a full render)."""
    values = [first_name, email, unsubscribe_url, portal_url]
    for a in articles:
        values.append(a.read_url)
        values.extend(b.url for b in a.shares)
    return values
