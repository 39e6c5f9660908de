"""What Relais stores about one employee (the "My data" page and its JSON export), and the choices they make
there. Every query is keyed by this employee's id: nothing about anyone else is read. The choices go through the
one path each already has: the tracking opt-out (service.clicks.optout, as the employee), the newsletter
preference (newsletter.service.set_subscribed, the /u/ page's), the visibility consents (portal.visibility)."""

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from newsletter.audience import ensure_preferences
from newsletter.models import Delivery, Issue, NewsletterPreference
from newsletter.service import set_subscribed
from portal import corrections
from portal.visibility import choices_of, set_choices
from service.accounts.models import User
from service.clicks.models import Click, OptOutChange, TrackingOptOut, TrackingSettings
from service.clicks.optout import EMPLOYEE, set_opt_out
from service.db import row_id, utcnow
from service.directory.models import PROFILE_FIELDS, Employee, EmployeeGroup
from service.links import TrackedLink
from service.page_strings import N_
from signatures.deploy.models import SignatureState

DEFAULT_RETENTION_DAYS = 90
CHANNEL_LABELS = {
    "signature_banner": N_("Signature banner"),
    "signature_field": N_("Signature links"),
    "newsletter": N_("Newsletter articles"),
    "share_intent": N_("Share buttons"),
    "share": N_("Posts I shared"),
    "banner_image": N_("Banner images"),
}
PROFILE_LABELS = {
    "email": N_("Email"),
    **corrections.FIELD_LABELS,
    "department": N_("Department"),
    "manager_email": N_("Manager"),
    "photo_url": N_("Photo"),
    "locale": N_("Locale"),
    "aliases": N_("Other addresses"),
    "active": N_("Active"),
    "source": N_("Directory"),
}


def subscribed(session: Session, employee_id: int) -> bool:
    pref = session.exec(select(NewsletterPreference).where(NewsletterPreference.employee_id == employee_id)).first()
    return pref.subscribed if pref else True  # no row yet: receives newsletters (the audience's default)


def tracking(session: Session, employee_id: int) -> TrackingOptOut | None:
    return session.exec(select(TrackingOptOut).where(TrackingOptOut.employee_id == employee_id)).first()


def collect(session: Session, *, employee: Employee, user: User) -> dict[str, Any]:
    """Everything stored about `employee`, as plain JSON-ready values."""
    emp_id = row_id(employee)
    settings = session.get(TrackingSettings, employee.org_id)
    retention = settings.retention_days if settings else DEFAULT_RETENTION_DAYS
    since = utcnow() - timedelta(days=retention)
    clicks = session.exec(
        select(Click.channel, Click.verdict, func.count())
        .where(Click.org_id == employee.org_id, col(Click.occurred_at) >= since, Click.employee_id == emp_id)
        .group_by(col(Click.channel), col(Click.verdict))
    ).all()  # fmt: skip
    links = session.exec(
        select(TrackedLink.channel, func.count()).where(TrackedLink.employee_id == emp_id)
        .group_by(col(TrackedLink.channel))
    ).all()  # fmt: skip
    deliveries = session.exec(
        select(Issue.subject, Delivery.state, Delivery.sent_at)
        .join(Issue, col(Issue.id) == col(Delivery.issue_id)).where(Delivery.employee_id == emp_id)
        .order_by(col(Delivery.id).desc()).limit(200)
    ).all()  # fmt: skip
    mailboxes = session.exec(
        select(SignatureState.provider, SignatureState.address, SignatureState.written_at)
        .where(SignatureState.employee_id == emp_id).order_by(col(SignatureState.address))
    ).all()  # fmt: skip
    opt_out = tracking(session, emp_id)
    history = session.exec(
        select(OptOutChange).where(OptOutChange.employee_id == emp_id).order_by(col(OptOutChange.at))
    ).all()
    groups = session.exec(
        select(EmployeeGroup.group_key).where(EmployeeGroup.employee_id == emp_id).order_by(EmployeeGroup.group_key)
    ).all()
    return {
        "account": {
            "email": user.email,
            "name": user.name,
            "role": user.role.value,
            "language": user.language,
            "created_at": user.created_at,
            "last_sign_in_at": user.last_sign_in_at,
        },  # fmt: skip
        "profile": {
            **{f: getattr(employee, f) for f in PROFILE_FIELDS},
            "aliases": list(employee.aliases or []),
            "active": employee.active,
            "source": employee.source,
            "updated_at": employee.updated_at,
        },
        "groups": list(groups),
        "signature_mailboxes": [{"provider": p, "address": a, "written_at": w} for p, a, w in mailboxes],
        "tracked_links": {str(channel): n for channel, n in links},
        "clicks": {
            "days": retention,
            "by_channel_and_verdict": [{"channel": str(c), "verdict": str(v), "clicks": n} for c, v, n in clicks],
        },
        "newsletter_deliveries": [{"issue": s, "state": str(st), "sent_at": at} for s, st, at in deliveries],
        "choices": {
            "clicks_attributed_to_me": opt_out is None,
            "tracking_opt_out_set_by": opt_out.set_by if opt_out else None,
            "newsletter_subscribed": subscribed(session, emp_id),
            **asdict(choices_of(session, emp_id)),
        },
        "tracking_choice_history": [{"opt_out": h.opt_out, "actor": h.actor, "at": h.at} for h in history],
        "profile_corrections": [
            {
                "field": c.field,
                "old_value": c.old_value,
                "new_value": c.new_value,
                "state": str(c.state),
                "proposed_at": c.proposed_at,
                "reviewed_at": c.reviewed_at,
                "decline_reason": c.decline_reason,
            }
            for c in corrections.of_employee(session, emp_id, limit=500)
        ],  # fmt: skip
    }


def save_choices(
    session: Session, *, employee: Employee, user: User, attributed: bool, newsletter: bool,
    visibility: dict[str, bool], language: str | None,
) -> None:  # fmt: skip
    """Apply the My data form: each choice through its own path, and only what changed (an unchanged opt-out
    that comms set stays comms', as it would on the /u/ page)."""
    emp_id, org_id = row_id(employee), employee.org_id
    if attributed == (tracking(session, emp_id) is not None):
        set_opt_out(session, org_id=org_id, employee_id=emp_id, opt_out=not attributed, actor=EMPLOYEE,
                    actor_detail="portal")  # fmt: skip
    if newsletter != subscribed(session, emp_id):
        ensure_preferences(session, org_id=org_id, employee_ids=[emp_id])
        pref = session.exec(select(NewsletterPreference).where(NewsletterPreference.employee_id == emp_id)).one()
        set_subscribed(session, pref=pref, subscribed=newsletter)
    set_choices(session, org_id=org_id, employee_id=emp_id, **visibility)
    user.language = language
    session.add(user)
    session.flush()
