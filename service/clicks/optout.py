"""An employee's choice not to have clicks attributed to them. Takes effect for new clicks within the
tracker's policy cache (seconds).

Comms can set an opt-out for someone (on their request), and undo the ones comms set. One the employee set
themselves (from their preferences page) only the employee can undo. Every change is audited
(OptOutChange: who, what, when).
"""

from sqlmodel import Session, select

from service.clicks.models import OptOutChange, TrackingOptOut
from service.errors import Forbidden

EMPLOYEE = "employee"
COMMS = "comms"


def opted_out(session: Session, *, employee_id: int) -> bool:
    return session.exec(select(TrackingOptOut.id).where(TrackingOptOut.employee_id == employee_id)).first() is not None


def set_opt_out(
    session: Session, *, org_id: int, employee_id: int, opt_out: bool, actor: str = COMMS, actor_detail: str = ""
) -> TrackingOptOut | None:
    """Set or clear the opt-out as `actor` ("employee" or "comms"); raise Forbidden when comms would undo
    an employee's own choice. A change is audited; setting what is already set changes nothing."""
    row = session.exec(
        select(TrackingOptOut).where(TrackingOptOut.employee_id == employee_id, TrackingOptOut.org_id == org_id)
    ).first()
    changed = False
    if opt_out and row is None:
        row = TrackingOptOut(org_id=org_id, employee_id=employee_id, set_by=actor)
        session.add(row)
        changed = True
    elif opt_out and row is not None and actor == EMPLOYEE and row.set_by != EMPLOYEE:
        row.set_by = EMPLOYEE  # now the employee's own choice: comms can no longer undo it
        session.add(row)
        changed = True
    elif not opt_out and row is not None:
        if row.set_by == EMPLOYEE and actor != EMPLOYEE:
            raise Forbidden(
                "This employee opted out themselves; only they can undo it, from the preferences link in any "
                "newsletter they receive."
            )
        session.delete(row)
        row = None
        changed = True
    if changed:
        session.add(OptOutChange(org_id=org_id, employee_id=employee_id, opt_out=opt_out, actor=actor,
                                 actor_detail=actor_detail[:160]))  # fmt: skip
    session.flush()
    return row
