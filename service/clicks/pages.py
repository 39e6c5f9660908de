"""Communications pages on the click figures: the dashboard and analytics (filters, charts, tables, CSV).

Every figure comes from service.clicks.reports, the functions the analytics API calls.
"""

from datetime import date, timedelta

from fastapi import APIRouter, Depends, Request
from sqlmodel import col, select

from service import features
from service.accounts.guard import PageUser, page_guard
from service.clicks import reports
from service.db import utcnow
from service.links import Channel
from service.models import Role
from service.pages import gettext, render_page, request_language, use_language
from service.session import DbSession

router = APIRouter(include_in_schema=False)
COMMS = page_guard(Role.comms)
CHANNEL_LABELS = {
    "signature_banner": "Signature banner",
    "signature_field": "Signature links",
    "newsletter": "Newsletter",
    "share_intent": "Share buttons",
    "share": "Shared posts",
}


def _names(session, model, ids, attr: str) -> dict[int, str]:
    ids = [i for i in ids if i is not None]
    if not ids:
        return {}
    return {r.id: getattr(r, attr) for r in session.exec(select(model).where(col(model.id).in_(ids))).all()}


def _feature_names(session, org_id: int, group: str, ids) -> dict[int, str]:
    """Names of a feature's rows (campaigns, articles) through the labels the features register."""
    label = reports.feature_labels().get(group)
    ids = [i for i in ids if i is not None]
    return label.names(session, org_id, ids) if label is not None and ids else {}


def _campaign_names(session, org_id: int, ids) -> dict[int, str]:
    return _feature_names(session, org_id, "campaign", ids)


def _article_names(session, org_id: int, ids) -> dict[int, str]:
    return _feature_names(session, org_id, "article", ids)


def traffic_chart(rows: list[dict], start: date, end: date) -> dict:
    """Human (solid) and raw (dashed) clicks per day and channel, as the chart in static/app.js reads it."""
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    series: dict[str, dict[str, list[int]]] = {}
    index = {d: i for i, d in enumerate(days)}
    for r in rows:
        if r["channel"] not in CHANNEL_LABELS or r["day"] not in index:
            continue
        s = series.setdefault(r["channel"], {"human": [0] * len(days), "raw": [0] * len(days)})
        s["human"][index[r["day"]]] += r["human"]
        s["raw"][index[r["day"]]] += r["raw"]
    datasets: list[dict[str, object]] = []
    for channel, s in series.items():
        name = gettext(CHANNEL_LABELS[channel])
        datasets.append({"label": f"{name} · {gettext('human')}", "data": s["human"]})
        datasets.append({"label": f"{name} · {gettext('raw')}", "data": s["raw"], "dashed": True})
    return {"type": "line", "labels": days, "datasets": datasets}


def period(first: date | None = None, last: date | None = None) -> tuple[date, date]:
    """The period a page shows: the days asked for, else the last 30 days up to today (UTC, as the figures)."""
    last = last or utcnow().date()
    first = first or last - timedelta(days=29)
    return min(first, last), last


def _top(session, org_id: int, group: str, start: date, end: date, n: int = 5) -> list[dict]:
    """The `n` campaigns or articles with the most human clicks in the period."""
    rows = reports.click_counts(session, org_id=org_id, start=start, end=end, group_by=[group])
    return sorted((r for r in rows if r[group] is not None), key=lambda r: -r["human"])[:n]


@router.get("/app/dashboard")
def dashboard(session: DbSession, request: Request, user: PageUser = Depends(COMMS)):
    use_language(request_language(request, user.language))  # the chart's labels are built here
    start, end = period()
    by_day = reports.figures(session, org_id=user.org_id, start=start, end=end, group_by=["day", "channel"])
    totals = {"human": sum(r["human"] for r in by_day), "raw": sum(r["raw"] for r in by_day)}
    campaigns = _top(session, user.org_id, "campaign", start, end)
    articles = _top(session, user.org_id, "article", start, end)
    ambassadors = reports.leaderboard(session, org_id=user.org_id, start=start, end=end, limit=5)
    return render_page(
        request,
        "comms/dashboard.html",
        start=start,
        end=end,
        totals=totals,
        chart=traffic_chart(by_day, start, end),
        campaigns=campaigns,
        articles=articles,
        ambassadors=ambassadors,
        campaign_names=_campaign_names(session, user.org_id, [r["campaign"] for r in campaigns]),
        article_names=_article_names(session, user.org_id, [r["article"] for r in articles]),
        panels=[p for p in (panel(session, user.org_id) for panel in features.dashboard_panels()) if p],
    )


