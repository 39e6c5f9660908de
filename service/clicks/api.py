"""The click-tracking API for comms: privacy settings (attribution, retention, opt-outs), figures, leaderboard."""

from datetime import date

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import PlainTextResponse
from sqlmodel import col, select

from service.api_errors import CSV
from service.auth import Principal, requires
from service.clicks import reports
from service.clicks.models import TrackingOptOut, TrackingSettings
from service.clicks.optout import opted_out, set_opt_out
from service.clicks.schemas import FigureRow, LeaderRow, OptOutPublic, TrackingSettingsPublic
from service.db import utcnow
from service.directory.models import Employee
from service.errors import NotFound
from service.links import Channel
from service.models import Role
from service.session import DbSession
from service.tenancy import get_owned

router = APIRouter()
COMMS = requires(Role.comms)


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


def _who(p: Principal) -> str:
    """The audit record's actor detail: which API key made the change."""
    return f"{p.role} key {p.name!r} (id {p.key_id})"


@router.get("/api/tracking/opt-outs", tags=["analytics"], response_model=list[OptOutPublic])
def list_opt_outs(session: DbSession, p: Principal = Depends(COMMS)):
    return session.exec(
        select(TrackingOptOut).where(TrackingOptOut.org_id == p.org_id).order_by(col(TrackingOptOut.employee_id))
    ).all()


@router.put(
    "/api/tracking/opt-outs/{employee_id}",
    tags=["analytics"],
    response_model=OptOutPublic,
    summary="Stop attributing this employee's clicks to them (their links are re-minted anonymously)",
)
def put_opt_out(session: DbSession, employee_id: int, p: Principal = Depends(COMMS)):
    get_owned(session, Employee, employee_id, org_id=p.org_id, label="employee")
    return set_opt_out(session, org_id=p.org_id, employee_id=employee_id, opt_out=True, actor_detail=_who(p))


@router.delete("/api/tracking/opt-outs/{employee_id}", tags=["analytics"], status_code=204)
def delete_opt_out(session: DbSession, employee_id: int, p: Principal = Depends(COMMS)):
    get_owned(session, Employee, employee_id, org_id=p.org_id, label="employee")
    if not opted_out(session, employee_id=employee_id):
        raise NotFound(f"Employee {employee_id} has not opted out.")
    set_opt_out(session, org_id=p.org_id, employee_id=employee_id, opt_out=False, actor_detail=_who(p))


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
    "/api/analytics/clicks.csv",
    tags=["analytics"],
    summary="The same figures as CSV for Excel: UTF-8 with BOM, `;` and decimal commas for e.g. French readers",
    response_class=PlainTextResponse,
    responses=CSV,
)
def get_figures_csv(session: DbSession,
    start: date | None = None, end: date | None = None, group_by: str = "campaign,day",
    campaign_id: int | None = None, employee_id: int | None = None, article_id: int | None = None,
    channel: Channel | None = None, network: str | None = None,
    sep: str | None = Query(None, description="',', ';' or 'tab'; default: ';' when Accept-Language starts with "
                                              "a language that writes decimal commas (fr, de, es...), else ','."),
    accept_language: str | None = Header(None, include_in_schema=False),
    p: Principal = Depends(COMMS), ):  # fmt: skip
    delimiter = reports.csv_separator(sep, accept_language)
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
        reports.to_csv(rows, groups, delimiter=delimiter),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="relais-clicks.csv"'},
    )


@router.get(
    "/api/analytics/leaderboard",
    tags=["analytics"],
    response_model=list[LeaderRow],
    summary="Employees by the human clicks their audience made: on their signature and on the posts they shared "
    "(their own share presses and newsletter reading are not counted, as in the newsletter's leaderboard)",
)
def get_leaderboard(session: DbSession,
    start: date | None = None, end: date | None = None, channel: Channel | None = None,
    limit: int = Query(20, ge=1, le=500), p: Principal = Depends(COMMS), ):  # fmt: skip
    return reports.leaderboard(session, org_id=p.org_id, start=start, end=end, limit=limit, channel=channel)


@router.get(
    "/api/analytics/verdicts",
    tags=["analytics"],
    summary="Clicks per verdict (human, scanner, crawler) and, within each, per reason (ua_scanner, burst...)",
)
def get_verdicts(session: DbSession,
    start: date | None = Query(None, description="First UTC day (inclusive)."),
    end: date | None = Query(None, description="Last UTC day (inclusive)."),
    p: Principal = Depends(COMMS), ):  # fmt: skip
    return {
        "start": start,
        "end": end,
        "verdicts": reports.verdict_reasons(session, org_id=p.org_id, start=start, end=end),
        "note": "A click can have several reasons. Reasons are kept on raw clicks only: days older than the "
        "retention period count in 'clicks' but not in 'reasons'.",
    }


@router.post("/api/tracking/rollup", tags=["analytics"], summary="Run the retention roll-up now (normally daily)")
def post_rollup(session: DbSession, p: Principal = Depends(requires())):
    return reports.rollup_and_purge(session)
