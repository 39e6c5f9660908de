"""Microsoft 365 connection: credentials, the shared HTTP client (msal + httpx), and "Test connection".

A connection holds a tenant id and a client id (config) and a client secret or a PEM certificate with its
private key (the secret, encrypted at rest). Tokens come from msal's `ConfidentialClientApplication`
(client-credentials flow) and are cached until shortly before they expire; one msal app per credential is kept
for the life of the process, so deployments and syncs share tokens.

`RELAIS_MS_CLOUD` (global, usgov, usgovdod, china) sets the three endpoints and the two token resources together
(`CLOUDS`). The endpoint settings (`RELAIS_MS_AUTHORITY_HOST`, `RELAIS_MS_GRAPH_ENDPOINT`,
`RELAIS_MS_EXCHANGE_ENDPOINT`) override where requests go — a proxy, a test server — but never which resource a
token is asked for: Entra issues tokens for its resources (`https://graph.microsoft.com/.default`), not for a
proxy's URL. `RELAIS_MS_CA_BUNDLE` adds a CA bundle for all three.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from service.connections.models import ProviderConnection
from service.connections.service import read_secret
from service.errors import Invalid
from service.sentences import N_
from service.settings import Settings

log = logging.getLogger(__name__)

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
PEM_RE = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)
THROTTLED = {429, 500, 502, 503, 504}
MAX_BATCH_WAIT = 300.0  # seconds a $batch waits for its throttled items before giving the wait to its caller
WRITE_VIA = ("exchange", "graph")  # how signatures are written: config.write_via


@dataclass(frozen=True)
class Cloud:
    """A Microsoft cloud: where Entra, Graph and Exchange Online answer, and the resources tokens are issued for."""

    authority: str
    graph: str
    exchange: str


CLOUDS = {
    "global": Cloud(
        "https://login.microsoftonline.com", "https://graph.microsoft.com", "https://outlook.office365.com"
    ),
    "usgov": Cloud("https://login.microsoftonline.us", "https://graph.microsoft.us", "https://outlook.office365.us"),
    "usgovdod": Cloud("https://login.microsoftonline.us", "https://dod-graph.microsoft.us", "https://webmail.apps.mil"),
    "china": Cloud(
        "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn", "https://partner.outlook.cn"
    ),
}
_ENDPOINT_SETTINGS = {
    "authority": "ms_authority_host",
    "graph": "ms_graph_endpoint",
    "exchange": "ms_exchange_endpoint",
}


def endpoint(settings: Settings, service: str) -> str:
    """Where `service` ("authority", "graph", "exchange") is reached: the setting when it was set, else the cloud's."""
    name = _ENDPOINT_SETTINGS[service]
    if name in settings.model_fields_set:
        return getattr(settings, name).rstrip("/")
    return getattr(CLOUDS[settings.ms_cloud], service)


def token_scope(settings: Settings, resource: str) -> str:
    """The scope a token is requested with: the cloud's real resource, whatever endpoint requests go to."""
    return f"{getattr(CLOUDS[settings.ms_cloud], resource)}/.default"


# Plain words for the Entra errors an admin can fix (AADSTS codes).
AADSTS_HELP = {
    65001: N_(
        "Admin consent has not been granted for this app's application permissions. In the Entra admin "
        'center open App registrations → the app → API permissions and click "Grant admin consent" (Microsoft Graph '
        "User.Read.All, GroupMember.Read.All; Office 365 Exchange Online Exchange.ManageAsApp)."
    ),
    7000215: N_(
        "The client secret is wrong. Create a new secret under App registrations → Certificates & secrets and "
        "save it here."
    ),
    7000222: N_("The client secret has expired. Create a new one under App registrations → Certificates & secrets."),
    7000218: N_("No credential was sent. Save a client secret or a certificate with this connection."),
    700027: N_(
        "The certificate is not registered on the app. Upload its public part under App registrations → "
        "Certificates & secrets."
    ),
    700024: N_("The certificate assertion was rejected as expired: check this server's clock."),
    700016: N_("No app with this client id exists in the tenant. Check the Application (client) ID."),
    90002: N_("No such tenant. Check the Directory (tenant) ID."),
    500011: N_(
        "The resource is not known in this tenant: the Office 365 Exchange Online service principal is missing "
        "(the tenant may have no Exchange Online licence)."
    ),
}


