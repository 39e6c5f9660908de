"""What a deployment would do: render every targeted mailbox and compare with what was last written."""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from service.directory.models import Employee, EmployeeGroup
from service.errors import AppError, Invalid
from service.settings import get_settings
from signatures.deploy.models import SignatureState
from signatures.models import Variant
from signatures.renderer import SignatureRenderer

FILTER_KEYS = {"departments", "offices", "groups", "emails", "force"}


def check_filter(target_filter: dict) -> dict:
    unknown = set(target_filter) - FILTER_KEYS
    if unknown:
        raise Invalid(f"Unknown filter key(s): {', '.join(sorted(unknown))}; use {', '.join(sorted(FILTER_KEYS))}.")
    for key in FILTER_KEYS - {"force"}:
        value = target_filter.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise Invalid(f"Filter '{key}' must be a list of strings.")
    return target_filter


def select_employees(session: Session, *, org_id: int, target_filter: dict) -> list[Employee]:
    """Active employees matching every given filter (an empty filter means everyone)."""
    query = select(Employee).where(Employee.org_id == org_id, Employee.active == True)  # noqa: E712
    if target_filter.get("departments"):
        query = query.where(col(Employee.department).in_(target_filter["departments"]))
    if target_filter.get("offices"):
        query = query.where(col(Employee.office).in_(target_filter["offices"]))
    if target_filter.get("emails"):
        wanted = [e.lower() for e in target_filter["emails"]]
        query = query.where(col(Employee.email).in_(wanted + target_filter["emails"]))
    if target_filter.get("groups"):
        members = select(EmployeeGroup.employee_id).where(col(EmployeeGroup.group_key).in_(target_filter["groups"]))
        query = query.where(col(Employee.id).in_(members))
    return list(session.exec(query.order_by(Employee.email)).all())


@dataclass
class MailboxPlan:
    employee: Employee
    addresses: list[dict]  # [{"address", "action": added|changed|unchanged}]
    action: str  # added | changed | unchanged | skipped
    reason: str = ""
    content_hash: str = ""
    html: str = ""
    text: str = ""
    reply_html: str = ""
    reply_text: str = ""
    template: tuple[int, int] | None = None  # (template_id, version)


def plan(
    session: Session, *, org_id: int, provider: str, employees: list[Employee], at: datetime, force: bool = False
) -> Iterator[MailboxPlan]:
    """Render every employee's signature and compare it with the last one written to each address.

    Rendering is `SignatureRenderer`'s (what is shared by many employees is read once), so a plan costs a few
    queries plus one render per employee, and renders exactly what export and previews show."""
    states = {
        s.address.lower(): s.content_hash
        for s in session.exec(
            select(SignatureState).where(SignatureState.org_id == org_id, SignatureState.provider == provider)
        ).all()
    }
    renderer = SignatureRenderer(session, org_id=org_id, at=at, settings=get_settings())
    for emp in employees:
        try:
            version, new = renderer.render(emp, Variant.new)
            _version, reply = renderer.render(emp, Variant.reply, version=version)
        except AppError as exc:
            yield MailboxPlan(employee=emp, addresses=[], action="skipped", reason=exc.message)
            continue
        content_hash = mailbox_hash(new.content_hash, reply.content_hash)
        addresses = []
        for address in [emp.email, *sorted(a for a in (emp.aliases or []) if a.lower() != emp.email.lower())]:
            previous = states.get(address.lower())
            if previous is None:
                action = "added"
            else:
                action = "unchanged" if previous == content_hash and not force else "changed"
            addresses.append({"address": address, "action": action})
        actions = {a["action"] for a in addresses}
        overall = "unchanged" if actions == {"unchanged"} else "added" if actions == {"added"} else "changed"
        yield MailboxPlan(
            employee=emp,
            addresses=addresses,
            action=overall,
            content_hash=content_hash,
            html=new.html,
            text=new.text,
            reply_html=reply.html,
            reply_text=reply.text,
            template=(version.template_id, version.version),
        )


def mailbox_hash(new_hash: str, reply_hash: str) -> str:
    return hashlib.sha256(f"{new_hash}:{reply_hash}".encode()).hexdigest()
