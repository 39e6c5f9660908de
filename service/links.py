"""The only code that mints tracked URLs.

A link knows its channel, employee, campaign or article, network and destination; the destination lives
only here on the server, so `/c/{token}` and `/s/{token}` can never be pointed anywhere else (no open
redirect). Tokens carry 128 random bits. Minting is idempotent: the same link facts give the same token,
so re-rendering a signature yields the same HTML and the same content hash (no needless redeployments).
"""

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from service.crypto import pinned_link_key, secret_key_bytes
from service.db import row_id, utcnow
from service.dbtypes import UTCDateTime
from service.errors import Invalid
from service.sentences import N_
from service.settings import Settings
from service.validation import http_url


class Channel(StrEnum):
    signature_banner = "signature_banner"  # the campaign banner in a signature
    signature_field = "signature_field"  # website, social links... in a signature
    newsletter = "newsletter"  # "read" links in a newsletter
    share_intent = "share_intent"  # the share button an employee presses in the newsletter
    share = "share"  # the employee's own link inside the post they shared (/s/{token})
    banner_image = "banner_image"  # a campaign banner's image in a signature (/i/{token}: counted as a load)


# Share links are served under /s/, banner images under /i/, everything else under /c/.
PATH_PREFIX = {Channel.share: "s", Channel.banner_image: "i"}


