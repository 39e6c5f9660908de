"""Previews and test sends: one issue rendered for one employee, without touching its deliveries."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session

from newsletter.audience import audience_of, audience_query, ensure_preferences
from newsletter.composition import (
    IssueContext,
    Recipient,
    build_outgoing,
    load_context,
    mint_for,
    recipient_of,
    unsubscribe_url,
)
from newsletter.mailer import DeliveryFailure, Mailer, Unconfirmed
from newsletter.models import Issue
from newsletter.rendering import RecipientView, render_email
from service.directory.models import Employee
from service.errors import Invalid, NotFound, Unavailable
from service.settings import Settings

log = logging.getLogger(__name__)


def send_test(engine: Engine, issue_id: int, address: str, mailer: Mailer, settings: Settings, *,
              org_id: int | None = None, employee_id: int | None = None) -> str:  # fmt: skip
    """Send one copy to ``address``, rendered for ``employee_id`` (default: the first of the audience).
    Deliveries are not touched. Returns the Message-ID."""
    if "@" not in address or any(c in address for c in " \r\n<>,"):
        raise Invalid(f"{address!r} is not an email address.")
    with Session(engine, expire_on_commit=False) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or (org_id is not None and issue.org_id != org_id):
            raise NotFound(f"There is no newsletter issue {issue_id} in this organisation.")
        ctx = load_context(session, org_id=issue.org_id, issue_id=issue_id, settings=settings)
        rc = preview_recipient(session, ctx, employee_id)
        views = mint_for(session, ctx, [rc])[rc.employee_id]
        session.commit()
    msg = build_outgoing(ctx, Recipient(rc.employee_id, address, rc.first_name, rc.full_name, rc.unsubscribe_token),
                         views, test=True)  # fmt: skip

    async def go() -> None:
        conn = await mailer.connect()
        try:
            await conn.transmit(msg)
            conn.end_data()
            await conn.confirm()
        finally:
            await conn.close()

    try:
        asyncio.run(go())
    except Unconfirmed as exc:
        raise Unavailable(f"The test copy could not be sent for sure: the mail server did not confirm it ({exc}). "
                          "Check the inbox before sending another one.") from None  # fmt: skip
    except DeliveryFailure as exc:  # SMTP down, a refused login or address: say so instead of a 500
        raise Unavailable(f"The test copy could not be sent: {exc}. Check the address and the RELAIS_SMTP_* "
                          "settings, then try again.") from None  # fmt: skip
    log.info("newsletter.send.test_sent", extra={"issue_id": issue_id})
    return msg.message_id


def preview_recipient(session: Session, ctx: IssueContext, employee_id: int | None) -> Recipient:
    if employee_id is not None:
        emp = session.get(Employee, employee_id)
        if emp is None or emp.org_id != ctx.org_id:
            raise NotFound(f"There is no employee {employee_id} in this organisation.")
    else:
        emp = session.exec(audience_query(ctx.org_id, audience_of(ctx.issue))).first()
        if emp is None:
            raise Invalid("The audience of this issue is empty: choose an employee to preview it for.")
    token = ensure_preferences(session, org_id=ctx.org_id, employee_ids=[emp.id])[emp.id]
    return recipient_of(emp, token)


def preview(session: Session, *, org_id: int, issue_id: int, employee_id: int | None,
            settings: Settings) -> tuple[str, str]:  # fmt: skip
    """The HTML and text that this employee would receive (their own links are minted)."""
    ctx = load_context(session, org_id=org_id, issue_id=issue_id, settings=settings)
    rc = preview_recipient(session, ctx, employee_id)
    views = mint_for(session, ctx, [rc])[rc.employee_id]
    unsubscribe = unsubscribe_url(ctx, rc)
    return render_email(ctx.compiled, issue=ctx.view, brand=ctx.brand,
                        employee=RecipientView(rc.first_name, rc.email), articles=views,
                        unsubscribe_url=unsubscribe)  # fmt: skip
