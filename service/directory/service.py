"""Directory lookups shared by every feature that works on employees."""

from sqlmodel import Session

from service.directory.models import Employee
from service.tenancy import get_owned


def get_employee(session: Session, *, org_id: int, employee_id: int) -> Employee:
    return get_owned(session, Employee, employee_id, org_id=org_id, label="employee")
