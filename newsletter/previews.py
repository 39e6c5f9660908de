"""Previews and test sends: one issue rendered for one employee, without touching its deliveries.

They show the employee's name and the issue as that employee would see it, but under a test identity: the
preferences/unsubscribe link is a test link that changes nobody's preferences, and the tracked links are the
issue's unattributed ones, so a copy forwarded anywhere can't unsubscribe the employee, change their choices
or add clicks to their name.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session

from newsletter.audience import audience_of, audience_query
from newsletter.composition import (
    IssueContext,
    Recipient,
    _views,
    build_outgoing,
    issue_specs,
    load_context,
    portal_url,
    recipient_of,
    unsubscribe_url,
)
from newsletter.mailer import DeliveryFailure, Mailer, Unconfirmed
from newsletter.models import Issue
from newsletter.rendering import ArticleView, RecipientView, render_email
from service.directory.models import Employee
from service.errors import Invalid, NotFound, Unavailable
from service.links import url_for
from service.settings import Settings

log = logging.getLogger(__name__)

# The preferences token of test copies: the right length, never stored, so /u/ answers "not valid".
TEST_TOKEN = "test-copy-no-preferences"  # noqa: S105 - a placeholder, deliberately not a secret


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
        views = test_views(session, ctx)
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
    return recipient_of(emp, TEST_TOKEN)


def test_views(session: Session, ctx: IssueContext) -> list[ArticleView]:
    """The articles with the issue's own (unattributed) links: no employee's tracked links."""
    specs = issue_specs(session, ctx)
    return _views(ctx, specs, lambda spec: url_for(spec, ctx.base_url), lambda spec: url_for(spec, ctx.base_url))


def preview(session: Session, *, org_id: int, issue_id: int, employee_id: int | None,
            settings: Settings) -> tuple[str, str]:  # fmt: skip
    """The HTML and text that this employee would receive, under the test identity (module docstring)."""
    ctx = load_context(session, org_id=org_id, issue_id=issue_id, settings=settings)
    rc = preview_recipient(session, ctx, employee_id)
    views = test_views(session, ctx)
    unsubscribe = unsubscribe_url(ctx, rc)
    return render_email(ctx.compiled, issue=ctx.view, brand=ctx.brand,
                        employee=RecipientView(rc.first_name, rc.email), articles=views,
                        unsubscribe_url=unsubscribe, portal_url=portal_url(ctx, rc, test=True))  # fmt: skip
