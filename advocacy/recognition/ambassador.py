"""The ambassador of the month: the top of the month's leaderboard (newsletter.figures), shown three ways.

- comms (dashboard panel, /app/contests): the month's real top, named, and who the portal and public pages show;
- the portal (/me/contests): the best-ranked employee of the month who lets colleagues see their rank
  ("rank_visible"), so an employee never learns the name of a colleague who said no;
- the public page and widget (/ambassador/{org}): the best-ranked employee who said yes to "public_ambassador".
  When the month's top did not, the next one who did is shown; when nobody did, the page says there is none.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from newsletter.figures import FORMULA, leaderboard
from portal.visibility import consenting
from service.directory.models import Employee
from service.models import Organisation


def last_month(zone: ZoneInfo, now: datetime | None = None) -> str:
    """The month that ended last, in the organisation's zone, as YYYY-MM."""
    today = (now or datetime.now(zone)).astimezone(zone).date()
    return (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


def month_days(month: str) -> tuple[date, date]:
    first = datetime.strptime(month, "%Y-%m").date()
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return first, last


@dataclass(frozen=True)
class Ambassador:
    employee_id: int
    name: str
    title: str | None
    department: str | None
    photo_url: str | None
    rank: int
    score: int


def _board(session: Session, org_id: int, month: str) -> list[dict]:
    first, last = month_days(month)
    return leaderboard(session, org_id=org_id, start=first, end=last, limit=1_000_000)["leaderboard"]


def _first_consenting(session: Session, org_id: int, board: list[dict], choice: str | None) -> Ambassador | None:
    allowed = consenting(session, org_id, choice, [b["employee_id"] for b in board]) if choice and board else None
    for b in board:
        if allowed is not None and b["employee_id"] not in allowed:
            continue
        e = session.get(Employee, b["employee_id"])
        if e is None or not e.active:
            continue
        return Ambassador(b["employee_id"], b["name"], e.title, e.department, e.photo_url, b["rank"], b["score"])
    return None


def ambassadors(session: Session, *, org_id: int, month: str) -> dict:
    """{"month", "formula", "top" (the real one, for comms), "portal", "public"}."""
    board = _board(session, org_id, month)
    return {
        "month": month,
        "formula": FORMULA,
        "top": _first_consenting(session, org_id, board, None),
        "portal": _first_consenting(session, org_id, board, "rank_visible"),
        "public": _first_consenting(session, org_id, board, "public_ambassador"),
    }


def public_ambassador(session: Session, *, slug: str) -> tuple[Organisation | None, str | None, Ambassador | None]:
    org = session.exec(select(Organisation).where(Organisation.slug == slug)).first()
    if org is None:
        return None, None, None
    try:
        zone = ZoneInfo(org.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    month = last_month(zone)
    board = _board(session, org.id or 0, month)
    return org, month, _first_consenting(session, org.id or 0, board, "public_ambassador")
