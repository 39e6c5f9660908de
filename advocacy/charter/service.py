"""Charter logic without HTTP: the draft, publishing, comment threads and acceptances. Services flush, never
commit (the request commits)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from advocacy.charter.markdown import Passage, passages, quote_of
from advocacy.charter.models import CharterAcceptance, CharterComment, CharterVersion, Surface, VersionStatus
from service.db import row_id, utcnow
from service.directory.models import Employee
from service.errors import Conflict, Invalid, NotFound
from service.tenancy import get_owned

log = logging.getLogger(__name__)

MAX_BODY = 100_000
MAX_COMMENT = 2000


class Bump(StrEnum):
    major = "major"  # everyone accepts again
    minor = "minor"  # everyone is informed; earlier acceptances of the same major still count


# ---------------------------------------------------------------- versions


def current_version(session: Session, org_id: int) -> CharterVersion | None:
    """The version in force: the latest published one."""
    return session.exec(
        select(CharterVersion)
        .where(CharterVersion.org_id == org_id, CharterVersion.status == VersionStatus.published)
        .order_by(col(CharterVersion.major).desc(), col(CharterVersion.minor).desc())
    ).first()


def draft_of(session: Session, org_id: int) -> CharterVersion | None:
    return session.exec(
        select(CharterVersion).where(CharterVersion.org_id == org_id, CharterVersion.status == VersionStatus.draft)
    ).first()


def published_versions(session: Session, org_id: int) -> list[CharterVersion]:
    return list(
        session.exec(
            select(CharterVersion)
            .where(CharterVersion.org_id == org_id, CharterVersion.status == VersionStatus.published)
            .order_by(col(CharterVersion.major).desc(), col(CharterVersion.minor).desc())
        ).all()
    )


def get_version(session: Session, *, org_id: int, version_id: int) -> CharterVersion:
    return get_owned(session, CharterVersion, version_id, org_id=org_id, label="charter version")


def check_text(title: str, body: str) -> tuple[str, str]:
    title = " ".join(title.split())
    if not title:
        raise Invalid("Give the charter a title.")
    if len(title) > 200:
        raise Invalid("The title is too long: 200 characters at most.")
    if len(body) > MAX_BODY:
        raise Invalid(f"The charter is too long: {MAX_BODY:,} characters at most.")
    return title, body.replace("\r\n", "\n")


def save_draft(session: Session, *, org_id: int, title: str, body: str) -> CharterVersion:
    """Create the draft (one per organisation) or change its text."""
    title, body = check_text(title, body)
    draft = draft_of(session, org_id) or CharterVersion(org_id=org_id)
    draft.title, draft.body, draft.updated_at = title, body, utcnow()
    session.add(draft)
    session.flush()
    return draft


def start_draft(session: Session, *, org_id: int) -> CharterVersion:
    """A new draft from the version in force (or the existing draft)."""
    draft = draft_of(session, org_id)
    if draft is not None:
        return draft
    current = current_version(session, org_id)
    draft = CharterVersion(org_id=org_id, title=current.title if current else "", body=current.body if current else "")
    session.add(draft)
    session.flush()
    return draft


def next_number(current: CharterVersion | None, bump: Bump) -> tuple[int, int]:
    if current is None or current.major is None:
        return 1, 0  # the first version is always a major one: everyone accepts it
    if bump is Bump.major:
        return current.major + 1, 0
    return current.major, (current.minor or 0) + 1


def publish(session: Session, *, org_id: int, user_id: int, bump: Bump, changelog: str) -> CharterVersion:
    draft = draft_of(session, org_id)
    if draft is None:
        raise Conflict("There is no draft to publish: write one first.")
    check_text(draft.title, draft.body)
    if not passages(draft.body):
        raise Invalid("The draft is empty: write the charter before publishing it.")
    changelog = changelog.strip()
    if not changelog:
        raise Invalid("Say what changed in this version (the changelog employees read).")
    if len(changelog) > 5000:
        raise Invalid("The changelog is too long: 5,000 characters at most.")
    draft.major, draft.minor = next_number(current_version(session, org_id), bump)
    draft.status, draft.changelog = VersionStatus.published, changelog
    draft.published_at = draft.updated_at = utcnow()
    draft.published_by = user_id
    session.add(draft)
    session.flush()
    log.info("advocacy.charter.published", extra={"org_id": org_id, "version": draft.number, "bump": bump.value})
    return draft


def is_major(version: CharterVersion) -> bool:
    return version.minor == 0


# ---------------------------------------------------------------- comments


def clean_comment(text: str) -> str:
    """Plain text: control characters out, lines kept; the page escapes it (it is never HTML)."""
    text = "".join(ch for ch in text.replace("\r\n", "\n") if ch == "\n" or ch.isprintable()).strip()
    if not text:
        raise Invalid("Write your comment before sending it.")
    if len(text) > MAX_COMMENT:
        raise Invalid(f"A comment is {MAX_COMMENT:,} characters at most.")
    return text


def add_comment(session: Session, *, org_id: int, user_id: int, employee_id: int | None, from_comms: bool,
                body: str, passage: str = "", parent_id: int | None = None) -> CharterComment:  # fmt: skip
    """Start a thread on a passage of the draft, or reply to a thread (any version's, while it is a draft)."""
    text = clean_comment(body)
    if parent_id is not None:
        root = get_owned(session, CharterComment, parent_id, org_id=org_id, label="comment")
        if root.parent_id is not None:
            root = get_owned(session, CharterComment, root.parent_id, org_id=org_id, label="comment")
        version = session.get(CharterVersion, root.version_id)
        passage_id, quote = root.passage, ""
    else:
        version = draft_of(session, org_id)
        found = {p.id: p for p in passages(version.body)} if version else {}
        if passage not in found:
            raise NotFound("This passage is not in the draft any more: reload the page.")
        passage_id, quote = passage, quote_of(found[passage].text)
        root = None
    if version is None or version.status is not VersionStatus.draft:
        raise Conflict("Comments are open on the draft only; this version is published.")
    comment = CharterComment(org_id=org_id, version_id=row_id(version), passage=passage_id, quote=quote,
                             parent_id=root.id if root else None, author_user_id=user_id,
                             author_employee_id=employee_id, from_comms=from_comms, body=text)  # fmt: skip
    session.add(comment)
    session.flush()
    return comment


def resolve_thread(session: Session, *, org_id: int, comment_id: int, user_id: int, resolved: bool = True) -> None:
    root = get_owned(session, CharterComment, comment_id, org_id=org_id, label="comment")
    if root.parent_id is not None:
        raise Invalid("Resolve the thread from its first comment.")
    root.resolved_at, root.resolved_by = (utcnow(), user_id) if resolved else (None, None)
    session.add(root)
    session.flush()


@dataclass
class ShownComment:
    id: int
    author: str  # "you", "comms", "colleague" (a per-thread pseudonym: number) or "name"; the page words it
    name: str  # the author's name, when the viewer may see it
    number: int  # the colleague's number within the thread
    body: str
    created_at: object


@dataclass
class Thread:
    id: int
    passage: str
    quote: str
    resolved: bool
    comments: list[ShownComment] = field(default_factory=list)


def threads(session: Session, version: CharterVersion, *, viewer_user_id: int, names_visible: bool) -> list[Thread]:
    """The version's threads, oldest first. Employees' names are shown to comms (`names_visible`), who answer
    them; to other employees each colleague is "Colleague 1, 2..." within a thread (docs/advocacy-charter.md)."""
    from service.accounts.models import User

    rows = session.execute(
        sa.select(
            CharterComment,
            col(Employee.display_name),
            col(Employee.first_name),
            col(Employee.last_name),
            col(User.name),
            col(User.email),
        )
        .join(User, col(User.id) == col(CharterComment.author_user_id))
        .outerjoin(Employee, col(Employee.id) == col(CharterComment.author_employee_id))
        .where(col(CharterComment.version_id) == version.id)
        .order_by(col(CharterComment.id))
    ).all()
    by_root: dict[int, Thread] = {}
    pseudonyms: dict[int, dict[int, int]] = {}
    for c, display, first, last, user_name, user_email in rows:
        root_id = c.parent_id or row_id(c)
        if c.parent_id is None:
            by_root[root_id] = Thread(root_id, c.passage, c.quote, c.resolved_at is not None)
        thread = by_root.get(root_id)
        if thread is None:
            continue
        name, number = "", 0
        if c.author_user_id == viewer_user_id:
            author = "you"
        elif c.from_comms:
            author, name = "comms", (user_name or user_email) if names_visible else ""
        elif names_visible:
            author, name = "name", display or " ".join(p for p in (first, last) if p) or user_name or user_email
        else:
            seen = pseudonyms.setdefault(root_id, {})
            author, number = "colleague", seen.setdefault(c.author_user_id, len(seen) + 1)
        thread.comments.append(ShownComment(row_id(c), author, name, number, c.body, c.created_at))
    return list(by_root.values())


def open_thread_count(session: Session, version: CharterVersion) -> int:
    return session.exec(
        select(sa.func.count()).select_from(CharterComment).where(
            CharterComment.version_id == version.id, col(CharterComment.parent_id).is_(None),
            col(CharterComment.resolved_at).is_(None))
    ).one()  # fmt: skip


def with_threads(items: list[Passage], all_threads: list[Thread]) -> tuple[list[tuple[Passage, list[Thread]]], list]:
    """Pair each passage with its threads; threads whose passage was reworded since come back apart."""
    by_passage: dict[str, list[Thread]] = {}
    for t in all_threads:
        by_passage.setdefault(t.passage, []).append(t)
    ids = {p.id for p in items}
    orphans = [t for t in all_threads if t.passage not in ids]
    return [(p, by_passage.get(p.id, [])) for p in items], orphans


# ---------------------------------------------------------------- acceptances


def acceptance_of(session: Session, *, employee_id: int, major: int) -> CharterAcceptance | None:
    return session.exec(
        select(CharterAcceptance)
        .where(CharterAcceptance.employee_id == employee_id, CharterAcceptance.major == major)
        .order_by(col(CharterAcceptance.accepted_at).desc())
    ).first()


def accept(session: Session, *, org_id: int, employee_id: int, surface: Surface) -> CharterAcceptance:
    """Record that the employee accepted the version in force (once per version: a second click changes nothing)."""
    version = current_version(session, org_id)
    if version is None:
        raise Conflict("No charter is published yet: there is nothing to accept.")
    employee = session.get(Employee, employee_id)
    if employee is None or employee.org_id != org_id or not employee.active:
        raise NotFound("No such employee in this organisation.")
    existing = session.exec(
        select(CharterAcceptance).where(
            CharterAcceptance.employee_id == employee_id, CharterAcceptance.version_id == version.id
        )
    ).first()
    if existing is not None:
        return existing
    assert version.major is not None  # published versions are numbered
    row = CharterAcceptance(org_id=org_id, employee_id=employee_id, version_id=row_id(version), major=version.major,
                            surface=surface)  # fmt: skip
    try:
        with session.begin_nested():
            session.add(row)
    except sa.exc.IntegrityError:  # the same employee accepted in another tab at the same moment
        return session.exec(
            select(CharterAcceptance).where(
                CharterAcceptance.employee_id == employee_id, CharterAcceptance.version_id == version.id
            )
        ).one()
    log.info("advocacy.charter.accepted", extra={"org_id": org_id, "version": version.number, "surface": surface.value})
    return row


def acceptance_records(session: Session, org_id: int) -> list[dict]:
    """Every acceptance (who, which version, when, from where), newest first: the CSV export."""
    rows = session.execute(
        sa.select(CharterAcceptance, col(CharterVersion.major), col(CharterVersion.minor), col(Employee.email),
                  col(Employee.display_name), col(Employee.department))
        .join(CharterVersion, col(CharterVersion.id) == col(CharterAcceptance.version_id))
        .join(Employee, col(Employee.id) == col(CharterAcceptance.employee_id))
        .where(col(CharterAcceptance.org_id) == org_id)
        .order_by(col(CharterAcceptance.accepted_at).desc(), col(CharterAcceptance.id).desc())
    ).all()  # fmt: skip
    return [
        {"email": email, "name": name or "", "department": dept or "", "version": f"{major}.{minor}",
         "accepted_at": a.accepted_at.isoformat(), "surface": a.surface.value}
        for a, major, minor, email, name, dept in rows
    ]  # fmt: skip


@dataclass(frozen=True)
class DepartmentRate:
    department: str
    employees: int
    accepted: int

    @property
    def rate(self) -> float:
        return self.accepted / self.employees if self.employees else 0.0


@dataclass(frozen=True)
class Rates:
    total: int
    accepted: int
    departments: list[DepartmentRate]
    hidden_groups: int  # departments smaller than the minimum group size: not shown one by one
    min_group_size: int

    @property
    def rate(self) -> float:
        return self.accepted / self.total if self.total else 0.0


def acceptance_rates(session: Session, *, org_id: int, major: int, min_group_size: int) -> Rates:
    """Active employees who accepted the current major version, overall and per directory department; a
    department below `min_group_size` is not shown on its own (its people are counted in the total only)."""
    accepted = (
        select(CharterAcceptance.employee_id)
        .where(CharterAcceptance.org_id == org_id, CharterAcceptance.major == major)
        .distinct()
    )
    rows = session.exec(
        select(Employee.department, sa.func.count(), sa.func.sum(sa.case((col(Employee.id).in_(accepted), 1), else_=0)))
        .where(Employee.org_id == org_id, col(Employee.active).is_(True))
        .group_by(Employee.department)
    ).all()  # fmt: skip
    shown, hidden, total, done = [], 0, 0, 0
    for dept, n, ok in rows:
        total, done = total + n, done + int(ok or 0)
        if dept and n >= min_group_size:
            shown.append(DepartmentRate(dept, n, int(ok or 0)))
        else:
            hidden += 1
    shown.sort(key=lambda d: d.department.lower())
    return Rates(total, done, shown, hidden, min_group_size)
