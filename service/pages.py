"""The one page Environment: every HTML page of the app is a template in templates/pages/ rendered here.

Autoescaped, StrictUndefined (a missing variable is a bug, not a blank), and translated through Babel's
catalogs in translations/ (English source strings, French catalog). The language of a request is the signed-in
user's setting, else the best match of Accept-Language. Pages carry a strict Content-Security-Policy: scripts
and styles only from /static, nothing inline, never framed.
"""

import contextvars
import json
import logging
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.core import UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from service.sentences import Sentence

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates" / "pages"
TRANSLATIONS = ROOT / "translations"
STATIC = Path(__file__).resolve().parent / "static"
LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

# Toasts a redirect can ask for with ?toast=<code> (codes, not text: a link cannot put words on a page).
TOASTS = {
    "signed_out": "You are signed out.",
    "password_changed": "Your password is changed. Sign in with it.",
    "saved": "Saved.",
    "created": "Created.",
    "deleted": "Deleted.",
    "scheduled": "Scheduled.",
    "started": "Started.",
    "published": "Published.",
    "accepted": "Thank you: accepted.",
    "proposed": "Sent to IT for review.",
    "nothing_changed": "Nothing changed: these are the values IT already has.",
    "correction_accepted": "Accepted: the directory row is updated.",
    "correction_declined": "Declined: the employee sees your reason.",
}

_language: contextvars.ContextVar[str] = contextvars.ContextVar("page_language", default=DEFAULT_LANGUAGE)


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> NullTranslations:
    """The compiled catalog (make translations); the .po read directly when the .mo is missing or older."""
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    mo, po = folder / "messages.mo", folder / "messages.po"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        return Translations.load(str(TRANSLATIONS), [language])
    if not po.exists():
        return NullTranslations()
    import io

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    log.warning("service.pages.catalog_not_compiled", extra={"language": language})
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def gettext(message: str, **variables: Any) -> str:
    text = translations(_language.get()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    text = translations(_language.get()).ngettext(singular, plural, n)
    return text % {"num": n, **variables}


_ = gettext


def translate(value: Any) -> Any:
    """A sentence computed at run time (an error, a fix, a state) in the page's language.

    A `Sentence` (service.sentences.N_) is looked up by its message id and formatted after; a plain string is
    looked up as it is (states, codes), and anything else is returned as it is. Templates use it as the `tr`
    filter, whose result is escaped like any value; `_()` is for the literal text of templates only.
    """
    if isinstance(value, Sentence):
        return value.in_language(translations(_language.get()).gettext)
    if isinstance(value, str) and value:
        return translations(_language.get()).gettext(value)
    return value


def negotiate(accept_language: str | None) -> str:
    """The best of LANGUAGES for an Accept-Language header (q-values honoured)."""
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            choices.append((-q, i, primary))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE


def request_language(request: Request, preferred: str | None = None) -> str:
    if preferred in LANGUAGES:
        return preferred
    return negotiate(request.headers.get("accept-language"))


# ---------------------------------------------------------------- formatting filters (the org's locale and zone)


def _locale() -> Locale:
    try:
        return Locale.parse({"fr": "fr_FR", "en": "en_GB"}.get(_language.get(), "en_GB"))
    except UnknownLocaleError:
        return Locale.parse("en_GB")


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(_zone_name.get())
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


_zone_name: contextvars.ContextVar[str] = contextvars.ContextVar("page_zone", default="UTC")


def fmt_number(value: float | int | None) -> str:
    return "—" if value is None else format_decimal(value, locale=_locale())


def fmt_percent(value: float | None) -> str:
    return "—" if value is None else format_percent(value, "#,##0.0%", locale=_locale())


def fmt_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return format_datetime(value.astimezone(_zone()), "medium", tzinfo=_zone(), locale=_locale())


def fmt_date(value: date | None) -> str:
    return "—" if value is None else format_date(value, "medium", locale=_locale())


def to_json_attr(value: Any) -> str:
    """JSON for a data-* attribute (autoescaping makes it attribute-safe); read by static/app.js."""
    return json.dumps(value, separators=(",", ":"), default=str)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # added to the Environment by the i18n extension at run time; Jinja's types don't declare it
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_gettext_for_jinja, ngettext=_ngettext_for_jinja, newstyle=True
    )
    env.filters.update(
        number=fmt_number,
        percent=fmt_percent,
        datetime=fmt_datetime,
        date=fmt_date,
        json_attr=to_json_attr,
        tr=translate,
    )
    return env


def _gettext_for_jinja(message: str) -> str:
    # newstyle gettext: Jinja marks the result safe when autoescaping and formats it with escaped variables
    return translations(_language.get()).gettext(message)


def _ngettext_for_jinja(singular: str, plural: str, n: int) -> str:
    return translations(_language.get()).ngettext(singular, plural, n)


def use_language(language: str, zone: str = "UTC") -> None:
    """Set the language and time zone for what this request renders (and gettext in Python code)."""
    _language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)
    _zone_name.set(zone or "UTC")


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(lang=_language.get(), **context)


def render_page(
    request: Request,
    name: str,
    *,
    status_code: int = 200,
    headers: dict | None = None,
    language: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render templates/pages/`name` as an HTML response with the page security headers.

    The language is `language` (e.g. an employee's locale on public pages), else the signed-in user's setting,
    else Accept-Language; `request.state.page_user` (set by the
    page guard) gives the layout its navigation, `page_brand` its colour and logo, `page_zone` the time zone.
    """
    # Set here, not in the guard: sync dependencies run in worker threads whose context variables are lost.
    user = getattr(request.state, "page_user", None)
    preferred = language or getattr(user, "language", None)
    use_language(request_language(request, preferred), getattr(request.state, "page_zone", "UTC"))
    context.setdefault("user", user)
    context.setdefault("brand", getattr(request.state, "page_brand", None))
    context.setdefault("path", request.url.path)
    context.setdefault("toast", TOASTS.get(request.query_params.get("toast", "")))
    html = render(name, request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})})


class PageRedirect(Exception):
    """Raised by page guards: send the browser elsewhere (htmx requests get HX-Redirect)."""

    def __init__(self, location: str):
        self.location = location


class PageError(Exception):
    """Raised by pages: render the error page with this status and sentence."""

    def __init__(self, status_code: int, title: str, message: str):
        self.status_code, self.title, self.message = status_code, title, message


def install(app: FastAPI) -> None:
    """Serve /static and turn page guard exceptions into responses (called once by create_app)."""
    from fastapi.responses import RedirectResponse, Response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(PageRedirect)
    async def _redirect(request: Request, exc: PageRedirect) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": exc.location})
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(PageError)
    async def _error(request: Request, exc: PageError) -> Response:
        return render_page(request, "error.html", status_code=exc.status_code, title=exc.title, message=exc.message)