class MicrosoftError(Exception):
    """A failed call to Entra, Graph or Exchange. `status` 0 means the network failed before an answer."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None,
                 kind: str = "", aadsts: int | None = None):  # fmt: skip
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status, self.code, self.message = status, code, message
        self.retry_after, self.kind, self.aadsts = retry_after, kind, aadsts

    @property
    def transient(self) -> bool:
        return self.status in THROTTLED or self.status == 0 or self.kind == "transient"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; Microsoft sends integers or decimals ("2.128"). Not capped: a long
    wait is the caller's to refuse (a deployment defers the mailbox rather than sleep for an hour)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


def error_from_response(resp: httpx.Response) -> MicrosoftError:
    code, message = "", resp.reason_phrase or "error"
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or "")
        message = str(err.get("message") or message)
        inner = ((err.get("innererror") or {}).get("internalException") or {}).get("message")
        details = [d.get("message") for d in err.get("details") or [] if isinstance(d, dict) and d.get("message")]
        if inner:
            message = str(inner)
        elif details:
            message = str(details[0]).split("|")[-1]
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    return MicrosoftError(resp.status_code, code, message, retry_after=retry_after)


# ---------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    tenant_id: str
    client_id: str
    credential: Any  # a client secret, or msal's certificate dict
    kind: str  # "secret" | "certificate"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(repr(self.credential).encode()).hexdigest()[:16]


def _pem_blocks(text: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in PEM_RE.finditer(text)}


def msal_credential(secret: str, config: dict) -> tuple[Any, str]:
    """A client secret as is; a PEM bundle (private key + certificate, or key + configured thumbprint) as msal's
    certificate credential (certificate → PS256/x5t#S256, thumbprint → RS256/x5t)."""
    if "-----BEGIN" not in secret:
        return secret, "secret"
    blocks = _pem_blocks(secret)
    key = next((v for k, v in blocks.items() if k.endswith("PRIVATE KEY")), None)
    if key is None:
        raise Invalid(N_("The PEM has no private key: paste the certificate and its private key (unencrypted PEM)."))
    cert = blocks.get("CERTIFICATE")
    if cert:
        return {"private_key": key, "public_certificate": cert}, "certificate"
    thumbprint = (config.get("certificate_thumbprint") or "").replace(":", "").strip()
    if not thumbprint:
        raise Invalid(
            N_(
                "A private key alone needs config.certificate_thumbprint (SHA-1, as the Entra portal shows it), "
                "or paste the certificate together with the key."
            )
        )
    return {"private_key": key, "thumbprint": thumbprint}, "certificate"


def validate(*, config: dict, secret: str | None) -> dict:
    """Check what an admin typed before it is saved; return the normalised config (never the secret)."""
    tenant = str(config.get("tenant_id") or "").strip()
    client = str(config.get("client_id") or "").strip()
    if not (GUID_RE.match(tenant) or DOMAIN_RE.match(tenant)):
        raise Invalid(N_("config.tenant_id must be the Directory (tenant) ID, a GUID (or the tenant's domain)."))
    if not GUID_RE.match(client):
        raise Invalid(N_("config.client_id must be the app registration's Application (client) ID, a GUID."))
    out = {k: v for k, v in config.items() if k in {"certificate_thumbprint", "groups", "sync_photos", "write_via"}}
    out["tenant_id"], out["client_id"] = tenant, client
    if out.get("write_via", "exchange") not in WRITE_VIA:
        raise Invalid(
            N_(
                'config.write_via must be "exchange" (Exchange Online admin REST, the default) or "graph" '
                "(Microsoft Graph userConfiguration, beta)."
            )
        )
    groups = out.get("groups", [])
    if not isinstance(groups, list) or not all(
        isinstance(g, str) or (isinstance(g, dict) and isinstance(g.get("id"), str)) for g in groups
    ):
        raise Invalid(N_('config.groups must be a list of group ids, or of {"id": ..., "key": ...} objects.'))
    if secret is not None:
        credential, kind = msal_credential(secret, out)
        if kind == "certificate":
            try:
                serialization.load_pem_private_key(credential["private_key"].encode(), password=None)
                if "public_certificate" in credential:
                    cert = x509.load_pem_x509_certificate(credential["public_certificate"].encode())
                    out["certificate_thumbprint"] = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
            except (ValueError, TypeError) as exc:
                raise Invalid(
                    N_("The certificate or private key could not be read: %(error)s.", error=str(exc))
                ) from exc
        elif len(secret.strip()) < 8:
            raise Invalid(N_("That client secret is too short to be real: copy the secret's Value, not its ID."))
        out["credential_type"] = kind
    elif config.get("credential_type") in ("secret", "certificate"):
        out["credential_type"] = config["credential_type"]
    return out


def credentials_for(conn: ProviderConnection, settings: Settings) -> Credentials:
    secret = read_secret(conn, settings)
    credential, kind = msal_credential(secret, conn.config)
    return Credentials(
        tenant_id=conn.config["tenant_id"], client_id=conn.config["client_id"], credential=credential, kind=kind
    )


# ---------------------------------------------------------------- client

_apps: dict[tuple, msal.ConfidentialClientApplication] = {}
_apps_lock = threading.Lock()


def _verify(settings: Settings) -> ssl.SSLContext | bool:
    if settings.ms_ca_bundle:
        return ssl.create_default_context(cafile=settings.ms_ca_bundle)
    return True


def _msal_app(creds: Credentials, settings: Settings) -> msal.ConfidentialClientApplication:
    authority = endpoint(settings, "authority")
    key = (authority, settings.ms_ca_bundle, creds.tenant_id, creds.client_id, creds.fingerprint)
    with _apps_lock:
        app = _apps.get(key)
    if app is not None:
        return app
    session = requests.Session()
    if settings.ms_ca_bundle:
        # REQUESTS_CA_BUNDLE would override `verify` unless the environment is ignored.
        session.trust_env = False
        session.verify = settings.ms_ca_bundle
    try:
        app = msal.ConfidentialClientApplication(
            creds.client_id, client_credential=creds.credential,
            authority=f"{authority}/{creds.tenant_id}",
            http_client=session, instance_discovery=False, timeout=30,
        )  # fmt: skip
    except ValueError as exc:  # msal: "Unable to get authority configuration ..." (unknown tenant)
        raise MicrosoftError(
            400, "invalid_tenant", N_("%(help)s (%(error)s)", help=AADSTS_HELP[90002], error=str(exc)), kind="config"
        ) from exc
    except requests.RequestException as exc:
        raise MicrosoftError(
            0, "network", N_("Could not reach %(authority)s: %(error)s", authority=authority, error=str(exc))
        ) from exc
    with _apps_lock:
        return _apps.setdefault(key, app)


class MicrosoftClient:
    """Graph + Exchange admin REST over one pooled httpx client, with app-only tokens from msal."""

    def __init__(self, creds: Credentials, settings: Settings, *, pool: int = 32, timeout: float = 60.0):
        self.creds = creds
        self.settings = settings
        self.graph = endpoint(settings, "graph")
        self.exchange = endpoint(settings, "exchange")
        self.scopes = {"graph": token_scope(settings, "graph"), "exchange": token_scope(settings, "exchange")}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.http = httpx.Client(
            verify=_verify(settings), trust_env=not settings.ms_ca_bundle, timeout=timeout,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        )  # fmt: skip

    @classmethod
    def from_connection(cls, conn: ProviderConnection, settings: Settings, **kw: Any) -> MicrosoftClient:
        return cls(credentials_for(conn, settings), settings, **kw)

    def close(self) -> None:
        self.http.close()

    # tokens
    def token(self, resource: str) -> str:
        cached = self._tokens.get(resource)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        with self._lock:
            cached = self._tokens.get(resource)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            app = _msal_app(self.creds, self.settings)
            try:
                result = app.acquire_token_for_client(scopes=[self.scopes[resource]])
            except requests.RequestException as exc:
                raise MicrosoftError(
                    0, "network", N_("Could not reach the token endpoint: %(error)s", error=str(exc))
                ) from exc
            if "access_token" not in result:
                raise token_error(result, resource)
            lifetime = float(result.get("expires_in") or 3599)
            self._tokens[resource] = (result["access_token"], time.monotonic() + max(30.0, lifetime - 300))
            return result["access_token"]

    def forget_token(self, resource: str) -> None:
        """After a 401: drop the cached token here and in msal, so the next call fetches a new one."""
        with self._lock:
            self._tokens.pop(resource, None)
            app = _msal_app(self.creds, self.settings)
            for at in list(app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                app.token_cache.remove_at(at)

    # raw requests
    def request(
        self, method: str, url: str, resource: str, *, headers: dict | None = None, **kw: Any
    ) -> httpx.Response:
        """One call with a bearer token; a 401 is retried once with a fresh token. Raises MicrosoftError on
        network failures; returns every HTTP answer (callers map statuses)."""
        for attempt in range(2):
            hdrs = {"Authorization": f"Bearer {self.token(resource)}", **(headers or {})}
            try:
                resp = self.http.request(method, url, headers=hdrs, **kw)
            except httpx.HTTPError as exc:
                raise MicrosoftError(0, "network", f"{type(exc).__name__}: {exc}") from exc
            if resp.status_code == 401 and attempt == 0:
                self.forget_token(resource)
                continue
            return resp
        return resp

    def invoke(self, cmdlet: str, parameters: dict | None = None, *, anchor: str | None = None) -> list[dict]:
        """Run an Exchange cmdlet through the admin REST InvokeCommand endpoint; its `value` list."""
        headers = {"X-ResponseFormat": "json", "Content-Type": "application/json"}
        if anchor:  # routes the call to the mailbox's server; Exchange throttles per anchor mailbox
            headers["X-AnchorMailbox"] = f"UPN:{anchor}"
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters or {}}}
        url = f"{self.exchange}/adminapi/beta/{self.creds.tenant_id}/InvokeCommand"
        resp = self.request("POST", url, "exchange", json=body, headers=headers)
        if resp.status_code >= 400:
            raise error_from_response(resp)
        values: list[dict] = list(resp.json().get("value") or [])
        next_link = resp.json().get("@odata.nextLink")
        while next_link:
            page = self.request("POST", next_link, "exchange", json=body, headers=headers)
            if page.status_code >= 400:
                raise error_from_response(page)
            values.extend(page.json().get("value") or [])
            next_link = page.json().get("@odata.nextLink")
        return values

    def graph_get(self, path_or_url: str, *, params: dict | None = None, headers: dict | None = None) -> dict:
        url = path_or_url if path_or_url.startswith("https://") else f"{self.graph}{path_or_url}"
        resp = self.request("GET", url, "graph", params=params, headers=headers)
        if resp.status_code >= 400:
            raise error_from_response(resp)
        return resp.json()

    def graph_batch(self, requests_: list[dict], *, version: str = "v1.0", max_attempts: int = 6,
                    sleep=time.sleep) -> dict[str, dict]:  # fmt: skip
        """Graph `$batch` in chunks of 20; items answered 429/5xx are retried (their own Retry-After, else
        backoff) — SDKs don't do this inside a batch. Returns {id: {"status", "headers", "body"}}."""
        pending = {r["id"]: r for r in requests_}
        done: dict[str, dict] = {}
        for attempt in range(max_attempts):
            if not pending:
                break
            waits: list[float] = []
            items = list(pending.values())
            for start in range(0, len(items), 20):
                chunk = items[start : start + 20]
                resp = self.request("POST", f"{self.graph}/{version}/$batch", "graph", json={"requests": chunk})
                if resp.status_code >= 400:
                    err = error_from_response(resp)
                    if not err.transient or attempt + 1 == max_attempts:
                        raise err
                    waits.append(err.retry_after if err.retry_after is not None else min(30.0, 0.5 * 2**attempt))
                    continue
                for item in resp.json().get("responses") or []:
                    status = int(item.get("status") or 0)
                    headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
                    if status in THROTTLED and attempt + 1 < max_attempts:
                        ra = parse_retry_after(headers.get("retry-after"))
                        waits.append(ra if ra is not None else min(30.0, 0.5 * 2**attempt))
                        continue
                    done[str(item.get("id"))] = {"status": status, "headers": headers, "body": item.get("body")}
                    pending.pop(str(item.get("id")), None)
            if pending and waits:
                if max(waits) > MAX_BATCH_WAIT:  # not worth holding a sync or a deployment for: the caller decides
                    raise MicrosoftError(
                        429,
                        "TooManyRequests",
                        f"Microsoft Graph asked to wait {max(waits):.0f} s",
                        retry_after=max(waits),
                    )
                sleep(max(waits))
        for rid in pending:  # out of attempts without an answer
            done[rid] = {"status": 503, "headers": {}, "body": {"error": {"code": "GaveUp", "message": "throttled"}}}
        return done


