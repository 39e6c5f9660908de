"""Directory lookups shared by every feature that works on employees."""

from sqlmodel import Session, func, or_, select

from service.directory.models import Employee
from service.errors import Invalid
from service.sentences import N_
from service.tenancy import get_owned


def get_employee(session: Session, *, org_id: int, employee_id: int) -> Employee:
    return get_owned(session, Employee, employee_id, org_id=org_id, label="employee")


def check_places(session: Session, *, org_id: int, departments=(), offices=()) -> None:
    """Refuse departments or offices that no active employee is in: an audience aimed there reaches 0 people."""
    for field, names in (("department", departments), ("office", offices)):
        if not names:
            continue
        column = getattr(Employee, field)
        known = set(session.exec(select(column).where(
            Employee.org_id == org_id, Employee.active == True, column.is_not(None))).all())  # noqa: E712  # fmt: skip
        for name in names:
            if name in known:
                continue
            close = [k for k in known if k.casefold() == name.casefold()]
            hint = (
                N_("did you mean %(name)r?", name=close[0])
                if close
                else N_("check the spelling, or import the directory first")
            )
            listed = ", ".join(sorted(known)[:20]) or N_("none yet")
            raise Invalid(
                N_(
                    "No active employee is in the %(field)s %(name)r, so this would reach 0 people: %(hint)s "
                    "(%(field)ss: %(listed)s).",
                    field=field,
                    name=name,
                    hint=hint,
                    listed=listed,
                ),
                details={"field": f"{field}s", "value": name, "known": sorted(known)},
            )


def employee_search(
    org_id: int, *, department: str | None = None, office: str | None = None, active: bool | None = None,
    q: str | None = None,
):  # fmt: skip
    """The employees of `org_id` matching the filters given (None: no filter); `q` matches name or email.
    Shared by the directory API and its page."""
    query = select(Employee).where(Employee.org_id == org_id)
    if department is not None:
        query = query.where(Employee.department == department)
    if office is not None:
        query = query.where(Employee.office == office)
    if active is not None:
        query = query.where(Employee.active == active)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(
            or_(
                func.lower(Employee.email).like(like),
                func.lower(Employee.display_name).like(like),
                func.lower(Employee.last_name).like(like),
            )
        )
    return query
