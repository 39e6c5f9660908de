"""Corrections an employee proposes to their directory profile, and IT's decision on each.

One row per field (portal.models.ProfileCorrection), so IT can accept the new phone number and decline the
title. Accepting writes the value to the employee row at once; the directory stays the source of truth, so the
next sync from Google or Microsoft writes back whatever the directory still says. The review page says so, and
the accepted row keeps the value IT approved (to put into the directory too). A newer proposal for the same field
replaces a pending one: IT reviews only what the employee wants now.
"""

import logging

from sqlmodel import Session, col, select

from portal.models import CorrectionState, ProfileCorrection
from service.db import row_id, utcnow
from service.directory.models import Employee, EmployeeBase
from service.errors import Invalid, NotFound
from service.page_strings import N_
from service.tenancy import get_owned

log = logging.getLogger(__name__)

# What an employee may correct themselves (the address, department and manager stay with the directory: they
# decide who receives what and which template applies). Labels are marked for translation in the templates.
FIELD_LABELS = {
    "first_name": N_("First name"),
    "last_name": N_("Last name"),
    "display_name": N_("Name as shown"),
    "title": N_("Job title"),
    "phone": N_("Phone"),
    "mobile": N_("Mobile"),
    "office": N_("Office"),
    "location": N_("Location"),
    "pronouns": N_("Pronouns"),
}
FIELDS = tuple(FIELD_LABELS)
SYNCED_SOURCES = {"google": "Google Workspace", "microsoft": "Microsoft 365"}


def _limit(name: str) -> int:
    for meta in EmployeeBase.model_fields[name].metadata:
        if getattr(meta, "max_length", None):
            return int(meta.max_length)
    return 200


def clean(name: str, value: str) -> str | None:
    """The value as it will be stored (None: remove it); raises Invalid with a sentence saying what to fix."""
    if name not in FIELDS:
        raise Invalid(N_("This field cannot be corrected here."))
    value = " ".join(value.split())  # one line: no control characters, no runs of spaces
    if len(value) > _limit(name):
        raise Invalid(N_("This is too long for the field: shorten it."))
    if name in ("phone", "mobile") and value and not all(c.isdigit() or c in "+-. ()/" for c in value):
        raise Invalid(N_("A phone number has digits, spaces and + - . ( ) only."))
    return value or None


def propose(session: Session, *, employee: Employee, changes: dict[str, str], by: str) -> list[ProfileCorrection]:
    """Record a proposal for each field whose value differs from the profile. Raises FieldErrors (a sentence per
    field) when a value is refused; nothing is recorded then."""
    cleaned: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for name, raw in changes.items():
        try:
            cleaned[name] = clean(name, raw)
        except Invalid as exc:
            errors[name] = exc.message
    if errors:
        raise FieldErrors(errors)
    pending = {
        row.field: row
        for row in session.exec(
            select(ProfileCorrection).where(
                ProfileCorrection.employee_id == employee.id, ProfileCorrection.state == CorrectionState.pending
            )
        ).all()
    }
    out = []
    for name, value in cleaned.items():
        if value == getattr(employee, name):
            if name in pending:  # back to what the directory says: nothing left to review
                session.delete(pending[name])
            continue
        row = pending.get(name) or ProfileCorrection(
            org_id=employee.org_id, employee_id=row_id(employee), field=name, proposed_by=by
        )
        row.old_value, row.new_value, row.proposed_by, row.proposed_at = getattr(employee, name), value, by, utcnow()
        session.add(row)
        out.append(row)
    session.flush()
    if out:
        log.info("portal.corrections.proposed", extra={"employee_id": employee.id, "fields": [r.field for r in out]})
    return out


class FieldErrors(Invalid):
    def __init__(self, errors: dict[str, str]):
        super().__init__(N_("Some values need fixing: see the fields."))
        self.errors = errors


def of_employee(session: Session, employee_id: int, limit: int = 50) -> list[ProfileCorrection]:
    return list(
        session.exec(
            select(ProfileCorrection).where(ProfileCorrection.employee_id == employee_id)
            .order_by(col(ProfileCorrection.proposed_at).desc()).limit(limit)
        ).all()
    )  # fmt: skip


def pending_of_org(session: Session, org_id: int) -> list[tuple[ProfileCorrection, Employee]]:
    rows = session.exec(
        select(ProfileCorrection, Employee).join(Employee, col(Employee.id) == col(ProfileCorrection.employee_id))
        .where(ProfileCorrection.org_id == org_id, ProfileCorrection.state == CorrectionState.pending)
        .order_by(col(Employee.email), col(ProfileCorrection.field))
    ).all()  # fmt: skip
    return [(c, e) for c, e in rows]


def decided_of_org(session: Session, org_id: int, limit: int = 20) -> list[tuple[ProfileCorrection, Employee]]:
    rows = session.exec(
        select(ProfileCorrection, Employee).join(Employee, col(Employee.id) == col(ProfileCorrection.employee_id))
        .where(ProfileCorrection.org_id == org_id, ProfileCorrection.state != CorrectionState.pending)
        .order_by(col(ProfileCorrection.reviewed_at).desc()).limit(limit)
    ).all()  # fmt: skip
    return [(c, e) for c, e in rows]


def _pending(session: Session, org_id: int, correction_id: int) -> ProfileCorrection:
    row = get_owned(session, ProfileCorrection, correction_id, org_id=org_id, label="correction")
    if row.state != CorrectionState.pending:
        raise NotFound(N_("This correction was already reviewed."))
    return row


def accept(session: Session, *, org_id: int, correction_id: int, by: str) -> ProfileCorrection:
    row = _pending(session, org_id, correction_id)
    employee = get_owned(session, Employee, row.employee_id, org_id=org_id)
    setattr(employee, row.field, row.new_value)
    employee.updated_at = utcnow()
    row.state, row.reviewed_by, row.reviewed_at = CorrectionState.accepted, by, utcnow()
    session.add_all([employee, row])
    session.flush()
    log.info("portal.corrections.accepted", extra={"correction_id": row.id, "employee_id": row.employee_id,
                                                   "field": row.field, "by": by})  # fmt: skip
    return row


def decline(session: Session, *, org_id: int, correction_id: int, by: str, reason: str) -> ProfileCorrection:
    row = _pending(session, org_id, correction_id)  # another organisation's id is not found, reason or not
    reason = " ".join(reason.split())
    if not reason:
        raise Invalid(N_("Say why, in a sentence the employee will read."))
    if len(reason) > 500:
        raise Invalid(N_("This is too long for the field: shorten it."))
    row.state, row.reviewed_by, row.reviewed_at, row.decline_reason = CorrectionState.declined, by, utcnow(), reason
    session.add(row)
    session.flush()
    log.info("portal.corrections.declined", extra={"correction_id": row.id, "employee_id": row.employee_id,
                                                   "field": row.field, "by": by})  # fmt: skip
    return row
