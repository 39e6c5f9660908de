"""Google Workspace connection: service-account credentials with domain-wide delegation, the API clients
the Google target and directory share, and turning Google's errors into sentences an admin can act on.

* config: ``admin_subject`` (an admin's address, used for Directory reads), ``customer_id`` (default
  ``my_customer``), optional ``scopes`` (a list overriding the default Gmail and Directory scopes).
* secret: the service-account JSON key (``type: service_account``, ``client_email``, ``private_key``,
  ``token_uri``). It is decrypted only in memory and never logged or returned. Its ``token_uri`` is not
  used: tokens are always asked of ``settings.google_token_uri`` (Google's endpoint), so an uploaded key
  cannot point the connection at an internal host and have Relais read the answer back.

Clients are built once from the static discovery documents shipped with google-api-python-client (no
discovery fetch) and shared by all threads; every call carries its own ``AuthorizedHttp`` for the mailbox
it acts as, over the calling thread's own connection pool (`GoogleClient.execute`). Writes are sent at most
once per call (`SendOnceHttp`): a lost response surfaces as an error instead of being silently resent.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from service.errors import Invalid
from service.sentences import N_
from service.settings import Settings

log = logging.getLogger(__name__)

SCOPE_GMAIL_BASIC = "https://www.googleapis.com/auth/gmail.settings.basic"
SCOPE_USER_READONLY = "https://www.googleapis.com/auth/admin.directory.user.readonly"
SCOPE_GROUP_READONLY = "https://www.googleapis.com/auth/admin.directory.group.readonly"
GMAIL_SCOPES = (SCOPE_GMAIL_BASIC,)
# group.readonly covers groups.list and members.list (member.readonly alone does not allow groups.list).
DIRECTORY_SCOPES = (SCOPE_USER_READONLY, SCOPE_GROUP_READONLY)
REQUIRED_KEY_FIELDS = ("type", "client_email", "private_key", "token_uri")
DEFAULT_TIMEOUT = 30.0
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - an endpoint, not a secret
MAX_CACHED_SUBJECTS = 20_000
THROTTLE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded")

# ---------------------------------------------------------------------------------------- validation


def _load_key(secret: str) -> dict:
    try:
        info = json.loads(secret)
    except (TypeError, ValueError):
        raise Invalid(
            N_("The Google secret must be the service-account JSON key file (it is not valid JSON).")
        ) from None
    if not isinstance(info, dict):
        raise Invalid(N_("The Google secret must be the service-account JSON key file (a JSON object)."))
    missing = [f for f in REQUIRED_KEY_FIELDS if not info.get(f)]
    if missing:
        raise Invalid(
            N_(
                "The service-account JSON is missing %(fields)s; download a new JSON key for the "
                "service account in Google Cloud console → IAM & Admin → Service accounts → Keys.",
                fields=", ".join(missing),
            )
        )
    if info["type"] != "service_account":
        raise Invalid(
            N_(
                "The JSON key is of type %(type)r; Relais needs a service-account key (type 'service_account').",
                type=info["type"],
            )
        )
    if "BEGIN PRIVATE KEY" not in info["private_key"]:
        raise Invalid(N_("The service-account JSON's private_key is not a PEM private key; download a new JSON key."))
    return info


def _split_scopes(scopes: list[str] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not scopes:
        return GMAIL_SCOPES, DIRECTORY_SCOPES
    gmail = tuple(s for s in scopes if "gmail" in s or s == "https://mail.google.com/")
    directory = tuple(s for s in scopes if "admin.directory" in s)
    return gmail or GMAIL_SCOPES, directory or DIRECTORY_SCOPES


def validate(*, config: dict, secret: str | None) -> dict:
    """Check a connection's config (and the secret when one is given); return the config to store."""
    allowed = {"admin_subject", "customer_id", "scopes"}
    unknown = set(config) - allowed
    if unknown:
        raise Invalid(
            N_(
                "Unknown Google setting(s): %(unknown)s; use %(allowed)s.",
                unknown=", ".join(sorted(unknown)),
                allowed=", ".join(sorted(allowed)),
            )
        )
    subject = str(config.get("admin_subject") or "").strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", subject):
        raise Invalid(
            N_(
                "Google needs admin_subject: the address of a Workspace admin (a super admin or a role with "
                "Directory read rights) that Relais acts as to read users and groups."
            )
        )
    scopes = config.get("scopes")
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
        raise Invalid(N_("scopes must be a list of OAuth scope URLs."))
    if secret is not None:
        _load_key(secret)
    out: dict[str, str | list[str]] = {
        "admin_subject": subject,
        "customer_id": str(config.get("customer_id") or "my_customer"),
    }
    if scopes:
        out["scopes"] = list(scopes)
    return out