TABLE_ROWS = 100
GROUP_CHOICES = ("campaign", "channel", "department", "office", "employee", "article", "variant", "day")


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def analytics_filters(start: str = "", end: str = "", group_by: str = "campaign", campaign_id: str = "",
                      channel: str = "", department: str = "", office: str = "") -> dict:  # fmt: skip
    """The analytics filters from the query string (the page and its CSV export read the same ones); an empty or
    unreadable one means "all" (a filter form sends blanks)."""
    first, last = period(_day(start), _day(end))
    return dict(
        start=first,
        end=last,
        group_by=group_by if group_by in GROUP_CHOICES else "campaign",
        campaign_id=int(campaign_id) if campaign_id.isdigit() else None,
        channel=Channel(channel) if channel in CHANNEL_LABELS else None,
        department=department or None,
        office=office or None,
    )


def _groups(q: dict) -> list[str]:
    """The grouping asked for, plus department and office when they filter (the report groups by them)."""
    return [q["group_by"]] + [g for g in ("department", "office") if q[g] and g != q["group_by"]]


def _analytics_rows(session, org_id: int, q: dict, *, labelled: bool = True) -> list[dict]:
    rows = reports.figures(
        session,
        org_id=org_id,
        start=q["start"],
        end=q["end"],
        group_by=_groups(q),
        labelled=labelled,
        campaign_id=q["campaign_id"],
        channel=q["channel"],
    )
    # department and office filter the grouped rows (the report groups by them; it has no filter for them)
    return [r for r in rows if all(not q[g] or r.get(g) == q[g] for g in ("department", "office"))]


@router.get("/app/analytics")
def analytics(
    session: DbSession, request: Request, q: dict = Depends(analytics_filters), user: PageUser = Depends(COMMS)
):
    from service.directory.models import Employee

    use_language(request_language(request, user.language))  # the chart's labels are built here
    # the page names only the rows it shows (_row_labels); the CSV export names them all
    every = sorted(_analytics_rows(session, user.org_id, q, labelled=False), key=lambda r: -r["human"])
    rows = every[:TABLE_ROWS]  # the page shows the top rows; the CSV export has them all
    labels = _row_labels(session, user.org_id, q["group_by"], rows)
    verdicts = reports.click_counts(
        session,
        org_id=user.org_id,
        start=q["start"],
        end=q["end"],
        group_by=["day"],
        campaign_id=q["campaign_id"],
        channel=q["channel"],
    )
    board = reports.leaderboard(
        session, org_id=user.org_id, start=q["start"], end=q["end"], limit=10, channel=q["channel"]
    )
    # the campaigns that have clicks in the organisation, named by the campaigns feature
    with_clicks = reports.click_counts(session, org_id=user.org_id, group_by=["campaign"])
    names = _campaign_names(session, user.org_id, [r["campaign"] for r in with_clicks])
    camp_rows = [{"id": i, "name": n} for i, n in sorted(names.items(), key=lambda kv: kv[1])]
    depts = session.exec(select(Employee.department).where(Employee.org_id == user.org_id).distinct()).all()
    offices = session.exec(select(Employee.office).where(Employee.org_id == user.org_id).distinct()).all()
    chart = {
        "type": "bar",
        "labels": [r["day"] for r in verdicts],
        "datasets": [
            {"label": gettext("Human"), "data": [r["human"] for r in verdicts]},
            {"label": gettext("Scanners"), "data": [r["scanner"] for r in verdicts]},
            {"label": gettext("Crawlers and previews"), "data": [r["crawler"] for r in verdicts]},
        ],
    }
    params = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in q.items() if v is not None}
    return render_page(
        request,
        "comms/analytics.html",
        q=q,
        rows=rows,
        total_rows=len(every),
        labels=labels,
        chart=chart,
        board=board,
        campaigns=camp_rows,
        departments=sorted(d for d in depts if d),
        offices=sorted(o for o in offices if o),
        channels=CHANNEL_LABELS,
        groups=GROUP_CHOICES,
        params=params,
    )


def _row_labels(session, org_id: int, group: str, rows: list[dict]) -> dict:
    ids = [r.get(group) for r in rows]
    if group == "campaign":
        return _campaign_names(session, org_id, ids)
    if group == "article":
        return _article_names(session, org_id, ids)
    if group == "employee":
        from service.directory.models import Employee

        return _names(session, Employee, ids, "email")
    if group == "channel":
        return CHANNEL_LABELS
    return {}


@router.get("/app/analytics.csv")
def analytics_csv(session: DbSession, q: dict = Depends(analytics_filters), user: PageUser = Depends(COMMS)):
    from fastapi.responses import PlainTextResponse

    return PlainTextResponse(
        reports.to_csv(_analytics_rows(session, user.org_id, q), _groups(q)),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="relais-analytics.csv"'},
    )
