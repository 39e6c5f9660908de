"""An employee's choice not to have clicks attributed to them (set by comms, or by the employee from their
preferences page). Takes effect for new clicks within the tracker's policy cache (seconds)."""

from sqlmodel import Session, select

from service.clicks.models import TrackingOptOut


def opted_out(session: Session, *, employee_id: int) -> bool:
    return session.exec(select(TrackingOptOut.id).where(TrackingOptOut.employee_id == employee_id)).first() is not None


def set_opt_out(session: Session, *, org_id: int, employee_id: int, opt_out: bool) -> TrackingOptOut | None:
    row = session.exec(
        select(TrackingOptOut).where(TrackingOptOut.employee_id == employee_id, TrackingOptOut.org_id == org_id)
    ).first()
    if opt_out and row is None:
        row = TrackingOptOut(org_id=org_id, employee_id=employee_id)
        session.add(row)
        session.flush()
    elif not opt_out and row is not None:
        session.delete(row)
        session.flush()
        return None
    return row
