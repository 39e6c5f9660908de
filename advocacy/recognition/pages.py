"""Recognition pages: my figures and contests in the portal (/me), contests for comms (/app/contests), and the
comms dashboard's ambassador panel. Thin: the logic lives in figures, contests, scoring and ambassador."""

from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlmodel import select
from starlette.datastructures import FormData

from advocacy.recognition import ambassador as amb
from advocacy.recognition import contests as svc
from advocacy.recognition import figures
from advocacy.recognition.models import Contest, Metric
from advocacy.recognition.scoring import FORMULAS, METRIC_LABELS
from advocacy.recognition.selfclicks import note_own_device
from portal.visibility import choices_of
from service.accounts.guard import PageUser, employee_guard, page_guard
from service.clicks.pages import CHANNEL_LABELS, traffic_chart
from service.db import utcnow
from service.directory.models import Employee, EmployeeGroup
from service.errors import AppError
from service.models import Organisation, Role
from service.page_strings import N_
from service.page_views import app_error, local_input, org_zone, parse_form, parse_local, read_form
from service.pages import PageError, render_page, request_language, use_language
from service.session import DbSession

router = APIRouter(include_in_schema=False)
COMMS = page_guard(Role.comms)
STAFF = {Role.comms, Role.admin}
PERIODS = (30, 90, 365)


def _contest(session, user: PageUser, contest_id: int) -> Contest:
    try:
        return svc.get_contest(session, org_id=user.org_id, contest_id=contest_id)
    except AppError:
        raise PageError(404, N_("Contest not found"), N_("There is no such contest in your organisation.")) from None


# ---------------------------------------------------------------- my figures


@router.get("/me/figures")
def my_figures(session: DbSession, request: Request, days: str = "30", user: PageUser = Depends(employee_guard)):
    assert user.employee_id is not None  # employee_guard
    use_language(request_language(request, user.language))  # the chart's labels are built here
    note_own_device(session, request, org_id=user.org_id, employee_id=user.employee_id)
    period = int(days) if days.isdigit() and int(days) in PERIODS else 30
    end = utcnow().date()
    start = end - timedelta(days=period - 1)
    employee = session.get(Employee, user.employee_id)
    settings = request.app.state.settings
    mine = figures.my_figures(session, org_id=user.org_id, employee_id=user.employee_id, start=start, end=end)
    board = figures.full_board(session, org_id=user.org_id, start=start, end=end)
    return render_page(
        request,
        "portal/figures.html",
        days=period,
        periods=PERIODS,
        start=start,
        end=end,
        mine=mine,
        channels=CHANNEL_LABELS,
        chart=traffic_chart(mine["by_day"], start, end),
        rank=figures.my_rank(board, employee_id=user.employee_id),
        board=figures.colleagues_board(session, board, org_id=user.org_id, employee_id=user.employee_id),
        choices=choices_of(session, user.employee_id),
        team=figures.team_figures(
            session,
            org_id=user.org_id,
            department=employee.department if employee else None,
            start=start,
            end=end,
            min_size=settings.min_group_size,
        ),  # fmt: skip
    )


# ---------------------------------------------------------------- contests, for employees


def _my_contests(session, user: PageUser) -> list[Contest]:
    assert user.employee_id is not None
    return [c for c in svc.list_contests(session, org_id=user.org_id)
            if svc.is_eligible(session, c, user.employee_id)]  # fmt: skip


