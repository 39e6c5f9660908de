"""Connection pages for IT: Microsoft 365 and Google Workspace forms with first-time guidance, and a test
button showing each check's result and its fix. Saving and testing call what the connections API calls."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlmodel import select
from starlette.datastructures import FormData

from service.accounts.guard import PageUser, page_guard
from service.connections.models import Provider, ProviderConnection
from service.connections.providers import connection_module
from service.connections.service import get_connection, save_connection
from service.errors import AppError
from service.models import Role
from service.page_views import read_form
from service.pages import render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)
IT = page_guard(Role.it)
FIELDS = {
    Provider.microsoft: ("tenant_id", "client_id", "certificate_thumbprint"),
    Provider.google: ("admin_subject", "customer_id"),
}


def _rows(session, org_id: int) -> dict:
    rows = session.exec(select(ProviderConnection).where(ProviderConnection.org_id == org_id)).all()
    return {r.provider.value: r for r in rows}


@router.get("/app/connections")
def connections(session: DbSession, request: Request, user: PageUser = Depends(IT)):
    return render_page(
        request,
        "it/connections.html",
        rows=_rows(session, user.org_id),
        errors={},
        failed=None,
        fields={p.value: f for p, f in FIELDS.items()},
    )


@router.post("/app/connections/{provider}")
def save(
    session: DbSession,
    request: Request,
    provider: Provider,
    user: PageUser = Depends(IT),
    form: FormData = Depends(read_form),
):
    config = {k: str(form.get(k, "")).strip() for k in FIELDS[provider] if str(form.get(k, "")).strip()}
    secret = str(form.get("secret", "")).strip() or None
    try:
        config = connection_module(provider).validate(config=config, secret=secret)
        save_connection(
            session,
            org_id=user.org_id,
            provider=provider,
            config=config,
            secret=secret,
            settings=request.app.state.settings,
            auto_deploy=form.get("auto_deploy") == "on",
        )
    except AppError as exc:
        session.rollback()
        return render_page(
            request,
            "it/connections.html",
            status_code=422,
            rows=_rows(session, user.org_id),
            errors={"_form": exc.message},
            failed=provider.value,
            fields={p.value: f for p, f in FIELDS.items()},
        )
    return RedirectResponse(f"/app/connections?toast=saved#{provider.value}", status_code=303)


@router.post("/app/connections/{provider}/test")
def test(session: DbSession, request: Request, provider: Provider, user: PageUser = Depends(IT)):
    """htmx: obtain real tokens, make one read call per API; each check with its result and its fix."""
    try:
        row = get_connection(session, org_id=user.org_id, provider=provider)
        result = connection_module(provider).test_connection(row, request.app.state.settings)
    except AppError as exc:
        result = {"ok": False, "checks": [{"name": "connection", "ok": False, "message": exc.message}]}
    return render_page(request, "it/_checks.html", result=result, provider=provider.value)
