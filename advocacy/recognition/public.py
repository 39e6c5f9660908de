"""The public ambassador page and its embeddable widget: /ambassador/{org slug} and /ambassador/{org slug}/widget.

Public, cacheable for an hour, no cookie, no tracking. Only an employee who said yes to "public_ambassador" is
ever shown (advocacy.recognition.ambassador). The widget is a page to put in an iframe on the company website:
its Content-Security-Policy lets only the origin of the brand's website frame it (frame-ancestors), and it runs
no script at all."""

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from sqlmodel import select

from advocacy.recognition.ambassador import public_ambassador
from service.accounts.guard import PageBrand
from service.models import Brand
from service.page_strings import N_
from service.pages import PageError, render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)
CACHE = {"cache-control": "public, max-age=3600", "vary": "accept-language", "x-robots-tag": "noindex"}
NOBODY = "'none'"
WIDGET_CSP = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; base-uri 'none'; form-action 'none'"


def website_origin(website: str | None) -> str | None:
    """scheme://host[:port] of an http(s) website, or None (a widget nobody may frame)."""
    if not website:
        return None
    parts = urlsplit(website.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c in website for c in " ;,'\"\n"):
        return None
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _context(session, slug: str) -> dict:
    org, month, ambassador = public_ambassador(session, slug=slug)
    if org is None:
        raise PageError(404, N_("Page not found"), N_("There is no such page."))
    brand = session.exec(select(Brand).where(Brand.org_id == org.id)).first()
    page_brand = PageBrand(brand.company_name, brand.logo_url, brand.primary_color) if brand else None
    return {"org": org, "month": month, "ambassador": ambassador, "brand": page_brand, "user": None,
            "website": brand.website if brand else None}  # fmt: skip


@router.get("/ambassador/{slug}")
def ambassador_page(session: DbSession, request: Request, slug: str):
    return render_page(request, "public/ambassador.html", headers=CACHE, **_context(session, slug))


@router.get("/ambassador/{slug}/widget")
def ambassador_widget(session: DbSession, request: Request, slug: str):
    context = _context(session, slug)
    origin = website_origin(context["website"])
    csp = f"{WIDGET_CSP}; frame-ancestors {origin or NOBODY}"
    return render_page(request, "public/ambassador_widget.html", headers={**CACHE, "content-security-policy": csp},
                       **context)  # fmt: skip
