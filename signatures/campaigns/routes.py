"""Campaigns API (comms): banner uploads, campaigns with A/B variants, settings, and "who sees what"."""

from datetime import datetime

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import AwareDatetime, BaseModel
from sqlmodel import col, select

import signatures.campaigns.service
from service.assets import asset_url
from service.auth import Principal, requires
from service.db import row_id, utcnow
from service.errors import Invalid
from service.models import Role
from service.session import DbSession
from service.validation import PatchModel
from signatures.campaigns.images import MAX_BYTES
from signatures.campaigns.models import (
    BannerImage,
    BannerPublic,
    Campaign,
    CampaignIn,
    CampaignPublic,
    CampaignSettingsBase,
    CampaignState,
    CampaignUpdate,
    RotationPeriod,
)
from signatures.campaigns.service import (
    campaign_public,
    campaign_settings,
    save_campaign_settings,
    update_campaign,
    variants_of,
    who_sees_what,
)

router = APIRouter(prefix="/api", tags=["campaigns"])
COMMS = requires(Role.comms)


def _banner_public(request: Request, row: BannerImage) -> BannerPublic:
    return BannerPublic(
        id=row.id,
        url=asset_url(request.app.state.settings, row.asset),
        width=row.width,
        height=row.height,
        size=row.size,
        created_at=row.created_at,
    )


@router.post(
    "/banners",
    response_model=BannerPublic,
    status_code=201,
    summary="Upload a banner image (PNG, JPG or GIF; checked by content, not by name)",
)
def upload_banner(  # sync: decoding runs in the thread pool, off the event loop
    session: DbSession, request: Request, file: UploadFile = File(...), p: Principal = Depends(COMMS)
):
    data = file.file.read(MAX_BYTES + 1)
    row = signatures.campaigns.service.upload_banner(
        session, settings=request.app.state.settings, org_id=p.org_id, data=data
    )
    return _banner_public(request, row)


@router.get("/banners", response_model=list[BannerPublic])
def list_banners(session: DbSession, request: Request, p: Principal = Depends(COMMS)):
    rows = session.exec(select(BannerImage).where(BannerImage.org_id == p.org_id).order_by(col(BannerImage.id))).all()
    return [_banner_public(request, r) for r in rows]


class CampaignSettingsPublic(CampaignSettingsBase):
    pass


class CampaignSettingsIn(PatchModel):
    nullable = frozenset({"default_campaign_id"})  # null: no default campaign

    rotation_period: RotationPeriod | None = None
    utm_defaults: dict[str, str] | None = None
    default_campaign_id: int | None = None
    max_display_width: int | None = None


@router.get("/campaign-settings", response_model=CampaignSettingsPublic)
def get_settings_(session: DbSession, p: Principal = Depends(COMMS)):
    return campaign_settings(session, p.org_id)


@router.put(
    "/campaign-settings",
    response_model=CampaignSettingsPublic,
    summary="Rotation period, UTM defaults, the default banner campaign, banner display width",
)
def put_settings(session: DbSession, body: CampaignSettingsIn, p: Principal = Depends(COMMS)):
    changes = body.model_dump(exclude_unset=True)
    if changes.get("utm_defaults") is not None:
        bad = [k for k in changes["utm_defaults"] if not k.startswith("utm_")]
        if bad:
            raise Invalid(f"UTM defaults are named utm_*; not {', '.join(bad)}.")
    if "max_display_width" in changes and not 100 <= (changes["max_display_width"] or 0) <= 1000:
        raise Invalid("max_display_width must be between 100 and 1000 px.")
    return save_campaign_settings(session, org_id=p.org_id, changes=changes)


class Placement(BaseModel):
    employee_id: int
    email: str
    department: str | None
    office: str | None
    campaign_id: int | None
    campaign_name: str | None
    variant_key: str | None
    is_default: bool


