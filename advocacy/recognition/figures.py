"""An employee's own figures (/me/figures): their clicks over time and by channel, human and raw side by side,
their rank on the ambassador leaderboard, and their department's totals when it is big enough to hide anyone.

Every number comes from the click reports (service.clicks.reports.click_counts) and the newsletter's leaderboard
(newsletter.figures), for the same UTC days the comms pages use."""

from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, col, select

from advocacy.recognition.contests import person_name
from newsletter.figures import FORMULA, leaderboard
from portal.visibility import consenting
from service.clicks.reports import click_counts
from service.directory.models import Employee

CHANNELS = ("signature_banner", "signature_field", "newsletter", "share_intent", "share")


def my_figures(session: Session, *, org_id: int, employee_id: int, start: date, end: date) -> dict:
    """{"by_day": click_counts rows by day and channel, "by_channel": {channel: counts}, "totals": counts}."""
    by_day = click_counts(session, org_id=org_id, start=start, end=end, group_by=["day", "channel"],
                          employee_id=employee_id)  # fmt: skip
    blank = {"human": 0, "scanner": 0, "crawler": 0, "raw": 0}
    by_channel = {c: dict(blank) for c in CHANNELS}
    totals = dict(blank)
    for r in by_day:
        for k in blank:
            by_channel.setdefault(r["channel"], dict(blank))[k] += r[k]
            totals[k] += r[k]
    return {"by_day": by_day, "by_channel": by_channel, "totals": totals}


def full_board(session: Session, *, org_id: int, start: date, end: date) -> list[dict]:
    """Every ranked employee of the ambassador leaderboard for the period (names included: filter before showing)."""
    return leaderboard(session, org_id=org_id, start=start, end=end, limit=1_000_000)["leaderboard"]


def my_rank(board: list[dict], *, employee_id: int) -> dict | None:
    """My line of the leaderboard and how many are ranked (None when I have no score)."""
    mine = next((b for b in board if b["employee_id"] == employee_id), None)
    return {"line": mine, "of": len(board), "formula": FORMULA} if mine else None


def colleagues_board(session: Session, board: list[dict], *, org_id: int, employee_id: int, limit: int = 10) -> dict:
    """The leaderboard as an employee may see it: colleagues who opted in ("rank_visible") and me."""
    shown = consenting(session, org_id, "rank_visible", [b["employee_id"] for b in board]) if board else set()
    lines = [
        {"rank": b["rank"], "name": b["name"], "score": b["score"], "mine": b["employee_id"] == employee_id}
        for b in board
        if b["employee_id"] in shown or b["employee_id"] == employee_id
    ]
    return {"lines": lines[:limit], "hidden": len(board) - len(lines), "formula": FORMULA}


def department_size(session: Session, *, org_id: int, department: str) -> int:
    query = (
        select(sa.func.count())
        .select_from(Employee)
        .where(Employee.org_id == org_id, Employee.department == department, col(Employee.active))
    )
    return int(session.exec(query).one())


def team_figures(session: Session, *, org_id: int, department: str | None, start: date, end: date,
                 min_size: int) -> dict:  # fmt: skip
    """My department's totals, or why they are not shown: {"shown": bool, "size": n, "min_size": ..., ...}."""
    if not department:
        return {"shown": False, "reason": "no_department", "min_size": min_size}
    size = department_size(session, org_id=org_id, department=department)
    if size < min_size:
        return {"shown": False, "reason": "too_small", "size": size, "min_size": min_size, "department": department}
    rows = click_counts(session, org_id=org_id, start=start, end=end, group_by=["department"])
    row = next((r for r in rows if r["department"] == department), None)
    totals = {k: (row[k] if row else 0) for k in ("human", "scanner", "crawler", "raw")}
    return {"shown": True, "size": size, "min_size": min_size, "department": department, "totals": totals}


def ambassador_name(session: Session, employee_id: int) -> str | None:
    e = session.get(Employee, employee_id)
    return person_name(e) if e else None
