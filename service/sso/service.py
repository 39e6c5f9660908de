"""Single sign-on settings per organisation: one way to save them (the page and the API both call save_config), the
email domains that lead to each organisation, and which user (with which role) an identity signs in as."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from sqlalchemy import delete
from sqlmodel import Session, col, select

from service.accounts.models import User
from service.accounts.service import create_user, employee_by_email, user_by_email
from service.crypto import decrypt, encrypt
from service.db import row_id, utcnow
from service.errors import Conflict, Invalid, NotFound
from service.models import Role
from service.page_strings import N_
from service.settings import Settings
from service.sso.models import DENY, SsoConfig, SsoDomain, SsoIdentity, SsoProvider
from service.sso.oidc import Identity

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOMAIN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
PASSWORDS_OFF = N_("Your organisation signs in with single sign-on: choose “Continue with single sign-on”.")


class GroupRole(BaseModel):
    group: str = Field(min_length=1, max_length=100, description="The Entra group's object id.")
    role: Literal["admin", "comms", "it"]  # staff roles: directory employees reach their portal by themselves

    @field_validator("group")
    @classmethod
    def _object_id(cls, value: str) -> str:
        value = value.strip()
        if not GUID_RE.match(value):
            raise ValueError(N_("Write each group as its object id: a GUID, as Entra shows under Groups → Overview."))
        return value.lower()


class SsoConfigIn(BaseModel):
    provider: SsoProvider
    client_id: str = Field(min_length=1, max_length=200, description="The application (client) id.")
    client_secret: SecretStr | None = Field(None, description="The client secret. Omit to keep the stored one.")
    tenant_id: str = Field("", max_length=64, description="Entra: the directory (tenant) id. Unused for Google.")
    domains: list[str] = Field(
        min_length=1, max_length=20,
        description="The email domains of the organisation's people (home-realm discovery); for Google, the "
        "Workspace domains (`hd`) accepted.",
    )  # fmt: skip
    group_roles: list[GroupRole] = Field(
        default_factory=list, max_length=50,
        description="Entra only: group object id → role, the first match wins. Google ID tokens carry no groups.",
    )  # fmt: skip
    default_role: Literal["deny", "comms", "it"] = Field(  # never admin for everyone: by group or by hand
        "deny",
        description="The role of people no group maps and no administrator gave one, or deny (then people of the "
        "directory get the employee portal, and others are refused).",
    )
    allow_passwords: bool = Field(True, description="False: only administrators keep signing in with a password.")
    enabled: bool = True

    @field_validator("client_id", "tenant_id")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        out: list[str] = []
        for raw in values:
            value = raw.strip().lower().removeprefix("@")
            if not DOMAIN_RE.match(value):
                raise ValueError(N_("Write each domain like example.com, one a line."))
            if value not in out:
                out.append(value)
        return out

    @model_validator(mode="after")
    def _per_provider(self) -> SsoConfigIn:
        if self.provider == SsoProvider.microsoft:
            if not GUID_RE.match(self.tenant_id):
                raise ValueError(
                    N_("Enter the Directory (tenant) id: a GUID, shown on the app registration's Overview in Entra.")
                )
            self.tenant_id = self.tenant_id.lower()
        else:
            self.tenant_id = ""
            if self.group_roles:
                raise ValueError(
                    N_("Google ID tokens carry no groups: give roles on the Users page, or choose a default role.")
                )
        return self


class SsoConfigPublic(BaseModel):
    provider: SsoProvider
    enabled: bool
    client_id: str
    client_secret_set: bool  # the secret itself is never returned
    tenant_id: str
    domains: list[str]
    group_roles: list[GroupRole]
    default_role: str
    allow_passwords: bool
    redirect_uri: str


def get_config(session: Session, org_id: int) -> SsoConfig | None:
    return session.exec(select(SsoConfig).where(SsoConfig.org_id == org_id)).first()


def domains_of(session: Session, org_id: int) -> list[str]:
    rows = session.exec(select(SsoDomain).where(SsoDomain.org_id == org_id).order_by(col(SsoDomain.domain))).all()
    return [r.domain for r in rows]


def public(session: Session, row: SsoConfig, settings: Settings) -> SsoConfigPublic:
    from service.sso.oidc import redirect_uri

    return SsoConfigPublic(
        provider=row.provider, enabled=row.enabled, client_id=row.client_id,
        client_secret_set=bool(row.client_secret_encrypted), tenant_id=row.tenant_id,
        domains=domains_of(session, row.org_id), group_roles=[GroupRole(**g) for g in row.group_roles],
        default_role=row.default_role, allow_passwords=row.allow_passwords, redirect_uri=redirect_uri(settings),
    )  # fmt: skip


def save_config(session: Session, *, org_id: int, data: SsoConfigIn, settings: Settings) -> SsoConfig:
    row = get_config(session, org_id)
    secret = data.client_secret.get_secret_value().strip() if data.client_secret else ""
    if not secret and (row is None or not row.client_secret_encrypted):
        raise Invalid(N_("Enter the client secret: the provider checks it when Relais redeems a sign-in."))
    taken = session.exec(
        select(SsoDomain).where(col(SsoDomain.domain).in_(data.domains), SsoDomain.org_id != org_id)
    ).first()
    if taken is not None:
        raise Conflict(
            N_("A domain in this list already leads to another organisation's single sign-on. Remove it from one."),
            details={"domain": taken.domain},
        )
    for domain in data.domains:  # no claiming the addresses another organisation's users sign in with
        other = session.exec(
            select(User.id).where(col(User.email).endswith("@" + domain), User.org_id != org_id).limit(1)
        ).first()
        if other is not None:
            raise Conflict(
                N_("A domain in this list is the email domain of another organisation's users in Relais."),
                details={"domain": domain},
            )
    if row is None:
        row = SsoConfig(org_id=org_id, provider=data.provider, client_id=data.client_id)
    row.provider, row.client_id, row.tenant_id = data.provider, data.client_id, data.tenant_id
    row.group_roles = [{"group": g.group, "role": g.role} for g in data.group_roles]
    row.default_role, row.allow_passwords, row.enabled = data.default_role, data.allow_passwords, data.enabled
    if secret:
        row.client_secret_encrypted = encrypt(secret, settings)
    row.updated_at = utcnow()
    session.add(row)
    session.exec(delete(SsoDomain).where(col(SsoDomain.org_id) == org_id))
    session.flush()
    for domain in data.domains:
        session.add(SsoDomain(domain=domain, org_id=org_id))
    session.flush()
    return row


def delete_config(session: Session, org_id: int) -> None:
    row = get_config(session, org_id)
    if row is None:
        raise NotFound("Single sign-on is not set up for this organisation.")
    session.exec(delete(SsoDomain).where(col(SsoDomain.org_id) == org_id))
    session.delete(row)


def client_secret(row: SsoConfig, settings: Settings) -> str:
    return decrypt(row.client_secret_encrypted, settings)


def domain_of(email: str) -> str:
    return email.strip().lower().rsplit("@", 1)[1] if "@" in email else ""


def config_for_email(session: Session, email: str) -> SsoConfig | None:
    """Home-realm discovery: the enabled SSO of the organisation whose domain this address is in."""
    domain = domain_of(email)
    link = session.get(SsoDomain, domain) if domain else None
    if link is None:
        return None
    row = get_config(session, link.org_id)
    return row if row is not None and row.enabled else None


def passwords_refused(session: Session, user: User) -> bool:
    """Whether this user's organisation turned password sign-in off (administrators keep theirs: break-glass)."""
    if user.role == Role.admin:
        return False
    row = get_config(session, user.org_id)
    return row is not None and row.enabled and not row.allow_passwords


