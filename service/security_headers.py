"""Browser-facing headers on every HTML and asset response, in one pure ASGI middleware.

- every response: `X-Content-Type-Options: nosniff`, and `Strict-Transport-Security` when the public base
  URL is https;
- HTML and assets (images, scripts, styles): a Content-Security-Policy without inline script, with
  `frame-ancestors 'none'`, `Referrer-Policy: no-referrer` (a /u/ preferences token, or any path, never
  reaches another site in a Referer) and `X-Frame-Options: DENY`.

A header the route set itself is kept, so a page with its own policy (service.pages) composes with this; a page
whose own policy lets some origin frame it (frame-ancestors) gets no `X-Frame-Options: DENY`.
Two kinds of page get their own policy here: the Outlook add-in's launch page (Office.js from Microsoft's
CDN, framed by Outlook on the web) and the API documentation (/docs, /redoc: the inline script FastAPI
writes is allowed by its hash, computed from the page itself).
"""

import base64
import hashlib
import re
from urllib.parse import urlsplit

HTML_CSP = (
    "default-src 'none'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
ASSET_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
# Outlook on the web runs the launch-event page in a frame of its own origins.
OUTLOOK_FRAMERS = "https://outlook.office.com https://outlook.office365.com https://outlook.live.com"
ADDIN_CSP = (
    "default-src 'none'; script-src 'self' https://appsforoffice.microsoft.com; connect-src 'self'; "
    f"img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; base-uri 'none'; frame-ancestors {OUTLOOK_FRAMERS}"
)
DOCS_PATHS = ("/docs", "/redoc")
ASSET_PREFIXES = ("/assets/", "/i/", "/addin/")
ASSET_TYPES = ("image/", "text/css", "text/javascript", "application/javascript", "font/")
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def _docs_csp(body: bytes) -> str:
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()}'"
        for m in _INLINE_SCRIPT.finditer(body)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _frames_allowed(headers: list) -> bool:
    """A route that set its own policy naming who may frame it (the public ambassador widget) is not DENY-framed."""
    for k, v in headers:
        if k.lower() == b"content-security-policy":
            ancestors = re.search(rb"frame-ancestors ([^;]*)", v)
            return ancestors is not None and ancestors.group(1).strip() != b"'none'"
    return False


class SecurityHeaders:
    def __init__(self, app):
        self.app = app
        self._hsts: bool | None = None

    def _https(self, scope) -> bool:
        if self._hsts is None:
            app = scope.get("app")
            settings = getattr(getattr(app, "state", None), "settings", None)
            self._hsts = settings is not None and urlsplit(settings.public_base_url).scheme == "https"
        return self._hsts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        https = self._https(scope)
        docs = path in DOCS_PATHS
        held: dict = {}

        def finish(message: dict, body: bytes = b"") -> dict:
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            ctype = next((v.decode("latin-1").lower() for k, v in headers if k.lower() == b"content-type"), "")
            add: list[tuple[str, str]] = [("x-content-type-options", "nosniff")]
            if https:
                add.append(("strict-transport-security", "max-age=31536000; includeSubDomains"))
            is_html = ctype.startswith("text/html")
            is_asset = path.startswith(ASSET_PREFIXES) and ctype.startswith(ASSET_TYPES)
            if is_html or is_asset:
                if docs:
                    csp = _docs_csp(body)
                elif path.startswith("/addin/") and is_html:
                    csp = ADDIN_CSP
                else:
                    csp = HTML_CSP if is_html else ASSET_CSP
                add += [("content-security-policy", csp), ("referrer-policy", "no-referrer")]
                if not path.startswith("/addin/") and not _frames_allowed(headers):
                    add.append(("x-frame-options", "DENY"))
            headers += [(k.encode(), v.encode()) for k, v in add if k.encode() not in present]
            return {**message, "headers": headers}

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                if docs:  # the policy needs the page's inline script: hold the start until the body is known
                    held["start"], held["body"] = message, b""
                    return
                await send(finish(message))
                return
            if docs and "start" in held:
                held["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                await send(finish(held.pop("start"), held["body"]))
                await send({"type": "http.response.body", "body": held["body"]})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)
