"""What a deployment would do: render every targeted mailbox and compare with what was last written."""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from service.directory.audience import Audience, Match
from service.directory.models import Employee
from service.errors import AppError, Invalid
from service.settings import get_settings
from signatures.deploy.models import SignatureState
from signatures.models import SignatureKind
from signatures.renderer import SignatureRenderer

AUDIENCE_KEYS = ("departments", "offices", "groups", "emails")
FILTER_KEYS = {*AUDIENCE_KEYS, "force"}


def check_filter(target_filter: dict) -> dict:
    unknown = set(target_filter) - FILTER_KEYS
    if unknown:
        raise Invalid(f"Unknown filter key(s): {', '.join(sorted(unknown))}; use {', '.join(sorted(FILTER_KEYS))}.")
    for key in FILTER_KEYS - {"force"}:
        value = target_filter.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise Invalid(f"Filter '{key}' must be a list of strings.")
    return target_filter


def audience_of(target_filter: dict) -> Audience:
    """The mailboxes a deployment's `target_filter` names: every filter given must match (Match.all), so
    {"departments": ["Sales"], "offices": ["Paris"]} is Sales people in Paris, and no filter is everyone."""
    return Audience(match=Match.all, **{k: target_filter[k] for k in AUDIENCE_KEYS if target_filter.get(k)})


def select_employees(session: Session, *, org_id: int, target_filter: dict) -> list[Employee]:
    """Active employees matching every given filter (an empty filter means everyone), by email."""
    return list(session.exec(audience_of(target_filter).query(org_id).order_by(Employee.email)).all())


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
            version, new = renderer.render(emp, SignatureKind.new)
            _version, reply = renderer.render(emp, SignatureKind.reply, version=version)
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
