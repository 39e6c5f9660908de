"""The public tracking routes: /c/{token} (tracked links), /s/{token} (share links), /i/{token} (banner images).

These are plain Starlette routes (no dependency injection, no response model): they sit on the hot path
of every click. Every GET is classified (human / scanner / crawler), durably recorded by group commit and
only then redirected; HEAD is redirected and not counted. Unknown tokens get a small 404 page.
"""

import contextlib
from urllib.parse import quote

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from service import features
from service.assets import CONTENT_TYPES, NAME_RE, asset_dir
from service.clicks.recorder import RecordingFailed, Tracker
from service.clicks.verdicts import classify
from service.db import utcnow
from service.links import PATH_PREFIX, Channel, ResolvedLink, link_key
from service.pages import render_page

router = APIRouter()

PUBLIC_HEADERS = {"cache-control": "no-store", "x-robots-tag": "noindex", "referrer-policy": "no-referrer"}
URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


def tracker_for(app) -> Tracker:
    tracker = getattr(app.state, "tracker", None)
    if tracker is None:
        settings = app.state.settings
        tracker = app.state.tracker = Tracker(
            app.state.engine, link_key=link_key(settings), base_url=settings.public_base_url
        )
    return tracker


def _not_found(request: Request) -> Response:
    # in the visitor's language, from the one page Environment (templates/pages/public/)
    return render_page(request, "public/link_not_found.html", status_code=404, headers=PUBLIC_HEADERS)


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
    policy = tracker.cached_policy(link.org_id)
    if not policy:
        policy = await run_in_threadpool(tracker.load_policy, link.org_id)
    today = now.date()
    salt = tracker.cached_salt(today)
    if not salt:
        salt = await run_in_threadpool(tracker.load_salt, today)
    headers = request.headers
    ua = headers.get("user-agent")
    ip = request.client.host if request.client else None
    visitor = tracker.visitor(salt, ip, ua)
    ops: list[tuple[str, dict]] = []
    relabel = tracker.burst(link, visitor, now) if kind == "click" else None
    verdict = classify(user_agent=ua, ip=ip, headers=headers, burst=relabel is not None, image_load=kind != "click")
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
        ops.append(("impression", {
            "org_id": link.org_id, "link_id": link.id, "employee_id": employee_id, "campaign_id": link.campaign_id,
            "occurred_at": now, "verdict": verdict.verdict, "reasons": reasons, "visitor": visitor,
        }))  # fmt: skip
    return ops


def _share_detour(app, link: ResolvedLink, path: str) -> str | None:
    """The first share gate (service.features) that sends this employee elsewhere before the network, if any."""
    gates = getattr(app.state, "share_gates", None)
    if gates is None:
        gates = app.state.share_gates = tuple(features.share_gates())
    if not gates:
        return None
    from sqlmodel import Session

    with Session(app.state.engine) as session:
        for gate in gates:
            detour = gate(session, app.state.settings, org_id=link.org_id, employee_id=link.employee_id,
                          next_path=path)  # fmt: skip
            if detour is not None and detour.startswith("/") and not detour.startswith("//"):
                return detour
    return None


async def _follow(request: Request, prefix: str) -> Response:
    tracker = tracker_for(request.app)
    link = await _link(request, tracker)
    if link is None or link.channel is Channel.banner_image or PATH_PREFIX.get(link.channel, "c") != prefix:
        return _not_found(request)
    if link.channel is Channel.share_intent and link.employee_id is not None:
        # an employee's share button: a gate (the charter) may send them to a page first; counted once they go on
        detour = await run_in_threadpool(_share_detour, request.app, link, request.url.path)
        if detour is not None:
            return Response(status_code=303, headers={**PUBLIC_HEADERS, "location": detour})
    if request.method == "HEAD":  # link checkers and some scanners: redirect, never count
        return _redirect(link)
    try:
        await tracker.recorder.record(await _observe(request, tracker, link, "click"))
    except RecordingFailed:
        return render_page(
            request, "public/try_again.html", status_code=503, headers={**PUBLIC_HEADERS, "retry-after": "2"}
        )
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
        return _not_found(request)
    name = link.destination.rsplit("/", 1)[-1]
    path = asset_dir(request.app.state.settings) / name
    if not NAME_RE.match(name) or not path.is_file():
        return _not_found(request)
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
