"""Campaigns, their banner variants, uploaded banner images and per-organisation campaign settings."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, field_validator
from pydantic import Field as PField
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime
from service.directory.audience import Audience
from service.sentences import N_
from service.validation import PatchModel


class CampaignState(StrEnum):
    draft = "draft"  # being prepared: never shown
    scheduled = "scheduled"  # published; shown between starts_at and ends_at ("active" while it runs)
    active = "active"  # computed: published and running now
    paused = "paused"  # published but held back
    ended = "ended"  # finished (computed after ends_at, or ended by hand)


class RotationPeriod(StrEnum):
    daily = "daily"
    weekly = "weekly"  # periods start on Monday, 00:00 in the organisation's timezone


class BannerImage(SQLModel, table=True):
    """An uploaded, validated banner stored as an immutable content-hash asset."""

    __table_args__ = (UniqueConstraint("org_id", "asset"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    asset: str = Field(max_length=40)  # <sha256[:32]>.<ext>, served at /assets/<asset>
    width: int
    height: int
    size: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Campaign(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(max_length=120)
    state: CampaignState = Field(sa_type=sa.Enum(CampaignState, native_enum=False, length=12))  # as set by people
    destination_url: str = Field(max_length=2000)
    utm: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # overrides of the defaults
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # An Audience's model_dump(); rows written before it had "match" load as Match.any (CAMPAIGN_MATCH).
    audience: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    weight: int = Field(default=1)
    priority: int = Field(default=0)
    salt: str = Field(max_length=16)  # spreads variant choices independently of other campaigns
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    def effective_state(self, at: datetime) -> CampaignState:
        if self.state in (CampaignState.scheduled, CampaignState.active):
            if at < self.starts_at:
                return CampaignState.scheduled
            if self.ends_at is not None and at >= self.ends_at:
                return CampaignState.ended
            return CampaignState.active
        return self.state


class CampaignVariant(SQLModel, table=True):
    """One banner of a campaign; several variants make an A/B test sharing the campaign's dates and audience."""

    __table_args__ = (UniqueConstraint("campaign_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    key: str = Field(max_length=20)  # "a", "b"... (utm_content)
    banner_id: int = Field(foreign_key="bannerimage.id")
    alt: str = Field(max_length=200)
    weight: int = Field(default=1)
    # An A/B test may compare landing pages too: this variant's own page, else the campaign's destination_url.
    destination_url: str | None = Field(default=None, max_length=2000)


class CampaignLink(SQLModel, table=True):
    """Which campaign variant a tracked link (banner click or banner image) belongs to, for A/B figures."""

    link_id: int = Field(foreign_key="trackedlink.id", primary_key=True)
    campaign_id: int = Field(index=True)
    variant_id: int = Field(index=True)


class CampaignSettingsBase(SQLModel):
    rotation_period: RotationPeriod = Field(
        default=RotationPeriod.weekly, sa_type=sa.Enum(RotationPeriod, native_enum=False, length=10)
    )
    utm_defaults: dict = Field(default_factory=lambda: dict(DEFAULT_UTM), sa_column=Column(JSON, nullable=False))
    default_campaign_id: int | None = Field(default=None, description="Shown when no other campaign applies.")
    max_display_width: int = Field(default=600, ge=100, le=1000)


class CampaignSettings(CampaignSettingsBase, table=True):
    org_id: int = Field(foreign_key="organisation.id", primary_key=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


DEFAULT_UTM: dict[str, str] = {"utm_source": "email-signature", "utm_medium": "email", "utm_campaign": "{campaign}",
               "utm_content": "{variant}"}  # fmt: skip


# ---------------------------------------------------------------- API shapes


def _utm_keys(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    for key, val in value.items():
        if not key.startswith("utm_") or len(key) > 40 or len(val) > 200:
            raise ValueError(
                N_("UTM parameters are named utm_* (≤ 40 chars) with values ≤ 200 chars; got %(key)r", key=key)
            )
    return value


class VariantIn(BaseModel):
    banner_id: int = PField(description="From POST /api/banners.")
    alt: str = PField(min_length=1, max_length=200, description="Shown when images are blocked: say what it is.")
    weight: int = PField(1, ge=1, le=1000)
    key: str | None = PField(None, pattern=r"^[a-z0-9_-]{1,20}$", description="Defaults to a, b, c...")
    destination_url: str | None = PField(
        None, max_length=2000, description="http(s) page this variant opens; default: the campaign's destination_url."
    )


class CampaignIn(BaseModel):
    name: str = PField(min_length=1, max_length=120)
    destination_url: str = PField(max_length=2000, description="http(s) page the banner opens.")
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    audience: Audience = Audience(everyone=True)
    weight: int = PField(1, ge=1, le=1000)
    priority: int = PField(0, ge=0, le=100, description="Higher tiers win: lower ones show only if none applies.")
    utm: dict[str, str] = PField({}, description="Overrides of the organisation's UTM defaults ('' removes one).")
    state: CampaignState = CampaignState.draft
    banner_id: int | None = PField(None, description="Shorthand for a single variant (with 'alt').")
    alt: str | None = PField(None, max_length=200)
    variants: list[VariantIn] | None = PField(None, max_length=8, description="A/B variants.")

    @field_validator("utm")
    @classmethod
    def _check_utm(cls, value):
        return _utm_keys(value)


class CampaignUpdate(PatchModel):
    nullable = frozenset({"ends_at"})  # null: the campaign runs until it is ended

    name: str | None = PField(None, min_length=1, max_length=120)
    destination_url: str | None = PField(None, max_length=2000)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    audience: Audience | None = None
    weight: int | None = PField(None, ge=1, le=1000)
    priority: int | None = PField(None, ge=0, le=100)
    utm: dict[str, str] | None = None
    state: CampaignState | None = None
    variants: list[VariantIn] | None = PField(None, min_length=1, max_length=8)

    @field_validator("utm")
    @classmethod
    def _check_utm(cls, value):
        return _utm_keys(value)


class VariantPublic(BaseModel):
    id: int
    key: str
    banner_id: int
    image_url: str
    width: int
    height: int
    alt: str
    weight: int
    destination_url: str | None  # the variant's own page, if it has one
    destination: str  # the page it opens, with the UTM parameters added


class CampaignPublic(BaseModel):
    id: int
    name: str
    state: CampaignState  # effective now
    destination_url: str
    utm: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    audience: Audience
    weight: int
    priority: int
    variants: list[VariantPublic]
    is_default: bool
    created_at: datetime
    updated_at: datetime


class BannerPublic(BaseModel):
    id: int
    url: str
    width: int
    height: int
    size: int
    created_at: datetime
