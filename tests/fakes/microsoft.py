# ruff: noqa: E501  (Entra/Exchange error texts are kept on one line each where possible)
"""A local fake of the Microsoft 365 HTTP contracts Relais talks to.

Three HTTPS servers on 127.0.0.1 (ephemeral ports, one throwaway CA from :mod:`tests.fakes.tls`):

* **authority** (``login.microsoftonline.com``): OpenID metadata, JWKS, the v2 authorize endpoint (signs in
  :meth:`FakeMicrosoft.sign_in_as`'s user at once and redirects back with a code), and the v2 token endpoint
  (client_credentials with a client secret or a ``private_key_jwt`` client assertion; authorization_code with
  PKCE, issuing an ID token with the nonce, ``tid`` and ``groups``).
* **graph** (``graph.microsoft.com``): ``/v1.0`` and ``/beta`` users, delta, groups, photos, ``$batch``,
  mailbox ``userConfigurations``.
* **exchange** (``outlook.office365.com``): ``/adminapi/beta/{tenant}/InvokeCommand`` and ``$batch``.

The real client libraries (msal, requests, httpx) run against it unmodified; see
``docs/testing-fakes-microsoft.md`` for the API and the contract choices.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .tls import make_ca_and_server_cert

GRAPH_RESOURCE = "https://graph.microsoft.com"
EXCHANGE_RESOURCE = "https://outlook.office365.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
GRAPH_SCOPE = GRAPH_RESOURCE + "/.default"
EXCHANGE_SCOPE = EXCHANGE_RESOURCE + "/.default"

DEFAULT_GRAPH_ROLES = ("User.Read.All", "GroupMember.Read.All", "MailboxConfigItem.ReadWrite")
DEFAULT_EXCHANGE_ROLES = ("Exchange.ManageAsApp",)

USER_READ_ROLES = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
PHOTO_READ_ROLES = USER_READ_ROLES | {"ProfilePhoto.Read.All"}
GROUP_MEMBER_ROLES = {
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
CONFIG_READ_ROLES = {"MailboxConfigItem.Read", "MailboxConfigItem.ReadWrite"}
CONFIG_WRITE_ROLES = {"MailboxConfigItem.ReadWrite"}

# Properties Graph returns for a user when no $select is given (the "default 11").
DEFAULT_USER_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
KNOWN_USER_PROPERTIES = DEFAULT_USER_PROPERTIES + (
    "department",
    "companyName",
    "employeeId",
    "accountEnabled",
    "city",
    "country",
    "state",
    "streetAddress",
    "postalCode",
    "faxNumber",
    "otherMails",
    "proxyAddresses",
    "usageLocation",
    "userType",
    "createdDateTime",
    "employeeType",
    "onPremisesSyncEnabled",
    "onPremisesImmutableId",
)
_USER_PROP_BY_LOWER = {p.lower(): p for p in KNOWN_USER_PROPERTIES}

# OWA.UserOptions dictionary keys that carry the classic (non-roaming) signature.
SIGNATURE_KEYS = {
    "signaturehtml": "SignatureHtml",
    "signaturetext": "SignatureText",
    "autoaddsignature": "AutoAddSignature",
    "autoaddsignatureonreply": "AutoAddSignatureOnReply",
}
MESSAGE_CONFIGURATION_PARAMETERS = {
    "Identity",
    "SignatureHtml",
    "SignatureText",
    "AutoAddSignature",
    "AutoAddSignatureOnReply",
    "SignatureTextOnMobile",
    "UseDefaultSignatureOnMobile",
    "DefaultFormat",
    "DefaultFontName",
    "DefaultFontSize",
    "Confirm",
    "WhatIf",
    "DomainController",
    "ErrorAction",
    "WarningAction",
}


def format_retry_after(seconds: float) -> str:
    """``Retry-After`` as Microsoft sends it: integer or decimal seconds ("2", "0.35", "2.128")."""
    seconds = max(seconds, 0.001)
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text or "0.001"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(ts: dt.datetime | None = None) -> str:
    return (ts or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(n: int) -> str:
    return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lstrip("$").lower() in {"true", "1", "yes"}
    return bool(value)


# ----------------------------------------------------------------------------------------------------
# Data records
# ----------------------------------------------------------------------------------------------------


@dataclass
class App:
    """An app registration + its service principal in the fake tenant."""

    client_id: str
    display_name: str = "Relais"
    secrets: list[str] = field(default_factory=list)
    certificates: list[x509.Certificate] = field(default_factory=list)
    graph_roles: set[str] = field(default_factory=set)
    exchange_roles: set[str] = field(default_factory=set)
    exchange_admin_role: bool = True  # Entra role (Exchange Administrator or a custom role group)
    consented: bool = True  # admin consent granted for the application permissions
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    redirect_uris: list[str] = field(default_factory=list)  # Web platform reply URLs (sign-in, auth-code flow)
    group_claims: bool = True  # Token configuration → groups claim (security groups, as object ids)

    def roles_for(self, resource: str) -> set[str]:
        return self.graph_roles if resource == GRAPH_RESOURCE else self.exchange_roles


@dataclass
class AuthorizationCode:
    """An authorization code the authorize endpoint issued (single use, 10 minutes)."""

    client_id: str
    redirect_uri: str
    user_id: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float
    redeemed: bool = False


@dataclass
class SignatureWrite:
    """One signature write as the fake received it."""

    mailbox: str  # user principal name (lower case)
    at: dt.datetime
    via: str  # "exchange" (Set-MailboxMessageConfiguration) or "graph" (userConfiguration PATCH/POST)
    signature_html: str | None
    signature_text: str | None
    auto_add_signature: bool | None
    auto_add_signature_on_reply: bool | None
    applied: bool  # False: roaming signatures were on, the user sees nothing of it
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    service: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int = 0
    in_batch: bool = False
    cmdlet: str | None = None
    mailbox: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    """An injected failure. Matching requests (front door: before auth) get ``status``."""

    status: int
    service: str | None = None
    method: str | None = None
    path_contains: str | None = None
    cmdlet: str | None = None
    mailbox: str | None = None
    retry_after: str | float | None = None
    times: int | None = 1  # None: forever
    code: str | None = None
    message: str | None = None
    body: Any = None
    hits: int = 0

    def matches(self, req: _Request, cmdlet: str | None, mailbox: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.service and self.service != req.service:
            return False
        if self.method and self.method.upper() != req.method:
            return False
        if self.path_contains and self.path_contains.lower() not in (req.path + "?" + req.raw_query).lower():
            return False
        if self.cmdlet and (cmdlet or "").lower() != self.cmdlet.lower():
            return False
        return not (self.mailbox and (mailbox or "").lower() != self.mailbox.lower())


@dataclass
class _Request:
    service: str
    method: str
    path: str  # percent-decoded
    raw_query: str
    query: dict[str, str]  # keys lower-cased, "$" stripped
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    in_batch: bool = False

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> _Response:
        h = {"Content-Type": "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"}
        h.update(headers or {})
        return cls(status, json.dumps(obj).encode(), h)


class _SigningKey:
    def __init__(self, kid: str | None = None) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid or _b64url(secrets.token_bytes(15))

    @property
    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }


# ----------------------------------------------------------------------------------------------------
# HTTP plumbing
# ----------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, fake: FakeMicrosoft, service: str, context: ssl.SSLContext) -> None:
        self.fake = fake
        self.service = service
        self.ssl_context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:  # runs in the per-request thread
        try:
            request.settimeout(30)
            # No Nagle: a response written in two segments would otherwise wait for the client's delayed ACK.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # keep test output quiet
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client died mid-request: a server applies nothing
            self.close_connection = True
            return
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = _Request(
            service=self.server.service,
            method=self.command.upper(),
            path=unquote(split.path),
            raw_query=split.query,
            query={k.lstrip("$").lower(): v for k, v in parse_qsl(split.query, keep_blank_values=True)},
            headers=headers,
            body=body,
        )
        resp = self.server.fake._handle(req)
        resp.headers.setdefault("request-id", str(uuid.uuid4()))
        # Head and body in one write (with TCP_NODELAY): no Nagle / delayed-ACK stall per call on loopback.
        head = [
            f"HTTP/1.1 {resp.status} {self.responses.get(resp.status, ('',))[0]}",
            f"Date: {self.date_time_string()}",
        ]
        head += [f"{k}: {v}" for k, v in resp.headers.items()]
        head.append(f"Content-Length: {len(resp.body)}")
        self.log_request(resp.status, len(resp.body))
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(payload + (resp.body if self.command != "HEAD" else b""))

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815


# ----------------------------------------------------------------------------------------------------
# The fake
# ----------------------------------------------------------------------------------------------------


class FakeMicrosoft:
    """Fake Entra ID + Microsoft Graph + Exchange Online admin REST, over HTTPS on loopback.

    Use as a context manager (``with FakeMicrosoft() as fake:``) or call :meth:`start` / :meth:`close`.
    """

    def __init__(
        self,
        tenant_id: str | None = None,
        *,
        tenant_domain: str = "contoso.onmicrosoft.com",
        client_id: str | None = None,
        client_secret: str | None = None,
        graph_roles: Iterable[str] = DEFAULT_GRAPH_ROLES,
        exchange_roles: Iterable[str] = DEFAULT_EXCHANGE_ROLES,
        roaming_signatures: bool = False,
        page_size: int = 100,
        delta_page_size: int = 100,
        mailbox_concurrency_limit: int = 4,
        concurrency_retry_after: str = "1",
        write_rate: float | None = None,
        write_burst: float = 1.0,
        token_lifetime: int = 3599,
        delta_token_ttl: float = 7 * 24 * 3600,
        exchange_batch_limit: int = 10,
        require_consistency_level: bool = True,
        workdir: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.tenant_domain = tenant_domain
        self.page_size = page_size
        self.delta_page_size = delta_page_size
        self.mailbox_concurrency_limit = mailbox_concurrency_limit
        self.concurrency_retry_after = concurrency_retry_after
        self.token_lifetime = token_lifetime
        self.delta_token_ttl = delta_token_ttl
        self.exchange_batch_limit = exchange_batch_limit
        self.require_consistency_level = require_consistency_level
        self.delta_duplicates = False  # True: every user of a delta round is listed twice
        self.batch_response_order = "request"  # or "reversed": clients must match responses by id
        self.latency: dict[str, float] = {}  # service ("authority"/"graph"/"exchange"/"*") -> seconds
        self.write_rate = write_rate
        self.write_burst = write_burst

        self._lock = threading.RLock()
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-microsoft-") if workdir is None else None
        self._workdir = workdir or self._tmp.name  # type: ignore[union-attr]
        self._tls = make_ca_and_server_cert(self._workdir)
        self._servers: dict[str, _Server] = {}
        self._threads: list[threading.Thread] = []

        self._keys: list[_SigningKey] = [_SigningKey()]  # [0] signs; all are published
        self._wrong_key = _SigningKey(kid=self._keys[0].kid)  # same kid, never published

        self.apps: dict[str, App] = {}
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or ("fake~" + secrets.token_urlsafe(30))
        self.register_app(
            self.client_id, secret=self.client_secret, graph_roles=graph_roles, exchange_roles=exchange_roles
        )

        self._users: dict[str, dict[str, Any]] = {}  # id -> Graph properties (+ "_manager", "_photo")
        self._mailbox_config: dict[str, dict[str, dict[str, Any]]] = {}  # user id -> name -> {key: entry}
        self._roaming_signature: dict[str, str | None] = {}  # user id -> signature roaming clients show
        self._groups: dict[str, dict[str, Any]] = {}
        self._changes: list[tuple[int, str, str, str]] = []  # (seq, user id, "upsert"/"removed", reason)
        self._seq = 0
        self._pages: dict[str, dict[str, Any]] = {}
        self._delta_tokens: dict[str, dict[str, Any]] = {}
        self._delta_generation = 0
        self._delta_expiry: tuple[int, str] = (410, "resyncRequired")
        self.clock_offset = 0.0

        self.organization_config: dict[str, Any] = {
            "Name": tenant_domain.split(".")[0],
            "DisplayName": tenant_domain.split(".")[0].title(),
            "Identity": tenant_domain,
            "Guid": self.tenant_id,
            "PostponeRoamingSignaturesUntilLater": not roaming_signatures,
            "OAuth2ClientProfileEnabled": True,
            "IsDehydrated": False,
            "DefaultPublicFolderMailbox": None,
            "MailTipsAllTipsEnabled": True,
        }

        # interactive sign-in (authorization-code flow): who "is signed in" at the fake's authorize page
        self.signed_in_user: str | None = None  # UPN or id; None = nobody, the authorize endpoint refuses
        self.authorize_error: tuple[str, int, str] | None = None  # (error, AADSTS code, text) sent back instead
        self.id_token_overrides: dict[str, Any] = {}  # claims forced into issued ID tokens (fault tests)
        self.code_lifetime = 600.0
        self._codes: dict[str, AuthorizationCode] = {}

        self.writes: list[SignatureWrite] = []
        self._org_changes: list[tuple[int, dict[str, Any]]] = []  # (after n writes, Set-OrganizationConfig values)
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []  # exceptions raised inside the fake (a fake bug)
        self.faults: list[Fault] = []
        self._inflight: dict[str, int] = {}
        self.max_concurrency_seen: dict[str, int] = {}
        self.concurrency_rejections: dict[str, int] = {}
        self._bucket_tokens = write_burst
        self._bucket_ts = time.monotonic()

    # ---------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> FakeMicrosoft:
        if self._servers:
            return self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        for service in ("authority", "graph", "exchange"):
            server = _Server(self, service, ctx)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name=f"fake-microsoft-{service}",
            )
            thread.start()
            self._servers[service] = server
            self._threads.append(thread)
        return self

    def close(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeMicrosoft:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _base(self, service: str) -> str:
        if not self._servers:
            raise RuntimeError("FakeMicrosoft is not started")
        return f"https://127.0.0.1:{self._servers[service].server_address[1]}"

    @property
    def authority_host(self) -> str:
        return self._base("authority")

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def graph_endpoint(self) -> str:
        return self._base("graph")

    @property
    def exchange_endpoint(self) -> str:
        return self._base("exchange")

    @property
    def invoke_command_url(self) -> str:
        return f"{self.exchange_endpoint}/adminapi/beta/{self.tenant_id}/InvokeCommand"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.authority}/discovery/v2.0/keys"

    @property
    def ca_file(self) -> str:
        return self._tls.ca_file

    # ---------------------------------------------------------------------------------------------- clients
    def requests_session(self) -> requests.Session:
        """A session for msal's ``http_client``: ignores REQUESTS_CA_BUNDLE & proxies, trusts the fake CA."""
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_file
        return session

    def ssl_context(self) -> ssl.SSLContext:
        """For httpx: ``httpx.Client(verify=fake.ssl_context())``."""
        return ssl.create_default_context(cafile=self.ca_file)

    def httpx_client(self, **kwargs: Any) -> Any:
        import httpx

        kwargs.setdefault("verify", self.ssl_context())
        kwargs.setdefault("trust_env", False)
        return httpx.Client(**kwargs)

    def msal_app(self, client_id: str | None = None, client_credential: Any = None, **kwargs: Any) -> Any:
        import msal

        kwargs.setdefault("http_client", self.requests_session())
        kwargs.setdefault("instance_discovery", False)
        kwargs.setdefault("authority", self.authority)
        return msal.ConfidentialClientApplication(
            client_id or self.client_id,
            client_credential=client_credential if client_credential is not None else self.client_secret,
            **kwargs,
        )

    # ---------------------------------------------------------------------------------------------- tenant se
    def register_app(
        self,
        client_id: str | None = None,
        *,
        secret: str | None = None,
        certificate: x509.Certificate | str | bytes | None = None,
        graph_roles: Iterable[str] = (),
        exchange_roles: Iterable[str] = (),
        exchange_admin_role: bool = True,
        consented: bool = True,
        display_name: str = "Relais",
        redirect_uris: Iterable[str] = (),
        group_claims: bool = True,
    ) -> App:
        app = App(
            client_id=client_id or str(uuid.uuid4()),
            display_name=display_name,
            graph_roles=set(graph_roles),
            exchange_roles=set(exchange_roles),
            exchange_admin_role=exchange_admin_role,
            consented=consented,
            redirect_uris=list(redirect_uris),
            group_claims=group_claims,
        )
        if secret:
            app.secrets.append(secret)
        if certificate is not None:
            app.certificates.append(self._load_cert(certificate))
        with self._lock:
            self.apps[app.client_id] = app
        return app

    @staticmethod
    def _load_cert(certificate: x509.Certificate | str | bytes) -> x509.Certificate:
        if isinstance(certificate, x509.Certificate):
            return certificate
        data = certificate.encode() if isinstance(certificate, str) else certificate
        return x509.load_pem_x509_certificate(data)

    def add_user(
        self,
        upn: str,
        *,
        display_name: str | None = None,
        id: str | None = None,  # noqa: A002
        manager: str | None = None,
        photo: bytes | None = None,
        owa_options: dict[str, Any] | None = None,
        roaming_signature: str | None = None,
        **properties: Any,
    ) -> dict[str, Any]:
        """Add a user with a mailbox. ``manager``: UPN or id. ``owa_options``: initial OWA.UserOptions entries
        (plain values; ``None`` = the configuration item does not exist yet, GET → 404)."""
        local = upn.split("@")[0]
        user: dict[str, Any] = {
            "id": id or str(uuid.uuid4()),
            "userPrincipalName": upn,
            "displayName": display_name or local.replace(".", " ").title(),
            "givenName": None,
            "surname": None,
            "mail": upn,
            "businessPhones": [],
            "mobilePhone": None,
            "jobTitle": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "department": None,
            "companyName": None,
            "employeeId": None,
            "accountEnabled": True,
        }
        for key, value in properties.items():
            user[_USER_PROP_BY_LOWER.get(key.lower(), key)] = value
        with self._lock:
            if self._find_user(upn) is not None:
                raise ValueError(f"user {upn} exists")
            user["_manager"] = self._find_user(manager)["id"] if manager else None  # type: ignore[index]
            user["_photo"] = photo
            self._users[user["id"]] = user
            if owa_options is not None:
                self._mailbox_config[user["id"]] = {"OWA.UserOptions": _entries_from_plain(owa_options)}
            self._roaming_signature[user["id"]] = roaming_signature
            self._log_change(user["id"], "upsert")
        return self._public_user(user)

    def update_user(self, upn_or_id: str, **properties: Any) -> dict[str, Any]:
        with self._lock:
            user = self._require_user(upn_or_id)
            for key, value in properties.items():
                if key == "manager":
                    user["_manager"] = self._require_user(value)["id"] if value else None
                elif key == "photo":
                    user["_photo"] = value
                else:
                    user[_USER_PROP_BY_LOWER.get(key.lower(), key)] = value
            self._log_change(user["id"], "upsert")
            return self._public_user(user)

    def remove_user(self, upn_or_id: str, *, reason: str = "changed") -> None:
        """Delete a user. Delta reports ``@removed: {"reason": reason}`` ("changed": soft-deleted, "deleted")."""
        with self._lock:
            user = self._require_user(upn_or_id)
            del self._users[user["id"]]
            for group in self._groups.values():
                if user["id"] in group["members"]:
                    group["members"].remove(user["id"])
            self._log_change(user["id"], "removed", reason)

    def user(self, upn_or_id: str) -> dict[str, Any]:
        with self._lock:
            return self._public_user(self._require_user(upn_or_id))

    def add_group(
        self,
        display_name: str,
        members: Iterable[str] = (),
        *,
        id: str | None = None,  # noqa: A002
    ) -> dict[str, Any]:
        """``members``: user UPNs/ids or group ids (nested groups expand in transitiveMembers)."""
        with self._lock:
            group = {"id": id or str(uuid.uuid4()), "displayName": display_name, "members": []}
            self._groups[group["id"]] = group
            self.add_group_members(group["id"], members)
            return {"id": group["id"], "displayName": display_name}

    def add_group_members(self, group_id: str, members: Iterable[str]) -> None:
        with self._lock:
            group = self._groups[group_id]
            for member in members:
                if member in self._groups:
                    group["members"].append(member)
                else:
                    group["members"].append(self._require_user(member)["id"])

    def set_roaming(self, on: bool) -> None:
        """Roaming signatures on ⇔ ``PostponeRoamingSignaturesUntilLater`` is false."""
        with self._lock:
            self.organization_config["PostponeRoamingSignaturesUntilLater"] = not on

    @property
    def roaming(self) -> bool:
        return not self.organization_config["PostponeRoamingSignaturesUntilLater"]

    def set_roaming_signature(self, upn_or_id: str, html: str | None) -> None:
        """What a roaming-signature client (OWA, new Outlook) shows; only users can change it, not apps."""
        with self._lock:
            self._roaming_signature[self._require_user(upn_or_id)["id"]] = html

    # ---------------------------------------------------------------------------------------------- knobs
    def inject(self, status: int, **kwargs: Any) -> Fault:
        """Inject a failure, e.g. ``inject(429, service="graph", path_contains="/users", retry_after="0.35")``.

        Matches on ``service``, ``method``, ``path_contains`` (path + query), ``cmdlet``, ``mailbox``; applies
        ``times`` times (``None``: until removed). Inner ``$batch`` requests are matched individually."""
        fault = Fault(status=status, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def change_org_after_writes(self, writes: int, **settings: Any) -> None:
        """Change ``Get-OrganizationConfig`` values once ``writes`` signature writes have been received, as an admin
        running ``Set-OrganizationConfig`` while a deployment is under way would, e.g.
        ``change_org_after_writes(5, PostponeRoamingSignaturesUntilLater=False)`` (roaming turned on mid-run)."""
        with self._lock:
            self._org_changes.append((writes, settings))
            self._apply_org_changes()

    def _apply_org_changes(self) -> None:  # under self._lock, after each recorded write
        due = [c for c in self._org_changes if len(self.writes) >= c[0]]
        for change in due:
            self.organization_config.update(change[1])
            self._org_changes.remove(change)

    def long_throttle(self, mailbox: str | None = None, *, seconds: int = 3600, times: int | None = None) -> Fault:
        """Exchange's answer to an app that exhausted a mailbox's (or, without ``mailbox``, the tenant's) budget:
        429 ``TooManyRequests`` with an integer ``Retry-After`` of up to an hour, on every signature write."""
        return self.inject(
            429,
            service="exchange",
            cmdlet="Set-MailboxMessageConfiguration",
            mailbox=mailbox,
            retry_after=str(seconds),
            times=times,
            message="The request was throttled: the application exceeded its budget for this mailbox "
            f"(EWS/REST budget). Retry after {seconds} seconds.",
        )

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def set_latency(self, seconds: float, service: str = "*") -> None:
        self.latency[service] = seconds

    def set_write_rate(self, per_second: float | None, burst: float = 1.0) -> None:
        """Global token bucket over signature writes (Set-* cmdlets, userConfiguration PATCH/POST)."""
        with self._lock:
            self.write_rate = per_second
            self.write_burst = burst
            self._bucket_tokens = burst
            self._bucket_ts = time.monotonic()

    def expire_delta_tokens(self, status: int = 410, code: str = "resyncRequired") -> None:
        """Invalidate every delta/skip token issued so far: later use → ``status`` with error ``code``
        (410/"resyncRequired" or e.g. 400/"syncStateNotFound")."""
        with self._lock:
            self._delta_generation += 1
            self._delta_expiry = (status, code)

    def advance_clock(self, seconds: float) -> None:
        """Move the fake's clock (delta token TTL, authorization codes and the tokens issued for them)."""
        self.clock_offset += seconds

    def rotate_signing_key(self, *, keep_old: bool = True) -> str:
        """Publish a new key (new kid) and sign with it from now on. Returns the new kid."""
        with self._lock:
            new = _SigningKey()
            self._keys = [new] + (self._keys if keep_old else [])
            return new.kid

    # ---------------------------------------------------------------------------------------------- inspectio
    @property
    def ignored_writes(self) -> list[SignatureWrite]:
        return [w for w in self.writes if not w.applied]

    def visible_signature(self, upn_or_id: str) -> str | None:
        """The signature HTML the user sees in Outlook on the web / new Outlook."""
        with self._lock:
            user = self._require_user(upn_or_id)
            if self.roaming:
                return self._roaming_signature.get(user["id"])
            return _plain(self._mailbox_config.get(user["id"], {}).get("OWA.UserOptions", {})).get("signaturehtml")

    def user_configuration(self, upn_or_id: str, name: str = "OWA.UserOptions") -> dict[str, Any] | None:
        """The configuration item's dictionary as plain ``{key: value}``, or None when it doesn't exist."""
        with self._lock:
            user = self._require_user(upn_or_id)
            entries = self._mailbox_config.get(user["id"], {}).get(name)
            return None if entries is None else _plain(entries)

    def message_configuration(self, upn_or_id: str) -> dict[str, Any]:
        with self._lock:
            return self._message_configuration(self._require_user(upn_or_id))

    def request_count(
        self,
        service: str | None = None,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        cmdlet: str | None = None,
        status: int | None = None,
    ) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (service is None or r.service == service)
                and (method is None or r.method == method.upper())
                and (path_contains is None or path_contains.lower() in r.path.lower())
                and (cmdlet is None or (r.cmdlet or "").lower() == cmdlet.lower())
                and (status is None or r.status == status)
            )

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [k.jwk() for k in self._keys]}

    # ---------------------------------------------------------------------------------------------- user toke
    def issue_user_token(
        self,
        oid: str,
        tid: str | None = None,
        aud: str | None = None,
        scp: str = "access_as_user",
        *,
        exp: int | float | dt.datetime | None = None,
        nbf: int | float | None = None,
        iat: int | float | None = None,
        iss: str | None = None,
        kid: str | None = None,
        alg: str = "RS256",
        azp: str = "ea5a67f6-b6f3-4338-b240-c655ddc3cc8e",
        preferred_username: str | None = None,
        name: str | None = None,
        ver: str = "2.0",
        signing_key: str = "current",
        extra_claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Mint an Entra v2 access token as an Outlook add-in would send it (NAA / Office SSO).

        ``signing_key``: "current" (published), "previous" (the key before the last rotation), "wrong" (an
        unpublished key that claims the current kid). ``alg="none"`` makes an unsigned token."""
        tid = tid or self.tenant_id
        now = time.time()
        if isinstance(exp, dt.datetime):
            exp = exp.timestamp()
        claims: dict[str, Any] = {
            "aud": aud or self.client_id,
            "iss": iss or self.issuer(tid),
            "iat": int(iat if iat is not None else now),
            "nbf": int(nbf if nbf is not None else now - 5),
            "exp": int(exp if exp is not None else now + 3600),
            "aio": _b64url(secrets.token_bytes(24)),
            "azp": azp,
            "azpacr": "0",
            "name": name or "Test User",
            "oid": oid,
            "preferred_username": preferred_username or "user@" + self.tenant_domain,
            "rh": "0.fake.",
            "scp": scp,
            "sid": str(uuid.uuid4()),
            "sub": _b64url(hashlib.sha256(f"{oid}{aud}".encode()).digest()),
            "tid": tid,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": ver,
        }
        claims.update(extra_claims or {})
        if alg == "none":
            # Carries the published kid, as a forger would, so only the alg check can reject it.
            header = {"alg": "none", "typ": "JWT", "kid": kid or self._keys[0].kid, **(headers or {})}
            return f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}."
        with self._lock:
            if signing_key == "wrong":
                key = self._wrong_key
            elif signing_key == "previous":
                key = self._keys[1]
            else:
                key = self._keys[0]
        hdr = {"typ": "JWT", "kid": kid or key.kid, **(headers or {})}
        return jwt.encode(claims, key.pem, algorithm=alg, headers=hdr)

    def issue_unsigned_token(self, oid: str, **kwargs: Any) -> str:
        return self.issue_user_token(oid, alg="none", **kwargs)

    def issue_wrong_key_token(self, oid: str, **kwargs: Any) -> str:
        return self.issue_user_token(oid, signing_key="wrong", **kwargs)

    def issuer(self, tid: str | None = None) -> str:
        return f"{self.authority_host}/{tid or self.tenant_id}/v2.0"

    # ---------------------------------------------------------------------------------------------- sign-in
    def sign_in_as(self, upn_or_id: str | None) -> None:
        """The user the authorize endpoint signs in and consents for, as if they had typed their password."""
        with self._lock:
            self.signed_in_user = self._require_user(upn_or_id)["id"] if upn_or_id else None

    def user_groups(self, upn_or_id: str) -> list[str]:
        """Object ids of the groups a user is in, nested membership included (what the groups claim lists)."""
        with self._lock:
            user_id = self._require_user(upn_or_id)["id"]
            return [gid for gid in self._groups if user_id in self._transitive_users(gid)]

    def _authorize_page(self, req: _Request, tenant: str) -> _Response:
        """GET /{tenant}/oauth2/v2.0/authorize: errors about the app itself are shown on Entra's page (never sent to
        an unverified redirect URI); the rest go back to the redirect URI, with the state, as Entra does."""
        q = dict(parse_qsl(req.raw_query, keep_blank_values=True))
        client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
        with self._lock:
            app = self.apps.get(client_id)
        if not client_id:
            return self._aad_page(900144, "The request body must contain the following parameter: 'client_id'.")
        if app is None:
            return self._aad_page(
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.tenant_domain}'. "
                "This can happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant. You may have sent your authentication request to the wrong "
                "tenant.",
            )
        if redirect_uri not in app.redirect_uris:
            return self._aad_page(
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
                f"configured for the application '{client_id}'. Make sure the redirect URI sent in the request "
                "matches one added to your application in the Azure portal. Navigate to "
                "https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
            )

        def back(**params: str) -> _Response:
            if q.get("state") is not None:
                params["state"] = q["state"]
            sep = "&" if "?" in redirect_uri else "?"
            return _Response(
                302, b"", {"Location": redirect_uri + sep + urlencode(params), "Cache-Control": "no-store"}
            )

        def error(err: str, code: int, text: str) -> _Response:
            trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
            return back(
                error=err,
                error_description=f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: {_iso()}",
                error_uri=f"{self.authority_host}/error?code={code}",
            )

        if q.get("response_type") != "code":
            return error(
                "unsupported_response_type", 700054, "response_type 'id_token' is not enabled for the application."
            )
        scopes = q.get("scope", "").split()
        if "openid" not in scopes:
            return error("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
        method = q.get("code_challenge_method") or ("plain" if q.get("code_challenge") else None)
        if method not in (None, "plain", "S256"):
            return error("invalid_request", 501491, "Invalid code_challenge_method parameter.")
        if self.authorize_error is not None:
            return error(*self.authorize_error)
        with self._lock:
            user_id = self.signed_in_user
            if user_id is None or user_id not in self._users:
                return self._aad_page(50058, "A silent sign-in request was sent but no user is signed in.")
            code = "1.A" + _b64url(secrets.token_bytes(48))
            self._codes[code] = AuthorizationCode(
                client_id=client_id,
                redirect_uri=redirect_uri,
                user_id=user_id,
                scope=" ".join(scopes),
                nonce=q.get("nonce"),
                code_challenge=q.get("code_challenge"),
                code_challenge_method=method,
                issued_at=time.time() + self.clock_offset,
            )
        return back(code=code, session_state=str(uuid.uuid4()))

    def _aad_page(self, code: int, text: str) -> _Response:
        """Entra's sign-in error page (HTML, status 400): what the browser shows when nothing can be sent back."""
        body = (
            "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>"
            f"<h1>Sorry, but we're having trouble signing you in.</h1><p>AADSTS{code}: {text}</p></body></html>"
        )
        return _Response(400, body.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _redeem_code(self, form: dict[str, str]) -> _Response:
        """POST /{tenant}/oauth2/v2.0/token, grant_type=authorization_code (confidential client)."""
        client_id = form.get("client_id", "")
        with self._lock:
            app = self.apps.get(client_id)
        if app is None:
            return self._aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.tenant_domain}'.",
            )
        authn = self._authenticate_client(app, form)
        if isinstance(authn, _Response):
            return authn
        for name in ("code", "redirect_uri"):
            if not form.get(name):
                return self._aad_error(
                    400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
                )
        with self._lock:
            grant = self._codes.get(form["code"])
            if grant is None:
                return self._aad_error(
                    400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
                )
            if grant.redeemed:
                return self._aad_error(
                    400,
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an "
                    "existing refresh token.",
                )
            if time.time() + self.clock_offset - grant.issued_at > self.code_lifetime:
                return self._aad_error(
                    400,
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new "
                    "interactive authorization request for this user and resource.",
                )
            if grant.client_id != client_id:
                return self._aad_error(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
            if grant.redirect_uri != form["redirect_uri"]:
                return self._aad_error(
                    400,
                    "invalid_grant",
                    500112,
                    f"The reply address '{form['redirect_uri']}' does not match the reply address "
                    f"'{grant.redirect_uri}' provided when requesting Authorization code.",
                )
            if grant.code_challenge is not None:
                verifier = form.get("code_verifier")
                if not verifier:
                    return self._aad_error(
                        400,
                        "invalid_request",
                        900144,
                        "The request body must contain the following parameter: 'code_verifier'.",
                    )
                if grant.code_challenge_method == "S256":
                    computed = _b64url(hashlib.sha256(verifier.encode()).digest())
                else:
                    computed = verifier
                if not secrets.compare_digest(computed, grant.code_challenge):
                    return self._aad_error(
                        400,
                        "invalid_grant",
                        501481,
                        "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                    )
            grant.redeemed = True  # a code is spent by its first good redemption
            user = dict(self._users[grant.user_id])
            groups = [gid for gid in self._groups if grant.user_id in self._transitive_users(gid)]
            key = self._keys[0]
        now = int(time.time() + self.clock_offset)
        scopes = grant.scope.split()
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": self.issuer(),
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "aio": _b64url(secrets.token_bytes(24)),
            "name": user["displayName"],
            "oid": user["id"],
            "preferred_username": user["userPrincipalName"],
            "rh": "0.fake.",
            "sid": str(uuid.uuid4()),
            "sub": _b64url(hashlib.sha256(f"{user['id']}{client_id}".encode()).digest()),  # pairwise per app
            "tid": self.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if "email" in scopes and user.get("mail"):
            claims["email"] = user["mail"]
        if app.group_claims:
            claims["groups"] = groups
        claims.update(self.id_token_overrides)
        id_token = jwt.encode(claims, key.pem, algorithm="RS256", headers={"typ": "JWT", "kid": key.kid})
        access = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "appid": client_id,
            "oid": user["id"],
            "scp": "openid profile email User.Read",
            "tid": self.tenant_id,
            "ver": "1.0",
        }
        access_token = jwt.encode(access, key.pem, algorithm="RS256", headers={"typ": "JWT", "kid": key.kid})
        body = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if s != "openid") + " https://graph.microsoft.com/User.Read",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": access_token,
            "id_token": id_token,
        }
        return _Response(
            200,
            json.dumps(body).encode(),
            {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store, no-cache"},
        )

    # ========================================================================================================
    # Request handling
    # ========================================================================================================
    def _handle(self, req: _Request) -> _Response:
        record = RecordedRequest(
            service=req.service,
            method=req.method,
            path=req.path,
            query=req.raw_query,
            headers=dict(req.headers),
            in_batch=req.in_batch,
        )
        with self._lock:
            self.requests.append(record)
        try:
            resp = self._handle_inner(req, record)
        except Exception as exc:  # a bug in the fake: make it loud in tests
            with self._lock:
                self.errors.append(exc)
            resp = _Response.json(500, {"error": {"code": "FakeInternalError", "message": repr(exc)}})
        record.status = resp.status
        return resp

    def _handle_inner(self, req: _Request, record: RecordedRequest) -> _Response:
        cmdlet, mailbox = self._classify(req)
        record.cmdlet, record.mailbox = cmdlet, mailbox
        with self._lock:
            fault = next((f for f in self.faults if f.matches(req, cmdlet, mailbox)), None)
            if fault:
                fault.hits += 1
        if fault:
            return self._fault_response(req, fault)
        delay = self.latency.get(req.service, self.latency.get("*", 0.0))
        if mailbox is None:
            if delay:
                time.sleep(delay)
            return self._route(req)
        with self._lock:
            current = self._inflight.get(mailbox, 0) + 1
            self.max_concurrency_seen[mailbox] = max(self.max_concurrency_seen.get(mailbox, 0), current)
            if current > self.mailbox_concurrency_limit:
                self.concurrency_rejections[mailbox] = self.concurrency_rejections.get(mailbox, 0) + 1
                rejected = True
            else:
                self._inflight[mailbox] = current
                rejected = False
        if rejected:
            return self._error(
                req,
                429,
                "TooManyRequests",
                f"Application is over its MailboxConcurrency limit for mailbox '{mailbox}'.",
                headers={"Retry-After": self.concurrency_retry_after},
            )
        try:
            if delay:
                time.sleep(delay)
            return self._route(req)
        finally:
            with self._lock:
                self._inflight[mailbox] -= 1

    def _classify(self, req: _Request) -> tuple[str | None, str | None]:
        """(cmdlet name, mailbox key for the concurrency limit)."""
        if req.service == "exchange" and req.path.lower().endswith("/invokecommand") and req.method == "POST":
            try:
                cmd = (req.json() or {}).get("CmdletInput") or {}
            except (ValueError, AttributeError):
                return None, None
            if not isinstance(cmd, dict):
                return None, None
            name = cmd.get("CmdletName")
            anchor = req.headers.get("x-anchormailbox", "")
            mailbox = anchor.split(":", 1)[1] if ":" in anchor else anchor
            if not mailbox:
                params = cmd.get("Parameters") or {}
                mailbox = str(params.get("Identity") or "") if isinstance(params, dict) else ""
            return name, (mailbox.lower() or None) if name else None
        if req.service == "graph":
            m = re.match(r"^/(?:v1\.0|beta)/users/([^/]+)/mailfolders/", req.path, re.I)
            if m:
                with self._lock:
                    user = self._find_user(m.group(1))
                return None, (user["userPrincipalName"].lower() if user else m.group(1).lower())
        return None, None

    def _fault_response(self, req: _Request, fault: Fault) -> _Response:
        headers = {}
        if fault.retry_after is not None:
            ra = fault.retry_after
            headers["Retry-After"] = ra if isinstance(ra, str) else format_retry_after(float(ra))
        if fault.body is not None:
            return _Response.json(fault.status, fault.body, headers)
        defaults = {
            401: ("InvalidAuthenticationToken", "Access token validation failure."),
            403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
            429: ("TooManyRequests", "Too many requests."),
            500: ("InternalServerError", "An internal server error occurred."),
            502: ("BadGateway", "Bad gateway."),
            503: ("ServiceUnavailable", "The service is temporarily unavailable."),
            504: ("GatewayTimeout", "The gateway timed out."),
        }
        code, message = defaults.get(fault.status, ("InjectedFault", "Injected fault."))
        if req.service == "authority":
            return self._aad_error(
                fault.status, fault.code or "temporarily_unavailable", 0, fault.message or message, headers
            )
        return self._error(req, fault.status, fault.code or code, fault.message or message, headers=headers)

    def _error(
        self,
        req: _Request,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> _Response:
        if req.service == "graph":
            body = {
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {
                        "date": _iso(),
                        "request-id": str(uuid.uuid4()),
                        "client-request-id": req.headers.get("client-request-id", str(uuid.uuid4())),
                    },
                }
            }
        else:
            body = {"error": {"code": code, "message": message}}
        return _Response.json(status, body, headers)

    def _route(self, req: _Request) -> _Response:
        if req.service == "authority":
            return self._route_authority(req)
        if req.service == "graph":
            return self._route_graph(req)
        return self._route_exchange(req)

    # ---------------------------------------------------------------------------------------------- authority
    def _tenant_matches(self, tenant: str) -> bool:
        return tenant.lower() in {self.tenant_id.lower(), self.tenant_domain.lower()}

    def _aad_error(
        self,
        status: int,
        error: str,
        code: int,
        description: str,
        headers: dict[str, str] | None = None,
    ) -> _Response:
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        desc = f"AADSTS{code}: {description}" if code else description
        body = {
            "error": error,
            "error_description": f"{desc} Trace ID: {trace} Correlation ID: {corr} Timestamp: {_iso()}",
            "error_codes": [code] if code else [],
            "timestamp": _iso(),
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"{self.authority_host}/error?code={code}",
        }
        h = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store, no-cache"}
        h.update(headers or {})
        return _Response(status, json.dumps(body).encode(), h)

    def _route_authority(self, req: _Request) -> _Response:
        parts = [p for p in req.path.split("/") if p]
        if len(parts) < 2:
            return _Response.json(404, {"error": "not_found"})
        tenant, rest = parts[0], "/".join(parts[1:]).lower()
        generic = tenant.lower() in {"common", "organizations"}
        if not generic and not self._tenant_matches(tenant):
            return self._aad_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud.",
            )
        if req.method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            return _Response.json(200, self._openid_configuration("{tenantid}" if generic else self.tenant_id))
        if req.method == "GET" and rest in {"discovery/v2.0/keys", "discovery/keys"}:
            return _Response.json(200, self.jwks())
        if rest == "oauth2/v2.0/authorize" and req.method == "GET":
            return self._authorize_page(req, tenant)
        if rest == "oauth2/v2.0/token":
            if req.method != "POST":
                return self._aad_error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.")
            if generic:
                return self._aad_error(
                    400,
                    "invalid_request",
                    1002015,
                    "The tenant identifier is required for client credentials.",
                )
            return self._token(req)
        return _Response.json(404, {"error": "not_found"})

    def _openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.authority_host}/{tenant}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.graph_endpoint}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _resource_for_scope(self, scope: str) -> str | None:
        scope = scope.strip()
        if not scope.endswith("/.default"):
            return None
        resource = scope[: -len("/.default")].rstrip("/").lower()
        # As Entra: the resources' identifiers only. A scope built from wherever requests are sent (this fake's
        # address, a proxy's) names no resource in the tenant: AADSTS500011, "resource principal not found".
        graph = {GRAPH_RESOURCE, GRAPH_APP_ID, "https://graph.microsoft.com/"}
        exchange = {EXCHANGE_RESOURCE, EXCHANGE_APP_ID, "https://outlook.office.com", "https://ps.outlook.com"}
        if resource in graph:
            return GRAPH_RESOURCE
        if resource in exchange:
            return EXCHANGE_RESOURCE
        return ""

    def _token(self, req: _Request) -> _Response:
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        basic = req.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                cid, _, sec = base64.b64decode(basic[6:]).decode().partition(":")
                form.setdefault("client_id", unquote(cid))
                form.setdefault("client_secret", unquote(sec))
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._redeem_code(form)
        if grant != "client_credentials":
            return self._aad_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id = form.get("client_id", "")
        if not client_id and form.get("client_assertion"):
            with contextlib.suppress(jwt.PyJWTError):
                client_id = jwt.decode(form["client_assertion"], options={"verify_signature": False}).get("iss", "")
        scope = form.get("scope", "")
        scopes = scope.split()
        if len(scopes) != 1:
            return self._aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = self._resource_for_scope(scopes[0])
        if resource is None:
            return self._aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
            )
        with self._lock:
            app = self.apps.get(client_id)
        if app is None:
            return self._aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.tenant_domain}'. "
                "This can happen if the application has not been installed by the administrator of the tenant "
                "or consented to by any user in the tenant. You may have sent your authentication request to "
                "the wrong tenant.",
            )
        authn = self._authenticate_client(app, form)
        if isinstance(authn, _Response):
            return authn
        if resource == "":
            return self._aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {scopes[0][: -len('/.default')]} was not found in the tenant "
                f"named {self.tenant_domain}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant.",
            )
        roles = sorted(app.roles_for(resource))
        if not app.consented or not roles:
            return self._aad_error(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID '{app.client_id}' "
                f"named '{app.display_name}'. Send an interactive authorization request for this user and "
                "resource.",
            )
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "aio": _b64url(secrets.token_bytes(24)),
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": authn,
            "idp": f"https://sts.windows.net/{self.tenant_id}/",
            "idtyp": "app",
            "oid": app.object_id,
            "rh": "0.fake.",
            "roles": roles,
            "sub": app.object_id,
            "tid": self.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        with self._lock:
            key = self._keys[0]
        token = jwt.encode(claims, key.pem, algorithm="RS256", headers={"typ": "JWT", "kid": key.kid, "x5t": key.kid})
        body = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": token,
        }
        return _Response(
            200,
            json.dumps(body).encode(),
            {
                "Content-Type": "application/json; charset=utf-8",
                "Cache-Control": "no-store, no-cache",
            },
        )

    def _authenticate_client(self, app: App, form: dict[str, str]) -> str | _Response:
        """Returns ``appidacr`` ("1" secret, "2" certificate) or an Entra error response."""
        if form.get("client_secret"):
            if form["client_secret"] in app.secrets:
                return "1"
            return self._aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{app.client_id}'.",
            )
        assertion = form.get("client_assertion")
        if not assertion:
            return self._aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return self._aad_error(400, "invalid_request", 50027, "Invalid client_assertion_type.")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return self._aad_error(401, "invalid_client", 50027, "JWT token is invalid or malformed.")
        cert = None
        # base64url thumbprints; msal keeps the "=" padding, Entra accepts either.
        x5t_s256 = str(header.get("x5t#S256") or "").rstrip("=")
        x5t = str(header.get("x5t") or "").rstrip("=")
        for c in app.certificates:
            sha1 = c.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is SHA-1 by spec
            if (x5t_s256 and x5t_s256 == _b64url(c.fingerprint(hashes.SHA256()))) or (x5t and x5t == _b64url(sha1)):
                cert = c
                break
        if cert is None:
            return self._aad_error(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{header.get('x5t#S256') or header.get('x5t')}'",
            )
        alg = header.get("alg")
        if alg not in {"RS256", "PS256"}:
            return self._aad_error(401, "invalid_client", 5002738, f"Invalid JWT token. '{alg}' is not supported.")
        expected_aud = {
            self.token_endpoint,
            f"https://localhost:{self._servers['authority'].server_address[1]}/{self.tenant_id}/oauth2/v2.0/token",
            f"{self.authority_host}/{self.tenant_domain}/oauth2/v2.0/token",
        }
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),
                algorithms=[alg],
                audience=list(expected_aud),  # type: ignore[arg-type]
                options={"require": ["exp", "aud", "iss", "sub"]},
                leeway=300,
            )
        except jwt.InvalidAudienceError:
            return self._aad_error(
                401,
                "invalid_client",
                700212,
                "No matching federated identity record found for presented assertion audience.",
            )
        except jwt.ExpiredSignatureError:
            return self._aad_error(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            )
        except jwt.PyJWTError:
            return self._aad_error(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return self._aad_error(
                401,
                "invalid_client",
                700023,
                "Client assertion audience claim does not match Realm issuer.",  # close enough: iss/sub mismatch
            )
        return "2"

    # ---------------------------------------------------------------------------------------------- resource
    def _authorize(self, req: _Request, resource: str) -> dict[str, Any] | _Response:
        auth = req.headers.get("authorization", "")
        exchange = resource == EXCHANGE_RESOURCE
        challenge = {
            "WWW-Authenticate": (
                f'Bearer client_id="{EXCHANGE_APP_ID if exchange else GRAPH_APP_ID}", '
                f'authorization_uri="{self.authority_host}/common/oauth2/authorize", error="invalid_token"'
            )
        }
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            return self._error(req, 401, "InvalidAuthenticationToken", "Access token is empty.", headers=challenge)
        token = auth[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return self._error(
                req, 401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.", headers=challenge
            )
        with self._lock:
            key = next((k for k in self._keys if k.kid == header.get("kid")), None)
        if key is None:
            return self._error(
                req, 401, "InvalidAuthenticationToken", "Access token validation failure.", headers=challenge
            )
        audiences = [resource, EXCHANGE_APP_ID if exchange else GRAPH_APP_ID]
        try:
            claims = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["exp", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            return self._error(
                req,
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                headers=challenge,
            )
        except jwt.InvalidAudienceError:
            return self._error(
                req,
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
                headers=challenge,
            )
        except jwt.PyJWTError:
            return self._error(
                req, 401, "InvalidAuthenticationToken", "Access token validation failure.", headers=challenge
            )
        if claims.get("tid") != self.tenant_id:
            return self._error(
                req,
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid issuer.",
                headers=challenge,
            )
        return claims

    @staticmethod
    def _has_role(claims: dict[str, Any], allowed: set[str]) -> bool:
        return bool(set(claims.get("roles") or ()) & allowed)

    # ---------------------------------------------------------------------------------------------- graph
    def _route_graph(self, req: _Request) -> _Response:
        m = re.match(r"^/(v1\.0|beta)(/.*)?$", req.path)
        if not m:
            return self._error(req, 400, "BadRequest", "Invalid version.")
        version, rest = m.group(1), m.group(2) or "/"
        claims = self._authorize(req, GRAPH_RESOURCE)
        if isinstance(claims, _Response):
            return claims
        low = rest.lower().rstrip("/")
        if low == "/$batch":
            if req.method != "POST":
                return self._error(req, 405, "BadRequest", "Method not allowed.")
            return self._graph_batch(req, version)
        if req.method == "GET" and low == "/users":
            if not self._has_role(claims, USER_READ_ROLES):
                return self._directory_denied(req)
            return self._list_users(req, version)
        if req.method == "GET" and low == "/users/delta":
            if not self._has_role(claims, USER_READ_ROLES):
                return self._directory_denied(req)
            return self._users_delta(req, version)
        m = re.match(r"^/groups/([^/]+)/transitivemembers(/microsoft\.graph\.user)?$", low)
        if m and req.method == "GET":
            if not self._has_role(claims, GROUP_MEMBER_ROLES):
                return self._directory_denied(req)
            return self._transitive_members(req, version, rest.split("/")[2], bool(m.group(2)))
        m = re.match(r"^/users/([^/]+)/photo/\$value$", low)
        if m and req.method == "GET":
            if not self._has_role(claims, PHOTO_READ_ROLES):
                return self._directory_denied(req)
            return self._photo(req, rest.split("/")[2])
        m = re.match(r"^/users/([^/]+)/mailfolders/([^/]+)/userconfigurations(?:/([^/]+))?$", low)
        if m:
            if version != "beta":
                return self._error(req, 400, "BadRequest", "Resource not found for the segment 'userConfigurations'.")
            segs = rest.split("/")
            return self._user_configuration(req, claims, segs[2], m.group(2), segs[6] if m.group(3) else None)
        m = re.match(r"^/users/([^/]+)(/manager)?$", low)
        if m and req.method == "GET":
            if not self._has_role(claims, USER_READ_ROLES):
                return self._directory_denied(req)
            return self._get_user(req, version, rest.split("/")[2], bool(m.group(2)))
        return self._error(req, 400, "BadRequest", f"Resource not found for the segment '{rest.split('/')[1]}'.")

    def _directory_denied(self, req: _Request) -> _Response:
        return self._error(
            req, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )

    def _find_user(self, key: str | None) -> dict[str, Any] | None:
        if not key:
            return None
        if key in self._users:
            return self._users[key]
        low = key.lower()
        for user in self._users.values():
            if (
                user["id"].lower() == low
                or user["userPrincipalName"].lower() == low
                or ((user.get("mail") or "").lower() == low)
            ):
                return user
        return None

    def _require_user(self, key: str) -> dict[str, Any]:
        user = self._find_user(key)
        if user is None:
            raise KeyError(f"no such user: {key}")
        return user

    @staticmethod
    def _public_user(user: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in user.items() if not k.startswith("_")}

    def _log_change(self, user_id: str, kind: str, reason: str = "") -> None:
        self._seq += 1
        self._changes.append((self._seq, user_id, kind, reason))

    def _parse_select(self, req: _Request, raw: str | None) -> list[str] | _Response:
        if not raw:
            return list(DEFAULT_USER_PROPERTIES)
        props = []
        for name in (p.strip() for p in raw.split(",") if p.strip()):
            canonical = _USER_PROP_BY_LOWER.get(name.lower())
            if canonical is None:
                return self._error(
                    req,
                    400,
                    "Request_BadRequest",
                    f"Could not find a property named '{name}' on type 'Microsoft.DirectoryServices.User'.",
                )
            props.append(canonical)
        return props

    def _parse_expand(self, req: _Request) -> list[str] | None | _Response:
        raw = req.query.get("expand")
        if not raw:
            return None
        m = re.fullmatch(r"\s*manager\s*(?:\((.*)\))?\s*", raw, re.I)
        if not m:
            return self._error(req, 400, "Request_BadRequest", f"Parsing OData Select and Expand failed: '{raw}'.")
        inner = m.group(1) or ""
        sm = re.search(r"\$?select=([^;)]*)", inner, re.I)
        sel = self._parse_select(req, sm.group(1) if sm else None)
        if isinstance(sel, _Response):
            return sel
        return sel if sm else list(KNOWN_USER_PROPERTIES)

    def _render_user(self, user: dict[str, Any], select: list[str], expand: list[str] | None) -> dict[str, Any]:
        out = {p: user.get(p) for p in select}
        if expand is not None and user.get("_manager"):
            manager = self._users.get(user["_manager"])
            if manager is not None:
                out["manager"] = {
                    "@odata.type": "#microsoft.graph.user",
                    **{p: manager.get(p) for p in expand},
                }
        return out

    def _parse_top(self, req: _Request, default: int) -> int | _Response:
        raw = req.query.get("top")
        if raw is None:
            return default
        try:
            top = int(raw)
        except ValueError:
            top = -1
        if not 1 <= top <= 999:
            return self._error(
                req,
                400,
                "Request_UnsupportedQuery",
                f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.",
            )
        return top

    def _new_token(self) -> str:
        # Opaque, and deliberately with characters a hand-built URL would mangle.
        return "RFNwdAIA" + secrets.token_urlsafe(18) + "%2B~" + secrets.token_hex(4)

    def _list_users(self, req: _Request, version: str) -> _Response:
        with self._lock:
            if "skiptoken" in req.query:
                state = self._pages.get(req.query["skiptoken"])
                if state is None or state["kind"] != "users" or state["generation"] != self._delta_generation:
                    return self._error(
                        req,
                        400,
                        "Directory_ExpiredPageToken",
                        "The specified page token value has expired and can no longer be included in your request.",
                    )
                ids, select, expand, top = state["ids"], state["select"], state["expand"], state["top"]
            else:
                select = self._parse_select(req, req.query.get("select"))
                if isinstance(select, _Response):
                    return select
                expand = self._parse_expand(req)
                if isinstance(expand, _Response):
                    return expand
                top = self._parse_top(req, self.page_size)
                if isinstance(top, _Response):
                    return top
                ids = list(self._users)
            page, remaining = ids[:top], ids[top:]
            items = [self._render_user(self._users[i], select, expand) for i in page if i in self._users]
            body: dict[str, Any] = {
                "@odata.context": f"{self.graph_endpoint}/{version}/$metadata#users({','.join(select)})",
                "value": items,
            }
            if remaining:
                token = self._new_token()
                self._pages[token] = {
                    "kind": "users",
                    "ids": remaining,
                    "select": select,
                    "expand": expand,
                    "top": top,
                    "generation": self._delta_generation,
                }
                params = {"$select": ",".join(select), "$top": str(top)}
                body["@odata.nextLink"] = (
                    f"{self.graph_endpoint}/{version}/users?{urlencode(params, safe=',$')}"
                    f"&$skiptoken={quote(token, safe='')}"
                )
        return _Response.json(200, body)

    def _get_user(self, req: _Request, version: str, key: str, manager: bool) -> _Response:
        with self._lock:
            user = self._find_user(unquote(key))
            if user is None:
                return self._error(
                    req,
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{key}' does not exist or one of its queried reference-property "
                    "objects are not present.",
                )
            if manager:
                user = self._users.get(user.get("_manager") or "")
                if user is None:
                    return self._error(
                        req,
                        404,
                        "Request_ResourceNotFound",
                        "Resource 'manager' does not exist or one of its queried reference-property "
                        "objects are not present.",
                    )
            select = self._parse_select(req, req.query.get("select"))
            if isinstance(select, _Response):
                return select
            expand = self._parse_expand(req)
            if isinstance(expand, _Response):
                return expand
            body = {
                "@odata.context": f"{self.graph_endpoint}/{version}/$metadata#users/$entity",
                **self._render_user(user, select, expand),
            }
        return _Response.json(200, body)

    def _users_delta(self, req: _Request, version: str) -> _Response:
        now = time.time() + self.clock_offset
        with self._lock:
            if "skiptoken" in req.query or "deltatoken" in req.query:
                token = req.query.get("skiptoken") or req.query.get("deltatoken") or ""
                if token.lower() == "latest" and "deltatoken" in req.query:
                    select = self._parse_select(req, req.query.get("select"))
                    if isinstance(select, _Response):
                        return select
                    items, seq = [], self._seq
                else:
                    state = self._delta_tokens.get(token) or self._pages.get(token)
                    if (
                        state is None
                        or state.get("generation") != self._delta_generation
                        or (now - state.get("issued", now) > self.delta_token_ttl)
                    ):
                        status, code = self._delta_expiry
                        return self._error(
                            req,
                            status,
                            code,
                            "Resync required. Replace any local cached data with a fresh copy and restart "
                            "synchronization using the application-level delta token."
                            if status == 410
                            else "The sync state was not found or has expired.",
                            headers={"Location": f"{self.graph_endpoint}/{version}/users/delta"},
                        )
                    if state["kind"] == "delta-page":
                        return self._delta_page(version, state["items"], state["select"], state["seq"])
                    select = state["select"]
                    items = []
                    for seq_no, uid, kind, reason in self._changes:
                        if seq_no <= state["seq"]:
                            continue
                        if kind == "removed":
                            items.append(
                                {
                                    "@odata.type": "#microsoft.graph.user",
                                    "id": uid,
                                    "@removed": {"reason": reason or "changed"},
                                }
                            )
                        elif uid in self._users:
                            items.append(self._render_user(self._users[uid], select, None) | {"id": uid})
                    seq = self._seq
            else:
                select = self._parse_select(req, req.query.get("select"))
                if isinstance(select, _Response):
                    return select
                items = [self._render_user(u, select, None) | {"id": u["id"]} for u in self._users.values()]
                if self.delta_duplicates:
                    items = items + [dict(i) for i in items]
                seq = self._seq
            return self._delta_page(version, items, select, seq)

    def _delta_page(self, version: str, items: list[dict[str, Any]], select: list[str], seq: int) -> _Response:
        page, remaining = items[: self.delta_page_size], items[self.delta_page_size :]
        body: dict[str, Any] = {
            "@odata.context": f"{self.graph_endpoint}/{version}/$metadata#users({','.join(select)})",
            "value": page,
        }
        token = self._new_token()
        issued = time.time() + self.clock_offset
        if remaining:
            self._pages[token] = {
                "kind": "delta-page",
                "items": remaining,
                "select": select,
                "seq": seq,
                "generation": self._delta_generation,
                "issued": issued,
            }
            body["@odata.nextLink"] = f"{self.graph_endpoint}/{version}/users/delta?$skiptoken={quote(token, safe='')}"
        else:
            self._delta_tokens[token] = {
                "kind": "delta",
                "select": select,
                "seq": seq,
                "generation": self._delta_generation,
                "issued": issued,
            }
            body["@odata.deltaLink"] = (
                f"{self.graph_endpoint}/{version}/users/delta?$deltatoken={quote(token, safe='')}"
            )
        return _Response.json(200, body)

    def _transitive_users(self, group_id: str, seen: set[str] | None = None) -> list[str]:
        seen = seen if seen is not None else set()
        out: list[str] = []
        for member in self._groups[group_id]["members"]:
            if member in self._groups:
                if member not in seen:
                    seen.add(member)
                    out.extend(self._transitive_users(member, seen))
            elif member in self._users:
                out.append(member)
        return list(dict.fromkeys(out))

    def _transitive_members(self, req: _Request, version: str, group_id: str, users_only: bool) -> _Response:
        if (
            users_only
            and self.require_consistency_level
            and (req.headers.get("consistencylevel", "").lower() != "eventual")
        ):
            return self._error(
                req,
                400,
                "Request_UnsupportedQuery",
                "The requested query requires the 'ConsistencyLevel: eventual' header.",
            )
        with self._lock:
            if "skiptoken" in req.query:
                state = self._pages.get(req.query["skiptoken"])
                if state is None or state["kind"] != "members":
                    return self._error(
                        req, 400, "Directory_ExpiredPageToken", "The specified page token value has expired."
                    )
                ids, select, top, count = state["ids"], state["select"], state["top"], None
            else:
                if group_id not in self._groups:
                    return self._error(
                        req,
                        404,
                        "Request_ResourceNotFound",
                        f"Resource '{group_id}' does not exist or one of its queried "
                        "reference-property objects are not present.",
                    )
                select = self._parse_select(req, req.query.get("select"))
                if isinstance(select, _Response):
                    return select
                top = self._parse_top(req, self.page_size)
                if isinstance(top, _Response):
                    return top
                ids = self._transitive_users(group_id)
                if not users_only:
                    ids = ids + self._nested_groups(group_id)
                count = len(ids) if req.query.get("count", "").lower() == "true" else None
            page, remaining = ids[:top], ids[top:]
            items = []
            for i in page:
                if i in self._users:
                    items.append(
                        {
                            "@odata.type": "#microsoft.graph.user",
                            **self._render_user(self._users[i], select, None),
                        }
                    )
                elif i in self._groups:
                    items.append(
                        {
                            "@odata.type": "#microsoft.graph.group",
                            "id": i,
                            "displayName": self._groups[i]["displayName"],
                        }
                    )
            body: dict[str, Any] = {
                "@odata.context": f"{self.graph_endpoint}/{version}/$metadata#users",
                "value": items,
            }
            if count is not None:
                body["@odata.count"] = count
            if remaining:
                token = self._new_token()
                self._pages[token] = {"kind": "members", "ids": remaining, "select": select, "top": top}
                suffix = "/microsoft.graph.user" if users_only else ""
                body["@odata.nextLink"] = (
                    f"{self.graph_endpoint}/{version}/groups/{group_id}/transitiveMembers"
                    f"{suffix}?$skiptoken={quote(token, safe='')}"
                )
        return _Response.json(200, body)

    def _nested_groups(self, group_id: str, seen: set[str] | None = None) -> list[str]:
        seen = seen if seen is not None else set()
        for member in self._groups[group_id]["members"]:
            if member in self._groups and member not in seen:
                seen.add(member)
                self._nested_groups(member, seen)
        return list(seen)

    def _photo(self, req: _Request, key: str) -> _Response:
        with self._lock:
            user = self._find_user(unquote(key))
            if user is None:
                return self._error(req, 404, "Request_ResourceNotFound", f"Resource '{key}' does not exist.")
            photo = user.get("_photo")
        if not photo:
            return self._error(
                req,
                404,
                "ImageNotFound",
                "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
            )
        return _Response(200, photo, {"Content-Type": "image/jpeg", "ETag": hashlib.md5(photo).hexdigest()})  # noqa: S324

    # ---------------------------------------------------------------------------------------------- userConfi
    def _user_configuration(
        self,
        req: _Request,
        claims: dict[str, Any],
        key: str,
        folder: str,
        name: str | None,
    ) -> _Response:
        writing = req.method in {"PATCH", "POST", "PUT"}
        if not self._has_role(claims, CONFIG_WRITE_ROLES if writing else CONFIG_READ_ROLES):
            return self._error(req, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if folder.lower() != "root":
            return self._error(req, 400, "ErrorInvalidRequest", "Only the root folder is supported by the fake.")
        with self._lock:
            user = self._find_user(unquote(key))
            if user is None:
                return self._error(req, 404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
            configs = self._mailbox_config.setdefault(user["id"], {})
            ctx = f"{self.graph_endpoint}/beta/$metadata#users('{user['id']}')/mailFolders('root')/userConfigurations"
            if name is None:
                if req.method == "GET":
                    return _Response.json(
                        200,
                        {
                            "@odata.context": ctx,
                            "value": [_config_resource(n, e) for n, e in configs.items()],
                        },
                    )
                if req.method != "POST":
                    return self._error(req, 405, "ErrorInvalidRequest", "Method not allowed.")
                payload = req.json() or {}
                new_name = payload.get("id")
                if not new_name:
                    return self._error(req, 400, "ErrorInvalidRequest", "The property 'id' is required.")
                if new_name in configs:
                    return self._error(
                        req,
                        409,
                        "ErrorItemSave",
                        f"A configuration object with name '{new_name}' already exists.",
                    )
                bucket = self._take_write_token()
                if bucket is not None:
                    return bucket_error(self, req, bucket)
                entries = _entries_from_wire(payload.get("structuredData") or [])
                configs[new_name] = entries
                self._record_graph_write(user, new_name, entries, before={})
                return _Response.json(201, {"@odata.context": ctx + "/$entity", **_config_resource(new_name, entries)})
            if name not in configs:
                return self._error(req, 404, "ErrorItemNotFound", "The specified object was not found in the store.")
            if req.method == "GET":
                return _Response.json(
                    200, {"@odata.context": ctx + "/$entity", **_config_resource(name, configs[name])}
                )
            if req.method != "PATCH":
                return self._error(req, 405, "ErrorInvalidRequest", "Method not allowed.")
            payload = req.json() or {}
            bucket = self._take_write_token()
            if bucket is not None:
                return bucket_error(self, req, bucket)
            before = configs[name]
            if "structuredData" in payload:
                # Faithful: the dictionary is REPLACED, not merged. Keys the client omits are gone.
                configs[name] = _entries_from_wire(payload.get("structuredData") or [])
                self._record_graph_write(user, name, configs[name], before=before)
            return _Response.json(200, {"@odata.context": ctx + "/$entity", **_config_resource(name, configs[name])})

    def _record_graph_write(
        self,
        user: dict[str, Any],
        name: str,
        entries: dict[str, Any],
        *,
        before: dict[str, Any],
    ) -> None:
        if name != "OWA.UserOptions":
            return
        new, old = _plain(entries), _plain(before)
        if not any(k in new or k in old for k in SIGNATURE_KEYS):
            return
        self.writes.append(
            SignatureWrite(
                mailbox=user["userPrincipalName"].lower(),
                at=_now(),
                via="graph",
                signature_html=new.get("signaturehtml"),
                signature_text=new.get("signaturetext"),
                auto_add_signature=new.get("autoaddsignature"),
                auto_add_signature_on_reply=new.get("autoaddsignatureonreply"),
                applied=not self.roaming,
                parameters=new,
            )
        )
        self._apply_org_changes()

    # ---------------------------------------------------------------------------------------------- throttlin
    def _take_write_token(self) -> float | None:
        """None if a write may proceed, else seconds until it may."""
        with self._lock:
            if not self.write_rate:
                return None
            now = time.monotonic()
            self._bucket_tokens = min(self.write_burst, self._bucket_tokens + (now - self._bucket_ts) * self.write_rate)
            self._bucket_ts = now
            if self._bucket_tokens >= 1:
                self._bucket_tokens -= 1
                return None
            return (1 - self._bucket_tokens) / self.write_rate

    # ---------------------------------------------------------------------------------------------- $batch
    def _graph_batch(self, req: _Request, version: str) -> _Response:
        try:
            payload = req.json()
        except ValueError:
            return self._error(req, 400, "BadRequest", "Invalid batch payload.")
        requests_ = (payload or {}).get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests_, list) or not requests_:
            return self._error(req, 400, "BadRequest", "Invalid batch payload format.")
        if len(requests_) > 20:
            return self._error(req, 400, "BadRequest", "Limit of 20 requests exceeded.")
        ids = [str(r.get("id", "")) for r in requests_]
        if "" in ids or len(set(ids)) != len(ids):
            return self._error(req, 400, "BadRequest", "Each request in a batch must have a unique id.")
        for r in requests_:
            for dep in r.get("dependsOn") or []:
                if str(dep) not in ids:
                    return self._error(req, 400, "BadRequest", f"Request dependsOn unknown id '{dep}'.")
        results: dict[str, dict[str, Any]] = {}
        for r in requests_:
            rid = str(r["id"])
            failed_dep = next(
                (
                    d
                    for d in (r.get("dependsOn") or [])
                    if not 200 <= results.get(str(d), {"status": 424})["status"] < 300
                ),
                None,
            )
            if failed_dep is not None:
                results[rid] = {
                    "id": rid,
                    "status": 424,
                    "headers": {"Content-Type": "application/json"},
                    "body": {
                        "error": {
                            "code": "FailedDependency",
                            "message": f"Dependent request '{failed_dep}' failed.",
                        }
                    },
                }
                continue
            url = str(r.get("url", ""))
            if url.startswith("http"):
                results[rid] = {
                    "id": rid,
                    "status": 400,
                    "headers": {"Content-Type": "application/json"},
                    "body": {"error": {"code": "BadRequest", "message": "Batch request URLs must be relative."}},
                }
                continue
            inner_headers = {k.lower(): str(v) for k, v in (r.get("headers") or {}).items()}
            inner_headers["authorization"] = req.headers.get("authorization", "")
            body = r.get("body")
            raw = (
                b""
                if body is None
                else (json.dumps(body).encode() if not isinstance(body, str) else base64.b64decode(body))
            )
            split = urlsplit("/" + version + "/" + url.lstrip("/"))
            inner = _Request(
                service="graph",
                method=str(r.get("method", "GET")).upper(),
                path=unquote(split.path),
                raw_query=split.query,
                query={k.lstrip("$").lower(): v for k, v in parse_qsl(split.query, keep_blank_values=True)},
                headers=inner_headers,
                body=raw,
                in_batch=True,
            )
            resp = self._handle(inner)
            results[rid] = {
                "id": rid,
                "status": resp.status,
                "headers": _inner_headers(resp),
                "body": _inner_body(resp),
            }
        ordered = [results[i] for i in ids]
        if self.batch_response_order == "reversed":
            ordered.reverse()
        return _Response.json(200, {"responses": ordered})

    # ---------------------------------------------------------------------------------------------- exchange
    def _exchange_error(
        self,
        status: int,
        message: str,
        exception_type: str,
        *,
        code: str | None = None,
    ) -> _Response:
        server = "AM0PR01MB0001.eurprd01.prod.outlook.com"
        body = {
            "error": {
                "code": code
                or {400: "BadRequest", 404: "NotFound", 403: "Forbidden"}.get(status, "InternalServerError"),
                "message": "Error executing cmdlet",
                "details": [
                    {
                        "code": "Context",
                        "target": "",
                        "message": f"Ex{secrets.token_hex(3).upper()}|{exception_type}|{message}",
                    }
                ],
                "innererror": {
                    "message": "Error executing cmdlet",
                    "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                    "internalException": {
                        "message": message,
                        "type": exception_type,
                        "stackTrace": f"at {server}",
                    },
                },
                "adminapi.warnings@odata.type": "#Collection(String)",
                "@adminapi.warnings": [],
            }
        }
        return _Response.json(status, body)

    def _route_exchange(self, req: _Request) -> _Response:
        m = re.match(r"^/adminapi/beta/([^/]+)/(InvokeCommand|\$batch)$", req.path, re.I)
        if not m:
            return _Response.json(404, {"error": {"code": "NotFound", "message": "The resource was not found."}})
        claims = self._authorize(req, EXCHANGE_RESOURCE)
        if isinstance(claims, _Response):
            return claims
        if not self._tenant_matches(m.group(1)):
            return self._error(
                req,
                401,
                "InvalidAuthenticationToken",
                "The tenant in the URL does not match the token's tenant.",
            )
        with self._lock:
            app = self.apps.get(claims.get("appid", ""))
        if "Exchange.ManageAsApp" not in (claims.get("roles") or []) or app is None or not app.exchange_admin_role:
            return self._error(
                req,
                403,
                "Forbidden",
                f"The role assigned to application {claims.get('appid')} isn't supported in this scenario. "
                "Assign the Exchange Administrator role (or a role group) to the application's service principal "
                "and grant Exchange.ManageAsApp.",
            )
        if req.method != "POST":
            return _Response.json(405, {"error": {"code": "MethodNotAllowed", "message": "Use POST."}})
        if m.group(2).lower() == "$batch":
            return self._exchange_batch(req, m.group(1))
        return self._invoke_command(req, m.group(1))

    def _invoke_command(self, req: _Request, tenant: str) -> _Response:
        try:
            payload = req.json()
        except ValueError:
            payload = None
        cmd = payload.get("CmdletInput") if isinstance(payload, dict) else None
        if not isinstance(cmd, dict) or not cmd.get("CmdletName"):
            return _Response.json(
                400,
                {
                    "error": {
                        "code": "BadRequest",
                        "message": "The request body must contain CmdletInput.CmdletName.",
                    }
                },
            )
        name = str(cmd["CmdletName"])
        params = cmd.get("Parameters") or {}
        if not isinstance(params, dict):
            return _Response.json(400, {"error": {"code": "BadRequest", "message": "Parameters must be an object."}})
        context = f"{self.exchange_endpoint}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)"
        handler = {
            "get-organizationconfig": self._cmd_get_org,
            "set-organizationconfig": self._cmd_set_org,
            "get-mailbox": self._cmd_get_mailbox,
            "get-mailboxmessageconfiguration": self._cmd_get_msgconfig,
            "set-mailboxmessageconfiguration": self._cmd_set_msgconfig,
        }.get(name.lower())
        if handler is None:
            return self._exchange_error(
                400,
                f"The term '{name}' is not recognized as a name of a cmdlet, function, script file, or "
                "executable program.",
                "System.Management.Automation.CommandNotFoundException",
            )
        result = handler(req, params)
        if isinstance(result, _Response):
            return result
        return _Response.json(
            200,
            {
                "@odata.context": context,
                "adminapi.warnings@odata.type": "#Collection(String)",
                "@adminapi.warnings": [],
                "value": result,
            },
        )

    def _not_found(self, identity: str) -> _Response:
        return self._exchange_error(
            404,
            f"The operation couldn't be performed because object '{identity}' couldn't be found on "
            "'AM0PR01A001DC01.EURPR01A001.prod.outlook.com'.",
            "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        )

    def _cmd_get_org(self, req: _Request, params: dict[str, Any]) -> list[dict[str, Any]] | _Response:
        with self._lock:
            return [dict(self.organization_config)]

    def _cmd_set_org(self, req: _Request, params: dict[str, Any]) -> list[dict[str, Any]] | _Response:
        with self._lock:
            for k, v in params.items():
                if k == "PostponeRoamingSignaturesUntilLater":
                    self.organization_config[k] = _truthy(v)
                elif k in self.organization_config:
                    self.organization_config[k] = v
            return []

    def _cmd_get_mailbox(self, req: _Request, params: dict[str, Any]) -> list[dict[str, Any]] | _Response:
        identity = str(params.get("Identity") or "")
        with self._lock:
            user = self._find_user(identity)
            if user is None:
                return self._not_found(identity)
            return [
                {
                    "Identity": user["displayName"],
                    "UserPrincipalName": user["userPrincipalName"],
                    "PrimarySmtpAddress": user.get("mail") or user["userPrincipalName"],
                    "ExternalDirectoryObjectId": user["id"],
                    "RecipientTypeDetails": "UserMailbox",
                    "DisplayName": user["displayName"],
                }
            ]

    def _message_configuration(self, user: dict[str, Any]) -> dict[str, Any]:
        opts = _plain(self._mailbox_config.get(user["id"], {}).get("OWA.UserOptions", {}))
        return {
            "Identity": user["displayName"],
            "MailboxOwnerId": user["displayName"],
            "SignatureHtml": opts.get("signaturehtml", ""),
            "SignatureText": opts.get("signaturetext", ""),
            "SignatureTextOnMobile": opts.get("signaturetextonmobile", ""),
            "AutoAddSignature": bool(opts.get("autoaddsignature", False)),
            "AutoAddSignatureOnReply": bool(opts.get("autoaddsignatureonreply", False)),
            "AutoAddSignatureOnMobile": True,
            "UseDefaultSignatureOnMobile": bool(opts.get("usedefaultsignatureonmobile", False)),
            "DefaultFormat": "Html",
            "IsValid": True,
        }

    def _cmd_get_msgconfig(self, req: _Request, params: dict[str, Any]) -> list[dict[str, Any]] | _Response:
        identity = str(params.get("Identity") or "")
        with self._lock:
            user = self._find_user(identity)
            if user is None:
                return self._not_found(identity)
            return [self._message_configuration(user)]

    def _cmd_set_msgconfig(self, req: _Request, params: dict[str, Any]) -> list[dict[str, Any]] | _Response:
        unknown = [k for k in params if k not in MESSAGE_CONFIGURATION_PARAMETERS]
        if unknown:
            return self._exchange_error(
                400,
                f"A parameter cannot be found that matches parameter name '{unknown[0]}'.",
                "System.Management.Automation.ParameterBindingException",
            )
        identity = str(params.get("Identity") or "")
        with self._lock:
            user = self._find_user(identity) if identity else None
            if user is None:
                return self._not_found(identity)
        wait = self._take_write_token()
        if wait is not None:
            return bucket_error(self, req, wait)
        with self._lock:
            applied = not self.roaming
            if applied:
                configs = self._mailbox_config.setdefault(user["id"], {})
                entries = configs.setdefault("OWA.UserOptions", {})
                for wire, key in (
                    ("SignatureHtml", "signaturehtml"),
                    ("SignatureText", "signaturetext"),
                    ("SignatureTextOnMobile", "signaturetextonmobile"),
                ):
                    if wire in params:
                        entries[key] = _entry(key, str(params[wire] or ""))
                for wire, key in (
                    ("AutoAddSignature", "autoaddsignature"),
                    ("AutoAddSignatureOnReply", "autoaddsignatureonreply"),
                    ("UseDefaultSignatureOnMobile", "usedefaultsignatureonmobile"),
                ):
                    if wire in params:
                        entries[key] = _entry(key, _truthy(params[wire]))
            self.writes.append(
                SignatureWrite(
                    mailbox=user["userPrincipalName"].lower(),
                    at=_now(),
                    via="exchange",
                    signature_html=params.get("SignatureHtml"),
                    signature_text=params.get("SignatureText"),
                    auto_add_signature=_truthy(params["AutoAddSignature"]) if "AutoAddSignature" in params else None,
                    auto_add_signature_on_reply=(
                        _truthy(params["AutoAddSignatureOnReply"]) if "AutoAddSignatureOnReply" in params else None
                    ),
                    applied=applied,
                    parameters=dict(params),
                )
            )
            self._apply_org_changes()
        return []

    def _exchange_batch(self, req: _Request, tenant: str) -> _Response:
        try:
            payload = req.json()
        except ValueError:
            payload = None
        reqs = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return _Response.json(400, {"error": {"code": "BadRequest", "message": "Invalid batch payload."}})
        if len(reqs) > self.exchange_batch_limit:
            return _Response.json(
                400,
                {
                    "error": {
                        "code": "BadRequest",
                        "message": f"Limit of {self.exchange_batch_limit} requests exceeded.",
                    }
                },
            )
        responses = []
        for r in reqs:
            rid = str(r.get("id", ""))
            headers = {k.lower(): str(v) for k, v in (r.get("headers") or {}).items()}
            headers["authorization"] = req.headers.get("authorization", "")
            path = str(r.get("url", "InvokeCommand"))
            if not path.startswith("/"):
                path = f"/adminapi/beta/{tenant}/{path}"
            body = r.get("body")
            inner = _Request(
                service="exchange",
                method=str(r.get("method", "POST")).upper(),
                path=unquote(path),
                raw_query="",
                query={},
                headers=headers,
                body=json.dumps(body).encode() if body is not None else b"",
                in_batch=True,
            )
            resp = self._handle(inner)
            responses.append(
                {"id": rid, "status": resp.status, "headers": _inner_headers(resp), "body": _inner_body(resp)}
            )
        return _Response.json(200, {"responses": responses})


def bucket_error(fake: FakeMicrosoft, req: _Request, wait: float) -> _Response:
    return fake._error(
        req,
        429,
        "TooManyRequests",
        "Application is over its write rate limit. Retry later.",
        headers={"Retry-After": format_retry_after(wait)},
    )


def _inner_headers(resp: _Response) -> dict[str, str]:
    keep = {"content-type", "retry-after", "location", "etag"}
    return {k: v for k, v in resp.headers.items() if k.lower() in keep}


def _inner_body(resp: _Response) -> Any:
    if not resp.body:
        return None
    if "json" in resp.headers.get("Content-Type", ""):
        return json.loads(resp.body)
    return base64.b64encode(resp.body).decode()


# structuredData helpers -------------------------------------------------------------------------------------


def _entry(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        vtype, values = "boolean", [str(value).lower()]
    elif isinstance(value, int):
        vtype, values = "integer32", [str(value)]
    else:
        vtype, values = "string", [str(value)]
    return {"keyEntry": {"type": "string", "values": [key]}, "valueEntry": {"type": vtype, "values": values}}


def _entries_from_plain(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: _entry(k, v) for k, v in options.items()}


def _entries_from_wire(data: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in data:
        key_values = ((item or {}).get("keyEntry") or {}).get("values") or []
        if key_values:
            out[str(key_values[0])] = {
                "keyEntry": item["keyEntry"],
                "valueEntry": item.get("valueEntry") or {},
            }
    return out


def _plain(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, entry in entries.items():
        value_entry = entry.get("valueEntry") or {}
        values = value_entry.get("values") or []
        value: Any = values[0] if values else None
        vtype = str(value_entry.get("type", "")).lower()
        if vtype == "boolean" and value is not None:
            value = str(value).lower() == "true"
        elif vtype.startswith("integer") and value is not None:
            value = int(value)
        out[key] = value
    return out


def _config_resource(name: str, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"id": name, "binaryData": None, "xmlData": None, "structuredData": list(entries.values())}


# pytest fixture ---------------------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def fake_microsoft() -> Iterator[FakeMicrosoft]:
        """A started :class:`FakeMicrosoft` (use via ``pytest_plugins = ["tests.fakes.microsoft"]``)."""
        with FakeMicrosoft() as fake:
            yield fake
