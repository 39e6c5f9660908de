"""The public tracking routes: /c/{token} (tracked links), /s/{token} (share links), /i/{token} (banner images).

These are plain Starlette routes (no dependency injection, no response model): they sit on the hot path
of every click. Every GET is classified (human / scanner / crawler), durably recorded by group commit and
only then redirected; HEAD is redirected and not counted. Unknown tokens get a small 404 page.
"""

import contextlib
import re
from datetime import date, datetime
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from service.assets import CONTENT_TYPES, NAME_RE, asset_dir
from service.auth import Principal, requires
from service.clicks import reports
from service.clicks.models import TrackingOptOut, TrackingSettings, TrackingSettingsBase
from service.clicks.optout import opted_out, set_opt_out
from service.clicks.recorder import RecordingFailed, Tracker
from service.clicks.verdicts import classify
from service.db import utcnow
from service.directory.models import Employee
from service.errors import NotFound
from service.links import PATH_PREFIX, Channel, ResolvedLink, link_key
from service.models import Role
from service.session import DbSession

router = APIRouter()

NOT_FOUND_HTML = (
    "<!doctype html><html lang=en><meta charset=utf-8><meta name=robots content=noindex>"
    '<title>Link not found</title><body style="font-family:Arial,sans-serif;margin:3em">'
    "<h1>This link does not exist</h1><p>It may have been mistyped or cut off. "
    "Check the address in the message you received.</p></body></html>"
)
UNAVAILABLE_HTML = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Try again</title>"
    '<body style="font-family:Arial,sans-serif;margin:3em"><h1>Please try again in a moment</h1>'
    "<p>We could not follow this link just now.</p></body></html>"
)
PUBLIC_HEADERS = {"cache-control": "no-store", "x-robots-tag": "noindex", "referrer-policy": "no-referrer"}
IMAGE_PROXY_RE = re.compile(r"googleimageproxy|ggpht\.com|yahoomailproxy|via ggpht", re.IGNORECASE)
URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


def tracker_for(app) -> Tracker:
    tracker = getattr(app.state, "tracker", None)
    if tracker is None:
        settings = app.state.settings
        tracker = app.state.tracker = Tracker(
            app.state.engine, link_key=link_key(settings), base_url=settings.public_base_url
        )
    return tracker


def _not_found() -> Response:
    return HTMLResponse(NOT_FOUND_HTML, status_code=404, headers=PUBLIC_HEADERS)


def _redirect(link: ResolvedLink) -> Response:
    headers = dict(PUBLIC_HEADERS)
    headers["location"] = quote(link.destination, safe=URL_SAFE)
    return Response(status_code=302, headers=headers)


async def _link(request: Request, tracker: Tracker) -> ResolvedLink | None:
    token = request.path_params["token"]
    link = tracker.cached_link(token)
    if link is None:
        link = await run_in_threadpool(tracker.load_link, token)
    return link


async def _observe(request: Request, tracker: Tracker, link: ResolvedLink, kind: str) -> list[tuple[str, dict]]:
    """The row(s) to write for this request: verdict, attribution, visitor hash, burst relabelling."""
    now = utcnow()
    policy = tracker.cached_policy(link.org_id) or await run_in_threadpool(tracker.load_policy, link.org_id)
    today = now.date()
    salt = tracker.cached_salt(today) or await run_in_threadpool(tracker.load_salt, today)
    headers = request.headers
    ua = headers.get("user-agent")
    ip = request.client.host if request.client else None
    visitor = tracker.visitor(salt, ip, ua)
    ops: list[tuple[str, dict]] = []
    relabel = tracker.burst(link, visitor, now) if kind == "click" else None
    verdict = classify(user_agent=ua, ip=ip, headers=headers, burst=relabel is not None)
    reasons = verdict.reason_text
    employee_id = link.employee_id
    if employee_id is not None and (not policy.attribution or employee_id in policy.opted_out):
        employee_id = None
    if kind == "click":
        ops.append(("click", {
            "org_id": link.org_id, "link_id": link.id, "employee_id": employee_id, "campaign_id": link.campaign_id,
            "article_id": link.article_id, "issue_id": link.issue_id, "channel": link.channel,
            "network": link.network, "occurred_at": now, "verdict": verdict.verdict, "reasons": reasons,
            "visitor": visitor,
        }))  # fmt: skip
        if relabel is not None:
            ops.append(("relabel", relabel))
    else:
        if ua and IMAGE_PROXY_RE.search(ua):
            reasons = ",".join(filter(None, (reasons, "image_proxy")))
        ops.append(("impression", {
            "org_id": link.org_id, "link_id": link.id, "employee_id": employee_id, "campaign_id": link.campaign_id,
            "occurred_at": now, "verdict": verdict.verdict, "reasons": reasons, "visitor": visitor,
        }))  # fmt: skip
    return ops


