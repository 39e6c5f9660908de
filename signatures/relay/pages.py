"""The relay status page for IT: each relay process that reported (host, listen address, next hop, when it last
reported, alive or gone), its counters (signed, passed with reasons, refused, errors), and the provider setup
text — the registry's relay target, the words `relais relay setup` prints."""

from fastapi import APIRouter, Depends, Request

from service.accounts.guard import PageUser, page_guard
from service.db import utcnow
from service.models import Role
from service.pages import render_page
from service.session import DbSession
from signatures.relay.setup import setup_for
from signatures.relay.status import FRESH, summary

router = APIRouter(include_in_schema=False)
IT = page_guard(Role.it)
PROVIDERS = ("microsoft", "google")


@router.get("/app/relay")
def relay(session: DbSession, request: Request, user: PageUser = Depends(IT)):
    settings = request.app.state.settings
    status = summary(session, org_id=user.org_id)
    now = utcnow()
    for process in status["processes"]:
        process["age_seconds"] = max(0, int((now - process["updated_at"]).total_seconds()))
    return render_page(
        request,
        "it/relay.html",
        status=status,
        fresh_minutes=int(FRESH.total_seconds() // 60),
        setups={p: setup_for(session, settings, org_id=user.org_id, provider=p) for p in PROVIDERS},
        relay_host=settings.relay_hostname,
    )
