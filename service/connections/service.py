"""Saving and reading provider connections. Secrets go in encrypted and never come back out via the API."""

from typing import Protocol

from sqlmodel import Session, select

from service.connections.models import Provider, ProviderConnection
from service.crypto import decrypt, encrypt
from service.db import utcnow
from service.errors import NotFound
from service.sentences import N_
from service.settings import Settings


class ConnectionTestResult(Protocol):
    ok: bool
    checks: list[dict]  # [{"name", "ok", "message"}] — each message a sentence an admin can act on


def get_connection(session: Session, *, org_id: int, provider: Provider) -> ProviderConnection:
    row = session.exec(
        select(ProviderConnection).where(ProviderConnection.org_id == org_id, ProviderConnection.provider == provider)
    ).first()
    if row is None:
        raise NotFound(
            N_("No %(provider)s connection yet: PUT /api/connections/%(provider)s first.", provider=provider.value)
        )
    return row


def save_connection(
    session: Session, *, org_id: int, provider: Provider, config: dict, secret: str | None, settings: Settings,
    auto_deploy: bool | None = None,
) -> ProviderConnection:  # fmt: skip
    """Create or update; a `None` secret keeps the stored one (so config can change without re-entering it)."""
    row = session.exec(
        select(ProviderConnection).where(ProviderConnection.org_id == org_id, ProviderConnection.provider == provider)
    ).first()
    row = row or ProviderConnection(org_id=org_id, provider=provider)
    row.config = config
    if secret is not None:
        row.secret_encrypted = encrypt(secret, settings)
    if auto_deploy is not None:
        row.auto_deploy = auto_deploy
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


def read_secret(row: ProviderConnection, settings: Settings) -> str:
    if not row.secret_encrypted:
        raise NotFound(
            N_(
                "The %(provider)s connection has no credential stored; PUT it again with the secret.",
                provider=row.provider.value,
            )
        )
    return decrypt(row.secret_encrypted, settings)
