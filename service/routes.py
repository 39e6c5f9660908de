"""Core API: the organisation, its brand, and API keys."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from sqlmodel import Session, col, select

from service import validation
from service.auth import Principal, create_api_key, requires
from service.brand import brand_for, is_saved
from service.db import utcnow
from service.models import STAFF_ROLES, ApiKey, Brand, BrandBase, Organisation, Role, SocialLinkModel
from service.sanitize import clean_html
from service.session import DbSession
from service.tenancy import get_owned
from service.validation import HttpUrl, PlainText

router = APIRouter(prefix="/api")

ANY_ROLE = requires(Role.comms, Role.it)
ADMIN = requires()


# ---------------------------------------------------------------- organisation and brand


class OrganisationPublic(BaseModel):
    id: int
    name: str
    slug: str
    timezone: str


class SocialLinkIn(SocialLinkModel):
    network: PlainText = Field(max_length=40)
    url: HttpUrl = Field(max_length=500)


class BrandIn(BrandBase):
    social_links: list[SocialLinkIn] = Field([], max_length=20)
    disclaimer_html: str = Field("", max_length=5000, description="Sanitized: links and basic formatting only.")

    # What each field means decides what it accepts (service.validation): these reach every signature.
    _colors = field_validator("primary_color", "secondary_color")(lambda v: validation.hex_color(v))
    _urls = field_validator("website", "logo_url")(lambda v: v if v is None else validation.http_url(v))
    _font = field_validator("font_stack")(lambda v: validation.font_stack(v))
    _text = field_validator("company_name", "address")(lambda v: v if v is None else validation.plain_text(v))


class BrandPublic(BrandIn):
    saved: bool = Field(description="False: nothing saved yet, these are the defaults under the organisation's name.")
    updated_at: datetime | None


def _brand_public(brand: Brand) -> BrandPublic:
    saved = is_saved(brand)
    return BrandPublic.model_validate(
        {**brand.model_dump(), "saved": saved, "updated_at": brand.updated_at if saved else None}
    )


@router.get("/organisation", tags=["organisation"], response_model=OrganisationPublic)
def get_organisation(session: DbSession, p: Principal = Depends(ANY_ROLE)):
    return session.get(Organisation, p.org_id)


@router.get(
    "/brand",
    tags=["organisation"],
    response_model=BrandPublic,
    summary="The brand signatures and newsletters render with (the defaults until one is saved)",
)
def get_brand(session: DbSession, p: Principal = Depends(ANY_ROLE)):
    return _brand_public(brand_for(session, p.org_id))


@router.put("/brand", tags=["organisation"], response_model=BrandPublic)
def put_brand(session: DbSession, body: BrandIn, p: Principal = Depends(requires(Role.comms))):
    return _save_brand(session, brand_for(session, p.org_id), body)


# Every brand field, optional: a PATCH names only what changes. Unknown fields are refused, by name.
_optional_fields: dict[str, Any] = {name: (Any, None) for name in BrandIn.model_fields}
BrandPatch = create_model(
    "BrandPatch",
    __config__=ConfigDict(extra="forbid"),
    **_optional_fields,
)


@router.patch(
    "/brand",
    tags=["organisation"],
    response_model=BrandPublic,
    summary="Change some brand fields (the others stay as they are)",
)
def patch_brand(session: DbSession, body: BrandPatch, p: Principal = Depends(requires(Role.comms))):
    brand = brand_for(session, p.org_id)  # an unsaved brand: the change applies to the defaults
    current = BrandIn.model_validate(brand, from_attributes=True).model_dump()
    current["disclaimer_html"] = brand.disclaimer_html
    try:
        merged = BrandIn.model_validate({**current, **body.model_dump(exclude_unset=True)})
    except ValidationError as exc:  # the same 422 as a bad PUT: one sentence naming each field
        raise RequestValidationError(exc.errors()) from None
    return _save_brand(session, brand, merged)


def _save_brand(session: Session, brand: Brand, body: BrandIn) -> BrandPublic:
    for field, value in body.model_dump(exclude={"social_links", "disclaimer_html"}).items():
        setattr(brand, field, value)
    brand.social_links = [link.model_dump() for link in body.social_links]
    brand.disclaimer_html = clean_html(body.disclaimer_html)
    brand.updated_at = utcnow()
    validation.check_brand(session, brand.org_id, brand)  # the templates lint clean with it (signatures registers)
    session.add(brand)
    session.flush()
    return _brand_public(brand)


# ---------------------------------------------------------------- API keys


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    role: Role = Field(description="admin, comms or it (employee is a portal role, not a key's).")

    @field_validator("role")
    @classmethod
    def staff_only(cls, role: Role) -> Role:
        if role not in STAFF_ROLES:
            raise ValueError("an API key's role is admin, comms or it; employees sign in to the portal instead")
        return role


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="Shown once; only a hash is stored.")


@router.get("/keys", tags=["api keys"], response_model=list[ApiKeyPublic])
def list_keys(session: DbSession, p: Principal = Depends(ADMIN)):
    return session.exec(select(ApiKey).where(ApiKey.org_id == p.org_id).order_by(col(ApiKey.id))).all()


@router.post("/keys", tags=["api keys"], response_model=ApiKeyCreated, status_code=201)
def post_key(session: DbSession, body: ApiKeyCreate, p: Principal = Depends(ADMIN)):
    row, key = create_api_key(session, org_id=p.org_id, name=body.name, role=body.role)
    return ApiKeyCreated(**ApiKeyPublic.model_validate(row, from_attributes=True).model_dump(), key=key)


@router.delete("/keys/{key_id}", tags=["api keys"], response_model=ApiKeyPublic)
def revoke_key(session: DbSession, key_id: int, p: Principal = Depends(ADMIN)):
    row = get_owned(session, ApiKey, key_id, org_id=p.org_id, label="API key")
    row.revoked_at = row.revoked_at or utcnow()
    session.add(row)
    return row