@router.get("/me/contests")
def my_contests(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    assert user.employee_id is not None
    note_own_device(session, request, org_id=user.org_id, employee_id=user.employee_id)
    zone = org_zone(session, user.org_id)
    contests = _my_contests(session, user)
    return render_page(
        request,
        "portal/contests.html",
        contests=[(c, svc.state_of(c)) for c in contests],
        labels=METRIC_LABELS,
        announcements=svc.recent_announcements(session, org_id=user.org_id, employee_id=user.employee_id),
        ambassador=amb.ambassadors(session, org_id=user.org_id, month=amb.last_month(zone))["portal"],
        month=amb.last_month(zone),
    )


@router.get("/me/contests/notice")
def my_contest_notice(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    """The announcements block the portal's overview loads (one line in portal/overview.html)."""
    assert user.employee_id is not None
    return render_page(
        request,
        "portal/_contest_notice.html",
        announcements=svc.recent_announcements(session, org_id=user.org_id, employee_id=user.employee_id, limit=2),
    )


def _my_contest(session, user: PageUser, contest_id: int) -> Contest:
    contest = _contest(session, user, contest_id)
    assert user.employee_id is not None
    if not svc.is_eligible(session, contest, user.employee_id):
        raise PageError(404, N_("Contest not found"), N_("There is no such contest in your organisation."))
    return contest


def _employee_board(session, user: PageUser, contest: Contest) -> dict:
    return dict(
        contest=contest,
        state=svc.state_of(contest),
        formula=FORMULAS[contest.metric],
        board=svc.board_for(session, contest, viewer_employee_id=user.employee_id, staff=False),
        winners=svc.announced_for(session, contest, viewer_employee_id=user.employee_id, staff=False)
        if contest.announced_at
        else [],
        base=f"/me/contests/{contest.id}",
        staff=False,
    )


@router.get("/me/contests/{contest_id}")
def my_contest(session: DbSession, request: Request, contest_id: int, user: PageUser = Depends(employee_guard)):
    contest = _my_contest(session, user, contest_id)
    return render_page(request, "portal/contest.html", labels=METRIC_LABELS,
                       **_employee_board(session, user, contest))  # fmt: skip


@router.get("/me/contests/{contest_id}/board")
def my_contest_board(session: DbSession, request: Request, contest_id: int, user: PageUser = Depends(employee_guard)):
    contest = _my_contest(session, user, contest_id)
    return render_page(request, "advocacy/_contest_board.html", **_employee_board(session, user, contest))


# ---------------------------------------------------------------- contests, for comms


def _choices(session, org_id: int) -> dict:
    depts = session.exec(select(Employee.department).where(Employee.org_id == org_id, Employee.active).distinct())
    groups = session.exec(select(EmployeeGroup.group_key).where(EmployeeGroup.org_id == org_id).distinct())
    return {"departments": sorted(d for d in depts.all() if d), "groups": sorted(g for g in groups.all() if g)}


def _list_page(session, request: Request, user: PageUser, *, form: dict, errors: dict, status_code: int = 200):
    zone = org_zone(session, user.org_id)
    month = amb.last_month(zone)
    return render_page(
        request,
        "advocacy/contests.html",
        status_code=status_code,
        contests=[(c, svc.state_of(c)) for c in svc.list_contests(session, org_id=user.org_id)],
        labels=METRIC_LABELS,
        metrics=list(Metric),
        formulas=FORMULAS,
        form=form,
        errors=errors,
        ambassadors=amb.ambassadors(session, org_id=user.org_id, month=month),
        slug=_slug(session, user.org_id),
        **_choices(session, user.org_id),
    )


def _blank_form(session, org_id: int) -> dict:
    zone = org_zone(session, org_id)
    start = utcnow().astimezone(zone).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return {"title": "", "description": "", "metric": Metric.confirmed_posts.value, "eligibility": "everyone",
            "department": "", "group": "", "winners": "3", "starts_at": local_input(start, zone),
            "ends_at": local_input(start + timedelta(days=14), zone)}  # fmt: skip


@router.get("/app/contests")
def contests_page(session: DbSession, request: Request, user: PageUser = Depends(COMMS)):
    return _list_page(session, request, user, form=_blank_form(session, user.org_id), errors={})


@router.post("/app/contests")
def create_contest(session: DbSession, request: Request, user: PageUser = Depends(COMMS),
                   form: FormData = Depends(read_form)):  # fmt: skip
    fields = ("title", "description", "metric", "eligibility", "department", "group", "winners", "starts_at",
              "ends_at")  # fmt: skip
    data = {k: str(form.get(k, "")).strip() for k in fields}
    zone = org_zone(session, user.org_id)
    errors: dict[str, str] = {}
    when = {}
    for k in ("starts_at", "ends_at"):
        try:
            when[k] = parse_local(data[k], zone)
        except AppError as exc:
            errors[k] = exc.message
        if k not in errors and when.get(k) is None:
            errors[k] = N_("Give a date and time.")
    if not errors:
        body, errors = parse_form(svc.ContestIn, {**data, **when, "winners": data["winners"] or "3"})
        if body is not None:
            contest = svc.create_contest(session, org_id=user.org_id, body=body)
            return RedirectResponse(f"/app/contests/{contest.id}?toast=created", status_code=303)
    return _list_page(session, request, user, form=data, errors=errors, status_code=422)


def _comms_context(session, user: PageUser, contest: Contest, errors: dict | None = None) -> dict:
    board = svc.board_for(session, contest, viewer_employee_id=user.employee_id, staff=True)
    kind, name = svc.eligibility_of(contest)
    winners = svc.winners_of(session, contest)
    titles = _article_titles(session, user.org_id, board["lines"])
    return dict(
        contest=contest,
        state=svc.state_of(contest),
        formula=FORMULAS[contest.metric],
        labels=METRIC_LABELS,
        board=board,
        eligibility=(kind, name),
        picked={(w.employee_id, w.article_id, w.network): w.place for w in winners},
        winners=svc.announced_for(session, contest, viewer_employee_id=None, staff=True) if winners else [],
        titles=titles,
        errors=errors or {},
        base=f"/app/contests/{contest.id}",
        staff=True,
    )


def _article_titles(session, org_id: int, lines) -> dict[int, str]:
    from newsletter.figures import ARTICLE_TITLES

    ids = sorted({p.article_id for line in lines for p in line.posts if p.article_id is not None})
    return ARTICLE_TITLES.names(session, org_id, ids) if ids else {}


@router.get("/app/contests/{contest_id}")
def contest_page(session: DbSession, request: Request, contest_id: int, user: PageUser = Depends(COMMS)):
    contest = _contest(session, user, contest_id)
    return render_page(request, "advocacy/contest.html", **_comms_context(session, user, contest))


@router.get("/app/contests/{contest_id}/board")
def contest_board(session: DbSession, request: Request, contest_id: int, user: PageUser = Depends(COMMS)):
    contest = _contest(session, user, contest_id)
    return render_page(request, "advocacy/_contest_board.html", **_comms_context(session, user, contest))


@router.post("/app/contests/{contest_id}/picks")
def pick_posts(session: DbSession, request: Request, contest_id: int, user: PageUser = Depends(COMMS),
               form: FormData = Depends(read_form)):  # fmt: skip
    contest = _contest(session, user, contest_id)
    places: list[tuple[int, tuple[int, int]]] = []
    errors: dict[str, str] = {}
    for key, value in form.multi_items():
        if not key.startswith("place-") or not str(value).strip():
            continue
        try:
            employee_id, link_id = (int(x) for x in key.removeprefix("place-").split("-"))
            place = int(str(value))
        except ValueError:
            errors = {"_form": N_("Give each picked post a place number (1, 2, 3...).")}
            break
        places.append((place, (employee_id, link_id)))
    if not errors:
        ordered = [post for _place, post in sorted(places)]
        if len({p for p, _ in places}) != len(places):
            errors = {"_form": N_("Give each picked post a different place.")}
        else:
            try:
                svc.pick_posts(session, contest=contest, picks=ordered)
                return RedirectResponse(f"/app/contests/{contest_id}?toast=saved", status_code=303)
            except AppError as exc:
                session.rollback()
                errors = app_error(exc)
    return render_page(request, "advocacy/contest.html", status_code=422,
                       **_comms_context(session, user, contest, errors))  # fmt: skip


@router.post("/app/contests/{contest_id}/announce")
def announce(session: DbSession, request: Request, contest_id: int, user: PageUser = Depends(COMMS)):
    contest = _contest(session, user, contest_id)
    try:
        svc.announce(session, contest=contest)
    except AppError as exc:
        session.rollback()
        return render_page(request, "advocacy/contest.html", status_code=exc.status_code,
                           **_comms_context(session, user, contest, app_error(exc)))  # fmt: skip
    return RedirectResponse(f"/app/contests/{contest_id}?toast=saved", status_code=303)


@router.post("/app/contests/{contest_id}/newsletter")
def add_to_newsletter(session: DbSession, request: Request, contest_id: int, user: PageUser = Depends(COMMS)):
    from advocacy.recognition.announce_newsletter import add_to_next_issue

    contest = _contest(session, user, contest_id)
    try:
        issue = add_to_next_issue(session, contest=contest)
    except AppError as exc:
        session.rollback()
        return render_page(request, "advocacy/contest.html", status_code=exc.status_code,
                           **_comms_context(session, user, contest, app_error(exc)))  # fmt: skip
    return RedirectResponse(f"/app/newsletter/issues/{issue.id}?toast=saved", status_code=303)


# ---------------------------------------------------------------- the comms dashboard's panel


def _slug(session, org_id: int) -> str:
    org = session.get(Organisation, org_id)
    return org.slug if org else ""


def ambassador_panel(session, org_id: int) -> dict:
    month = amb.last_month(org_zone(session, org_id))
    return {"template": "advocacy/_ambassador_panel.html", "a": amb.ambassadors(session, org_id=org_id, month=month),
            "slug": _slug(session, org_id)}  # fmt: skip
