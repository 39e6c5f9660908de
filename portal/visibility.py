"""Reading and changing what employees agree to show (portal.models.Visibility); one place for every reader."""

from dataclasses import dataclass

from sqlmodel import Session, col, select

from portal.models import Visibility
from service.db import utcnow

CHOICES = ("rank_visible", "leader_name_visible", "public_ambassador")


@dataclass(frozen=True)
class Choices:
    rank_visible: bool = False
    leader_name_visible: bool = False
    public_ambassador: bool = False


def choices_of(session: Session, employee_id: int) -> Choices:
    row = session.get(Visibility, employee_id)
    return Choices(**{c: getattr(row, c) for c in CHOICES}) if row else Choices()


def consenting(session: Session, org_id: int, choice: str, employee_ids: list[int] | None = None) -> set[int]:
    """The employees of `org_id` (among `employee_ids`, when given) who said yes to `choice`."""
    if choice not in CHOICES:
        raise ValueError(f"unknown visibility choice {choice!r}")
    query = select(Visibility.employee_id).where(Visibility.org_id == org_id, col(getattr(Visibility, choice)))
    if employee_ids is not None:
        query = query.where(col(Visibility.employee_id).in_(employee_ids))
    return set(session.exec(query).all())


def set_choices(session: Session, *, org_id: int, employee_id: int, **choices: bool) -> Choices:
    unknown = set(choices) - set(CHOICES)
    if unknown:
        raise ValueError(f"unknown visibility choices {sorted(unknown)}")
    row = session.get(Visibility, employee_id) or Visibility(employee_id=employee_id, org_id=org_id)
    for name, value in choices.items():
        setattr(row, name, bool(value))
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return choices_of(session, employee_id)
