""" "Who sees what on date X": pick a day (and time) in the organisation's time zone, optionally a department,
an office or a campaign's audience, and see a few real employees' signatures for that moment with the banner
the rotation serves them, and why. The placements are the rotation's own (`who_sees_what`, `Rotation.pick`,
the code deployments render with): this page explains its choices, it never makes them a second time."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from service.accounts.guard import PageUser, page_guard
from service.db import row_id, utcnow
from service.directory.models import Employee
from service.errors import AppError
from service.models import Role
from service.page_strings import N_
from service.page_views import FRAME_HEADERS, frame_message, org_zone
from service.pages import render_page
from service.session import DbSession
from signatures.campaigns.models import Campaign, CampaignVariant
from signatures.campaigns.service import Pick, Rotation, audience_of, get_campaign, who_sees_what

router = APIRouter(include_in_schema=False)
COMMS = page_guard(Role.comms)
SAMPLE = 6  # employees shown, unless more are needed to show every campaign and variant served
MAX_SAMPLE = 12  # each is a rendered signature in a frame

BAD_DATE = N_("Give a date as YYYY-MM-DD.")
BAD_TIME = N_("Give a time as HH:MM (24-hour clock).")
BAD_CAMPAIGN = N_("Choose a campaign from the list.")
NOT_YOURS = N_("This employee is not in your directory.")
NO_ZONE = N_("Give the moment with its time zone.")
# the audience criteria, as the "why" names them (templates translate them by name)
CRITERIA_NAMES = (N_("departments"), N_("offices"), N_("groups"), N_("emails"), N_("employees"))


@dataclass(frozen=True)
class Placement:
    employee: Employee
    pick: Pick | None

    @property
    def tier_weight(self) -> int:
        return sum(c.weight for c in self.pick.tier) if self.pick else 0

    @property
    def variant_weight(self) -> int:
        return sum(v.weight for v in self.pick.variants) if self.pick else 0


@dataclass(frozen=True)
class Served:
    """One banner served in the selection: a campaign's variant (None: no banner) and how many carry it."""

    campaign: Campaign | None
    variant: CampaignVariant | None
    employees: int


def sample(placements: list[Placement], size: int = SAMPLE) -> list[Placement]:
    """A few employees that show every campaign served, someone with no banner, then every variant served;
    then the first others up to `size`."""
    chosen: dict[int, Placement] = {}

    def take(wanted) -> None:
        for p in placements:
            if row_id(p.employee) not in chosen and wanted(p.pick):
                chosen[row_id(p.employee)] = p
                return

    served = sorted({(row_id(p.pick.campaign), row_id(p.pick.variant)) for p in placements if p.pick})
    for campaign_id in sorted({c for c, _v in served}):
        take(lambda pick, c=campaign_id: pick is not None and pick.campaign.id == c)
    take(lambda pick: pick is None)
    for _campaign_id, variant_id in served:
        if not any(p.pick and p.pick.variant.id == variant_id for p in chosen.values()):
            take(lambda pick, v=variant_id: pick is not None and pick.variant.id == v)
    for p in placements:
        if len(chosen) >= size:
            break
        chosen.setdefault(row_id(p.employee), p)
    return list(chosen.values())[:MAX_SAMPLE]


def served(placements: list[Placement]) -> list[Served]:
    counts: dict[tuple, Served] = {}
    for p in placements:
        key = (row_id(p.pick.campaign), row_id(p.pick.variant)) if p.pick else (0, 0)
        old = counts.get(key)
        counts[key] = Served(
            p.pick.campaign if p.pick else None, p.pick.variant if p.pick else None, (old.employees if old else 0) + 1
        )
    return [counts[k] for k in sorted(counts, key=lambda k: (k == (0, 0), k))]


def _places(session, org_id: int) -> tuple[list[str], list[str]]:
    q = select(Employee.department, Employee.office).where(Employee.org_id == org_id).distinct()
    rows = session.exec(q).all()
    return sorted({d for d, _o in rows if d}), sorted({o for _d, o in rows if o})


