"""A local fake of the Google APIs Relais uses, speaking Google's public HTTP contracts over loopback.

The real client libraries run against it unpatched:

* google-auth's service-account JWT-bearer flow (``token_uri`` in the service-account JSON points here),
* google-api-python-client with static discovery and ``client_options={"api_endpoint": fake.url}``,
* ``BatchHttpRequest(batch_uri=fake.gmail_batch_uri)`` for batched Gmail calls.

Routes (paths as the clients request them, relative to ``fake.url``)::

    POST  token                                                    OAuth 2 JWT-bearer grant
    GET   admin/directory/v1/users                                 route "users.list"
    GET   admin/directory/v1/users/{userKey}                       route "users.get"
    GET   admin/directory/v1/groups                                route "groups.list"
    GET   admin/directory/v1/groups/{groupKey}/members             route "members.list"
    GET   gmail/v1/users/{userId}/settings/sendAs                  route "sendAs.list"
    GET   gmail/v1/users/{userId}/settings/sendAs/{sendAsEmail}    route "sendAs.get"
    PATCH gmail/v1/users/{userId}/settings/sendAs/{sendAsEmail}    route "sendAs.patch"
    PUT   gmail/v1/users/{userId}/settings/sendAs/{sendAsEmail}    route "sendAs.update"
    POST  batch/gmail/v1 | batch/admin/directory_v1 | batch        route "batch"

Faults are injected with :meth:`FakeGoogle.inject` (or the helpers built on it) and matched by route pattern
(``fnmatch``: ``"sendAs.*"``, ``"*"``) and user (the token's subject / the mailbox addressed). The token
endpoint (``"token"``) and the outer batch request (``"batch"``) are matched only when named exactly; batch
parts are matched by their own route.

See docs/testing-fakes.md for the full description.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import email.parser
import email.policy
import fnmatch
import http.server
import itertools
import json
import math
import os
import re
import secrets
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import httplib2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# --------------------------------------------------------------------------------------------- constants

SCOPE_GMAIL_BASIC = "https://www.googleapis.com/auth/gmail.settings.basic"
SCOPE_GMAIL_SHARING = "https://www.googleapis.com/auth/gmail.settings.sharing"
SCOPE_USER_READONLY = "https://www.googleapis.com/auth/admin.directory.user.readonly"
SCOPE_GROUP_READONLY = "https://www.googleapis.com/auth/admin.directory.group.readonly"
SCOPE_MEMBER_READONLY = "https://www.googleapis.com/auth/admin.directory.group.member.readonly"

DEFAULT_DELEGATED_SCOPES = (
    SCOPE_GMAIL_BASIC,
    SCOPE_GMAIL_SHARING,
    SCOPE_USER_READONLY,
    SCOPE_GROUP_READONLY,
    SCOPE_MEMBER_READONLY,
)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_SIGNATURE_CHARS = 10_000
MAX_BATCH_PARTS = 100
TOKEN_LIFETIME_S = 3600

WRITE_ROUTES = ("sendAs.patch", "sendAs.update")

# Accepted scopes per route, as declared in the discovery documents shipped with google-api-python-client
# (admin.directory_v1.json, gmail.v1.json).
ROUTE_SCOPES: dict[str, frozenset[str]] = {
    "users.list": frozenset(
        {
            "https://www.googleapis.com/auth/admin.directory.user",
            SCOPE_USER_READONLY,
            "https://www.googleapis.com/auth/cloud-platform",
        }
    ),
    "groups.list": frozenset(
        {
            "https://www.googleapis.com/auth/admin.directory.group",
            SCOPE_GROUP_READONLY,
        }
    ),
    "members.list": frozenset(
        {
            "https://www.googleapis.com/auth/admin.directory.group",
            "https://www.googleapis.com/auth/admin.directory.group.member",
            SCOPE_MEMBER_READONLY,
            SCOPE_GROUP_READONLY,
        }
    ),
    "sendAs.list": frozenset(
        {
            "https://mail.google.com/",
            "https://www.googleapis.com/auth/gmail.modify",
            "https://www.googleapis.com/auth/gmail.readonly",
            SCOPE_GMAIL_BASIC,
        }
    ),
    "sendAs.patch": frozenset({SCOPE_GMAIL_BASIC, SCOPE_GMAIL_SHARING}),
}
ROUTE_SCOPES["users.get"] = ROUTE_SCOPES["users.list"]
ROUTE_SCOPES["sendAs.get"] = ROUTE_SCOPES["sendAs.list"]
ROUTE_SCOPES["sendAs.update"] = ROUTE_SCOPES["sendAs.patch"]

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_DEFAULT_REASONS = {
    400: ("invalidArgument", "Invalid argument."),
    401: ("authError", "Invalid Credentials"),
    403: ("forbidden", "Forbidden"),
    404: ("notFound", "Requested entity was not found."),
    429: ("rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("backendError", "Backend Error"),
    503: ("backendError", "The service is currently unavailable."),
}

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/token$"), "token"),
    ("GET", re.compile(r"^/admin/directory/v1/users$"), "users.list"),
    ("GET", re.compile(r"^/admin/directory/v1/users/(?P<userKey>[^/]+)$"), "users.get"),
    ("GET", re.compile(r"^/admin/directory/v1/groups$"), "groups.list"),
    ("GET", re.compile(r"^/admin/directory/v1/groups/(?P<groupKey>[^/]+)/members$"), "members.list"),
    ("GET", re.compile(r"^/gmail/v1/users/(?P<userId>[^/]+)/settings/sendAs$"), "sendAs.list"),
    (
        "GET",
        re.compile(r"^/gmail/v1/users/(?P<userId>[^/]+)/settings/sendAs/(?P<sendAsEmail>[^/]+)$"),
        "sendAs.get",
    ),
    (
        "PATCH",
        re.compile(r"^/gmail/v1/users/(?P<userId>[^/]+)/settings/sendAs/(?P<sendAsEmail>[^/]+)$"),
        "sendAs.patch",
    ),
    (
        "PUT",
        re.compile(r"^/gmail/v1/users/(?P<userId>[^/]+)/settings/sendAs/(?P<sendAsEmail>[^/]+)$"),
        "sendAs.update",
    ),
    ("POST", re.compile(r"^/batch(/gmail/v1|/admin/directory_v1)?$"), "batch"),
]


# --------------------------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class Write:
    """One applied sendAs write (patch or update)."""

    at: float  # time.time() when applied
    user: str
    send_as: str
    signature: str
    method: str  # "patch" | "update"
    changed: bool  # False when the stored signature was already identical (a redundant write)
    batched: bool


@dataclasses.dataclass(frozen=True)
class LoggedRequest:
    at: float
    method: str
    path: str
    route: str
    user: str | None
    status: int  # 0 when the connection was dropped
    batched: bool


@dataclasses.dataclass
class Fault:
    """A fault matched against (route, user). ``times=None`` means forever; ``hits`` counts applications."""

    kind: str
    route: str = "*"
    user: str | None = None
    times: int | None = None
    status: int = 0
    reason: str = ""
    message: str = ""
    retry_after: int | None = None  # seconds, for the Retry-After header
    retry_in: float = 30.0  # seconds, for the userRateLimitExceeded timestamp
    seconds: float = 0.0  # latency
    after_apply: bool = False  # drop: apply the write, then drop the connection
    hits: int = 0

    def matches(self, route: str, user: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if route in ("token", "batch") and self.route != route:
            return False  # the token endpoint and the outer batch request are only hit when named
        if not fnmatch.fnmatchcase(route, self.route):
            return False
        return self.user is None or (user is not None and user.lower() == self.user.lower())

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclasses.dataclass
class _Token:
    subject: str | None
    scopes: frozenset[str]
    client_id: str
    expires_at: float


@dataclasses.dataclass
class _ServiceAccount:
    client_email: str
    client_id: str
    key_id: str
    public_key: Any


class _Drop(Exception):
    """Raised inside request handling to close the socket without a response."""


@dataclasses.dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
        h = {"Content-Type": "application/json; charset=UTF-8"}
        h.update(headers or {})
        return cls(status, json.dumps(payload, indent=2).encode(), h)


class _TokenBucket:
    def __init__(self, rate: float, burst: float | None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Take one token. Returns 0.0 on success, otherwise the seconds until one is available."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


def google_error(
    status: int,
    message: str | None = None,
    reason: str | None = None,
    *,
    domain: str = "global",
    status_name: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> _Response:
    """An error in Google's JSON shape: {"error": {"code", "message", "errors": [...], "status"}}."""
    default_reason, default_message = _DEFAULT_REASONS.get(status, ("unknown", "Error"))
    message = message or default_message
    item = {"message": message, "domain": domain, "reason": reason or default_reason}
    item.update(extra or {})
    payload = {
        "error": {
            "code": status,
            "message": message,
            "errors": [item],
            "status": status_name or _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    return _Response.json(status, payload, headers)


def _rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------- the fake


class FakeGoogle:
    """Fake Google OAuth token endpoint, Admin SDK Directory and Gmail sendAs settings, on 127.0.0.1.

    Use as a context manager (``with FakeGoogle() as fake:``) or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        *,
        domain: str = "example.com",
        customer_id: str = "C03az79cb",
        latency: float = 0.0,
        write_limit_per_s: float | None = None,
        write_burst: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.domain = domain
        self.customer_id = customer_id
        self.latency = latency  # seconds added to every HTTP request (a batch counts once)
        self._bucket: _TokenBucket | None = None
        self._write_burst = write_burst
        self.write_limit_per_s = write_limit_per_s
        self._host = host
        self._port = port

        self.lock = threading.RLock()
        self.users: dict[str, dict[str, Any]] = {}  # primaryEmail (lower) -> user record
        self.groups: dict[str, dict[str, Any]] = {}  # email (lower) -> group record
        self.send_as_settings: dict[str, dict[str, dict[str, Any]]] = {}  # user -> sendAsEmail(lower) -> res
        self.delegation: dict[str, set[str]] = {}  # client_id -> scopes granted domain-wide
        self.service_accounts: dict[str, _ServiceAccount] = {}  # client_email -> account
        self.tokens: dict[str, _Token] = {}
        self.faults: list[Fault] = []
        self.writes: list[Write] = []
        self.requests: Counter[str] = Counter()  # route -> count (every HTTP request and batch part)
        self.request_log: list[LoggedRequest] = []
        self.tokens_issued = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._page_tokens: dict[str, tuple[str, tuple[Any, ...], int]] = {}
        self._ids = itertools.count(100000000000000000001)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def write_limit_per_s(self) -> float | None:
        return self._bucket.rate if self._bucket else None

    @write_limit_per_s.setter
    def write_limit_per_s(self, value: float | None) -> None:
        self._bucket = _TokenBucket(value, self._write_burst) if value else None

    def start(self) -> FakeGoogle:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        server = _Server((self._host, self._port), handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-google", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeGoogle is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Root URL, for ``client_options={"api_endpoint": fake.url}``."""
        return f"http://{self._host}:{self.port}/"

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    @property
    def gmail_batch_uri(self) -> str:
        return self.url + "batch/gmail/v1"

    @property
    def directory_batch_uri(self) -> str:
        return self.url + "batch/admin/directory_v1"

    # ------------------------------------------------------------------ seeding

    def service_account_info(
        self,
        client_email: str = "relais@relais-test.iam.gserviceaccount.com",
        *,
        delegated_scopes: Iterable[str] | None = DEFAULT_DELEGATED_SCOPES,
    ) -> dict[str, str]:
        """A service-account JSON dict with a fresh RSA key; its token_uri points at this fake.

        ``delegated_scopes`` are granted domain-wide delegation for its client id (``None``/empty: none).
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        key_id = secrets.token_hex(20)
        client_id = str(next(self._ids))
        with self.lock:
            self.service_accounts[client_email] = _ServiceAccount(client_email, client_id, key_id, key.public_key())
            self.delegation[client_id] = set(delegated_scopes or ())
        project = client_email.split("@", 1)[1].split(".", 1)[0] if "@" in client_email else "relais-test"
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": client_email,
            "client_id": client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + urllib.parse.quote(client_email),
            "universe_domain": "googleapis.com",
        }

    def delegate(self, client_id: str, scopes: Iterable[str]) -> None:
        """Set the domain-wide delegation allow-list of a client id (replaces what was there)."""
        with self.lock:
            self.delegation[client_id] = set(scopes)

    def replace_key(self, client_email: str = "relais@relais-test.iam.gserviceaccount.com") -> None:
        """The account's key is deleted (or rotated) in Google Cloud: a JSON holding the old key now gets what
        Google answers it, 400 ``invalid_grant`` "Invalid JWT Signature."."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self.lock:
            account = self.service_accounts[client_email]
            account.key_id, account.public_key = secrets.token_hex(20), key.public_key()

    def revoke_delegation(self, client_id: str) -> None:
        with self.lock:
            self.delegation[client_id] = set()

    def add_user(
        self,
        email: str,
        *,
        given_name: str | None = None,
        family_name: str | None = None,
        title: str | None = None,
        department: str | None = None,
        phones: Iterable[dict[str, str]] = (),
        org_unit: str = "/",
        aliases: Iterable[str] = (),
        send_as_aliases: Iterable[str] | None = None,
        mailbox: bool = True,
        suspended: bool = False,
        archived: bool = False,
        admin: bool = False,
        custom_schemas: dict[str, Any] | None = None,
        signature: str = "",
    ) -> dict[str, Any]:
        """Add a directory user with a Gmail mailbox (unless ``mailbox=False``).

        Its sendAs addresses are the primary address plus ``send_as_aliases`` (default: its ``aliases``).
        """
        local = email.split("@", 1)[0]
        given = given_name if given_name is not None else local.split(".")[0].capitalize()
        family = family_name if family_name is not None else (local.split(".")[1:] or [""])[0].capitalize()
        full = f"{given} {family}".strip()
        aliases = list(aliases)
        user: dict[str, Any] = {
            "kind": "admin#directory#user",
            "id": str(next(self._ids)),
            "etag": f'"{secrets.token_urlsafe(12)}"',
            "primaryEmail": email,
            "name": {"givenName": given, "familyName": family, "fullName": full},
            "isAdmin": admin,
            "isDelegatedAdmin": False,
            "lastLoginTime": "2024-05-02T08:00:00.000Z",
            "creationTime": "2021-01-04T09:00:00.000Z",
            "agreedToTerms": True,
            "suspended": suspended,
            "archived": archived,
            "changePasswordAtNextLogin": False,
            "ipWhitelisted": False,
            "emails": [{"address": email, "primary": True}] + [{"address": a} for a in aliases],
            "organizations": [],
            "phones": [dict(p) for p in phones],
            "customerId": self.customer_id,
            "orgUnitPath": org_unit,
            "isMailboxSetup": mailbox,
            "isEnrolledIn2Sv": False,
            "isEnforcedIn2Sv": False,
            "includeInGlobalAddressList": True,
        }
        if title or department:
            org = {"primary": True, "customType": ""}
            if title:
                org["title"] = title
            if department:
                org["department"] = department
            user["organizations"].append(org)
        if aliases:
            user["aliases"] = aliases
        if custom_schemas:
            user["customSchemas"] = custom_schemas
        send_as: dict[str, dict[str, Any]] = {
            email.lower(): {
                "sendAsEmail": email,
                "displayName": full,
                "replyToAddress": "",
                "signature": signature,
                "isPrimary": True,
                "isDefault": True,
            }
        }
        for alias in aliases if send_as_aliases is None else send_as_aliases:
            send_as[alias.lower()] = {
                "sendAsEmail": alias,
                "displayName": full,
                "replyToAddress": "",
                "signature": "",
                "isDefault": False,
                "treatAsAlias": True,
                "verificationStatus": "accepted",
            }
        with self.lock:
            self.users[email.lower()] = user
            self.send_as_settings[email.lower()] = send_as
        return user

    def seed_users(self, n: int, *, prefix: str = "user", aliases_every: int = 0, **kwargs: Any) -> list[str]:
        """Add ``n`` users ``{prefix}{i:05d}@{domain}``; every ``aliases_every``-th one gets an alias."""
        emails = []
        for i in range(n):
            email = f"{prefix}{i:05d}@{self.domain}"
            aliases = [f"{prefix}{i:05d}.alias@{self.domain}"] if aliases_every and i % aliases_every == 0 else []
            self.add_user(email, given_name=f"Given{i}", family_name=f"Family{i}", aliases=aliases, **kwargs)
            emails.append(email)
        return emails

    def add_group(
        self,
        email: str,
        *,
        name: str | None = None,
        members: Iterable[str] = (),
        owners: Iterable[str] = (),
        description: str = "",
    ) -> dict[str, Any]:
        """Add a group. Members are user or group emails (nested groups give derived membership)."""
        group = {
            "kind": "admin#directory#group",
            "id": secrets.token_hex(8),
            "etag": f'"{secrets.token_urlsafe(12)}"',
            "email": email,
            "name": name or email.split("@", 1)[0],
            "description": description,
            "adminCreated": True,
            "_members": [(m, "MEMBER") for m in members] + [(o, "OWNER") for o in owners],
        }
        group["directMembersCount"] = str(len(group["_members"]))
        with self.lock:
            self.groups[email.lower()] = group
        return {k: v for k, v in group.items() if not k.startswith("_")}

    def set_mailbox(self, user: str, enabled: bool) -> None:
        """Mail service on/off for a user: off answers 400 failedPrecondition "Mail service not enabled"."""
        with self.lock:
            self.users[user.lower()]["isMailboxSetup"] = enabled

    def set_signature(self, user: str, signature: str, send_as: str | None = None) -> None:
        """Seed a stored signature without recording a write."""
        with self.lock:
            self.send_as_settings[user.lower()][(send_as or user).lower()]["signature"] = signature

    def expire_tokens(self) -> None:
        """Make every issued access token invalid (clients must refresh)."""
        with self.lock:
            self.tokens.clear()

    # ------------------------------------------------------------------ faults

    def inject(
        self, kind: str, route: str = "*", *, user: str | None = None, times: int | None = None, **params: Any
    ) -> Fault:
        """Add a fault. Kinds: ``error`` (status/reason/message/retry_after), ``rate_limit``,
        ``user_rate_limit``,
        ``latency`` (seconds), ``drop`` (after_apply), ``unauthorized_client``, ``invalid_grant``,
        ``mail_not_enabled``, ``signature_too_long``. Returns the fault (``.hits`` counts applications).
        """
        if kind in ("unauthorized_client", "invalid_grant") and route == "*":
            route = "token"
        fault = Fault(kind=kind, route=route, user=user, times=times, **params)
        with self.lock:
            self.faults.append(fault)
        return fault

    def rate_limit(
        self,
        route: str = "*",
        *,
        user: str | None = None,
        times: int | None = 1,
        retry_after: int | None = None,
    ) -> Fault:
        """429 rateLimitExceeded / RESOURCE_EXHAUSTED; a Retry-After header when ``retry_after`` is set."""
        return self.inject("rate_limit", route, user=user, times=times, retry_after=retry_after)

    def user_rate_limit(
        self, route: str = "*", *, user: str | None = None, times: int | None = 1, retry_in: float = 30.0,
        status: int = 403,
    ) -> Fault:  # fmt: skip
        """403 (or 429) userRateLimitExceeded, "User-rate limit exceeded.  Retry after <RFC3339>", as Gmail answers
        a mailbox over its per-user quota; ``retry_in=3600`` is the hour-long wait Gmail sends for a mailbox that
        exhausted a daily or sustained limit."""
        return self.inject("user_rate_limit", route, user=user, times=times, retry_in=retry_in, status=status)

    def server_error(
        self,
        route: str = "*",
        *,
        status: int = 500,
        user: str | None = None,
        times: int | None = 1,
        retry_after: int | None = None,
    ) -> Fault:
        """500 backendError / INTERNAL or 503 backendError / UNAVAILABLE."""
        return self.inject("error", route, user=user, times=times, status=status, retry_after=retry_after)

    def slow(self, seconds: float, route: str = "*", *, user: str | None = None, times: int | None = None) -> Fault:
        return self.inject("latency", route, user=user, times=times, seconds=seconds)

    def drop(
        self, route: str = "*", *, user: str | None = None, times: int | None = 1, after_apply: bool = False
    ) -> Fault:
        """Close the socket without answering. ``after_apply``: the write is applied first (as when a
        response is lost on the way back). httplib2 silently retries a request once on a reused connection
        that closes before answering, so ``times=1`` is usually invisible to the caller except as a repeat."""
        return self.inject("drop", route, user=user, times=times, after_apply=after_apply)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _faults_for(self, route: str, user: str | None, *, in_batch: bool = False) -> list[Fault]:
        """Matching faults, hits counted: every matching latency fault, then at most one terminal fault."""
        out: list[Fault] = []
        with self.lock:
            terminal_seen = False
            for f in self.faults:
                if in_batch and f.kind == "drop":
                    continue
                if not f.matches(route, user):
                    continue
                if f.kind == "latency":
                    f.hits += 1
                    out.append(f)
                elif not terminal_seen:
                    terminal_seen = True
                    f.hits += 1
                    out.append(f)
        return out

    # ------------------------------------------------------------------ inspection

    def signature(self, user: str, send_as: str | None = None) -> str:
        with self.lock:
            return self.send_as_settings[user.lower()][(send_as or user).lower()]["signature"]

    def send_as(self, user: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(s) for s in self.send_as_settings[user.lower()].values()]

    def writes_for(self, user: str, send_as: str | None = None) -> list[Write]:
        with self.lock:
            return [
                w
                for w in self.writes
                if w.user.lower() == user.lower() and (send_as is None or w.send_as.lower() == send_as.lower())
            ]

    def duplicate_writes(self) -> list[Write]:
        """Writes that repeated an earlier write of the same signature to the same (user, sendAs)."""
        seen: set[tuple[str, str, str]] = set()
        dups = []
        with self.lock:
            for w in self.writes:
                key = (w.user.lower(), w.send_as.lower(), w.signature)
                if key in seen:
                    dups.append(w)
                seen.add(key)
        return dups

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    def reset_counters(self) -> None:
        with self.lock:
            self.writes.clear()
            self.requests.clear()
            self.request_log.clear()
            self.tokens_issued = 0
            self.max_in_flight = 0

    # ------------------------------------------------------------------ dispatch

    def _route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for m, rx, name in _ROUTES:
            match = rx.match(path)
            if match and m == method:
                return name, {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        return None

    def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        in_batch: bool = False,
        default_auth: str | None = None,
    ) -> _Response:
        """Answer one request (a top-level HTTP request or a batch part). May raise _Drop."""
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        found = self._route(method, path)
        route, params = found if found else ("unknown", {})
        user: str | None = None
        response: _Response | None = None
        try:
            if not in_batch and self.latency:
                time.sleep(self.latency)
            if found is None:
                any_path = any(rx.match(path) for _, rx, _ in _ROUTES)
                response = (
                    google_error(405, "Method Not Allowed", "methodNotAllowed", status_name="UNIMPLEMENTED")
                    if any_path
                    else google_error(404, f"Not Found: {path}", "notFound")
                )
                return response
            if route == "token":
                response = self._token(body, fault_route=route)
                user = getattr(response, "subject", None)
                return response
            if route == "batch":
                response = self._batch(headers, body, path)
                return response
            auth = headers.get("authorization") or default_auth
            token, err = self._authenticate(auth)
            if err is not None:
                response = err
                return response
            assert token is not None
            user = token.subject
            if "userId" in params:
                user = token.subject if params["userId"] == "me" else params["userId"]
            faults = self._faults_for(route, user, in_batch=in_batch)
            terminal = None
            for f in faults:
                if f.kind == "latency":
                    time.sleep(f.seconds)
                else:
                    terminal = f
            drop_after = False
            if terminal is not None:
                if terminal.kind == "drop" and terminal.after_apply:
                    drop_after = True
                elif terminal.kind == "drop":
                    raise _Drop
                else:
                    response = self._fault_response(terminal)
                    if response is not None:
                        return response
            if not token.scopes & ROUTE_SCOPES[route]:
                response = google_error(
                    403,
                    "Request had insufficient authentication scopes.",
                    "insufficientPermissions",
                    extra={},
                    headers={
                        "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                        'error="insufficient_scope", scope="' + " ".join(sorted(ROUTE_SCOPES[route])) + '"'
                    },
                )
                return response
            handler = getattr(self, "_r_" + route.replace(".", "_"))
            response = handler(token, params, query, body, terminal=terminal, in_batch=in_batch)
            if drop_after:
                raise _Drop
            return response
        except _Drop:
            response = None
            raise
        finally:
            self._log(method, path, route, user, response.status if response else 0, in_batch)

    def _log(self, method: str, path: str, route: str, user: str | None, status: int, batched: bool) -> None:
        with self.lock:
            self.requests[route] += 1
            self.request_log.append(LoggedRequest(time.time(), method, path, route, user, status, batched))

    def _fault_response(self, f: Fault) -> _Response | None:
        headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
        if f.kind == "rate_limit":
            return google_error(429, f.message or "Rate Limit Exceeded", "rateLimitExceeded", headers=headers)
        if f.kind == "user_rate_limit":
            at = _rfc3339(time.time() + f.retry_in)
            status = f.status or 403
            return google_error(
                status,
                f"User-rate limit exceeded.  Retry after {at}",
                "userRateLimitExceeded",
                status_name="RESOURCE_EXHAUSTED" if status == 429 else "PERMISSION_DENIED",
                headers=headers,
            )
        if f.kind == "error":
            reason, message = _DEFAULT_REASONS.get(f.status, ("backendError", "Backend Error"))
            return google_error(f.status, f.message or message, f.reason or reason, headers=headers)
        if f.kind == "mail_not_enabled":
            return _mail_not_enabled()
        # signature_too_long is applied by the write handlers; token faults only at the token endpoint.
        return None

    # ------------------------------------------------------------------ auth

    def _authenticate(self, auth: str | None) -> tuple[_Token | None, _Response | None]:
        www = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
        if not auth or not auth.lower().startswith("bearer "):
            return None, google_error(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token, login "
                "cookie or other valid authentication credential. "
                "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "required",
                status_name="UNAUTHENTICATED",
                headers=www,
                extra={"location": "Authorization", "locationType": "header"},
            )
        value = auth.split(" ", 1)[1].strip()
        with self.lock:
            token = self.tokens.get(value)
            if token is not None and token.expires_at <= time.time():
                del self.tokens[value]
                token = None
        if token is None:
            return None, google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential. "
                "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "authError",
                status_name="UNAUTHENTICATED",
                headers=www,
                extra={"location": "Authorization", "locationType": "header"},
            )
        return token, None

    def _token(self, body: bytes, *, fault_route: str) -> _Response:
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}

        def oauth_error(status: int, error: str, description: str) -> _Response:
            return _Response.json(status, {"error": error, "error_description": description})

        grant = form.get("grant_type", "")
        if grant != JWT_BEARER:
            return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return oauth_error(400, "invalid_grant", "Invalid JWT: Unable to parse.")
        with self.lock:
            account = self.service_accounts.get(unverified.get("iss", ""))
        if account is None:
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if header.get("kid") not in (None, account.key_id):
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            claims = jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                audience=[self.token_uri, "https://oauth2.googleapis.com/token"],
                options={"require": ["iss", "aud", "iat", "exp"]},
                leeway=300,
            )
        except jwt.InvalidSignatureError:
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        except jwt.PyJWTError:
            return oauth_error(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.",
            )
        if claims["exp"] - claims["iat"] > 3600 + 300:
            return oauth_error(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes)"
                " and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        subject = claims.get("sub")
        scopes = frozenset(claims.get("scope", "").split())
        if not scopes:
            return oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")

        faults = self._faults_for(fault_route, subject)
        for f in faults:
            if f.kind == "latency":
                time.sleep(f.seconds)
            elif f.kind == "drop":
                raise _Drop
            elif f.kind == "unauthorized_client":
                return _unauthorized_client()
            elif f.kind == "invalid_grant":
                return oauth_error(400, "invalid_grant", f.message or "Invalid email or User ID")
            else:
                resp = self._fault_response(f)
                if resp is not None:
                    return resp

        if subject is not None:
            with self.lock:
                known = subject.lower() in self.users
                granted = self.delegation.get(account.client_id, set())
            if not known:
                return oauth_error(400, "invalid_grant", "Invalid email or User ID")
            if not scopes <= granted:
                return _unauthorized_client()
        value = "ya29.fake-" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[value] = _Token(subject, scopes, account.client_id, time.time() + TOKEN_LIFETIME_S)
            self.tokens_issued += 1
        resp = _Response.json(200, {"access_token": value, "expires_in": TOKEN_LIFETIME_S, "token_type": "Bearer"})
        resp.subject = subject  # type: ignore[attr-defined]  # for the request log
        return resp

    # ------------------------------------------------------------------ directory

    def _require_admin(self, token: _Token) -> _Response | None:
        with self.lock:
            user = self.users.get((token.subject or "").lower())
        if user is None or not user["isAdmin"]:
            return google_error(403, "Not Authorized to access this resource/api", "forbidden")
        return None

    def _page(
        self,
        kind: str,
        key: tuple[Any, ...],
        items: list[Any],
        query: dict[str, str],
        default_max: int,
        cap: int,
    ) -> tuple[list[Any], str | None] | _Response:
        try:
            max_results = int(query.get("maxResults") or default_max)
        except ValueError:
            return google_error(400, "Invalid value for maxResults", "invalid")
        if max_results < 1:
            return google_error(400, "Invalid Input: maxResults", "invalid")
        max_results = min(max_results, cap)
        offset = 0
        page_token = query.get("pageToken")
        if page_token:
            with self.lock:
                entry = self._page_tokens.get(page_token)
            if entry is None or entry[0] != kind or entry[1] != key:
                return google_error(400, "Invalid Input: pageToken", "invalid")
            offset = entry[2]
        chunk = items[offset : offset + max_results]
        next_token = None
        if offset + max_results < len(items):
            next_token = base64.urlsafe_b64encode(os.urandom(36)).decode().rstrip("=")
            with self.lock:
                self._page_tokens[next_token] = (kind, key, offset + max_results)
        return chunk, next_token

    def _user_public(self, user: dict[str, Any], projection: str) -> dict[str, Any]:
        out = json.loads(json.dumps(user))
        if projection != "full":
            out.pop("customSchemas", None)
        if not out["organizations"]:
            del out["organizations"]
        if not out["phones"]:
            del out["phones"]
        return out

    def _r_users_list(
        self, token: _Token, params: dict[str, str], query: dict[str, str], body: bytes, **_: Any
    ) -> _Response:
        if err := self._require_admin(token):
            return err
        customer, domain = query.get("customer"), query.get("domain")
        if not customer and not domain:
            return google_error(400, "Bad Request", "badRequest")
        if customer and customer not in ("my_customer", self.customer_id):
            return google_error(400, "Bad Request", "badRequest")
        if domain and domain.lower() != self.domain.lower():
            return google_error(403, "Not Authorized to access this resource/api", "forbidden")
        projection = query.get("projection", "basic")
        if projection not in ("basic", "full", "custom"):
            return google_error(400, f"Invalid value for projection: {projection}", "invalidParameter")
        try:
            predicate = _parse_user_query(query.get("query", ""))
        except ValueError as exc:
            return google_error(400, f"Invalid Input: {exc}", "invalid")
        with self.lock:
            users = sorted((u for u in self.users.values() if predicate(u)), key=lambda u: u["primaryEmail"].lower())
            users = [self._user_public(u, projection) for u in users]
        if query.get("sortOrder", "").upper() == "DESCENDING":
            users.reverse()
        key = (customer or domain, query.get("query", ""), projection, query.get("sortOrder", ""))
        paged = self._page("users", key, users, query, 100, 500)
        if isinstance(paged, _Response):
            return paged
        chunk, next_token = paged
        payload: dict[str, Any] = {"kind": "admin#directory#users", "etag": '"fake"', "users": chunk}
        if not chunk:
            del payload["users"]
        if next_token:
            payload["nextPageToken"] = next_token
        return _Response.json(200, payload)

    def _r_users_get(
        self, token: _Token, params: dict[str, str], query: dict[str, str], body: bytes, **_: Any
    ) -> _Response:
        if err := self._require_admin(token):
            return err
        key = params["userKey"].lower()
        with self.lock:
            user = self.users.get(key) or next(
                (u for u in self.users.values() if u["id"] == key or key in [a.lower() for a in u.get("aliases", [])]),
                None,
            )
            if user is None:
                return google_error(404, "Resource Not Found: userKey", "notFound")
            return _Response.json(200, self._user_public(user, query.get("projection", "basic")))

    def _find_group(self, key: str) -> dict[str, Any] | None:
        key = key.lower()
        return self.groups.get(key) or next((g for g in self.groups.values() if g["id"] == key), None)

    def _group_public(self, group: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in group.items() if not k.startswith("_")}

    def _r_groups_list(
        self, token: _Token, params: dict[str, str], query: dict[str, str], body: bytes, **_: Any
    ) -> _Response:
        if err := self._require_admin(token):
            return err
        customer, domain, user_key = query.get("customer"), query.get("domain"), query.get("userKey")
        if not (customer or domain or user_key):
            return google_error(400, "Bad Request", "badRequest")
        if customer and customer not in ("my_customer", self.customer_id):
            return google_error(400, "Bad Request", "badRequest")
        with self.lock:
            groups = sorted(self.groups.values(), key=lambda g: g["email"].lower())
            if user_key:
                groups = [g for g in groups if any(m.lower() == user_key.lower() for m, _ in g["_members"])]
            groups = [self._group_public(g) for g in groups]
        paged = self._page("groups", (customer, domain, user_key), groups, query, 200, 200)
        if isinstance(paged, _Response):
            return paged
        chunk, next_token = paged
        payload: dict[str, Any] = {"kind": "admin#directory#groups", "etag": '"fake"'}
        if chunk:
            payload["groups"] = chunk
        if next_token:
            payload["nextPageToken"] = next_token
        return _Response.json(200, payload)

    def _member_entry(self, email: str, role: str) -> dict[str, Any]:
        user = self.users.get(email.lower())
        group = self.groups.get(email.lower())
        if group is not None:
            return {
                "kind": "admin#directory#member",
                "etag": '"fake"',
                "id": group["id"],
                "email": group["email"],
                "role": role,
                "type": "GROUP",
                "status": "ACTIVE",
            }
        entry = {
            "kind": "admin#directory#member",
            "etag": '"fake"',
            "email": email,
            "role": role,
            "type": "USER",
            "status": "ACTIVE",
        }
        if user is not None:
            entry["id"] = user["id"]
            entry["email"] = user["primaryEmail"]
            if user["suspended"]:
                entry["status"] = "SUSPENDED"
        else:
            entry["type"] = "CUSTOMER" if email == "*" else "USER"
        return entry

    def _r_members_list(
        self, token: _Token, params: dict[str, str], query: dict[str, str], body: bytes, **_: Any
    ) -> _Response:
        if err := self._require_admin(token):
            return err
        derived = query.get("includeDerivedMembership", "false").lower() == "true"
        roles = {r.strip().upper() for r in query.get("roles", "").split(",") if r.strip()}
        with self.lock:
            group = self._find_group(params["groupKey"])
            if group is None:
                return google_error(404, "Resource Not Found: groupKey", "notFound")
            members: list[dict[str, Any]] = []
            seen: set[str] = set()

            def walk(g: dict[str, Any], depth: int) -> None:
                for email, role in g["_members"]:
                    if email.lower() in seen:
                        continue
                    seen.add(email.lower())
                    entry = self._member_entry(email, role if depth == 0 else "MEMBER")
                    members.append(entry)
                    nested = self.groups.get(email.lower())
                    if derived and nested is not None and depth < 20:
                        walk(nested, depth + 1)

            walk(group, 0)
        if roles:
            members = [m for m in members if m["role"] in roles]
        paged = self._page("members", (group["id"], derived, tuple(sorted(roles))), members, query, 200, 200)
        if isinstance(paged, _Response):
            return paged
        chunk, next_token = paged
        payload: dict[str, Any] = {"kind": "admin#directory#members", "etag": '"fake"'}
        if chunk:
            payload["members"] = chunk
        if next_token:
            payload["nextPageToken"] = next_token
        return _Response.json(200, payload)

    # ------------------------------------------------------------------ gmail

    def _mailbox(self, token: _Token, params: dict[str, str]) -> tuple[str | None, _Response | None]:
        if token.subject is None:
            return None, google_error(
                400, "Precondition check failed.", "failedPrecondition", status_name="FAILED_PRECONDITION"
            )
        user_id = params["userId"]
        if user_id != "me" and user_id.lower() != token.subject.lower():
            return None, google_error(403, f"Delegation denied for {token.subject}", "forbidden")
        email = token.subject.lower()
        with self.lock:
            user = self.users.get(email)
            if user is None:
                return None, google_error(404, "Requested entity was not found.", "notFound")
            if not user["isMailboxSetup"] or user["suspended"]:
                return None, _mail_not_enabled()
        return email, None

    def _r_sendAs_list(
        self, token: _Token, params: dict[str, str], query: dict[str, str], body: bytes, **_: Any
    ) -> _Response:
        email, err = self._mailbox(token, params)
        if err is not None:
            return err
        with self.lock:
            items = [dict(s) for s in self.send_as_settings[email].values()]
        return _Response.json(200, {"sendAs": items})

    def _r_sendAs_get(
        self, token: _Token, params: dict[str, str], query: dict[str, str], body: bytes, **_: Any
    ) -> _Response:
        email, err = self._mailbox(token, params)
        if err is not None:
            return err
        with self.lock:
            item = self.send_as_settings[email].get(params["sendAsEmail"].lower())
            if item is None:
                return google_error(404, "Requested entity was not found.", "notFound", status_name="NOT_FOUND")
            return _Response.json(200, dict(item))

    def _r_sendAs_patch(
        self, token: _Token, params: dict[str, str], query: dict[str, str], body: bytes, **kw: Any
    ) -> _Response:
        return self._write(token, params, body, method="patch", **kw)

    def _r_sendAs_update(
        self, token: _Token, params: dict[str, str], query: dict[str, str], body: bytes, **kw: Any
    ) -> _Response:
        return self._write(token, params, body, method="update", **kw)

    def _write(
        self,
        token: _Token,
        params: dict[str, str],
        body: bytes,
        *,
        method: str,
        terminal: Fault | None,
        in_batch: bool,
    ) -> _Response:
        email, err = self._mailbox(token, params)
        if err is not None:
            return err
        try:
            patch = json.loads(body or b"{}")
            if not isinstance(patch, dict):
                raise ValueError
        except ValueError:
            return google_error(400, "Invalid JSON payload received.", "badRequest")
        key = params["sendAsEmail"].lower()
        with self.lock:
            current = self.send_as_settings[email].get(key)
        if current is None:
            return google_error(404, "Requested entity was not found.", "notFound", status_name="NOT_FOUND")
        signature = patch.get("signature")
        if signature is not None and not isinstance(signature, str):
            return google_error(400, "Invalid value at 'send_as.signature' (TYPE_STRING)", "invalid")
        too_long = terminal is not None and terminal.kind == "signature_too_long"
        if too_long or (signature is not None and len(signature) > MAX_SIGNATURE_CHARS):
            return google_error(400, "Signature is too long.", "invalidArgument", status_name="INVALID_ARGUMENT")
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait > 0:
                return google_error(
                    429,
                    "Rate Limit Exceeded",
                    "rateLimitExceeded",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        with self.lock:
            current = self.send_as_settings[email][key]
            old_signature = current.get("signature", "")
            if method == "update":
                replaced = {
                    k: current[k]
                    for k in ("sendAsEmail", "isPrimary", "treatAsAlias", "verificationStatus")
                    if k in current
                }
                replaced.update(
                    {
                        "displayName": "",
                        "replyToAddress": "",
                        "signature": "",
                        "isDefault": current.get("isDefault", False),
                    }
                )
                current = replaced
            for field in ("displayName", "replyToAddress", "signature", "isDefault", "treatAsAlias"):
                if field in patch:
                    current[field] = patch[field]
            self.send_as_settings[email][key] = current
            new_signature = current.get("signature", "")
            self.writes.append(
                Write(
                    time.time(),
                    self.users[email]["primaryEmail"],
                    current["sendAsEmail"],
                    new_signature,
                    method,
                    new_signature != old_signature,
                    in_batch,
                )
            )
            return _Response.json(200, dict(current))

    # ------------------------------------------------------------------ batch

    def _batch(self, headers: dict[str, str], body: bytes, path: str) -> _Response:
        ctype = headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/mixed") or "boundary" not in ctype:
            return google_error(400, "Invalid batch request: expected multipart/mixed with a boundary.", "badRequest")
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        parts = message.get_payload() if message.is_multipart() else []
        if not isinstance(parts, list) or not parts:
            return google_error(400, "Invalid batch request: no parts.", "badRequest")
        if len(parts) > MAX_BATCH_PARTS:
            return google_error(400, f"Too many requests in batch. The maximum is {MAX_BATCH_PARTS}.", "badRequest")
        outer_auth = headers.get("authorization")
        faults = self._faults_for("batch", None)
        for f in faults:
            if f.kind == "latency":
                time.sleep(f.seconds)
            elif f.kind == "drop":
                raise _Drop
            else:
                resp = self._fault_response(f)
                if resp is not None:
                    return resp
        boundary = "batch_" + secrets.token_hex(12)
        out: list[str] = []
        for part in parts:
            content_id = part.get("Content-ID", "")
            raw = part.get_payload(decode=False)
            if isinstance(raw, list):
                return google_error(400, "Invalid batch request: nested multipart.", "badRequest")
            status, text = self._batch_part(raw, outer_auth)
            response_id = content_id
            if content_id.startswith("<"):
                response_id = "<response-" + content_id[1:]
            out.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n"
                + (f"Content-ID: {response_id}\r\n" if content_id else "")
                + "\r\n"
                + text
            )
            del status
        payload = "\r\n".join(out) + f"\r\n--{boundary}--\r\n"
        return _Response(200, payload.encode(), {"Content-Type": f"multipart/mixed; boundary={boundary}"})

    def _batch_part(self, raw: str, outer_auth: str | None) -> tuple[int, str]:
        head, _, part_body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            resp = google_error(400, "Invalid request line in batch part.", "badRequest")
        else:
            part_headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    part_headers[k.strip().lower()] = v.strip()
            try:
                resp = self.handle(
                    method, target, part_headers, part_body.encode(), in_batch=True, default_auth=outer_auth
                )
            except _Drop:  # pragma: no cover - drops are not applied inside batches
                resp = google_error(503, "The service is currently unavailable.", "backendError")
        reason = http.HTTPStatus(resp.status).phrase if resp.status in http.HTTPStatus._value2member_map_ else ""
        header_lines = "".join(f"{k}: {v}\r\n" for k, v in resp.headers.items())
        text = (
            f"HTTP/1.1 {resp.status} {reason}\r\n{header_lines}Content-Length: {len(resp.body)}\r\n\r\n"
            + resp.body.decode()
        )
        return resp.status, text


