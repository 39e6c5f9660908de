"""The Outlook add-in page for IT: the manifest to download (the public manifest route), the tenant-wide
deployment steps, the addresses the add-in loads from this instance, and what would stop it working here
(http instead of https, no API app id, no Microsoft tenant to map users to)."""

from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from sqlmodel import select

from service.accounts.guard import PageUser, page_guard
from service.connections.models import Provider, ProviderConnection
from service.models import Role
from service.pages import render_page
from service.sentences import N_
from service.session import DbSession

router = APIRouter(include_in_schema=False)
IT = page_guard(Role.it)
LOADED = ("/addin/launchevent.html", "/addin/launchevent.js", "/addin/signature",
          "/.well-known/microsoft-officeaddins-allowed.json", "/addin/icon-64.png", "/addin/icon-128.png")  # fmt: skip


def readiness(session, settings, org_id: int) -> list[dict]:
    """What the add-in needs from this instance, each with its sentence (the fix when it is missing)."""
    base = settings.public_base_url.rstrip("/")
    https = urlsplit(base).scheme == "https"
    connection = session.exec(select(ProviderConnection).where(
        ProviderConnection.org_id == org_id, ProviderConnection.provider == Provider.microsoft)).first()  # fmt: skip
    tenant = str((connection.config or {}).get("tenant_id") or "") if connection else ""
    return [
        {"ok": https, "message": N_("Served on https: %(base)s.", base=base) if https else N_(
            "This instance's public address is %(base)s: Outlook refuses add-ins served over http. Serve Relais "
            "on https and set RELAIS_PUBLIC_BASE_URL to that address, then download the manifest again.", base=base)},
        {"ok": bool(settings.addin_client_id), "message": N_(
            "The add-in's tokens are checked for the Entra app id %(id)s.", id=settings.addin_client_id)
            if settings.addin_client_id else N_(
            "No Entra app id is set: the signature endpoint refuses every token. Register the API (Expose an API, "
            "scope access_as_user) and set RELAIS_ADDIN_CLIENT_ID, then download the manifest again.")},
        {"ok": bool(tenant), "message": N_("Users of the Microsoft tenant %(tenant)s get their signature.",
            tenant=tenant) if tenant else N_(
            "No Microsoft 365 connection with a tenant id: Relais cannot tell whose signature to send. Set up the "
            "Microsoft connection and sync the directory.")},
    ]  # fmt: skip


@router.get("/app/addin")
def addin(session: DbSession, request: Request, user: PageUser = Depends(IT)):
    settings = request.app.state.settings
    base = settings.public_base_url.rstrip("/")
    checks = readiness(session, settings, user.org_id)
    return render_page(
        request,
        "it/addin.html",
        manifest_url=f"{base}/addin/manifest.xml",
        loaded=[base + path for path in LOADED],
        checks=checks,
        ready=all(c["ok"] for c in checks),
    )
