"""Small helpers every page module shares: pagination, form parsing with field errors, the brand stylesheet."""

import math
import re
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from service.errors import AppError
from service.sentences import N_, Sentence

M = TypeVar("M", bound=BaseModel)
PAGE_SIZE = 25


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def url(self, base: str, params: dict, number: int) -> str:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        query["page"] = number
        return f"{base}?{urlencode(query)}"


def page_of(number: int, total: int, size: int = PAGE_SIZE) -> Page:
    pages = max(1, math.ceil(total / size))
    return Page(number=min(max(1, number), pages), size=size, total=total)


def parse_form(model: type[M], data: dict[str, Any]) -> tuple[M | None, dict[str, str]]:
    """Validate `data` into `model`; on failure, one sentence per field (shown beside it, translated there:
    a validator's `ValueError(N_(...))` keeps its Sentence)."""
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "_form"
            raised = (e.get("ctx") or {}).get("error")
            sentence = raised.args[0] if isinstance(raised, ValueError) and raised.args else None
            errors.setdefault(
                name, sentence if isinstance(sentence, Sentence) else e["msg"].removeprefix("Value error, ")
            )
        return None, errors


def app_error(exc: AppError) -> dict[str, str]:
    """A service refusal as the form's error (its sentence says what to fix)."""
    return {"_form": exc.message}


brand_router = APIRouter(include_in_schema=False)


@brand_router.get("/brand.css")
def brand_css(c: str = Query("1F3A5F")) -> Response:
    """The organisation's colour as CSS variables: the layout stays on the app's own stylesheets (CSP)."""
    colour = c if re.fullmatch(r"[0-9A-Fa-f]{6}", c) else "1F3A5F"
    r, g, b = (int(colour[i : i + 2], 16) for i in (0, 2, 4))
    ink = "#1b2430" if (0.299 * r + 0.587 * g + 0.114 * b) > 150 else "#ffffff"
    css = f":root {{ --brand: #{colour}; --brand-ink: {ink}; }}\n"
    return Response(css, media_type="text/css", headers={"cache-control": "public, max-age=86400"})


# A signature or an email shown inside a page: its inline styles are the email's own, so it lives in a sandboxed
# frame with its own policy (the page's CSP forbids inline styles). Nothing in it can run.
FRAME_HEADERS = {
    "content-security-policy": "default-src 'none'; img-src 'self' https: http: data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; sandbox",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


def frame_message(request, message: str, *, status_code: int = 200):
    """A sentence shown in a preview frame instead of the preview (no employee to render, a template error)."""
    from service.pages import render_page

    return render_page(request, "frame_message.html", status_code=status_code, headers=FRAME_HEADERS, message=message)


def org_zone(session, org_id: int):
    from zoneinfo import ZoneInfo

    from service.models import Organisation

    org = session.get(Organisation, org_id)
    try:
        return ZoneInfo(org.timezone if org else "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def local_input(value, zone) -> str:
    """A datetime as a datetime-local field's value, in the organisation's zone."""
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M") if value else ""


def parse_local(value: str, zone):
    """A datetime-local field, read in the organisation's time zone (None when empty)."""
    from datetime import datetime

    from service.errors import Invalid

    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=zone)
    except ValueError:
        raise Invalid(N_("%(value)r is not a date and time.", value=value)) from None


async def read_form(request: Request) -> FormData:
    """The posted form, read on the event loop (bounded by the request limits), so that the page handler itself
    can be a plain function that FastAPI runs in its threadpool: no database work ever blocks the loop."""
    return await request.form()
