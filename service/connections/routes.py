"""Provider connections over HTTP. Secrets are write-only: they go in, and never come back out."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, SecretStr

from service.auth import Principal, requires
from service.connections.models import Provider
from service.connections.providers import connection_module
from service.connections.service import get_connection, save_connection
from service.models import Role
from service.session import DbSession

router = APIRouter(prefix="/api/connections", tags=["connections"])
IT = requires(Role.it)


class ConnectionIn(BaseModel):
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Google: admin_subject, customer_id (default my_customer). "
        "Microsoft: tenant_id, client_id, certificate_thumbprint (when the secret is a certificate).",
    )
    secret: SecretStr | None = Field(
        None,
        description="Google: the service-account JSON. Microsoft: a client secret or a PEM certificate "
        "with its private key. Omit to keep the stored one.",
    )
    auto_deploy: bool | None = Field(None, description="Re-deploy changed signatures on a schedule.")


class ConnectionPublic(BaseModel):
    provider: Provider
    config: dict[str, Any]
    has_secret: bool
    auto_deploy: bool
    updated_at: datetime
    last_sync_at: datetime | None


class CheckResult(BaseModel):
    name: str
    ok: bool
    message: str


class TestResult(BaseModel):
    ok: bool
    checks: list[CheckResult]


def _public(row) -> ConnectionPublic:
    return ConnectionPublic(
        provider=row.provider,
        config=row.config,
        has_secret=bool(row.secret_encrypted),
        auto_deploy=row.auto_deploy,
        updated_at=row.updated_at,
        last_sync_at=row.last_sync_at,
    )


@router.put("/{provider}", response_model=ConnectionPublic, summary="Create or update a provider connection")
def put_connection(
    session: DbSession,
    provider: Provider,
    body: ConnectionIn,
    request: Request,
    p: Principal = Depends(IT),
):
    settings = request.app.state.settings
    secret = body.secret.get_secret_value() if body.secret else None
    config = connection_module(provider).validate(config=body.config, secret=secret)
    row = save_connection(
        session,
        org_id=p.org_id,
        provider=provider,
        config=config,
        secret=secret,
        settings=settings,
        auto_deploy=body.auto_deploy,
    )
    return _public(row)


@router.get("/{provider}", response_model=ConnectionPublic)
def read_connection(session: DbSession, provider: Provider, p: Principal = Depends(IT)):
    return _public(get_connection(session, org_id=p.org_id, provider=provider))


@router.delete("/{provider}", status_code=204)
def delete_connection(session: DbSession, provider: Provider, p: Principal = Depends(IT)):
    session.delete(get_connection(session, org_id=p.org_id, provider=provider))


@router.post(
    "/{provider}/test",
    response_model=TestResult,
    summary="Obtain a real token and make one read call; explain what is missing",
)
def test_connection(session: DbSession, provider: Provider, request: Request, p: Principal = Depends(IT)):
    row = get_connection(session, org_id=p.org_id, provider=provider)
    return connection_module(provider).test_connection(row, request.app.state.settings)
