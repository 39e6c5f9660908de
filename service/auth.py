"""API keys and roles.

Keys look like `rls_<prefix>_<secret>`; only a sha256 of the whole key is stored (the secret has 192
random bits, so a slow hash buys nothing). Routes declare the roles they accept with `requires(...)`;
`admin` is accepted everywhere.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, select

from service.db import row_id, utcnow
from service.errors import Forbidden, Invalid, Unauthorized
from service.models import STAFF_ROLES, ApiKey, Role
from service.session import DbSession

KEY_PREFIX = "rls"


@dataclass(frozen=True)
class Principal:
    key_id: int
    org_id: int
    role: Role
    name: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, *, org_id: int, name: str, role: Role) -> tuple[ApiKey, str]:
    """Mint a key; the plain key is returned once and never stored."""
    if role not in STAFF_ROLES:
        raise Invalid(f"An API key's role is admin, comms or it, not '{role}': employees sign in to the portal.")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    row = ApiKey(org_id=org_id, name=name, role=role, prefix=prefix, key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, key: str) -> Principal:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise Unauthorized("Malformed API key: expected 'rls_<prefix>_<secret>' in 'Authorization: Bearer'.")
    row = session.exec(select(ApiKey).where(ApiKey.prefix == parts[1])).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        raise Unauthorized("Unknown or revoked API key.")
    row.last_used_at = utcnow()
    session.add(row)
    return Principal(key_id=row_id(row), org_id=row.org_id, role=row.role, name=row.name)


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rls_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key, as a header.")


def current_principal(
    session: DbSession,
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header_key: str | None = Depends(_header),
) -> Principal:
    key = bearer.credentials if bearer else header_key
    if not key:
        raise Unauthorized("Authentication required: send an API key as 'Authorization: Bearer <key>'.")
    principal = authenticate(session, key)
    request.state.principal = principal
    return principal


class RoleGuard:
    """Dependency that admits the given roles (and admin). Tests read `.roles` off every route."""

    def __init__(self, *roles: Role):
        self.roles = frozenset({Role.admin, *roles})

    def __call__(self, principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in self.roles:
            allowed = ", ".join(sorted(self.roles))
            raise Forbidden(f"This action needs one of the roles: {allowed}; your key has '{principal.role}'.")
        return principal


def requires(*roles: Role) -> RoleGuard:
    return RoleGuard(*roles)
