"""Input checks for values that end up in signatures, newsletters and pages: URLs, colours, font stacks, text.

Each check raises ValueError with a sentence (pydantic turns it into the usual 422 naming the field); the
Annotated types below put them on input models. What a field means decides what it accepts: a URL is an
absolute http(s) address with a host (not `javascript:`, `data:`, `//host` or a relative path), a colour is
#RRGGBB, a font stack is a comma-separated list of family names — never arbitrary CSS.

Brand changes also run the checks that features register here (signatures lints its templates with the new
brand), so a brand can't carry what a template would be refused for.
"""

import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, model_validator

from service.sentences import N_

# C0 controls but tab/LF/CR, DEL, C1 controls, and the bidi overrides that make text read differently
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_URL_FORBIDDEN_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")  # quotes and spaces are escaped where used
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
_HEX_COLOR_RE = re.compile(r"#[0-9A-Fa-f]{6}")
_FAMILY = r"""(?:"[A-Za-z0-9 _-]{1,60}"|'[A-Za-z0-9 _-]{1,60}'|-?[A-Za-z][A-Za-z0-9 _-]{0,60})"""
_FONT_STACK_RE = re.compile(rf"\s*{_FAMILY}\s*(?:,\s*{_FAMILY}\s*){{0,9}}")


def http_url(value: str) -> str:
    """An absolute http(s) URL with a host name or address, no credentials, control characters or backslashes
    (which parsers disagree on). Spaces and quotes may appear in a path: every use escapes or encodes them."""
    url = value.strip()
    if _URL_FORBIDDEN_RE.search(url):
        raise ValueError(N_("must be a URL without control characters or backslashes"))
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not url.lower().startswith(("http://", "https://")):
        raise ValueError(N_("must be an absolute http:// or https:// URL (not javascript:, data: or a relative one)"))
    if parts.username is not None or parts.password is not None:
        raise ValueError(N_("must not carry a user name or password"))
    host = parts.hostname or ""
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(N_("has a port that is not a number")) from None
    if not host or not (_HOST_RE.match(host) or ":" in host):  # ":" in host: an IPv6 literal
        raise ValueError(N_("must name a host, as in https://www.example.com/page"))
    return url


def hex_color(value: str) -> str:
    if not _HEX_COLOR_RE.fullmatch(value):
        raise ValueError(N_("must be a #RRGGBB colour (mail clients ignore names and shorthand in places)"))
    return value


def font_stack(value: str) -> str:
    """A CSS font-family list: family names, quoted or not, separated by commas. No other CSS."""
    if not _FONT_STACK_RE.fullmatch(value):
        raise ValueError(
            N_(
                "must be a list of font names separated by commas, such as Arial, 'Helvetica Neue', sans-serif "
                "(letters, digits, spaces and hyphens only)"
            )
        )
    return value.strip()


def plain_text(value: str) -> str:
    """Text shown as is: no invisible control or direction-override characters."""
    bad = _CONTROL_RE.search(value)
    if bad:
        code = f"U+{ord(bad.group()):04X}"
        raise ValueError(N_("contains the invisible control character %(code)s; remove it", code=code))
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]
HexColor = Annotated[str, AfterValidator(hex_color)]
FontStack = Annotated[str, AfterValidator(font_stack)]
PlainText = Annotated[str, AfterValidator(plain_text)]


# ---------------------------------------------------------------- checks features run on a brand change

BrandCheck = Callable[[Any, int, Any], None]  # (session, org_id, candidate Brand row) -> raise Invalid
_brand_checks: list[BrandCheck] = []


def register_brand_check(check: BrandCheck) -> BrandCheck:
    _brand_checks.append(check)
    return check


def check_brand(session: Any, org_id: int, brand: Any) -> None:
    """Run every registered check on a brand before it is saved (PUT or PATCH)."""
    for check in _brand_checks:
        check(session, org_id, brand)


# ---------------------------------------------------------------- partial updates


class PatchModel(BaseModel):
    """A partial update: a field left out keeps its value. An explicit null is refused (it would clear a
    field that must have a value) unless the field is listed in `nullable`, where null means "clear it"."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None and k in cls.model_fields and k not in cls.nullable]
            if nulls:
                raise ValueError(
                    N_(
                        "%(fields)s can't be null: leave a field out to keep its value, or give a new one",
                        fields=", ".join(nulls),
                    )
                )
        return data