async def _follow(request: Request, prefix: str) -> Response:
    tracker = tracker_for(request.app)
    link = await _link(request, tracker)
    if link is None or link.channel is Channel.banner_image or PATH_PREFIX.get(link.channel, "c") != prefix:
        return _not_found()
    if request.method == "HEAD":  # link checkers and some scanners: redirect, never count
        return _redirect(link)
    try:
        await tracker.recorder.record(await _observe(request, tracker, link, "click"))
    except RecordingFailed:
        return HTMLResponse(UNAVAILABLE_HTML, status_code=503, headers={**PUBLIC_HEADERS, "retry-after": "2"})
    return _redirect(link)


async def follow_link(request: Request) -> Response:
    return await _follow(request, "c")


async def follow_share(request: Request) -> Response:
    return await _follow(request, "s")


async def banner_image(request: Request) -> Response:
    """The banner's image, counted as an image load. The token stands for one immutable asset, so the
    response can be cached for a year: a new banner is a new token and a new URL."""
    tracker = tracker_for(request.app)
    link = await _link(request, tracker)
    if link is None or link.channel is not Channel.banner_image:
        return _not_found()
    name = link.destination.rsplit("/", 1)[-1]
    path = asset_dir(request.app.state.settings) / name
    if not NAME_RE.match(name) or not path.is_file():
        return _not_found()
    if request.method == "GET":
        # an image load that could not be written must not break the signature
        with contextlib.suppress(RecordingFailed):
            await tracker.recorder.record(await _observe(request, tracker, link, "impression"))
    return FileResponse(path, media_type=CONTENT_TYPES[name.rsplit(".", 1)[1]],
                        headers={"cache-control": "public, max-age=31536000, immutable",
                                 "x-robots-tag": "noindex"})  # fmt: skip


router.add_route("/c/{token}", follow_link, methods=["GET", "HEAD"], include_in_schema=False)
router.add_route("/s/{token}", follow_share, methods=["GET", "HEAD"], include_in_schema=False)
router.add_route("/i/{token}", banner_image, methods=["GET", "HEAD"], include_in_schema=False)


# ---------------------------------------------------------------- API: privacy settings, figures, leaderboard

COMMS = requires(Role.comms)


class TrackingSettingsPublic(TrackingSettingsBase):
    pass


class OptOutPublic(BaseModel):
    employee_id: int
    created_at: datetime


class FigureRow(BaseModel):
    model_config = {"extra": "allow"}
    human: int
    raw: int
    scanner: int
    crawler: int
    unique_clickers: int
    impressions: int | None = None
    ctr: float | None = None


class LeaderRow(BaseModel):
    rank: int
    employee_id: int
    name: str | None
    email: str | None
    department: str | None
    human: int
    raw: int
    unique_clickers: int


@router.get("/api/tracking/settings", tags=["analytics"], response_model=TrackingSettingsPublic)
def get_tracking_settings(session: DbSession, p: Principal = Depends(COMMS)):
    return session.get(TrackingSettings, p.org_id) or TrackingSettings(org_id=p.org_id)


@router.put(
    "/api/tracking/settings",
    tags=["analytics"],
    response_model=TrackingSettingsPublic,
    summary="Per-employee attribution switch and raw-click retention",
)
def put_tracking_settings(session: DbSession, body: TrackingSettingsPublic, p: Principal = Depends(COMMS)):  # fmt: skip
    row = session.get(TrackingSettings, p.org_id) or TrackingSettings(org_id=p.org_id)
    row.attribution, row.retention_days, row.updated_at = body.attribution, body.retention_days, utcnow()
    session.add(row)
    session.flush()
    return row


@router.get("/api/tracking/opt-outs", tags=["analytics"], response_model=list[OptOutPublic])
def list_opt_outs(session: DbSession, p: Principal = Depends(COMMS)):
    return session.exec(
        select(TrackingOptOut).where(TrackingOptOut.org_id == p.org_id).order_by(TrackingOptOut.employee_id)
    ).all()