def _mail_not_enabled() -> _Response:
    return google_error(400, "Mail service not enabled", "failedPrecondition", status_name="FAILED_PRECONDITION")


def _unauthorized_client() -> _Response:
    return _Response.json(
        401,
        {
            "error": "unauthorized_client",
            "error_description": "Client is unauthorized to retrieve access tokens using this method, "
            "or client not authorized for any of the scopes requested.",
        },
    )


_QUERY_TERM = re.compile(r"""(\w+)\s*([=:])\s*('[^']*'|"[^"]*"|\S+)""")


def _parse_user_query(q: str) -> Any:
    """Directory users.list ``query``: isSuspended, isArchived, isAdmin, orgUnitPath, email (``*`` prefix)."""
    checks = []
    pos = 0
    q = q.strip()
    while pos < len(q):
        m = _QUERY_TERM.match(q, pos)
        if not m:
            raise ValueError(q[pos:])
        field, _op, value = m.group(1), m.group(2), m.group(3).strip("'\"")
        pos = m.end()
        while pos < len(q) and q[pos] == " ":
            pos += 1
        if field in ("isSuspended", "isArchived", "isAdmin"):
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{field}={value}")
            attr = {"isSuspended": "suspended", "isArchived": "archived", "isAdmin": "isAdmin"}[field]
            want = value.lower() == "true"
            checks.append(lambda u, a=attr, w=want: bool(u[a]) is w)
        elif field == "orgUnitPath":
            checks.append(lambda u, v=value: u["orgUnitPath"] == v or u["orgUnitPath"].startswith(v.rstrip("/") + "/"))
        elif field == "email":
            if value.endswith("*"):
                checks.append(lambda u, v=value[:-1].lower(): u["primaryEmail"].lower().startswith(v))
            else:
                checks.append(lambda u, v=value.lower(): u["primaryEmail"].lower() == v)
        else:
            raise ValueError(field)
    return lambda u: all(c(u) for c in checks)


