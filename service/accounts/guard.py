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
from service.page_strings import N_
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
    for_employees: bool = False  # shown to anyone linked to a directory employee, whatever their role


NAVIGATION = (
    NavSection(
        N_("My space"),
        (
            NavItem(N_("Overview"), "/me"),
            NavItem(N_("My signature"), "/me/signature"),
            NavItem(N_("Share"), "/me/share"),
            NavItem(N_("My figures"), "/me/figures"),
            NavItem(N_("Charter"), "/me/charter"),
            NavItem(N_("Contests"), "/me/contests"),
            NavItem(N_("My data"), "/me/data"),
        ),
        frozenset(),
        for_employees=True,
    ),
    NavSection(
        N_("Communications"),
        (
            NavItem(N_("Dashboard"), "/app/dashboard"),
            NavItem(N_("Campaigns"), "/app/campaigns"),
            NavItem(N_("Newsletter"), "/app/newsletter"),
            NavItem(N_("Analytics"), "/app/analytics"),
        ),
        frozenset({Role.comms, Role.admin}),
    ),
    NavSection(
        N_("Advocacy"),
        (
            NavItem(N_("Charter"), "/app/charter"),
            NavItem(N_("Content feeds"), "/app/feeds"),
            NavItem(N_("Contests"), "/app/contests"),
        ),
        frozenset({Role.comms, Role.admin}),
    ),
    NavSection(
        N_("IT"),
        (
            NavItem(N_("Connections"), "/app/connections"),
            NavItem(N_("Directory"), "/app/directory"),
            NavItem(N_("Templates"), "/app/templates"),
            NavItem(N_("Deployments"), "/app/deployments"),
            NavItem(N_("Outlook add-in"), "/app/addin"),
            NavItem(N_("Mail-flow relay"), "/app/relay"),
        ),
        frozenset({Role.it, Role.admin}),
    ),
    NavSection(
        N_("Administration"),
        (
            NavItem(N_("Users"), "/app/admin/users"),
            NavItem(N_("API keys"), "/app/admin/keys"),
            NavItem(N_("Single sign-on"), "/app/admin/sso"),
        ),
        frozenset({Role.admin}),
    ),
)
HOME = {Role.admin: "/app/dashboard", Role.comms: "/app/dashboard", Role.it: "/app/deployments", Role.employee: "/me"}
ROLE_LABELS = {
    Role.admin: N_("Administrator"),
    Role.comms: N_("Communications"),
    Role.it: N_("IT"),
    Role.employee: N_("Employee"),
}


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
    employee_id: int | None  # set when this person is a directory employee: the portal (/me) is theirs
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
        employee_id=u.employee_id,
        language=u.language,
        csrf=active.web.csrf_token,
        session_id=active.web.id,
        navigation=tuple(s for s in NAVIGATION if u.role in s.roles or (s.for_employees and u.employee_id is not None)),
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


class EmployeeGuard(PageGuard):
    """Admits anyone linked to a directory employee, whatever their role: the portal's pages (/me)."""

    def __init__(self) -> None:
        super().__init__(*Role)

    async def __call__(self, request: Request, user: PageUser | None = Depends(signed_in)) -> PageUser:
        user = await super().__call__(request, user)
        if user.employee_id is None:
            raise PageError(
                403,
                N_("No employee record"),
                N_("Your account is not linked to an employee of the directory. Ask IT to import your address."),
            )
        return user


employee_guard = EmployeeGuard()
