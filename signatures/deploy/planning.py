"""What a deployment would do: render every targeted mailbox and compare with what was last written."""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from service.directory.models import Employee, EmployeeGroup
from service.errors import AppError, Invalid
from service.settings import get_settings
from signatures import service as sig
from signatures.deploy.models import SignatureState
from signatures.models import Variant

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

    What is shared by many employees is read once: the brand, the campaign rotation, everyone's groups,
    and the template version of each (department, groups) combination — `template_for` depends on nothing
    else — so a plan costs a few queries plus one render per employee instead of ~9 queries each."""
    states = {
        s.address.lower(): s.content_hash
        for s in session.exec(
            select(SignatureState).where(SignatureState.org_id == org_id, SignatureState.provider == provider)
        ).all()
    }
    groups_of: dict[int, list[str]] = {}
    for employee_id, key in session.exec(select(EmployeeGroup.employee_id, EmployeeGroup.group_key).where(
            EmployeeGroup.org_id == org_id)).all():  # fmt: skip
        groups_of.setdefault(employee_id, []).append(key)
    versions: dict[tuple, object] = {}  # (department, groups) -> TemplateVersion | AppError
    shared: dict[str, object] = {}
    settings = get_settings()
    for emp in employees:
        try:
            if "brand" not in shared:
                shared["brand"] = sig.org_brand(session, org_id)
                shared["rotation"] = _rotation(session, org_id, at)
            key = (emp.department, tuple(sorted(groups_of.get(emp.id, ()))))
            if key not in versions:
                try:
                    versions[key] = sig.get_version(session, template=sig.template_for(session, employee=emp))
                except AppError as exc:
                    versions[key] = exc
            version = versions[key]
            if isinstance(version, AppError):
                raise version
            rotation = shared["rotation"]
            banner = rotation.banner_for(emp, base_settings=settings)
            data = sig.employee_data(emp)
            new = sig.render_version(
                version=version, variant=Variant.new, employee=data, brand=shared["brand"], banner=banner
            )
            reply = sig.render_version(
                version=version, variant=Variant.reply, employee=data, brand=shared["brand"], banner=banner
            )
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


def _rotation(session: Session, org_id: int, at: datetime):
    """The organisation's campaign rotation at `at`, built once for the whole plan."""
    from signatures.campaigns.service import Rotation  # campaigns build on signatures.service: import late

    rotation = Rotation(session, org_id=org_id, at=at)
    rotation.preload_groups()
    return rotation


def mailbox_hash(new_hash: str, reply_hash: str) -> str:
    return hashlib.sha256(f"{new_hash}:{reply_hash}".encode()).hexdigest()