class TrackedLink(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "fingerprint"),)

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=32, unique=True)
    fingerprint: str = Field(max_length=64)  # sha256 of the link facts: makes minting idempotent
    org_id: int = Field(foreign_key="organisation.id", index=True)
    channel: Channel = Field(sa_type=sa.Enum(Channel, native_enum=False, length=30))  # new channels need no DDL
    employee_id: int | None = Field(default=None, foreign_key="employee.id", index=True)
    campaign_id: int | None = Field(default=None, index=True)
    article_id: int | None = Field(default=None, index=True)
    issue_id: int | None = Field(default=None, index=True)
    network: str | None = Field(default=None, max_length=20)
    destination: str = Field(max_length=4000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def check_destination(url: str) -> str:
    """Destinations are absolute http(s) URLs; anything else (javascript:, data:, relative) is refused."""
    try:
        return http_url(url)
    except ValueError as exc:
        reason = exc.args[0] if exc.args else str(exc)  # the validator's Sentence, translated with this one
        raise Invalid(
            N_("Link destinations must be absolute http(s) URLs; %(url)r %(reason)s.", url=url[:80], reason=reason)
        ) from None


def _fingerprint(org_id: int, channel: Channel, employee_id, campaign_id, article_id, issue_id, network,
                 destination: str) -> str:  # fmt: skip
    facts = "\x1f".join(
        str(x) for x in (org_id, channel.value, employee_id, campaign_id, article_id, issue_id, network, destination)
    )
    return hashlib.sha256(facts.encode()).hexdigest()


def mint(
    session: Session, *, org_id: int, channel: Channel, destination: str, employee_id: int | None = None,
    campaign_id: int | None = None, article_id: int | None = None, issue_id: int | None = None,
    network: str | None = None,
) -> TrackedLink:  # fmt: skip
    """Get or create the tracked link for these facts (safe under concurrent minting)."""
    if channel is not Channel.share_intent:
        destination = check_destination(destination)
    fp = _fingerprint(org_id, channel, employee_id, campaign_id, article_id, issue_id, network, destination)
    query = select(TrackedLink).where(TrackedLink.org_id == org_id, TrackedLink.fingerprint == fp)
    existing = session.exec(query).first()
    if existing is not None:
        return existing
    link = TrackedLink(
        token=secrets.token_urlsafe(16),
        fingerprint=fp,
        org_id=org_id,
        channel=channel,
        employee_id=employee_id,
        campaign_id=campaign_id,
        article_id=article_id,
        issue_id=issue_id,
        network=network,
        destination=destination,
    )
    try:
        with session.begin_nested():
            session.add(link)
    except IntegrityError:  # another process minted the same link first
        return session.exec(query).one()
    return link


def url_for(link: TrackedLink, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/{PATH_PREFIX.get(link.channel, 'c')}/{link.token}"


@dataclass(frozen=True, slots=True)
class ResolvedLink:
    """What a token stands for: a link's facts, with the employee of an employee token."""

    id: int
    org_id: int
    channel: Channel
    employee_id: int | None
    campaign_id: int | None
    article_id: int | None
    issue_id: int | None
    network: str | None
    destination: str


def resolve(session: Session, token: str, *, key: bytes | None = None, base_url: str = "") -> ResolvedLink | None:
    """Look a token up: a random token's row, or (with `key`) an employee token's spec and employee."""
    employee_id = None
    if key is not None and (parsed := parse_employee_token(token, key)) is not None:
        spec_id, employee_id = parsed
        row = session.get(TrackedLink, spec_id)
        if row is None or row.employee_id is not None:
            return None
    elif 16 <= len(token) <= 32:
        row = session.exec(select(TrackedLink).where(TrackedLink.token == token)).first()
        if row is None:
            return None
        employee_id = row.employee_id
    else:
        return None
    destination = expand_destination(row.destination, employee_id, base_url, key) if key else row.destination
    return ResolvedLink(
        row_id(row),
        row.org_id,
        row.channel,
        employee_id,
        row.campaign_id,
        row.article_id,
        row.issue_id,
        row.network,
        destination,
    )


# ---------------------------------------------------------------- per-employee links without a row each
#
# A newsletter carries ~90 links per recipient; a row per link would make sending a bulk insert. Instead
# one row (a "spec", employee_id NULL) stands for a link shared by everyone, and each employee's URL
# carries the spec id, the employee id and an HMAC over both: 96 bits an attacker cannot forge, and the
# destination still lives only on the server. Tokens are 27 characters; random tokens are 22.

EMPLOYEE_TOKEN_LEN = 27
_PAYLOAD = struct.Struct(">II")
SHARE_PLACEHOLDER = "RELAISSHARE{}X"  # alphanumeric: survives any URL quoting inside an intent URL
_SHARE_RE = re.compile(r"RELAISSHARE(\d+)X")


def link_key(settings: Settings) -> bytes:
    """The HMAC key of employee tokens: derived from the instance's secret key, or — after `relais secrets
    rotate` — the one in force before, so links already sent keep working (service.key_check)."""
    secret = secret_key_bytes(settings)
    return pinned_link_key(secret) or hashlib.sha256(b"relais/links/v1\x00" + secret).digest()


def employee_token(spec_id: int, employee_id: int, key: bytes) -> str:
    payload = _PAYLOAD.pack(spec_id, employee_id)
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def parse_employee_token(token: str, key: bytes) -> tuple[int, int] | None:
    if len(token) != EMPLOYEE_TOKEN_LEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (ValueError, binascii.Error):
        return None
    payload, mac = raw[:8], raw[8:]
    if len(mac) != 12 or not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()[:12]):
        return None
    return _PAYLOAD.unpack(payload)


def employee_url(spec: TrackedLink, employee_id: int, base_url: str, key: bytes) -> str:
    return (
        f"{base_url.rstrip('/')}/{PATH_PREFIX.get(spec.channel, 'c')}/{employee_token(row_id(spec), employee_id, key)}"
    )


def share_placeholder(share_spec: TrackedLink) -> str:
    """Stands for "this employee's /s/ URL of that share spec" inside a share-intent spec's destination."""
    return SHARE_PLACEHOLDER.format(share_spec.id)


def expand_destination(destination: str, employee_id: int | None, base_url: str, key: bytes) -> str:
    """Fill share placeholders with the employee's own share URL (percent-encoded, as in any intent URL)."""
    if employee_id is None or "RELAISSHARE" not in destination:
        return destination

    def share_url(match: re.Match) -> str:
        token = employee_token(int(match.group(1)), employee_id, key)
        return quote(f"{base_url.rstrip('/')}/s/{token}", safe="")

    return _SHARE_RE.sub(share_url, destination)