# ---------------------------------------------------------------------------------------- HTTP


class SendOnceHttp(httplib2.Http):
    """httplib2 resends a request once when a kept-alive connection closes before answering. For a write
    whose response was lost (applied, then the connection dropped) that writes twice. Here a request that
    is not a read is sent once: if the connection fails after it was sent the error reaches the caller,
    which reads the mailbox again before deciding to write. A request that could not be sent at all (a
    stale connection refusing the bytes) is sent again on a fresh connection: the server never got it."""

    def _conn_request(self, conn, request_uri, method, body, headers):
        if method in ("GET", "HEAD", "OPTIONS"):
            return super()._conn_request(conn, request_uri, method, body, headers)
        for attempt in (1, 2):
            try:
                if conn.sock is None:
                    conn.connect()
                conn.request(method, request_uri, body, headers)
            except (OSError, http.client.HTTPException):
                conn.close()
                if attempt == 2:
                    raise
                continue  # not sent: safe to send on a fresh connection
            try:
                raw = conn.getresponse()
                content = raw.read()
            except BaseException:
                conn.close()
                raise
            response = httplib2.Response(raw)
            content = httplib2._decompressContent(response, content, self.limit_kwargs)
            if response.get("connection", "").lower() == "close":
                conn.close()
            return response, content
        raise AssertionError("unreachable")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_http(endpoint: str, timeout: float = DEFAULT_TIMEOUT) -> httplib2.Http:
    """A connection pool for one thread. Proxies come from the environment, except for a loopback endpoint
    (a local test server) which is always reached directly."""
    if _is_loopback(endpoint):
        return SendOnceHttp(timeout=timeout, proxy_info=None)
    return SendOnceHttp(timeout=timeout)


# ---------------------------------------------------------------------------------------- problems


@dataclass
class Problem:
    """A Google failure, classified. kind: transient | mailbox | configuration | other."""

    kind: str
    status: int  # HTTP status; 0 for connection-level failures and token errors without one
    reason: str  # Google's errors[].reason, or the OAuth error code
    message: str  # a sentence for the admin
    retry_after: float | None = None
    per_user: bool = False  # a per-mailbox limit: do not hold every other mailbox back

    @property
    def throttled(self) -> bool:
        return self.kind == "transient" and (self.status == 429 or self.reason in THROTTLE_REASONS)


def retry_after_seconds(headers: Any, message: str) -> float | None:
    """Seconds Google asks us to wait: its Retry-After header (seconds or a date), else the "Retry after <ISO
    time>" its per-user limit messages carry; None when it says nothing."""
    value = None
    if headers is not None:
        value = headers.get("retry-after") or headers.get("Retry-After")
    if value:
        value = str(value).strip()
        if value.isdigit() or re.fullmatch(r"\d+(\.\d+)?", value):
            return max(0.0, float(value))
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            pass
    found = re.search(r"Retry after (\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d))", message or "")
    if found:
        try:
            when = datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
        except ValueError:
            return None
    return None


def _http_error_parts(exc: HttpError) -> tuple[int, str, str, str]:
    status = int(exc.resp.status)
    reason, message, status_name = "", "", ""
    try:
        err = json.loads(exc.content.decode("utf-8"))["error"]
        message = str(err.get("message") or "")
        status_name = str(err.get("status") or "")
        for item in err.get("errors") or []:
            reason = item.get("reason") or reason
            if reason:
                break
        for detail in err.get("details") or []:
            if detail.get("reason"):  # google.rpc.ErrorInfo (e.g. SERVICE_DISABLED, ACCESS_TOKEN_SCOPE_INSUFFICIENT)
                reason = reason or detail["reason"]
                status_name = detail["reason"] if detail["reason"] == "SERVICE_DISABLED" else status_name
    except (ValueError, KeyError, TypeError, AttributeError):
        message = exc.content.decode("utf-8", "replace")[:200]
    return status, reason, message, status_name


