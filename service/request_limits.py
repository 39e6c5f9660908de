"""Request bodies are bounded before anything is buffered, and API credentials are checked before any is read.

A pure ASGI middleware, outside every other layer:

- a request to /api/ that carries a body (or says it will) must first present an existing API key, checked
  here, before one byte of its body is read: an anonymous client can make the server read nothing;
- every body has a ceiling: a declared Content-Length over it is refused at once, and a streamed (chunked)
  body is counted as it arrives and cut off at the ceiling. Upload routes have their own, larger ceilings;
  public routes (the /u/ form) a small one.

A NUL character — in the path, the query string or a JSON body (`\u0000`) — is refused with a 422 before it
reaches a route: PostgreSQL can't store it and nothing legitimate sends it.

Refusals use the one error shape (413 `too_large`, 401 `unauthorized`, 422 `invalid`). When the ceiling is
crossed while the app is already reading, the 413 is sent from here and the app is told the client went
away, so nothing it does afterwards reaches the client.
"""

import json
import re
from collections.abc import Awaitable, Callable

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from service.errors import AppError, Invalid, Unauthorized

KIB = 1024
MIB = 1024 * KIB

API_BODY_BYTES = 1 * MIB  # JSON bodies: the largest real one (a template source) is a few KB
PUBLIC_BODY_BYTES = 16 * KIB  # bodies nobody authenticated: the /u/ preferences form
UPLOAD_BODY_BYTES = {  # (method, path) -> ceiling, multipart overhead included
    ("POST", "/api/banners"): 1 * MIB + 64 * KIB,  # signatures.campaigns.images.MAX_BYTES + the form
    ("POST", "/api/directory/import"): 10 * MIB + 64 * KIB,  # service.directory.sources.csv_file.MAX_BYTES
}
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_SYNTAX = re.compile(r"rls_[0-9a-f]{8}_[A-Za-z0-9_-]{20,64}")

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class TooLarge(AppError):
    status_code = 413
    code = "too_large"


def body_limit(method: str, path: str, authenticated: bool) -> int:
    if not authenticated:
        return PUBLIC_BODY_BYTES
    return UPLOAD_BODY_BYTES.get((method, path.rstrip("/")), API_BODY_BYTES)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"The request body is over the {limit:,} bytes this route accepts; send a smaller one.",
        details={"limit_bytes": limit},
    )


async def send_error(send: Send, exc: AppError) -> None:
    body = json.dumps(exc.to_dict()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.status_code == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if exc.status_code == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def presented_key(scope: Scope) -> str | None:
    auth = _header(scope, b"authorization")
    if auth:
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return _header(scope, b"x-api-key")


def _key_exists(engine, key: str) -> bool:
    from service.auth import authenticate  # service.auth imports FastAPI's security helpers: keep this cheap

    with Session(engine) as session:
        try:
            authenticate(session, key)
        except Unauthorized:
            return False
        session.rollback()  # the route records last_used_at when it authenticates in its own session
    return True


def _nul() -> Invalid:
    return Invalid("The request contains a NUL character (%00 or \\u0000); remove it.")


def _has_body(scope: Scope) -> bool:
    if scope["method"] not in BODILESS_METHODS:
        return True
    length = _header(scope, b"content-length")
    return bool(length and length != "0") or _header(scope, b"transfer-encoding") is not None


class RequestLimits:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await send_error(send, _nul())
            return
        if not _has_body(scope):
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        authenticated = False
        if path.startswith("/api/"):
            key = presented_key(scope)
            if not key:
                await send_error(
                    send, Unauthorized("Authentication required: send an API key as 'Authorization: Bearer <key>'.")
                )
                return
            if not KEY_SYNTAX.fullmatch(key) or not await run_in_threadpool(
                _key_exists, scope["app"].state.engine, key
            ):
                await send_error(send, Unauthorized("Unknown or revoked API key."))
                return
            authenticated = True
        limit = body_limit(method, path, authenticated)
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await send_error(send, AppError("The Content-Length header is not a number."))
                return
            if too_big:
                await send_error(send, _too_large(limit))
                return
        is_json = "json" in (_header(scope, b"content-type") or "").lower()
        guarded = _Guarded(receive, send, limit, scan_nul=is_json)
        try:
            await self.app(scope, guarded.receive, guarded.send)
        except Exception:
            if not guarded.cut:
                raise  # past the cut, the app failing on the disconnect it was told about is expected


class _Guarded:
    """Counts the body as the app reads it; past the limit, answers 413 and drops whatever the app sends next."""

    def __init__(self, receive: Receive, send: Send, limit: int, scan_nul: bool = False):
        self._receive, self._send, self.limit = receive, send, limit
        self.scan_nul, self._tail = scan_nul, b""  # the tail: an escape split across two chunks
        self.received = 0
        self.started = False  # the app's response has begun
        self.cut = False  # the 413 went out from here

    async def send(self, message: dict) -> None:
        if self.cut:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def receive(self) -> dict:
        if self.cut:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            self.received += len(body)
            problem: AppError | None = _too_large(self.limit) if self.received > self.limit else None
            if problem is None and self.scan_nul:
                window = self._tail + body
                if b"\\u0000" in window or b"\x00" in window:
                    problem = _nul()
                self._tail = window[-5:]
            if problem is not None:
                if not self.started:
                    await send_error(self._send, problem)
                self.cut = True
                return {"type": "http.disconnect"}
        return message
