"""Public add-in routes: the XML manifest, the launch-event page and script, icons, and the signature endpoint.

`GET /addin/signature?kind=new|reply` takes the add-in's Entra access token (Bearer), maps its user (`oid` +
`tid`, then `preferred_username`/`upn`) to an active employee of the organisation whose Microsoft connection has
that tenant, and returns the CURRENT signature — today's banner included, no redeployment needed.
"""

from __future__ import annotations

import io
import uuid
from functools import lru_cache
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session, select

from service.connections.models import Provider, ProviderConnection
from service.directory.models import Employee
from service.errors import AppError, NotFound, Unauthorized
from service.pages import render
from service.settings import Settings
from signatures.addin.tokens import TokenValidator, identity
from signatures.models import SignatureKind
from signatures.renderer import SignatureRenderer

router = APIRouter(prefix="/addin", tags=["public"])

JS_HEADERS = {"Cache-Control": "public, max-age=300"}


# ---------------------------------------------------------------- helpers


def _base(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/")


def _origin(url: str) -> str:
    parts = urlsplit(url.strip().rstrip("/"))
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(settings: Settings) -> set[str]:
    return {_origin(settings.public_base_url)} | {_origin(o) for o in settings.addin_allowed_origins}


def _cors(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin or _origin(origin) not in allowed_origins(request.app.state.settings):
        return {}
    return {"Access-Control-Allow-Origin": origin.rstrip("/"), "Vary": "Origin"}


def _tenant_orgs(session: Session, settings: Settings) -> dict[str, int]:
    """{tenant id: org id} of the organisations with a Microsoft connection (limited by addin_allowed_tenants)."""
    rows = session.exec(select(ProviderConnection).where(ProviderConnection.provider == Provider.microsoft)).all()
    allowed = {t.lower() for t in settings.addin_allowed_tenants}
    out = {}
    for row in rows:
        tid = str(row.config.get("tenant_id") or "").lower()
        if tid and (not allowed or tid in allowed):
            out[tid] = row.org_id
    return out


def validator(request: Request) -> TokenValidator:
    app = request.app
    if getattr(app.state, "addin_validator", None) is None:
        settings = app.state.settings

        def tenant_allowed(tid: str) -> bool:
            with Session(app.state.engine) as session:
                return tid in _tenant_orgs(session, settings)

        app.state.addin_validator = TokenValidator(settings, tenant_allowed=tenant_allowed)
    return app.state.addin_validator


def _employee(session: Session, org_id: int, claims: dict) -> Employee:
    oid, names = identity(claims)  # verified claims only (see signatures.addin.tokens)
    emp = session.exec(select(Employee).where(Employee.org_id == org_id, Employee.source == "microsoft",
                                              Employee.source_id == oid)).first()  # fmt: skip
    if emp is None and names:
        for candidate in session.exec(select(Employee).where(Employee.org_id == org_id)).all():
            if candidate.email.lower() in names or names & {a.lower() for a in candidate.aliases or []}:
                emp = candidate
                break
    if emp is None or not emp.active:
        raise NotFound("Relais has no active employee for this user: sync the directory first.")
    return emp


# ---------------------------------------------------------------- the signature endpoint


@router.options("/signature", include_in_schema=False)
def signature_preflight(request: Request):
    headers = _cors(request)
    if not headers:
        return Response("Disallowed CORS origin", status_code=400)
    headers.update(
        {
            "Access-Control-Allow-Methods": "GET, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "600",
        }
    )
    return Response(status_code=204, headers=headers)


@router.get("/signature", summary="The signed-in Outlook user's current signature (add-in SSO token)")
def current_signature(
    request: Request,
    kind: SignatureKind | None = Query(None),
    variant: SignatureKind | None = Query(None, deprecated=True, description="Former name of 'kind'."),
):
    # `variant` is the parameter's former name. Outlook caches the add-in's launch script, so clients may keep
    # sending ?variant= for a while after an upgrade: accept it here (only here) until those caches expire.
    kind = kind or variant or SignatureKind.new
    cors = _cors(request)
    try:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise Unauthorized("Send the add-in's access token as 'Authorization: Bearer …'.")
        claims = validator(request).validate(auth[7:].strip())
        settings = request.app.state.settings
        with Session(request.app.state.engine) as session:
            org_id = _tenant_orgs(session, settings).get(str(claims["tid"]).lower())
            if org_id is None:
                raise Unauthorized("The token's tenant is not allowed to use this add-in.")
            emp = _employee(session, org_id, claims)
            _version, rendered = SignatureRenderer(session, org_id=org_id, settings=settings).render(emp, kind)
    except AppError as exc:
        headers = dict(cors)
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)
    return JSONResponse(
        {"html": rendered.html, "text": rendered.text, "kind": kind.value},
        headers={**cors, "Cache-Control": "no-store"},
    )


# ---------------------------------------------------------------- manifest, page, script, icons


def manifest_xml(settings: Settings) -> str:
    base = _base(settings)
    app_id = uuid.uuid5(uuid.NAMESPACE_URL, base + "/addin")
    client_id = settings.addin_client_id or "00000000-0000-0000-0000-000000000000"
    host = urlsplit(base).netloc
    e = escape
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<OfficeApp xmlns="http://schemas.microsoft.com/office/appforoffice/1.1"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:bt="http://schemas.microsoft.com/office/officeappbasictypes/1.0"
  xmlns:mailappor="http://schemas.microsoft.com/office/mailappversionoverrides/1.0" xsi:type="MailApp">
  <Id>{app_id}</Id>
  <Version>1.0.0.0</Version>
  <ProviderName>Relais</ProviderName>
  <DefaultLocale>en-US</DefaultLocale>
  <DisplayName DefaultValue="Relais signatures"/>
  <Description DefaultValue="Inserts your company signature, with the current banner, when you write."/>
  <IconUrl DefaultValue="{e(base)}/addin/icon-64.png"/>
  <HighResolutionIconUrl DefaultValue="{e(base)}/addin/icon-128.png"/>
  <SupportUrl DefaultValue="{e(base)}/addin/launchevent.html"/>
  <AppDomains><AppDomain>{e(base)}</AppDomain></AppDomains>
  <Hosts><Host Name="Mailbox"/></Hosts>
  <Requirements><Sets><Set Name="Mailbox" MinVersion="1.1"/></Sets></Requirements>
  <FormSettings>
    <Form xsi:type="ItemRead">
      <DesktopSettings>
        <SourceLocation DefaultValue="{e(base)}/addin/launchevent.html"/>
        <RequestedHeight>250</RequestedHeight>
      </DesktopSettings>
    </Form>
  </FormSettings>
  <Permissions>ReadWriteItem</Permissions>
  <Rule xsi:type="RuleCollection" Mode="Or">
    <Rule xsi:type="ItemIs" ItemType="Message" FormType="Edit"/>
    <Rule xsi:type="ItemIs" ItemType="Appointment" FormType="Edit"/>
  </Rule>
  <DisableEntityHighlighting>false</DisableEntityHighlighting>
  <VersionOverrides xmlns="http://schemas.microsoft.com/office/mailappversionoverrides" xsi:type="VersionOverridesV1_0">
    <VersionOverrides xmlns="http://schemas.microsoft.com/office/mailappversionoverrides/1.1"
      xsi:type="VersionOverridesV1_1">
      <Requirements><bt:Sets DefaultMinVersion="1.10"><bt:Set Name="Mailbox"/></bt:Sets></Requirements>
      <Hosts>
        <Host xsi:type="MailHost">
          <Runtimes>
            <Runtime resid="Autorun"><Override type="javascript" resid="runtimeJs"/></Runtime>
          </Runtimes>
          <DesktopFormFactor>
            <ExtensionPoint xsi:type="LaunchEvent">
              <LaunchEvents>
                <LaunchEvent Type="OnNewMessageCompose" FunctionName="onNewMessageCompose"/>
                <LaunchEvent Type="OnNewAppointmentOrganizer" FunctionName="onNewAppointmentOrganizer"/>
              </LaunchEvents>
              <SourceLocation resid="Autorun"/>
            </ExtensionPoint>
          </DesktopFormFactor>
        </Host>
      </Hosts>
      <Resources>
        <bt:Images>
          <bt:Image id="icon16" DefaultValue="{e(base)}/addin/icon-16.png"/>
          <bt:Image id="icon32" DefaultValue="{e(base)}/addin/icon-32.png"/>
          <bt:Image id="icon80" DefaultValue="{e(base)}/addin/icon-80.png"/>
        </bt:Images>
        <bt:Urls>
          <bt:Url id="Autorun" DefaultValue="{e(base)}/addin/launchevent.html"/>
          <bt:Url id="runtimeJs" DefaultValue="{e(base)}/addin/launchevent.js"/>
        </bt:Urls>
      </Resources>
      <WebApplicationInfo>
        <Id>{e(client_id)}</Id>
        <Resource>api://{e(host)}/{e(client_id)}</Resource>
        <Scopes><Scope>openid</Scope><Scope>profile</Scope></Scopes>
      </WebApplicationInfo>
    </VersionOverrides>
  </VersionOverrides>
</OfficeApp>
"""


LAUNCH_JS = r"""/* Relais launch-event handlers. Classic Outlook on Windows runs this file alone (no DOM, ES2016):
   no async/await, no imports, absolute URLs. */
var RELAIS_BASE = "%(base)s";

function relaisToken() {
  // Office SSO; tenants on nested app authentication can swap this for MSAL's acquireTokenSilent.
  return OfficeRuntime.auth.getAccessToken({ allowSignInPrompt: false, allowConsentPrompt: false });
}

function relaisInsert(event, kind, coercion) {
  var item = Office.context.mailbox.item;
  relaisToken()
    .then(function (token) {
      return fetch(RELAIS_BASE + "/addin/signature?kind=" + kind, {
        headers: { Authorization: "Bearer " + token }
      });
    })
    .then(function (resp) {
      if (!resp.ok) { throw new Error("Relais answered " + resp.status); }
      return resp.json();
    })
    .then(function (data) {
      var text = coercion === "text";
      var body = text ? data.text : data.html;
      var type = text ? Office.CoercionType.Text : Office.CoercionType.Html;
      if (item.body.setSignatureAsync) {
        item.body.setSignatureAsync(body, { coercionType: type }, function () { event.completed(); });
      } else {
        item.body.prependAsync(body, { coercionType: type }, function () { event.completed(); });
      }
    })
    .catch(function () { event.completed(); });
}

function onNewMessageCompose(event) {
  var item = Office.context.mailbox.item;
  if (!item.getComposeTypeAsync) { relaisInsert(event, "new", "html"); return; }
  item.getComposeTypeAsync(function (result) {
    var value = result.status === Office.AsyncResultStatus.Succeeded ? result.value : null;
    var kind = value && value.composeType && value.composeType !== "newMail" ? "reply" : "new";
    relaisInsert(event, kind, value && value.coercionType === "text" ? "text" : "html");
  });
}

function onNewAppointmentOrganizer(event) {
  relaisInsert(event, "new", "html");
}

Office.actions.associate("onNewMessageCompose", onNewMessageCompose);
Office.actions.associate("onNewAppointmentOrganizer", onNewAppointmentOrganizer);
"""


well_known = APIRouter(tags=["public"])


@well_known.get("/.well-known/microsoft-officeaddins-allowed.json", include_in_schema=False)
def officeaddins_allowed(request: Request):
    """Classic Outlook on Windows only lets the event script use SSO and cross-origin calls when the add-in's
    origin lists it here."""
    return {"allowed": [f"{_base(request.app.state.settings)}/addin/launchevent.js"]}


@router.get("/manifest.xml", include_in_schema=False)
def manifest(request: Request):
    return Response(manifest_xml(request.app.state.settings), media_type="application/xml", headers=JS_HEADERS)


@router.get("/launchevent.js", include_in_schema=False)
def launch_js(request: Request):
    body = LAUNCH_JS % {"base": _base(request.app.state.settings)}
    return Response(body, media_type="text/javascript", headers=JS_HEADERS)


@router.get("/launchevent.html", include_in_schema=False)
def launch_html(request: Request):
    body = render("addin/launchevent.html", base=_base(request.app.state.settings))
    return Response(body, media_type="text/html", headers=JS_HEADERS)


@lru_cache(maxsize=8)
def _icon(size: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (31, 58, 95))
    draw = ImageDraw.Draw(img)
    pad = max(2, size // 5)
    draw.rectangle([pad, pad, size - pad - 1, size - pad - 1], outline=(255, 255, 255), width=max(1, size // 16))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


@router.get("/icon-{size}.png", include_in_schema=False)
def icon(size: int):
    if size not in (16, 32, 64, 80, 128):
        raise NotFound("No such icon.")
    return Response(_icon(size), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})