# --------------------------------------------------------------------------------------------- HTTP layer


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (or a dropped-connection fault) are normal here; anything else is reported.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: FakeGoogle
    protocol_version = "HTTP/1.1"
    server_version = "FakeGoogle/1.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        return

    def _serve(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client died mid-request: a server applies nothing
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fake.lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            try:
                resp = fake.handle(self.command, self.path, headers, body)
            except _Drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            except Exception as exc:  # a bug in the fake: answer 500 and say so
                resp = google_error(500, f"FakeGoogle internal error: {exc!r}", "backendError")
            # One write for head and body (with TCP_NODELAY): no Nagle / delayed-ACK stalls on loopback.
            phrase = self.responses.get(resp.status, ("",))[0]
            head = [f"HTTP/1.1 {resp.status} {phrase}", f"Date: {self.date_time_string()}"]
            head += [f"{k}: {v}" for k, v in resp.headers.items()]
            head.append(f"Content-Length: {len(resp.body)}")
            if self.close_connection:
                head.append("Connection: close")
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body)
            self.log_request(resp.status, len(resp.body))
        finally:
            with fake.lock:
                fake.in_flight -= 1

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"


@contextlib.contextmanager
def fake_google(**kwargs: Any) -> Iterator[FakeGoogle]:
    """``with fake_google(latency=0.02) as fake: ...`` -- also keeps proxies away from loopback."""
    saved = {k: os.environ.get(k) for k in ("NO_PROXY", "no_proxy")}
    for k, old in saved.items():
        os.environ[k] = ",".join(filter(None, [old, LOOPBACK_NO_PROXY]))
    try:
        with FakeGoogle(**kwargs) as fake:
            yield fake
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def loopback_http(timeout: float = 30.0) -> httplib2.Http:
    """An httplib2.Http that never goes through a proxy (for ``AuthorizedHttp(creds, http=...)``)."""
    return httplib2.Http(timeout=timeout, proxy_info=None)


@pytest.fixture
def google_fake() -> Iterator[FakeGoogle]:
    """Pytest fixture: a started FakeGoogle. Import it into a test module or conftest to use it."""
    with fake_google() as fake:
        yield fake