# ---------------------------------------------------------------- who signs in


class SignInDenied(Exception):
    """Signed in at the provider, but not admitted here. `message` (to translate) and whom to ask."""

    def __init__(self, message: str, ask: list[str]):
        super().__init__(message)
        self.message, self.ask = message, ask


def _administrators(session: Session, org_id: int) -> list[str]:
    rows = session.exec(
        select(User.email).where(
            User.org_id == org_id, User.role == Role.admin, col(User.disabled_at).is_(None)
        ).order_by(col(User.email)).limit(3)
    ).all()  # fmt: skip
    return list(rows)


def _mapped_role(row: SsoConfig, identity: Identity) -> Role | None:
    groups = {g.lower() for g in identity.groups}
    for entry in row.group_roles:
        if entry["group"] in groups:
            return Role(entry["role"])
    return None


def _employee_role(session: Session, org_id: int, email: str) -> Role | None:
    """The portal's role for a person of the directory (active, by primary address), else None."""
    return Role.employee if employee_by_email(session, org_id, email) is not None else None


def resolve_user(session: Session, *, row: SsoConfig, identity: Identity) -> User:
    """The user this identity signs in as, created on first sign-in when a group or the default role admits them.

    Roles: a matching group decides (and is re-read at every sign-in); otherwise the role an administrator gave
    stays; a role that only a group gave lapses when the group no longer matches; an unknown person gets the default
    role; with none, a person of the directory gets the employee portal, and anyone else is refused."""
    org_id = row.org_id
    link = session.exec(
        select(SsoIdentity).where(SsoIdentity.issuer == identity.issuer, SsoIdentity.subject == identity.subject)
    ).first()
    user = session.get(User, link.user_id) if link is not None else user_by_email(session, identity.email)
    ask = _administrators(session, org_id)
    if user is not None and user.org_id != org_id:
        raise SignInDenied(
            N_("An account with this email address belongs to another organisation in Relais, so it cannot sign in "
               "through yours. Ask your administrator."), ask,
        )  # fmt: skip
    if user is not None and user.disabled_at is not None:
        raise SignInDenied(N_("Your Relais account is disabled. Ask an administrator to enable it."), ask)
    mapped = _mapped_role(row, identity)
    lapsed = (
        user is not None and link is not None and link.granted_role is not None
        and link.granted_role == user.role.value and mapped is None
    )  # fmt: skip
    role: Role | None
    if mapped is not None:
        role = mapped
    elif user is not None and not lapsed:
        role = user.role
    elif row.default_role != DENY:
        role = Role(row.default_role)
    else:
        role = _employee_role(session, org_id, identity.email)
    if role is Role.employee and _employee_role(session, org_id, identity.email) is None:
        role = None  # an employee who left the directory keeps no portal
    if role is None:
        raise SignInDenied(
            N_("You signed in, but Relais has no role for you yet. Ask an administrator to add you on the Users page, "
               "or to map one of your groups to a role."), ask,
        )  # fmt: skip
    if user is None:
        user = create_user(session, org_id=org_id, email=identity.email, role=role, name=identity.name)
    elif user.role != role:
        user.role = role
        session.add(user)
    if role is Role.employee and user.employee_id is None:
        employee = employee_by_email(session, org_id, identity.email)
        user.employee_id = employee.id if employee is not None else None
        session.add(user)
    if link is None:
        link = SsoIdentity(org_id=org_id, user_id=row_id(user), issuer=identity.issuer, subject=identity.subject)
    link.granted_role = mapped.value if mapped is not None else None
    link.last_sign_in_at = utcnow()
    session.add(link)
    session.flush()
    return user
