"""The `Directory` seam and the one upsert that every source (CSV, Google, Microsoft) goes through.

Employees are matched by (source, source_id), then by email so a person imported from CSV is taken
over by a provider sync instead of duplicated. People missing from a complete listing are deactivated,
never deleted: their clicks and deployment history stay attached.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel
from sqlmodel import Session, select

from service.db import row_id, utcnow
from service.directory.models import PROFILE_FIELDS, Employee, EmployeeGroup
from service.errors import AppError


class SyncError(AppError):
    """A provider's directory could not be read: 502 when the provider kept failing (the sentence says what it
    answered), 422 when the connection must change (the sentence says what to change)."""

    status_code = 502
    code = "directory_sync_failed"


@dataclass(frozen=True)
class DirectoryPerson:
    """One person as a directory lists them: the profile (the fields of EmployeeBase, PROFILE_FIELDS, in
    that order; a test checks they match), plus the source's id, aliases and groups."""

    source_id: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    title: str | None = None
    department: str | None = None
    office: str | None = None
    location: str | None = None
    phone: str | None = None
    mobile: str | None = None
    manager_email: str | None = None
    photo_url: str | None = None
    locale: str | None = None
    pronouns: str | None = None
    aliases: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    ref: str
    reason: str


@dataclass
class Listing:
    """What a directory returned: the people to keep, and those it skipped with a reason."""

    people: list[DirectoryPerson] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    complete: bool = True  # a complete listing deactivates everyone it does not mention
    # An incremental listing (Graph delta) names the people who left instead: deactivated by source id.
    removed_source_ids: list[str] = field(default_factory=list)
    # Called once the listing has been applied for real (not on a dry run): e.g. store the next delta link.
    after_apply: Callable[[], None] | None = None


class Directory(Protocol):
    source: str

    def list_people(self) -> Listing: ...


class Change(BaseModel):
    email: str
    action: str  # created | updated | reactivated | deactivated
    fields: list[str] = []


class SyncReport(BaseModel):
    source: str
    dry_run: bool
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    skipped: list[dict] = []
    changes: list[Change] = []


def apply_listing(session: Session, *, org_id: int, source: str, listing: Listing, dry_run: bool) -> SyncReport:
    report = SyncReport(source=source, dry_run=dry_run, skipped=[s.__dict__ for s in listing.skipped])
    existing = session.exec(select(Employee).where(Employee.org_id == org_id)).all()
    by_source = {(e.source, e.source_id): e for e in existing}
    by_email = {e.email.lower(): e for e in existing}
    groups_of: dict[int, set[str]] = {}
    for row in session.exec(select(EmployeeGroup).where(EmployeeGroup.org_id == org_id)).all():
        groups_of.setdefault(row.employee_id, set()).add(row.group_key)
    seen: set[int] = set()
    now = utcnow()

    for person in listing.people:
        emp = by_source.get((source, person.source_id)) or by_email.get(person.email.lower())
        if emp is None:
            report.created += 1
            report.changes.append(Change(email=person.email, action="created"))
            if not dry_run:
                emp = Employee(org_id=org_id, source=source, source_id=person.source_id, email=person.email, aliases=[])
                _copy(emp, person)
                session.add(emp)
                session.flush()
                _set_groups(session, emp, person.groups)
            continue
        seen.add(row_id(emp))
        changed = _diff(emp, person, source)
        groups_changed = set(person.groups) != groups_of.get(row_id(emp), set())
        if changed or groups_changed or not emp.active:
            action = "reactivated" if not emp.active else "updated"
            report.updated += 1
            fields = changed + (["groups"] if groups_changed else [])
            report.changes.append(Change(email=person.email, action=action, fields=fields))
            if not dry_run:
                _copy(emp, person)
                emp.source, emp.source_id = source, person.source_id
                emp.active, emp.deactivated_at, emp.updated_at = True, None, now
                session.add(emp)
                _set_groups(session, emp, person.groups)
        else:
            report.unchanged += 1

    if listing.complete:
        for emp in existing:
            if emp.source == source and emp.active and emp.id not in seen:
                report.deactivated += 1
                report.changes.append(Change(email=emp.email, action="deactivated"))
                if not dry_run:
                    emp.active, emp.deactivated_at, emp.updated_at = False, now, now
                    session.add(emp)
    for source_id in dict.fromkeys(listing.removed_source_ids):
        emp = by_source.get((source, source_id))
        if emp is not None and emp.active and emp.id not in seen:
            report.deactivated += 1
            report.changes.append(Change(email=emp.email, action="deactivated"))
            if not dry_run:
                emp.active, emp.deactivated_at, emp.updated_at = False, now, now
                session.add(emp)
    if not dry_run:
        session.flush()
        if listing.after_apply is not None:
            listing.after_apply()
    return report


def sync_directory(session: Session, *, org_id: int, directory: Directory, dry_run: bool = False) -> SyncReport:
    return apply_listing(
        session, org_id=org_id, source=directory.source, listing=directory.list_people(), dry_run=dry_run
    )


def _diff(emp: Employee, person: DirectoryPerson, source: str) -> list[str]:
    changed = [f for f in PROFILE_FIELDS if getattr(emp, f) != getattr(person, f)]
    if list(emp.aliases or []) != list(person.aliases):
        changed.append("aliases")
    if emp.source != source:
        changed.append("source")
    return changed


def _copy(emp: Employee, person: DirectoryPerson) -> None:
    for f in PROFILE_FIELDS:
        setattr(emp, f, getattr(person, f))
    emp.aliases = list(person.aliases)


def _set_groups(session: Session, emp: Employee, groups: Iterable[str]) -> None:
    wanted, current = set(groups), {}
    for row in session.exec(select(EmployeeGroup).where(EmployeeGroup.employee_id == emp.id)).all():
        current[row.group_key] = row
    for key, row in current.items():
        if key not in wanted:
            session.delete(row)
    for key in wanted - current.keys():
        session.add(EmployeeGroup(org_id=emp.org_id, employee_id=row_id(emp), group_key=key))
