"""Shared set-up for the Google Workspace deployment tests (and bench/push.py): users in the fake Google server
that are also employees, with a default template and a Sales-only one."""

from __future__ import annotations

from service.db import session_scope
from service.directory.sync import DirectoryPerson, Listing, apply_listing
from signatures.layouts import LAYOUTS
from signatures.models import AssignmentKind, TemplateAssignment
from signatures.service import create_template
from tests.fakes.google import FakeGoogle

ADMIN = "admin@example.com"
DEPARTMENTS = ("Sales", "R&D", "Ops")


def seed_workspace(
    engine, org_id: int, fake: FakeGoogle, count: int, *, aliases_every: int = 0, prefix: str = "user"
) -> list[str]:
    """`count` users in the fake and as employees (source google), a default template and a Sales-only one."""
    emails = fake.seed_users(count, prefix=prefix, aliases_every=aliases_every)
    people = []
    for i, email in enumerate(emails):
        aliases = tuple(s["sendAsEmail"] for s in fake.send_as(email) if not s.get("isPrimary"))
        people.append(
            DirectoryPerson(
                source_id=f"g{i}",
                email=email,
                first_name=f"Given{i}",
                last_name=f"Family{i}",
                title="Engineer",
                department=DEPARTMENTS[i % len(DEPARTMENTS)],
                aliases=aliases,
            )
        )
    with session_scope(engine) as s:
        apply_listing(s, org_id=org_id, source="google", listing=Listing(people=people), dry_run=False)
        for name, layout, kind, value in (
            ("Corporate", "compact", AssignmentKind.default, ""),
            ("Sales", "classic", AssignmentKind.department, "Sales"),
        ):
            template, _v, _w = create_template(
                s,
                org_id=org_id,
                name=name,
                description="",
                new_source=LAYOUTS[layout].new_source,
                reply_source=LAYOUTS[layout].reply_source,
                created_by="test",
            )
            s.add(TemplateAssignment(org_id=org_id, template_id=template.id, kind=kind, value=value))
    return emails