def token_error(result: dict, resource: str) -> MicrosoftError:
    codes = result.get("error_codes") or []
    code = int(codes[0]) if codes else None
    description = str(result.get("error_description") or result.get("error") or "token request failed")
    help_text = AADSTS_HELP.get(code or -1)
    if code == 65001 and resource == "exchange":
        help_text = N_(
            "The app has no consented permission on Office 365 Exchange Online: add the application "
            "permission Exchange.ManageAsApp (API permissions → APIs my organization uses → Office 365 "
            "Exchange Online) and grant admin consent."
        )
    message = help_text or description.split("\n")[0]
    kind = "transient" if result.get("error") in ("temporarily_unavailable", "server_error") else "config"
    return MicrosoftError(400, str(result.get("error") or "token_error"), message, kind=kind, aadsts=code)


# ---------------------------------------------------------------- test connection


def test_connection(row: ProviderConnection, settings: Settings) -> dict:
    """Acquire Graph and Exchange tokens, read one user, read the roaming-signature setting; explain gaps."""
    checks: list[dict] = []

    def check(name: str, ok: bool, message: str) -> None:
        checks.append({"name": name, "ok": ok, "message": message})

    try:
        client = MicrosoftClient.from_connection(row, settings, pool=4, timeout=30)
    except Exception as exc:  # noqa: BLE001 - undecryptable secret, unreadable PEM: say so
        check("credentials", False, getattr(exc, "message", str(exc)))
        return {"ok": False, "checks": checks}
    try:
        graph_ok = _check_token(client, "graph", check)
        if graph_ok:
            _check_user_read(client, check)
        if _check_token(client, "exchange", check):
            _check_roaming(client, check)
    finally:
        client.close()
    return {"ok": all(c["ok"] for c in checks), "checks": checks}


