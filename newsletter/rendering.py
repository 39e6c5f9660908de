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
import secrets
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import jinja2

from service.db import utcnow
from signatures.rendering import compile_template

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "newsletter"

NETWORK_STYLE = {  # label, button colour
    "linkedin": ("LinkedIn", "#0A66C2"),
    "x": ("X", "#000000"),
    "facebook": ("Facebook", "#1877F2"),
    "email": ("E-mail", "#4B5563"),
}

LABELS = {
    "fr": {"hello": "Bonjour", "read": "Lire l'article", "share": "Partager :", "suggested": "Texte suggéré :",
           "footer": "Vous recevez cette lettre interne en tant que collaborateur de",
           "preferences": "Mes préférences", "unsubscribe": "Se désabonner", "company": "Actualité de l'entreprise",
           "sector": "Actualité du secteur"},
    "en": {"hello": "Hello", "read": "Read the article", "share": "Share:", "suggested": "Suggested post:",
           "footer": "You receive this internal newsletter as an employee of", "preferences": "My preferences",
           "unsubscribe": "Unsubscribe", "company": "Company news", "sector": "Sector news"},
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


@lru_cache(maxsize=8)
def _compile(html_source: str, text_source: str) -> CompiledEmail:
    compiled = compile_template(html_source)  # protect Jinja, inline CSS once, restore and check
    full = _SHELL % compiled.html_source
    digest = hashlib.sha256(f"{html_source}\0{text_source}".encode()).hexdigest()[:16]
    return CompiledEmail(full, _HTML_ENV.from_string(full), _TEXT_ENV.from_string(text_source), digest)


def compiled_email() -> CompiledEmail:
    """The newsletter template, compiled once per process (per template content)."""
    return _compile((TEMPLATES / "email.html").read_text(), (TEMPLATES / "email.txt").read_text())


def render_email(compiled: CompiledEmail, *, issue: IssueView, brand, employee: RecipientView,
                 articles: list[ArticleView], unsubscribe_url: str) -> tuple[str, str]:  # fmt: skip
    ctx = {"issue": issue, "brand": brand, "employee": employee, "articles": articles,
           "labels": labels_for(issue.language), "unsubscribe_url": unsubscribe_url}  # fmt: skip
    return compiled.html.render(ctx), compiled.text.render(ctx)


# ---------------------------------------------------------------- MIME


def message_id(issue_id: int, employee_id: int, domain: str) -> str:
    """Deterministic: the same recipient of the same issue always gets the same Message-ID."""
    return f"<issue-{issue_id}.emp-{employee_id}@{domain}>"


def _header(value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76, header_name="Subject").encode(linesep="\r\n")


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


def build_message(
    *, sender: str, to_name: str, to_email: str, subject: str, html: str, text: str, msg_id: str,
    unsubscribe_url: str, language: str, extra_headers: dict[str, str] | None = None,
) -> bytes:  # fmt: skip
    """multipart/alternative (text, then HTML), UTF-8 quoted-printable, CRLF line ends."""
    boundary = "=_rlx_" + secrets.token_hex(12)
    s_name, s_addr = parseaddr(sender)
    headers = [
        ("From", formataddr((s_name, s_addr), charset="utf-8")),
        ("To", formataddr((to_name, to_email), charset="utf-8")),
        ("Subject", _header(subject)),
        ("Date", format_datetime(utcnow())),
        ("Message-ID", msg_id),
        ("MIME-Version", "1.0"),
        ("Content-Language", language),
        ("List-Unsubscribe", f"<{unsubscribe_url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Auto-Submitted", "auto-generated"),
        *(extra_headers or {}).items(),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8")
    b = boundary.encode()
    part_head = b"Content-Type: text/%s; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    return b"".join((
        head, b"\r\nThis is a multipart message in MIME format.\r\n",
        b"--", b, b"\r\n", part_head % b"plain", _qp(text), b"\r\n",
        b"--", b, b"\r\n", part_head % b"html", _qp(html), b"\r\n",
        b"--", b, b"--\r\n",
    ))  # fmt: skip
