"""Single sign-on settings over HTTP (admin keys only). The client secret goes in and never comes back out."""

from fastapi import APIRouter, Depends, Request

from service.auth import Principal, requires
from service.errors import NotFound
from service.session import DbSession
from service.sso.service import SsoConfigIn, SsoConfigPublic, delete_config, get_config, public, save_config

router = APIRouter(prefix="/api/sso", tags=["sso"])
ADMIN = requires()


@router.get("", response_model=SsoConfigPublic, summary="The organisation's single sign-on settings")
def read_sso(session: DbSession, request: Request, p: Principal = Depends(ADMIN)):
    row = get_config(session, p.org_id)
    if row is None:
        raise NotFound("Single sign-on is not set up for this organisation. PUT /api/sso to set it up.")
    return public(session, row, request.app.state.settings)


@router.put("", response_model=SsoConfigPublic, summary="Set up or change single sign-on (Entra ID or Google)")
def put_sso(session: DbSession, request: Request, body: SsoConfigIn, p: Principal = Depends(ADMIN)):
    settings = request.app.state.settings
    row = save_config(session, org_id=p.org_id, data=body, settings=settings)
    return public(session, row, settings)


@router.delete("", status_code=204, summary="Turn single sign-on off (passwords work again for everyone)")
def delete_sso(session: DbSession, p: Principal = Depends(ADMIN)):
    delete_config(session, p.org_id)
