"""The page guard: who is signed in, with which role, and whether an unsafe request carries the CSRF token.

Pages declare `user: PageUser = Depends(page_guard(Role.comms))`. A signed-out visitor is sent to the sign-in
page (with a same-site `next`), a wrong role gets a 403 page, a POST without the session's token a 403 too.
"""

from dataclasses import dataclass, field
from urllib.parse import quote

from fastapi import Depends, Request
from sqlmodel import select

from service.accounts.sessions import COOKIE, csrf_ok, load_session
from service.db import row_id
from service.models import Brand, Organisation, Role
from service.pages import PageError, PageRedirect
from service.session import DbSession

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str


@dataclass(frozen=True)
class NavSection:
    title: str
    items: tuple[NavItem, ...]
    roles: frozenset[Role]


NAVIGATION = (
    NavSection(
        "Communications",
        (
            NavItem("Dashboard", "/app/dashboard"),
            NavItem("Campaigns", "/app/campaigns"),
            NavItem("Newsletter", "/app/newsletter"),
            NavItem("Analytics", "/app/analytics"),
        ),
        frozenset({Role.comms, Role.admin}),
    ),
    NavSection(
        "IT",
        (
            NavItem("Connections", "/app/connections"),
            NavItem("Directory", "/app/directory"),
            NavItem("Templates", "/app/templates"),
            NavItem("Deployments", "/app/deployments"),
        ),
        frozenset({Role.it, Role.admin}),
    ),
    NavSection(
        "Administration",
        (NavItem("Users", "/app/admin/users"), NavItem("API keys", "/app/admin/keys")),
        frozenset({Role.admin}),
    ),
)
HOME = {Role.admin: "/app/dashboard", Role.comms: "/app/dashboard", Role.it: "/app/deployments"}
ROLE_LABELS = {Role.admin: "Administrator", Role.comms: "Communications", Role.it: "IT"}


@dataclass(frozen=True)
class PageBrand:
    company_name: str
    logo_url: str | None
    primary_color: str


@dataclass(frozen=True)
class PageUser:
    id: int
    org_id: int
    email: str
    name: str
    role: Role
    language: str | None
    csrf: str
    session_id: str
    navigation: tuple[NavSection, ...] = field(default=())

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]

    @property
    def home(self) -> str:
        return HOME[self.role]


def safe_next(value: str | None) -> str | None:
    """Only a path on this site: '/x' but not '//host' or '/\\host' (no open redirect)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")) and "\n" not in value:
        return value
    return None


def signed_in(session: DbSession, request: Request) -> PageUser | None:
    """The signed-in user (also on request.state for the layout), or None."""
    active = load_session(session, request.cookies.get(COOKIE), request.app.state.settings)
    if active is None:
        return None
    u = active.user
    user = PageUser(
        id=row_id(u),
        org_id=u.org_id,
        email=u.email,
        name=u.name,
        role=u.role,
        language=u.language,
        csrf=active.web.csrf_token,
        session_id=active.web.id,
        navigation=tuple(s for s in NAVIGATION if u.role in s.roles),
    )
    request.state.page_user = user
    brand = session.exec(select(Brand).where(Brand.org_id == u.org_id)).first()
    # a plain copy: error pages render after the request's session is closed
    request.state.page_brand = (
        PageBrand(brand.company_name, brand.logo_url, brand.primary_color) if brand is not None else None
    )
    org = session.get(Organisation, u.org_id)
    request.state.page_zone = org.timezone if org else "UTC"
    return user


class PageGuard:
    """Admits signed-in users with one of `roles` (admin always); checks CSRF on unsafe methods."""

    def __init__(self, *roles: Role):
        self.roles = frozenset({Role.admin, *roles})

    async def __call__(self, request: Request, user: PageUser | None = Depends(signed_in)) -> PageUser:
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise PageRedirect(f"/sign-in?next={quote(target, safe='/')}")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("x-csrf-token")
            if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")
            ):
                field = (await request.form()).get("csrf")
                sent = field if isinstance(field, str) else None
            if not csrf_ok(user.csrf, sent):
                raise PageError(403, "This form has expired", "Reload the page and try again.")
        if user.role not in self.roles:
            raise PageError(403, "Not for your role", "Your role does not include this page. Ask an administrator.")
        return user


def page_guard(*roles: Role) -> PageGuard:
    return PageGuard(*roles)
