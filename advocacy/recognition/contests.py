"""Contests: create, pick the best posts, announce the winners, and what each viewer may see of the standings.

Who sees what (docs/advocacy-recognition.md):
- communications (and admins) see every participant's name and figure: they run the programme and hand out the
  prizes, and the click figures are theirs already (analytics). Their page marks who is shown to colleagues;
- employees see a colleague's name and figure only if that colleague said yes to "rank_visible" (portal.visibility);
  the others are left out of their standings (a count says how many), and an announced winner who said no appears
  as "a colleague", with no figure. Everyone always sees their own line.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlmodel import Session, col, select

from advocacy.recognition.models import Contest, ContestWinner, Metric
from advocacy.recognition.scoring import Standing, contest_posts, eligible_ids, standings
from portal.visibility import consenting
from service.db import row_id, rowcount, utcnow
from service.directory.models import Employee
from service.errors import Conflict, Invalid
from service.page_strings import N_
from service.tenancy import get_owned


class ContestIn(BaseModel):
    title: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=2000)
    metric: Metric
    starts_at: datetime
    ends_at: datetime
    eligibility: Literal["everyone", "department", "group"] = "everyone"
    department: str = Field("", max_length=200)
    group: str = Field("", max_length=320)
    winners: int = Field(3, ge=1, le=10)

    @field_validator("title")
    @classmethod
    def _one_line(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError(N_("Give the contest a title."))
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ContestIn":
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError(N_("Start and end need a time zone."))
        if self.ends_at <= self.starts_at:
            raise ValueError(N_("The contest must end after it starts."))
        if self.eligibility == "department" and not self.department.strip():
            raise ValueError(N_("Choose the department that takes part."))
        if self.eligibility == "group" and not self.group.strip():
            raise ValueError(N_("Choose the directory group that takes part."))
        return self

    def audience(self) -> dict:
        if self.eligibility == "department":
            return {"departments": [self.department.strip()]}
        if self.eligibility == "group":
            return {"groups": [self.group.strip()]}
        return {"everyone": True}


def create_contest(session: Session, *, org_id: int, body: ContestIn) -> Contest:
    contest = Contest(org_id=org_id, title=body.title, description=body.description.strip(), metric=body.metric,
                      starts_at=body.starts_at, ends_at=body.ends_at, audience=body.audience(),
                      winners=body.winners)  # fmt: skip
    session.add(contest)
    session.flush()
    return contest


def get_contest(session: Session, *, org_id: int, contest_id: int) -> Contest:
    return get_owned(session, Contest, contest_id, org_id=org_id, label="contest")


def list_contests(session: Session, *, org_id: int) -> list[Contest]:
    return list(
        session.exec(select(Contest).where(Contest.org_id == org_id).order_by(col(Contest.starts_at).desc())).all()
    )


STATES = (N_("upcoming"), N_("running"), N_("ended"), N_("announced"))  # the badges pages show


def state_of(contest: Contest, now: datetime | None = None) -> str:
    now = now or utcnow()
    if contest.announced_at is not None:
        return "announced"
    if now < contest.starts_at:
        return "upcoming"
    return "running" if now < contest.ends_at else "ended"


def eligibility_of(contest: Contest) -> tuple[str, str]:
    """("everyone" | "department" | "group", the department or group named)."""
    if contest.audience.get("departments"):
        return "department", contest.audience["departments"][0]
    if contest.audience.get("groups"):
        return "group", contest.audience["groups"][0]
    return "everyone", ""


def is_eligible(session: Session, contest: Contest, employee_id: int) -> bool:
    return employee_id in eligible_ids(session, contest)


# ---------------------------------------------------------------- best post and announcement


def pick_posts(session: Session, *, contest: Contest, picks: list[tuple[int, int]]) -> list[ContestWinner]:
    """Best-post contests: `picks` are (employee id, share link id) in the order of the places."""
    if contest.metric is not Metric.best_post:
        raise Invalid(N_("Only a best-post contest has posts to pick; the others rank by their formula."))
    if contest.announced_at is not None:
        raise Conflict(N_("The winners are announced already; picks can no longer change."))
    if not picks:
        raise Invalid(N_("Pick at least one post."))
    if len(picks) > contest.winners:
        raise Invalid(N_("Pick at most as many posts as the contest announces places."))
    if len(set(picks)) != len(picks):
        raise Invalid(N_("Each post can win one place only."))
    posts = {(p.employee_id, p.link_id): p for p in contest_posts(session, contest, eligible_ids(session, contest))}
    unknown = [p for p in picks if p not in posts]
    if unknown:
        raise Invalid(N_("Pick posts confirmed during this contest by an eligible employee."))
    session.execute(sa.delete(ContestWinner).where(col(ContestWinner.contest_id) == row_id(contest)))
    rows = [
        ContestWinner(
            contest_id=row_id(contest),
            org_id=contest.org_id,
            place=place,
            employee_id=e,
            article_id=posts[(e, link)].article_id,
            network=posts[(e, link)].network,
            score=float(posts[(e, link)].clicks),
        )  # fmt: skip
        for place, (e, link) in enumerate(picks, 1)
    ]
    session.add_all(rows)
    session.flush()
    return rows


def winners_of(session: Session, contest: Contest) -> list[ContestWinner]:
    return list(
        session.exec(
            select(ContestWinner)
            .where(ContestWinner.contest_id == contest.id)
            .order_by(col(ContestWinner.place), col(ContestWinner.id))
        ).all()
    )


def announce(session: Session, *, contest: Contest, now: datetime | None = None) -> list[ContestWinner]:
    """Freeze the winners (the top places by the formula, or comms' picks) and publish them in the portal."""
    now = now or utcnow()
    if contest.announced_at is not None:
        raise Conflict(N_("The winners are announced already."))
    if now < contest.ends_at:
        raise Invalid(N_("The contest is still running: announce its winners once it has ended."))
    if contest.metric is Metric.best_post:
        winners = winners_of(session, contest)
        if not winners:
            raise Invalid(N_("Pick the best posts first, then announce them."))
    else:
        winners = [
            ContestWinner(
                contest_id=row_id(contest),
                org_id=contest.org_id,
                place=s.rank,
                employee_id=s.employee_id,
                score=s.score,
            )  # fmt: skip
            for s in standings(session, contest)
            if s.rank <= contest.winners
        ]
        if not winners:
            raise Invalid(N_("Nobody scored in this contest: there is no winner to announce."))
    # The guard against a double click or two tabs: only the first update finds the contest unannounced.
    claimed = session.execute(
        sa.update(Contest).where(col(Contest.id) == row_id(contest), col(Contest.announced_at).is_(None))
        .values(announced_at=now)
    )  # fmt: skip
    if rowcount(claimed) != 1:
        raise Conflict(N_("The winners are announced already."))
    session.add_all(w for w in winners if w.id is None)
    session.flush()
    session.refresh(contest)
    return winners


# ---------------------------------------------------------------- what a viewer may see


@dataclass(frozen=True)
class Line:
    rank: int
    name: str | None  # None: a colleague who keeps their name private (shown only in announcements)
    department: str | None
    score: float | None
    secondary: int | None
    mine: bool
    visible_to_colleagues: bool
    employee_id: int | None = None  # comms only
    posts: tuple = ()  # comms only (best post candidates)


def person_name(e: Employee) -> str:
    return e.display_name or " ".join(p for p in (e.first_name, e.last_name) if p) or e.email


def _people(session: Session, ids: set[int]) -> dict[int, Employee]:
    if not ids:
        return {}
    return {row_id(e): e for e in session.exec(select(Employee).where(col(Employee.id).in_(list(ids)))).all()}


def board_for(session: Session, contest: Contest, *, viewer_employee_id: int | None, staff: bool) -> dict:
    """The standings as `viewer` may see them: staff (comms, admin) see everyone; an employee sees the colleagues
    who opted in and themself. {"lines": [...], "hidden": colleagues left out}."""
    rows: list[Standing] = standings(session, contest)
    ids = {s.employee_id for s in rows}
    shown = consenting(session, contest.org_id, "rank_visible", list(ids)) if ids else set()
    people = _people(session, ids)
    lines, hidden = [], 0
    for s in rows:
        mine = s.employee_id == viewer_employee_id
        if not (staff or mine or s.employee_id in shown):
            hidden += 1
            continue
        e = people.get(s.employee_id)
        lines.append(Line(rank=s.rank, name=person_name(e) if e else None, department=e.department if e else None,
                          score=s.score, secondary=s.secondary, mine=mine,
                          visible_to_colleagues=s.employee_id in shown,
                          employee_id=s.employee_id if staff else None,
                          posts=tuple(s.posts) if staff else ()))  # fmt: skip
    return {"lines": lines, "hidden": hidden}


def announced_for(session: Session, contest: Contest, *, viewer_employee_id: int | None, staff: bool) -> list[Line]:
    """The announced places: names of winners who opted in (all of them for staff), "a colleague" otherwise."""
    winners = winners_of(session, contest)
    ids = {w.employee_id for w in winners}
    shown = consenting(session, contest.org_id, "rank_visible", list(ids)) if ids else set()
    people = _people(session, ids)
    out = []
    for w in winners:
        mine = w.employee_id == viewer_employee_id
        visible = staff or mine or w.employee_id in shown
        e = people.get(w.employee_id)
        out.append(Line(rank=w.place, name=person_name(e) if (visible and e) else None,
                        department=e.department if (visible and e) else None,
                        score=w.score if visible else None, secondary=None, mine=mine,
                        visible_to_colleagues=w.employee_id in shown))  # fmt: skip
    return out


def recent_announcements(session: Session, *, org_id: int, employee_id: int, limit: int = 3) -> list[dict]:
    """The last announced contests the employee was eligible for, with what they may see of the winners."""
    contests = session.exec(
        select(Contest).where(Contest.org_id == org_id, col(Contest.announced_at).is_not(None))
        .order_by(col(Contest.announced_at).desc()).limit(limit * 3)
    ).all()  # fmt: skip
    out = []
    for c in contests:
        if is_eligible(session, c, employee_id) or any(w.employee_id == employee_id for w in winners_of(session, c)):
            out.append({"contest": c, "winners": announced_for(session, c, viewer_employee_id=employee_id,
                                                                 staff=False)})  # fmt: skip
        if len(out) == limit:
            break
    return out