@router.put(
    "/api/tracking/opt-outs/{employee_id}",
    tags=["analytics"],
    response_model=OptOutPublic,
    summary="Stop attributing this employee's clicks to them (their links are re-minted anonymously)",
)
def put_opt_out(session: DbSession, employee_id: int, p: Principal = Depends(COMMS)):
    emp = session.get(Employee, employee_id)
    if emp is None or emp.org_id != p.org_id:
        raise NotFound(f"No employee {employee_id} in this organisation.")
    return set_opt_out(session, org_id=p.org_id, employee_id=employee_id, opt_out=True)


@router.delete("/api/tracking/opt-outs/{employee_id}", tags=["analytics"], status_code=204)
def delete_opt_out(session: DbSession, employee_id: int, p: Principal = Depends(COMMS)):
    emp = session.get(Employee, employee_id)
    if emp is None or emp.org_id != p.org_id or not opted_out(session, employee_id=employee_id):
        raise NotFound(f"Employee {employee_id} has not opted out.")
    set_opt_out(session, org_id=p.org_id, employee_id=employee_id, opt_out=False)


def _group_by(value: str) -> list[str]:
    return [g.strip() for g in value.split(",") if g.strip()]


@router.get(
    "/api/analytics/clicks",
    tags=["analytics"],
    response_model=list[FigureRow],
    summary="Clicks (human and raw), unique clickers, image loads and CTR, grouped as asked",
)
def get_figures(session: DbSession,
    start: date | None = Query(None, description="First UTC day (inclusive)."),
    end: date | None = Query(None, description="Last UTC day (inclusive)."),
    group_by: str = Query("campaign", description=f"Comma-separated: {', '.join(reports.groups())}."),
    campaign_id: int | None = None, employee_id: int | None = None, article_id: int | None = None,
    channel: Channel | None = None, network: str | None = None,
    p: Principal = Depends(COMMS), ):  # fmt: skip
    return reports.figures(session, org_id=p.org_id, start=start, end=end, group_by=_group_by(group_by),
                           campaign_id=campaign_id, employee_id=employee_id, article_id=article_id,
                           channel=channel, network=network)  # fmt: skip


@router.get(
    "/api/analytics/clicks.csv", tags=["analytics"], summary="The same figures as CSV", response_class=PlainTextResponse
)
def get_figures_csv(session: DbSession,
    start: date | None = None, end: date | None = None, group_by: str = "campaign,day",
    campaign_id: int | None = None, employee_id: int | None = None, article_id: int | None = None,
    channel: Channel | None = None, network: str | None = None,
    p: Principal = Depends(COMMS), ):  # fmt: skip
    groups = _group_by(group_by)
    rows = reports.figures(
        session,
        org_id=p.org_id,
        start=start,
        end=end,
        group_by=groups,
        campaign_id=campaign_id,
        employee_id=employee_id,
        article_id=article_id,
        channel=channel,
        network=network,
    )
    return PlainTextResponse(
        reports.to_csv(rows, groups),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="relais-clicks.csv"'},
    )


@router.get(
    "/api/analytics/leaderboard",
    tags=["analytics"],
    response_model=list[LeaderRow],
    summary="Employees by the human clicks they brought in",
)
def get_leaderboard(session: DbSession,
    start: date | None = None, end: date | None = None, channel: Channel | None = None,
    limit: int = Query(20, ge=1, le=500), p: Principal = Depends(COMMS), ):  # fmt: skip
    return reports.leaderboard(session, org_id=p.org_id, start=start, end=end, limit=limit, channel=channel)


@router.post("/api/tracking/rollup", tags=["analytics"], summary="Run the retention roll-up now (normally daily)")
def post_rollup(session: DbSession, p: Principal = Depends(requires())):
    return reports.rollup_and_purge(session)


# ---------------------------------------------------------------- fast path

_FAST = {"/c/": follow_link, "/s/": follow_share, "/i/": banner_image}


class TrackingPaths:
    """ASGI middleware sending /c/, /s/ and /i/ straight to their handlers.

    Every click pays for routing otherwise: the router walks all the API's routes before reaching these.
    The same handlers stay registered as routes above (for docs, tests and any app without the middleware).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            handler = _FAST.get(path[:3])
            if handler is not None and "/" not in path[3:] and scope["method"] in ("GET", "HEAD"):
                scope["path_params"] = {"token": path[3:]}
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
