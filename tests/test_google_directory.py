"""GoogleDirectory against the fake Admin SDK: paging, skips with reasons, field mapping, nested groups,
transient errors retried with the shared policy, configuration errors stated once."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from service.connections.google import GoogleClient
from service.connections.models import Provider
from service.connections.service import save_connection
from service.connections.throttle import RetryPolicy
from service.db import session_scope
from service.directory.models import Employee, EmployeeGroup
from service.directory.sources import make_directory
from service.directory.sources.google import DirectoryError, GoogleDirectory, office_of, to_person
from service.directory.sync import sync_directory
from tests.fakes.google import SCOPE_GMAIL_BASIC, fake_google

ADMIN = "admin@example.com"
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def fake():
    with fake_google() as f:
        f.add_user(ADMIN, admin=True)
        yield f


def directory(fake, subject=ADMIN, **kw) -> GoogleDirectory:
    client = GoogleClient(
        info=kw.pop("info", None) or fake.service_account_info(),
        admin_subject=subject,
        api_endpoint=fake.url,
        token_uri=fake.token_uri,
    )
    return GoogleDirectory(client, policy=FAST, **kw)


def test_pages_through_every_user_and_skips_with_reasons(fake):
    fake.seed_users(230)
    fake.add_user("archived@example.com", archived=True)
    fake.add_user("suspended@example.com", suspended=True)
    fake.add_user("nomail@example.com", mailbox=False)
    listing = directory(fake, page_size=100).list_people()
    emails = {p.email for p in listing.people}
    assert len(emails) == 231 and "user00229@example.com" in emails
    assert {s.ref: s.reason for s in listing.skipped} == {
        "archived@example.com": "archived user",
        "nomail@example.com": "no Gmail mailbox (isMailboxSetup is false)",
    }
    assert "suspended@example.com" not in emails  # filtered by the query
    assert fake.requests["users.list"] == 3 and listing.complete


def test_field_mapping():
    user = {
        "id": "42",
        "primaryEmail": "ann.lee@example.com",
        "name": {"givenName": "Ann", "familyName": "Lee", "fullName": "Ann Lee"},
        "organizations": [
            {"title": "Old", "department": "Old"},
            {"title": "Engineer", "department": "R&D", "primary": True, "location": "3rd floor"},
        ],
        "phones": [
            {"value": "+33 1 23", "type": "work"},
            {"value": "+33 6 45", "type": "mobile"},
            {"value": "+33 9", "type": "home"},
        ],
        "orgUnitPath": "/Staff/Paris",
        "aliases": ["ann@example.com"],
        "relations": [{"value": "boss@example.com", "type": "manager"}],
    }
    p = to_person(user, ("staff@example.com",))
    assert (p.source_id, p.first_name, p.last_name, p.display_name) == ("42", "Ann", "Lee", "Ann Lee")
    assert (p.title, p.department, p.location) == ("Engineer", "R&D", "3rd floor")
    assert (p.phone, p.mobile, p.office, p.manager_email) == ("+33 1 23", "+33 6 45", "Paris", "boss@example.com")
    assert p.aliases == ("ann@example.com",) and p.groups == ("staff@example.com",)
    assert office_of({"orgUnitPath": "/", "locations": [{"buildingId": "LYON-1", "type": "desk"}]}) == "LYON-1"
    assert office_of({"orgUnitPath": "/"}) is None
    bare = to_person({"id": "1", "primaryEmail": "x@example.com"})
    assert bare.first_name is None and bare.phone is None and bare.groups == ()


def test_nested_group_membership_reaches_each_person(fake):
    fake.add_user("ann.lee@example.com")
    fake.add_user("bob.stone@example.com")
    fake.add_group("paris@example.com", members=["ann.lee@example.com"])
    fake.add_group("france@example.com", members=["paris@example.com", "bob.stone@example.com"])
    people = {p.email: p for p in directory(fake).list_people().people}
    assert people["ann.lee@example.com"].groups == ("france@example.com", "paris@example.com")
    assert people["bob.stone@example.com"].groups == ("france@example.com",)
    assert people[ADMIN].groups == ()


def test_transient_errors_are_retried(fake):
    fake.add_user("ann.lee@example.com")
    fake.server_error("users.list", status=503, times=2)
    fake.rate_limit("members.list", times=1, retry_after=0)
    fake.add_group("g@example.com", members=["ann.lee@example.com"])
    people = {p.email: p for p in directory(fake).list_people().people}
    assert people["ann.lee@example.com"].groups == ("g@example.com",)
    assert fake.requests["users.list"] == 3


def test_persistent_failures_and_configuration_problems_are_stated(fake):
    fake.server_error("users.list", status=500, times=None)
    with pytest.raises(DirectoryError, match="kept failing"):
        directory(fake).list_people()
    fake.clear_faults()
    fake.add_user("ann.lee@example.com")
    with pytest.raises(DirectoryError, match="not a Workspace admin"):
        directory(fake, subject="ann.lee@example.com").list_people()
    with pytest.raises(DirectoryError, match="admin subject ghost@example.com does not exist"):
        directory(fake, subject="ghost@example.com").list_people()
    info = fake.service_account_info(delegated_scopes=[SCOPE_GMAIL_BASIC])
    with pytest.raises(DirectoryError, match="lacks the scope"):
        directory(fake, info=info).list_people()


def test_sync_from_the_connection_into_employees(fake, db, tenant, settings):
    settings.google_api_endpoint = fake.url
    settings.google_token_uri = fake.token_uri
    fake.add_user(
        "ann.lee@example.com", title="Engineer", department="R&D", org_unit="/Paris", aliases=["ann@example.com"]
    )
    fake.add_group("staff@example.com", members=["ann.lee@example.com"])
    with session_scope(db) as s:
        save_connection(
            s,
            org_id=tenant.org_id,
            provider=Provider.google,
            config={"admin_subject": ADMIN},
            secret=json.dumps(fake.service_account_info()),
            settings=settings,
        )
    with session_scope(db) as s:
        d = make_directory(s, org_id=tenant.org_id, provider=Provider.google, settings=settings)
        report = sync_directory(s, org_id=tenant.org_id, directory=d)
    assert report.created == 2
    with Session(db) as s:
        ann = s.exec(select(Employee).where(Employee.email == "ann.lee@example.com")).one()
        assert (ann.source, ann.title, ann.office, ann.aliases) == ("google", "Engineer", "Paris", ["ann@example.com"])
        assert [g.group_key for g in s.exec(select(EmployeeGroup).where(EmployeeGroup.employee_id == ann.id))] == [
            "staff@example.com"
        ]
    fake.users["ann.lee@example.com"]["archived"] = True  # leaves: skipped, then deactivated
    with session_scope(db) as s:
        d = make_directory(s, org_id=tenant.org_id, provider=Provider.google, settings=settings)
        again = sync_directory(s, org_id=tenant.org_id, directory=d)
    assert again.deactivated == 1 and again.skipped == [{"ref": "ann.lee@example.com", "reason": "archived user"}]
