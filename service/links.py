"""The only code that mints tracked URLs.

A link knows its channel, employee, campaign or article, network and destination; the destination lives
only here on the server, so `/c/{token}` and `/s/{token}` can never be pointed anywhere else (no open
redirect). Tokens carry 128 random bits. Minting is idempotent: the same link facts give the same token,
so re-rendering a signature yields the same HTML and the same content hash (no needless redeployments).
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from service.db import utcnow
from service.dbtypes import UTCDateTime
from service.errors import Invalid


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
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"Link destinations must be absolute http(s) URLs, not {url[:80]!r}.")
    return url.strip()


def _fingerprint(org_id: int, channel: Channel, employee_id, campaign_id, article_id, issue_id, network,
                 destination: str) -> str:  # fmt: skip
    facts = "\x1f".join(str(x) for x in (org_id, channel.value, employee_id, campaign_id, article_id, issue_id,
                                          network, destination))
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
    link = TrackedLink(token=secrets.token_urlsafe(16), fingerprint=fp, org_id=org_id, channel=channel,
                       employee_id=employee_id, campaign_id=campaign_id, article_id=article_id,
                       issue_id=issue_id, network=network, destination=destination)
    try:
        with session.begin_nested():
            session.add(link)
    except IntegrityError:  # another process minted the same link first
        return session.exec(query).one()
    return link


def url_for(link: "TrackedLink | MintedLink", base_url: str) -> str:
    return f"{base_url.rstrip('/')}/{PATH_PREFIX.get(link.channel, 'c')}/{link.token}"


def resolve(session: Session, token: str) -> TrackedLink | None:
    if not 16 <= len(token) <= 32:
        return None
    return session.exec(select(TrackedLink).where(TrackedLink.token == token)).first()


@dataclass(frozen=True, slots=True)
class MintedLink:
    """What `mint_many` returns: the facts `url_for` needs, without building ORM objects (~150 µs each)."""

    token: str
    channel: Channel
    employee_id: int | None
    article_id: int | None
    network: str | None
    destination: str


def mint_many(session: Session, *, org_id: int, specs: list[dict]) -> list[MintedLink]:
    """Bulk :func:`mint` for senders (a newsletter mints ~90 links per recipient): same facts, same tokens.

    Each spec holds the keyword arguments of :func:`mint` (channel, destination, employee_id, ...). One SELECT
    finds the links that exist, one multi-row INSERT (ON CONFLICT DO NOTHING, so concurrent minting is safe)
    adds the rest, and a second SELECT picks up rows another process inserted first. Returns the links in
    the order of ``specs`` as read-only :class:`MintedLink` values (``url_for`` accepts them).
    """
    keys = ("employee_id", "campaign_id", "article_id", "issue_id", "network")
    rows: list[dict] = []
    for spec in specs:
        channel = Channel(spec["channel"])
        destination = spec["destination"]
        if channel is not Channel.share_intent:
            destination = check_destination(destination)
        facts = {k: spec.get(k) for k in keys}
        fp = _fingerprint(org_id, channel, *(facts[k] for k in keys), destination)
        rows.append({"org_id": org_id, "channel": channel, "destination": destination, "fingerprint": fp, **facts})
    table = TrackedLink.__table__
    found: dict[str, MintedLink] = {}

    def light(row) -> MintedLink:
        return MintedLink(row["token"], Channel(row["channel"]), row["employee_id"], row["article_id"], row["network"],
                          row["destination"])

    def load(fps: list[str]) -> None:
        for i in range(0, len(fps), 5000):
            chunk = fps[i : i + 5000]
            query = sa.select(table).where(table.c.org_id == org_id, table.c.fingerprint.in_(chunk))
            for row in session.execute(query).mappings():
                found[row["fingerprint"]] = light(row)

    load(list({r["fingerprint"] for r in rows}))
    now = utcnow()
    missing: dict[str, dict] = {}
    for r in rows:
        if r["fingerprint"] not in found and r["fingerprint"] not in missing:
            missing[r["fingerprint"]] = {**r, "token": secrets.token_urlsafe(16), "created_at": now}
    if missing:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table).on_conflict_do_nothing()
        values = list(missing.values())
        inserted = 0
        for i in range(0, len(values), 2000):
            inserted += session.execute(stmt, values[i : i + 2000]).rowcount
        if inserted == len(values):
            found.update((fp, light(v)) for fp, v in missing.items())
        else:  # rows lost to a concurrent minter (ON CONFLICT) carry the other process's token: read them back
            load(list(missing))
    return [found[r["fingerprint"]] for r in rows]
