"""Organisation, brand and API keys: the tables every feature hangs off."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class Role(StrEnum):
    admin = "admin"  # everything
    comms = "comms"  # content, campaigns, newsletters, analytics
    it = "it"  # directory, templates, deployments
    employee = "employee"  # the employee portal (/me) only; never an API key's role


STAFF_ROLES = frozenset({Role.admin, Role.comms, Role.it})  # the roles an API key can carry


class Organisation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    slug: str = Field(max_length=80, unique=True)
    timezone: str = Field(default="UTC", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SocialLinkModel(SQLModel):
    network: str = Field(max_length=40)
    url: str = Field(max_length=500)


@dataclass(frozen=True)
class BrandDefaults:
    """What a brand looks like until someone sets it: read by the `Brand` table and by the signature renderer
    (signatures.context.BrandData), so a stored brand and a rendered one never disagree."""

    logo_width: int = 160
    logo_height: int = 48
    primary_color: str = "#1F3A5F"
    secondary_color: str = "#6B7280"
    font_stack: str = "Arial, Helvetica, sans-serif"


BRAND_DEFAULTS = BrandDefaults()


class BrandBase(SQLModel):
    company_name: str = Field(max_length=200)
    website: str | None = Field(default=None, max_length=500)
    logo_url: str | None = Field(default=None, max_length=1000)
    logo_width: int = Field(default=BRAND_DEFAULTS.logo_width, ge=16, le=600)
    logo_height: int = Field(default=BRAND_DEFAULTS.logo_height, ge=16, le=300)
    primary_color: str = Field(default=BRAND_DEFAULTS.primary_color, max_length=7)
    secondary_color: str = Field(default=BRAND_DEFAULTS.secondary_color, max_length=7)
    font_stack: str = Field(default=BRAND_DEFAULTS.font_stack, max_length=200)
    address: str | None = Field(default=None, max_length=500)


class Brand(BrandBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", unique=True)
    social_links: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    disclaimer_html: str = Field(default="")  # sanitized with nh3 before it is stored
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiKey(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("prefix"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(max_length=120)
    role: Role
    prefix: str = Field(max_length=16)  # shown to people so they can tell keys apart
    key_hash: str = Field(max_length=64)  # sha256 of the whole key; keys are 190+ random bits
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InstanceKey(SQLModel, table=True):
    """A fingerprint of the secret key this database was set up with (service.key_check): the service
    refuses to start with another key, which would make stored secrets unreadable and sent links dead."""

    id: int = Field(default=1, primary_key=True)
    fingerprint: str = Field(max_length=64)
    link_key_enc: str | None = Field(default=None)  # after a rotation: the links' HMAC key, encrypted
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
