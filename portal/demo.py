"""The portal's part of the demo: one correction waiting for IT (a demo employee's new mobile number), so the
review page at /app/directory/corrections has something to decide."""

from sqlmodel import Session, col, select

from portal.corrections import propose
from service.directory.models import Employee
from service.settings import Settings


def seed(session: Session, settings: Settings, org_id: int) -> None:
    employees = session.exec(
        select(Employee).where(Employee.org_id == org_id, col(Employee.active)).order_by(col(Employee.id)).limit(2)
    ).all()
    if len(employees) == 2:  # not the demo employee login (the first): their own page stays theirs to try
        person = employees[1]
        propose(session, employee=person, changes={"mobile": "+33 6 98 76 54 32"}, by=person.email)