def explain(
    exc: BaseException, *, subject: str, client_id: str, scopes: tuple[str, ...], api: str = "", admin: bool = False,
    missing: tuple[str, ...] | None = None,
) -> Problem:  # fmt: skip
    """Classify an exception raised while acting as `subject` and say what to do about it. The one mapping of
    Google's failures: the connection test, the directory sync and deployments all word them through it.
    `admin`: `subject` is the connection's admin subject (an unknown admin is the connection's problem, not a
    mailbox's). `missing`: for `unauthorized_client`, the scopes the delegation was found to lack when some
    others are granted (Google answers the same error for no delegation and for a partial one)."""
    if isinstance(exc, auth_exceptions.RefreshError):
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        code = str(data.get("error") or str(exc.args[0] if exc.args else "").split(":", 1)[0]).strip()
        description = str(data.get("error_description") or (exc.args[0] if exc.args else ""))
        if code == "unauthorized_client" and missing:
            return Problem("configuration", 401, "scopes_missing", scopes_missing(client_id, missing))
        if code == "unauthorized_client":
            return Problem("configuration", 401, code, delegation_missing(client_id, scopes))
        if code == "invalid_grant" and ("Invalid email" in description or "User ID" in description):
            if admin:
                return Problem("configuration", 400, code, admin_unknown(subject))
            return Problem(
                "mailbox",
                400,
                code,
                N_(
                    "%(subject)s does not exist in Google Workspace (invalid_grant: Invalid email or User ID).",
                    subject=subject,
                ),
            )
        if code == "invalid_grant" and "jwt signature" in description.lower():
            return Problem("configuration", 400, "bad_key", BAD_KEY)
        if code == "invalid_grant" and ("iat" in description or "short-lived" in description):
            return Problem(
                "configuration",
                400,
                "clock",
                N_(
                    "Google refused the token request as badly timed (%(description)s): check this server's clock "
                    "(NTP); the service-account key itself may be fine.",
                    description=description,
                ),
            )
        if code == "invalid_client":
            return Problem(
                "configuration",
                400,
                code,
                N_(
                    "Google does not know this service account or its key (%(description)s): the account or key "
                    "was deleted or disabled in Google Cloud; create a new JSON key and upload it.",
                    description=description,
                ),
            )
        if code == "invalid_grant":
            return Problem(
                "configuration",
                400,
                code,
                N_(
                    "Google refused the service-account key (%(code)s: %(description)s); upload a current JSON key.",
                    code=code,
                    description=description,
                ),
            )
        if getattr(exc, "retryable", False):
            return Problem(
                "transient",
                0,
                code or "token",
                N_("the token endpoint failed: %(description)s", description=description),
            )
        return Problem(
            "configuration",
            0,
            code or "token",
            N_("Google refused a token for %(subject)s: %(description)s", subject=subject, description=description),
        )
    if isinstance(exc, KeyUnreadable):
        return Problem("configuration", 0, "bad_key", KEY_UNREADABLE)
    if isinstance(exc, auth_exceptions.TransportError):
        return Problem(
            "transient", 0, "transport", N_("could not reach Google's token endpoint: %(error)s", error=str(exc))
        )
    if isinstance(exc, HttpError):
        status, reason, message, status_name = _http_error_parts(exc)
        retry_after = retry_after_seconds(exc.resp, message)
        lowered = message.lower()
        throttled = reason in THROTTLE_REASONS
        if status == 429 or (status == 403 and throttled):
            return Problem(
                "transient",
                status,
                reason or "rateLimitExceeded",
                N_("throttled by Google: %(message)s", message=message),
                retry_after,
                per_user=reason == "userRateLimitExceeded",
            )
        if status >= 500 or status == 408:
            return Problem(
                "transient",
                status,
                reason,
                N_("Google answered %(status)s: %(message)s", status=status, message=message),
                retry_after,
            )
        if (
            reason == "accessNotConfigured"
            or status_name == "SERVICE_DISABLED"
            or "has not been used in project" in (message)
        ):
            return Problem(
                "configuration",
                status,
                reason or status_name,
                N_(
                    "The %(api)s API is not enabled in the service account's Cloud project; enable it in Google "
                    "Cloud console → APIs & Services → Library (%(message)s).",
                    api=api or "Google",
                    message=message,
                ),
            )
        if reason == "insufficientPermissions" or "insufficient authentication scopes" in lowered:
            return Problem(
                "configuration",
                status,
                reason or "insufficientPermissions",
                N_(
                    "The token for %(subject)s lacks a scope this call needs; grant %(scopes)s to client ID "
                    "%(client_id)s in Admin console → Security → API controls → Domain-wide delegation.",
                    subject=subject,
                    scopes=", ".join(scopes),
                    client_id=client_id,
                ),
            )
        if status == 403 and "not authorized to access this resource" in lowered:
            return Problem("configuration", status, reason or "forbidden", not_an_admin(subject))
        if status == 403 and "delegation denied" in lowered:
            return Problem(
                "configuration",
                status,
                reason or "forbidden",
                N_("Google denied delegation: %(message)s", message=message),
            )
        if status == 400 and (reason == "failedPrecondition" or "mail service not enabled" in lowered):
            return Problem(
                "mailbox",
                status,
                reason,
                N_(
                    "%(subject)s has no Gmail mailbox (Mail service not enabled for this user, or the user is "
                    "suspended).",
                    subject=subject,
                ),
            )
        if status == 404:
            return Problem(
                "mailbox",
                status,
                reason,
                N_("Google does not know %(subject)s (%(message)s).", subject=subject, message=message),
            )
        if status == 401:
            return Problem(
                "configuration",
                status,
                reason,
                N_(
                    "Google rejected the access token for %(subject)s after a refresh: %(message)s",
                    subject=subject,
                    message=message,
                ),
            )
        return Problem(
            "other",
            status,
            reason,
            N_("Google answered %(status)s %(reason)s: %(message)s", status=status, reason=reason, message=message),
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return Problem("transient", 0, "timeout", N_("Google did not answer in time"))
    if isinstance(exc, OSError | http.client.HTTPException | httplib2.HttpLib2Error):
        return Problem("transient", 0, "connection", N_("connection to Google failed: %(error)s", error=repr(exc)))
    return Problem("other", 0, type(exc).__name__, N_("unexpected error: %(error)s", error=repr(exc)))


class KeyUnreadable(ValueError):
    """The private key in the service-account JSON cannot be parsed."""


KEY_UNREADABLE = N_(
    "The service-account key could not be loaded (its private key does not parse); upload the JSON key again."
)
BAD_KEY = N_(
    "Google rejected the service-account key (Invalid JWT Signature): the key was deleted or replaced in Google "
    "Cloud, or this JSON is not the service account's current key. Create a new JSON key (IAM & Admin → Service "
    "accounts → Keys) and upload it."
)


def admin_unknown(subject: str) -> str:
    return N_(
        "The admin subject %(subject)s does not exist in Google Workspace; set admin_subject to an existing "
        "admin's primary address.",
        subject=subject,
    )


def not_an_admin(subject: str) -> str:
    return N_(
        "%(subject)s is not a Workspace admin with Directory read rights; set admin_subject to a super admin "
        "(or give this user an admin role that can read users and groups).",
        subject=subject,
    )


def scopes_missing(client_id: str, missing: tuple[str, ...]) -> str:
    return N_(
        "Domain-wide delegation for client ID %(client_id)s lacks the scope(s) %(scopes)s; add them to its "
        "entry in Admin console → Security → API controls → Domain-wide delegation (a change can take up to "
        "24 h to apply).",
        client_id=client_id,
        scopes=",".join(missing),
    )


def _oauth_error(exc: BaseException) -> str:
    if not isinstance(exc, auth_exceptions.RefreshError):
        return ""
    data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    return str(data.get("error") or str(exc.args[0] if exc.args else "").split(":", 1)[0]).strip()


def delegation_missing(client_id: str, scopes: tuple[str, ...]) -> str:
    return N_(
        "Domain-wide delegation is not granted for client ID %(client_id)s with scopes %(scopes)s; add it in "
        "Admin console → Security → API controls → Domain-wide delegation (a change can take up to 24 h to "
        "apply).",
        client_id=client_id,
        scopes=",".join(scopes),
    )


# ---------------------------------------------------------------------------------------- the client


class GoogleClient:
    """Credentials and API clients for one Workspace connection, safe to share between threads."""

    def __init__(
        self,
        *,
        info: dict,
        admin_subject: str,
        customer_id: str = "my_customer",
        api_endpoint: str,
        scopes: list[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        token_uri: str = GOOGLE_TOKEN_URI,
    ):
        self.info = {**info, "token_uri": token_uri}  # never the key's own: see the module docstring
        self.admin_subject = admin_subject
        self.customer_id = customer_id
        self.api_endpoint = api_endpoint if api_endpoint.endswith("/") else api_endpoint + "/"
        self.timeout = timeout
        self.client_id = str(info.get("client_id") or info.get("client_email"))
        self.gmail_scopes, self.directory_scopes = _split_scopes(scopes)
        self._base: dict[str, service_account.Credentials] = {}  # per kind, made on first use (a key parse each)
        self._creds: OrderedDict[tuple[str, str], service_account.Credentials] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._services: dict = {}
        self._probe_lock = threading.Lock()
        self._probed: tuple[tuple[str, ...] | None] | None = None  # missing_scopes(), once

    @classmethod
    def from_connection(cls, row, settings: Settings) -> GoogleClient:
        from service.connections.service import read_secret

        info = _load_key(read_secret(row, settings))
        config = row.config or {}
        return cls(
            info=info,
            admin_subject=config.get("admin_subject", ""),
            customer_id=config.get("customer_id") or "my_customer",
            api_endpoint=settings.google_api_endpoint,
            scopes=config.get("scopes"),
            token_uri=settings.google_token_uri,
        )

    def scopes(self, kind: str) -> tuple[str, ...]:
        return self.gmail_scopes if kind == "gmail" else self.directory_scopes

    def credentials(self, subject: str, kind: str = "gmail") -> service_account.Credentials:
        """One credentials object per (kind, subject): google-auth keeps its token until it expires."""
        key = (kind, subject.lower())
        with self._lock:
            creds = self._creds.get(key)
            if creds is None:
                base = self._base.get(kind)
                if base is None:
                    try:
                        base = self._base[kind] = service_account.Credentials.from_service_account_info(
                            self.info, scopes=list(self.scopes(kind))
                        )
                    except ValueError as exc:  # the PEM inside the JSON does not parse
                        raise KeyUnreadable(str(exc)) from exc
                creds = base.with_subject(subject)
                self._creds[key] = creds
                if len(self._creds) > MAX_CACHED_SUBJECTS:
                    self._creds.popitem(last=False)
            else:
                self._creds.move_to_end(key)
            return creds

    def _thread_http(self) -> httplib2.Http:
        """The thread's connection pool: httplib2 objects must not be shared between threads."""
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = make_http(self.api_endpoint, self.timeout)
        return http

    def service(self, kind: str):
        """The API client, built once from the static discovery document (~40 ms of CPU each time it is built)
        and shared by every thread: requests carry their thread's own `AuthorizedHttp` (`execute`), as the
        library's thread-safety guide advises."""
        with self._lock:
            svc = self._services.get(kind)
            if svc is None:
                name, version = ("gmail", "v1") if kind == "gmail" else ("admin", "directory_v1")
                svc = build(
                    name,
                    version,
                    http=make_http(self.api_endpoint, self.timeout),
                    static_discovery=True,
                    cache_discovery=False,
                    client_options={"api_endpoint": self.api_endpoint},
                )
                self._services[kind] = svc
            return svc

    def resource(self, kind: str, *path: str):
        """A resource, e.g. `resource("gmail", "users", "settings", "sendAs")`, built once: googleapiclient
        builds every method of a resource each time it is reached (~4 ms of CPU for sendAs)."""
        key = (kind, *path)
        found = self._services.get(key)
        if found is None:
            found = self.service(kind)
            for name in path:
                found = getattr(found, name)()
            with self._lock:
                found = self._services.setdefault(key, found)
        return found

    def authorized_http(self, subject: str, kind: str) -> google_auth_httplib2.AuthorizedHttp:
        return google_auth_httplib2.AuthorizedHttp(self.credentials(subject, kind), http=self._thread_http())

    def execute(self, request, *, subject: str, kind: str = "gmail"):
        """Run a request built from `service(kind)` as `subject`."""
        return request.execute(http=self.authorized_http(subject, kind))

    def token(self, subject: str, kind: str = "gmail") -> None:
        """Make sure a token for `subject` can be had (raises google-auth's RefreshError otherwise)."""
        creds = self.credentials(subject, kind)
        if not creds.valid:
            creds.refresh(google_auth_httplib2.Request(self._thread_http()))

    def explain(self, exc: BaseException, *, subject: str, kind: str = "gmail") -> Problem:
        api = "Gmail" if kind == "gmail" else "Admin SDK"
        admin = subject.lower() == (self.admin_subject or "").lower()
        missing = self.missing_scopes(subject) if _oauth_error(exc) == "unauthorized_client" else None
        return explain(
            exc, subject=subject, client_id=self.client_id, scopes=self.scopes(kind), api=api, admin=admin,
            missing=missing,
        )  # fmt: skip

    def missing_scopes(self, subject: str) -> tuple[str, ...] | None:
        """After `unauthorized_client`: ask for each scope alone. Some granted → the ones that are not; none →
        None (no delegation at all, or a refusal that is not about scopes). Only on this failure: a few token
        requests, once per client (delegation is granted per client id, whichever the subject), since the
        failure stops the deployment or the sync."""
        with self._probe_lock:  # threads failing together wait for one probe
            if self._probed is None:
                self._probed = (self._probe_scopes(subject),)
            return self._probed[0]

    def _probe_scopes(self, subject: str) -> tuple[str, ...] | None:
        wanted = tuple(dict.fromkeys(self.gmail_scopes + self.directory_scopes))
        missing = []
        for scope in wanted:
            creds = service_account.Credentials.from_service_account_info(self.info, scopes=[scope])
            try:
                creds.with_subject(subject).refresh(google_auth_httplib2.Request(self._thread_http()))
            except auth_exceptions.RefreshError as exc:
                if _oauth_error(exc) != "unauthorized_client":
                    return None
                missing.append(scope)
            except Exception:  # noqa: BLE001 - the probe is a hint; without it the plain sentence stands
                return None
        return tuple(missing) if 0 < len(missing) < len(wanted) else None


# ---------------------------------------------------------------------------------------- connection test


def test_connection(row, settings: Settings) -> dict:
    """Obtain real tokens and make one read per API; every failed check says what to change."""
    checks: list[dict] = []
    try:
        client = GoogleClient.from_connection(row, settings)
    except Invalid as exc:
        return {"ok": False, "checks": [{"name": "key", "ok": False, "message": exc.message}]}
    except Exception as exc:  # noqa: BLE001 - an unreadable key: say so, never echo it
        message = N_(
            "The service-account key could not be loaded (%(kind)s); upload the JSON key again.",
            kind=type(exc).__name__,
        )
        return {"ok": False, "checks": [{"name": "key", "ok": False, "message": message}]}
    admin = client.admin_subject

    def run(name: str, kind: str, subject: str, fn, ok_message) -> Any:
        started = time.monotonic()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a sentence
            problem = client.explain(exc, subject=subject, kind=kind)
            checks.append({"name": name, "ok": False, "message": problem.message})
            log.info(
                "service.connections.check_failed",
                extra={"provider": "google", "check": name, "reason": problem.reason},
            )
            return None
        checks.append({"name": name, "ok": True, "message": ok_message(value) if callable(ok_message) else ok_message})
        log.info(
            "service.connections.check_ok",
            extra={"provider": "google", "check": name, "ms": round((time.monotonic() - started) * 1000)},
        )
        return value if value is not None else True

    directory = client.service("directory")
    if run(
        "directory_token",
        "directory",
        admin,
        lambda: client.token(admin, "directory"),
        N_("Token obtained for %(subject)s with the Directory scopes.", subject=admin),
    ):
        run(
            "directory_read",
            "directory",
            admin,
            lambda: client.execute(
                directory.users().list(customer=client.customer_id, maxResults=1, projection="basic"),
                subject=admin,
                kind="directory",
            ),
            N_("Directory read works (users.list)."),
        )
    mailbox = admin  # an admin normally has a mailbox; any user would do for a sendAs read
    gmail = client.service("gmail")
    if run(
        "gmail_token",
        "gmail",
        mailbox,
        lambda: client.token(mailbox, "gmail"),
        N_("Token obtained for %(subject)s with the Gmail scope.", subject=mailbox),
    ):
        run(
            "gmail_read",
            "gmail",
            mailbox,
            lambda: client.execute(
                gmail.users().settings().sendAs().list(userId=mailbox), subject=mailbox, kind="gmail"
            ),
            lambda value: N_(
                "Gmail settings read works for %(subject)s (%(n)s send-as address(es)).",
                subject=mailbox,
                n=len(value.get("sendAs", [])),
            ),
        )
    return {"ok": all(c["ok"] for c in checks), "checks": checks}