def _check_token(client: MicrosoftClient, resource: str, check) -> bool:
    name = f"{resource}_token"
    try:
        client.token(resource)
    except MicrosoftError as exc:
        check(name, False, exc.message)
        return False
    service = "Microsoft Graph" if resource == "graph" else "Exchange Online"
    check(name, True, N_("Got an app-only token for %(service)s.", service=service))
    return True


def _check_user_read(client: MicrosoftClient, check) -> None:
    try:
        body = client.graph_get("/v1.0/users", params={"$select": "id,userPrincipalName", "$top": "1"})
    except MicrosoftError as exc:
        if exc.status == 403:
            check(
                "read_users",
                False,
                N_(
                    "Graph refused to list users: add the application permission User.Read.All "
                    "(Microsoft Graph) and grant admin consent."
                ),
            )
        else:
            check("read_users", False, N_("Reading a user failed: %(message)s", message=exc.message))
        return
    users = body.get("value") or []
    who = users[0].get("userPrincipalName") if users else None
    check(
        "read_users",
        True,
        N_("Read a user from the directory (%(who)s).", who=who) if who else N_("The directory has no users."),
    )


def _check_roaming(client: MicrosoftClient, check) -> None:
    try:
        config = client.invoke("Get-OrganizationConfig")
    except MicrosoftError as exc:
        if exc.status == 403:
            check(
                "exchange_role",
                False,
                N_(
                    "Exchange Online refused the app: it needs the application permission Exchange.ManageAsApp "
                    "with admin consent AND an Entra role on its service principal (Exchange Administrator, or a "
                    "role group with Mail Recipients). %(message)s",
                    message=exc.message,
                ),
            )
        else:
            check("exchange_role", False, N_("Calling Exchange Online failed: %(message)s", message=exc.message))
        return
    check("exchange_role", True, N_("Exchange Online accepts the app (Exchange.ManageAsApp and an Exchange role)."))
    if roaming_on(config[0] if config else {}):
        check("roaming_signatures", False, ROAMING_MESSAGE)
    else:
        check(
            "roaming_signatures",
            True,
            N_(
                "Roaming signatures are postponed: signatures written by Relais reach "
                "Outlook on the web and the new Outlook."
            ),
        )


def roaming_on(org_config: dict) -> bool:
    """Roaming signatures are on unless the tenant set PostponeRoamingSignaturesUntilLater."""
    value = org_config.get("PostponeRoamingSignaturesUntilLater")
    if isinstance(value, str):
        value = value.strip().lower() in ("true", "1", "$true")
    return not bool(value)


ROAMING_MESSAGE = N_(
    "Roaming signatures are ON in this tenant: Exchange accepts a signature written by an app and then shows "
    "nothing of it in Outlook on the web, the new Outlook or Outlook for Mac, so Relais will not write and "
    "report a false success. Two ways forward: (1) postpone roaming signatures tenant-wide — in Exchange Online "
    "PowerShell run `Set-OrganizationConfig -PostponeRoamingSignaturesUntilLater $true`, then deploy again; or "
    "(2) deploy the Relais Outlook add-in (Microsoft 365 admin center → Settings → Integrated apps → Upload custom "
    "apps, manifest URL <your Relais URL>/addin/manifest.xml), which inserts the current signature while users "
    "compose, with roaming signatures left on."
)
