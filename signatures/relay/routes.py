"""IT's view of the relay: its processes and counters, and the provider wiring text."""

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from service.auth import Principal, requires
from service.models import Role
from service.session import DbSession
from signatures.relay.setup import setup_for
from signatures.relay.status import summary

router = APIRouter(prefix="/api/relay", tags=["relay"])
IT = requires(Role.it)


@router.get("/status", summary="Relay processes seen lately and their counters (signed, passed by reason, errors)")
def relay_status(session: DbSession, p: Principal = Depends(IT)):
    return summary(session, org_id=p.org_id)


@router.get(
    "/setup/{provider}",
    response_class=PlainTextResponse,
    summary="The Exchange Online PowerShell or the Google Admin console steps that route mail through the relay",
)
def relay_setup(
    session: DbSession, request: Request, provider: Literal["microsoft", "google"], group: str | None = None,
    p: Principal = Depends(IT),
):  # fmt: skip
    text = setup_for(session, request.app.state.settings, org_id=p.org_id, provider=provider, group=group)
    return PlainTextResponse(text)
