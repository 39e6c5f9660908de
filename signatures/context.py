"""What signature templates see: plain, frozen dataclasses (no ORM objects).

Templates get three names: ``employee`` (:class:`EmployeeData`), ``brand`` (:class:`BrandData`) and
``banner`` (:class:`BannerData` or ``None`` while no campaign targets the employee).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from service.models import BRAND_DEFAULTS


@dataclass(frozen=True, slots=True)
class EmployeeData:
    """The employee profile (service.directory.models.EmployeeBase, field for field; a test checks it)."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    title: str | None = None
    department: str | None = None
    office: str | None = None
    location: str | None = None
    phone: str | None = None
    mobile: str | None = None
    manager_email: str | None = None
    photo_url: str | None = None
    locale: str | None = None
    pronouns: str | None = None

    @property
    def full_name(self) -> str:
        """``display_name`` when set, otherwise "first last" (whichever parts exist)."""
        if self.display_name:
            return self.display_name
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @classmethod
    def from_obj(cls, obj: Any) -> EmployeeData:
        """Copy the fields from any object with the same attribute names (e.g. the ORM ``Employee``)."""
        names = cls.__dataclass_fields__
        values: dict[str, Any] = {n: getattr(obj, n, None) for n in names}
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SocialLink:
    network: str  # shown as the link text, e.g. "LinkedIn"
    url: str


@dataclass(frozen=True, slots=True)
class BrandData:
    company_name: str
    website: str | None = None
    logo_url: str | None = None
    # The same defaults as the stored brand (service.models.BRAND_DEFAULTS).
    logo_width: int = BRAND_DEFAULTS.logo_width
    logo_height: int = BRAND_DEFAULTS.logo_height
    primary_color: str = BRAND_DEFAULTS.primary_color
    secondary_color: str = BRAND_DEFAULTS.secondary_color
    font_stack: str = BRAND_DEFAULTS.font_stack
    address: str | None = None
    social_links: tuple[SocialLink, ...] = field(default_factory=tuple)
    # Sanitized upstream (nh3) before it gets here; marked safe so templates do not escape it twice.
    disclaimer_html: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.disclaimer_html, Markup):
            # sanitized with nh3 upstream, so marking it safe is the point
            safe = Markup(self.disclaimer_html or "")  # noqa: S704
            object.__setattr__(self, "disclaimer_html", safe)
        if not isinstance(self.social_links, tuple):
            object.__setattr__(self, "social_links", tuple(self.social_links))

    @property
    def website_label(self) -> str:
        """The website without scheme and trailing slash, for display ("example.com")."""
        w = self.website or ""
        for prefix in ("https://", "http://"):
            if w.startswith(prefix):
                w = w[len(prefix) :]
        return w.rstrip("/")


@dataclass(frozen=True, slots=True)
class BannerData:
    image_url: str
    width: int
    height: int
    alt: str
    href: str  # the tracked URL minted by `links`; templates never format /c/ URLs themselves


def build_context(*, employee: EmployeeData, brand: BrandData, banner: BannerData | None = None) -> dict[str, Any]:
    """The mapping a signature template is rendered with."""
    # BrandData.__post_init__ already wrapped disclaimer_html in Markup (it was sanitized upstream).
    return {"employee": employee, "brand": brand, "banner": banner}