def _parse(day: str, at_time: str, zone) -> tuple[datetime | None, dict[str, str]]:
    errors: dict[str, str] = {}
    try:
        d = date.fromisoformat(day) if day else utcnow().astimezone(zone).date()
    except ValueError:
        errors["date"] = BAD_DATE
    try:
        t = time.fromisoformat(at_time) if at_time else time(12, 0)
        if t.tzinfo is not None:
            raise ValueError
    except ValueError:
        errors["time"] = BAD_TIME
    if errors:
        return None, errors
    return datetime.combine(d, t, tzinfo=zone).astimezone(UTC), {}


@router.get("/app/campaigns-who")
def who_sees_what_page(
    session: DbSession, request: Request, day: str = Query("", alias="date"),
    at_time: str = Query("12:00", alias="time"), department: str = "", office: str = "", campaign_id: str = "",
    user: PageUser = Depends(COMMS),
):  # fmt: skip
    zone = org_zone(session, user.org_id)
    at, errors = _parse(day.strip(), at_time.strip(), zone)
    campaign = None
    if campaign_id.strip():
        if campaign_id.strip().isdigit():  # another organisation's id: 404, like every page
            campaign = get_campaign(session, org_id=user.org_id, campaign_id=int(campaign_id))
        else:
            errors["campaign_id"] = BAD_CAMPAIGN
    departments, offices = _places(session, user.org_id)
    campaigns = session.exec(
        select(Campaign).where(Campaign.org_id == user.org_id).order_by(col(Campaign.id).desc())
    ).all()
    context: dict[str, Any] = dict(
        v={"date": day or (at.astimezone(zone).date().isoformat() if at else ""), "time": at_time,
           "department": department, "office": office, "campaign_id": campaign_id},
        errors=errors, zone=str(zone), departments=departments, offices=offices, campaigns=campaigns,
        rotation=None, at=at, placements=[], served=[], unseen=[], total=0,
    )  # fmt: skip
    if at is None or errors:
        return render_page(request, "comms/who_sees_what.html", status_code=422, **context)
    rotation, picks = who_sees_what(
        session, org_id=user.org_id, at=at, department=department or None, office=office or None
    )
    placements = [Placement(e, p) for e, p in picks if e.active]
    if campaign is not None:
        includes = audience_of(campaign).predicate()
        placements = [p for p in placements if includes(p.employee, rotation.groups_of(p.employee))]
    shown = {row_id(p.pick.campaign) for p in placements if p.pick}
    live = rotation.live + ([rotation.default] if rotation.default else [])
    context.update(
        rotation=rotation,
        placements=sample(placements),
        served=served(placements),
        unseen=[c for c in live if row_id(c) not in shown],
        total=len(placements),
        audience_of=audience_of,
        local_at=at.astimezone(zone),
    )
    return render_page(request, "comms/who_sees_what.html", **context)


@router.get("/app/campaigns-who/frame")
def who_frame(session: DbSession, request: Request, employee_id: int, at: str, user: PageUser = Depends(COMMS)):
    """One employee's real signature at `at`, with the banner the rotation serves them then (nothing minted)."""
    from signatures.service import render_employee

    employee = session.get(Employee, employee_id)
    if employee is None or employee.org_id != user.org_id:
        return frame_message(request, NOT_YOURS, status_code=404)
    try:
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError
    except ValueError:
        return frame_message(request, NO_ZONE, status_code=422)
    rotation = Rotation(session, org_id=user.org_id, at=moment)
    pick = rotation.pick(employee)
    banner = rotation.preview_banner(pick, base_settings=request.app.state.settings) if pick else None
    try:
        _version, rendered = render_employee(session, employee=employee, banner=banner)
    except AppError as exc:
        return frame_message(request, exc.message)
    return HTMLResponse(rendered.html, headers=FRAME_HEADERS)
