"""The accounts' part of the demo: one page login per role, with random passwords written to
data_dir/demo-logins (owner-only), one `ROLE EMAIL PASSWORD` line each. `relais serve` says where it is.
The `employee` line is a directory employee (a leader of the demo directory) who signs in to /me."""

import os
import secrets

from sqlmodel import Session, col, select

from service.accounts.service import create_user
from service.directory.models import Employee, EmployeeGroup
from service.models import Role
from service.settings import Settings

DEMO_LOGINS_FILE = "demo-logins"


def seed(session: Session, settings: Settings, org_id: int) -> None:
    lines = []
    for role in (Role.admin, Role.comms, Role.it):
        email, password = f"{role.value}@acme.example", secrets.token_urlsafe(12)
        create_user(session, org_id=org_id, email=email, role=role, name=f"Demo {role.value}", password=password)
        lines.append(f"{role.value} {email} {password}\n")
    leaders = session.exec(
        select(Employee).join(EmployeeGroup, col(EmployeeGroup.employee_id) == col(Employee.id))
        .where(Employee.org_id == org_id, col(Employee.active), EmployeeGroup.group_key == "leaders")
        .order_by(col(Employee.id)).limit(2)
    ).all()  # fmt: skip
    employee = leaders[-1] if leaders else None  # the second leader: the first is other demos' example person
    if employee is not None:  # the demo directory is seeded first
        password = secrets.token_urlsafe(12)
        create_user(session, org_id=org_id, email=employee.email, role=Role.employee,
                    name=employee.display_name or "", password=password)  # fmt: skip
        lines.append(f"{Role.employee.value} {employee.email} {password}\n")
    path = settings.ensure_data_dir() / DEMO_LOGINS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)
    path.chmod(0o600)
