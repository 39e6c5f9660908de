"""Who reaches the employee portal (/me): people linked to a directory employee, whatever their role; the
employee role reaches nothing else, and never carries an API key."""

import re

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from service.accounts.service import create_user
from service.directory.models import Employee
from service.errors import Invalid
from service.models import Role
from tests.page_support import make_user, signed_in_client


def _employee(db, org_id: int, email: str, *, active: bool = True) -> int:
    with Session(db) as s:
        row = Employee(org_id=org_id, email=email, display_name="Ana Lima", source_id=email, active=active)
        s.add(row)
        s.commit()
        return row.id


def test_an_employee_signs_in_to_the_portal_and_nowhere_else(app, db, tenant):
    employee_id = _employee(db, tenant.org_id, "Ana@acme.example")
    make_user(db, tenant.org_id, Role.employee, email="ana@acme.example")
    client = signed_in_client(app, "ana@acme.example")
    home = client.get("/", follow_redirects=False)
    assert home.headers["location"] == "/me"
    page = client.get("/me")
    assert page.status_code == 200 and "Ana Lima" in page.text and 'href="/me/signature"' in page.text
    assert 'href="/app/dashboard"' not in page.text  # no staff navigation
    assert client.get("/app/dashboard").status_code == 403
    assert client.get("/app/deployments").status_code == 403
    with Session(db) as s:
        from service.accounts.service import user_by_email

        assert user_by_email(s, "ana@acme.example").employee_id == employee_id


def test_staff_who_are_employees_see_both_spaces_and_others_get_a_sentence(app, db, tenant):
    _employee(db, tenant.org_id, "comms@acme.example")
    make_user(db, tenant.org_id, Role.comms)  # linked: the directory has this address
    make_user(db, tenant.org_id, Role.it)  # not in the directory
    comms = signed_in_client(app, "comms@acme.example")
    page = comms.get("/app/dashboard")
    assert 'href="/me"' in page.text and 'href="/app/campaigns"' in page.text
    assert comms.get("/me").status_code == 200
    it = signed_in_client(app, "it@acme.example")
    refused = it.get("/me")
    assert refused.status_code == 403 and "not linked to an employee" in refused.text
    assert 'href="/me"' not in it.get("/app/deployments").text


def test_the_employee_role_needs_an_active_employee(db, tenant):
    _employee(db, tenant.org_id, "gone@acme.example", active=False)
    with Session(db) as s, pytest.raises(Invalid, match="No active employee"):
        create_user(s, org_id=tenant.org_id, email="gone@acme.example", role=Role.employee)
    with Session(db) as s, pytest.raises(Invalid, match="No active employee"):
        create_user(s, org_id=tenant.org_id, email="nobody@acme.example", role=Role.employee)


def test_no_api_key_carries_the_employee_role(client, tenant, settings):
    admin = {"Authorization": f"Bearer {tenant.keys[Role.admin]}"}
    r = client.post("/api/keys", json={"name": "portal", "role": "employee"}, headers=admin)
    assert r.status_code == 422 and "employees sign in to the portal" in r.text
    assert client.post("/api/keys", json={"name": "ok", "role": "comms"}, headers=admin).status_code == 201

    import main

    # refused before any database is opened
    result = CliRunner().invoke(main.cli, ["keys", "create", "portal", "--role", "employee"])
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # rich boxes and wraps the message
    assert result.exit_code == 2 and "employees sign in to the portal" in words


def test_visibility_choices_default_to_no_and_are_read_per_organisation(db, tenant):
    from portal.visibility import Choices, choices_of, consenting, set_choices
    from tests.conftest import make_tenant

    ana = _employee(db, tenant.org_id, "ana@acme.example")
    bob = _employee(db, tenant.org_id, "bob@acme.example")
    other = make_tenant(db, slug="globex")
    eve = _employee(db, other.org_id, "eve@globex.example")
    with Session(db) as s:
        assert choices_of(s, ana) == Choices()  # nobody has said yes yet
        set_choices(s, org_id=tenant.org_id, employee_id=ana, rank_visible=True)
        set_choices(s, org_id=other.org_id, employee_id=eve, rank_visible=True)
        set_choices(s, org_id=tenant.org_id, employee_id=bob, public_ambassador=True)
        s.commit()
        assert choices_of(s, ana) == Choices(rank_visible=True)
        assert consenting(s, tenant.org_id, "rank_visible") == {ana}
        assert consenting(s, tenant.org_id, "public_ambassador", [ana]) == set()
        set_choices(s, org_id=tenant.org_id, employee_id=ana, rank_visible=False)
        assert consenting(s, tenant.org_id, "rank_visible") == set()
        with pytest.raises(ValueError, match="unknown"):
            set_choices(s, org_id=tenant.org_id, employee_id=ana, everything=True)