class RotationPublic(BaseModel):
    at: datetime
    period: RotationPeriod
    period_start: datetime
    period_end: datetime
    totals: dict[str, int]  # campaign id (or "none") -> employees
    placements: list[Placement]


@router.get(
    "/campaigns/rotation",
    response_model=RotationPublic,
    summary="Who sees which banner at a given moment (default: now)",
)
def rotation(session: DbSession,
    at: AwareDatetime | None = Query(None, description="Any moment, with its timezone."),
    department: str | None = None, office: str | None = None, employee_id: int | None = None,
    limit: int = Query(1000, ge=1, le=100_000), p: Principal = Depends(COMMS),
    ):  # fmt: skip
    at = at or utcnow()
    rot, picks = who_sees_what(
        session, org_id=p.org_id, at=at, department=department, office=office, employee_id=employee_id
    )
    totals: dict[str, int] = {}
    placements: list[Placement] = []
    for emp, pick in picks:
        key = str(pick.campaign.id) if pick else "none"
        totals[key] = totals.get(key, 0) + 1
        if len(placements) < limit:
            placements.append(
                Placement(
                    employee_id=emp.id,
                    email=emp.email,
                    department=emp.department,
                    office=emp.office,
                    campaign_id=pick.campaign.id if pick else None,
                    campaign_name=pick.campaign.name if pick else None,
                    variant_key=pick.variant.key if pick else None,
                    is_default=bool(pick and pick.is_default),
                )
            )
    return RotationPublic(
        at=at,
        period=rot.settings.rotation_period,
        period_start=rot.period_start,
        period_end=rot.period_end,
        totals=totals,
        placements=placements,
    )


@router.get("/campaigns", response_model=list[CampaignPublic])
def list_campaigns(
    session: DbSession, request: Request, state: CampaignState | None = None, p: Principal = Depends(COMMS)
):
    rows = session.exec(select(Campaign).where(Campaign.org_id == p.org_id).order_by(col(Campaign.id))).all()
    now = utcnow()
    variants = variants_of(session, [row_id(r) for r in rows])
    out = [
        campaign_public(session, campaign=r, settings=request.app.state.settings, at=now, variants=variants[row_id(r)])
        for r in rows
    ]
    return [c for c in out if state is None or c.state is state]


@router.post("/campaigns", response_model=CampaignPublic, status_code=201)
def create_campaign(session: DbSession, request: Request, body: CampaignIn, p: Principal = Depends(COMMS)):
    row = signatures.campaigns.service.create_campaign(session, org_id=p.org_id, body=body)
    return campaign_public(session, campaign=row, settings=request.app.state.settings)


@router.get("/campaigns/{campaign_id}", response_model=CampaignPublic)
def get_campaign(session: DbSession, request: Request, campaign_id: int, p: Principal = Depends(COMMS)):
    row = signatures.campaigns.service.get_campaign(session, org_id=p.org_id, campaign_id=campaign_id)
    return campaign_public(session, campaign=row, settings=request.app.state.settings)


@router.patch(
    "/campaigns/{campaign_id}",
    response_model=CampaignPublic,
    summary="Change a campaign (dates, audience, weight, state: draft, scheduled, paused, ended...)",
)
def patch_campaign(
    session: DbSession, request: Request, campaign_id: int, body: CampaignUpdate, p: Principal = Depends(COMMS)
):
    row = signatures.campaigns.service.get_campaign(session, org_id=p.org_id, campaign_id=campaign_id)
    row = update_campaign(session, campaign=row, body=body)
    return campaign_public(session, campaign=row, settings=request.app.state.settings)


@router.delete("/campaigns/{campaign_id}", status_code=204, summary="Delete a draft campaign")
def delete_campaign(session: DbSession, campaign_id: int, p: Principal = Depends(COMMS)):
    row = signatures.campaigns.service.get_campaign(session, org_id=p.org_id, campaign_id=campaign_id)
    signatures.campaigns.service.delete_campaign(session, campaign=row)
