"""Graph directory sync against the fake: full listing, delta, removals, 410 resync, groups, re-hosted photos."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from sqlmodel import Session, select

from service.connections.models import ProviderConnection
from service.db import session_scope
from service.directory.models import Employee, EmployeeGroup
from service.directory.sources.microsoft import GraphDirectory, sync_microsoft
from tests.fakes.microsoft import FakeMicrosoft
from tests.ms_support import TENANT, connect, ms_settings

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 64 + b"\xff\xd9"


@pytest.fixture
def fake():
    with FakeMicrosoft(tenant_id=TENANT, page_size=3, delta_page_size=2) as f:
        yield f
        assert f.errors == []


@pytest.fixture
def mss(settings, fake):
    return ms_settings(settings, fake)


def seed(fake: FakeMicrosoft) -> dict:
    boss = fake.add_user("boss@contoso.example", display_name="The Boss", givenName="Bo", surname="Ss")
    ann = fake.add_user(
        "ann@contoso.example",
        givenName="Ann",
        surname="Lee",
        jobTitle="Engineer",
        department="R&D",
        officeLocation="Paris",
        businessPhones=["+33 1 23 45 67 89"],
        mobilePhone="+33 6 00 00 00 00",
        companyName="Contoso",
        employeeId="E1",
        proxyAddresses=["SMTP:ann@contoso.example", "smtp:a.lee@contoso.example", "SIP:ann@x"],
        manager="boss@contoso.example",
        photo=JPEG,
    )
    bob = fake.add_user("bob@contoso.example", givenName="Bob", surname="Stone", department="Sales")
    fake.add_user("noreply@contoso.example", mail=None)  # no mailbox
    fake.add_user("old@contoso.example", accountEnabled=False)
    for i in range(4):
        fake.add_user(f"p{i}@contoso.example", givenName=f"P{i}", surname="Test")
    eng = fake.add_group("Engineering", [ann["id"]])
    all_staff = fake.add_group("All staff", [eng["id"], bob["id"]])  # nested: ann through Engineering
    return {"boss": boss, "ann": ann, "bob": bob, "eng": eng, "all": all_staff}


def sync(db, org_id, mss, dry_run=False):
    with session_scope(db) as s:
        conn = s.exec(select(ProviderConnection).where(ProviderConnection.org_id == org_id)).one()
        return sync_microsoft(s, conn=conn, settings=mss, dry_run=dry_run)


def employees(db, org_id) -> dict[str, Employee]:
    with Session(db) as s:
        return {e.email: e for e in s.exec(select(Employee).where(Employee.org_id == org_id)).all()}


def groups_of(db, email) -> set[str]:
    with Session(db) as s:
        emp = s.exec(select(Employee).where(Employee.email == email)).one()
        return set(s.exec(select(EmployeeGroup.group_key).where(EmployeeGroup.employee_id == emp.id)).all())


def delta_link(db, org_id) -> str | None:
    with Session(db) as s:
        return (
            s.exec(select(ProviderConnection).where(ProviderConnection.org_id == org_id))
            .one()
            .sync_state.get("delta_link")
        )


def test_full_sync_profiles_managers_groups_and_rehosted_photos(db, tenant, fake, mss):
    ids = seed(fake)
    connect(
        db,
        tenant.org_id,
        fake,
        mss,
        config={"groups": [ids["eng"]["id"], {"id": ids["all"]["id"], "key": "all-staff"}]},
    )
    report = sync(db, tenant.org_id, mss)
    assert report.created == 7 and report.deactivated == 0
    assert {s["reason"].split(" ")[0] for s in report.skipped} == {"account", "no"}
    emps = employees(db, tenant.org_id)
    ann = emps["ann@contoso.example"]
    assert (ann.first_name, ann.last_name, ann.title, ann.department, ann.office) == (
        "Ann",
        "Lee",
        "Engineer",
        "R&D",
        "Paris",
    )
    assert ann.phone == "+33 1 23 45 67 89" and ann.mobile == "+33 6 00 00 00 00"
    assert ann.manager_email == "boss@contoso.example" and ann.aliases == ["a.lee@contoso.example"]
    assert ann.source == "microsoft" and ann.source_id == ids["ann"]["id"]
    assert ann.photo_url.startswith("https://relais.test/assets/") and ann.photo_url.endswith(".jpg")
    assert (mss.data_dir / "assets" / ann.photo_url.rsplit("/", 1)[1]).read_bytes() == JPEG
    assert emps["bob@contoso.example"].photo_url is None
    assert groups_of(db, "ann@contoso.example") == {ids["eng"]["id"], "all-staff"}
    assert groups_of(db, "bob@contoso.example") == {"all-staff"}
    assert groups_of(db, "boss@contoso.example") == set()
    # the listing asked for the properties it needs
    query = unquote([r for r in fake.requests if r.path == "/v1.0/users"][0].query)
    assert "$select=id,userPrincipalName" in query and "employeeId" in query and "$expand=manager(" in query
    assert fake.request_count("graph", path_contains="/$batch") >= 1  # photos in batch
    assert delta_link(db, tenant.org_id)


def test_delta_sync_changes_removals_and_membership(db, tenant, fake, mss):
    ids = seed(fake)
    connect(db, tenant.org_id, fake, mss, config={"groups": [{"id": ids["eng"]["id"], "key": "eng"}]})
    sync(db, tenant.org_id, mss)
    listings = len([r for r in fake.requests if r.path == "/v1.0/users"])

    fake.update_user("bob@contoso.example", jobTitle="Head of Sales")
    fake.update_user("bob@contoso.example", officeLocation="Lyon")  # twice: listed twice in the delta
    fake.remove_user("p0@contoso.example")
    fake.update_user("p1@contoso.example", accountEnabled=False)
    fake.add_user("new@contoso.example", givenName="New", surname="Hire")
    fake.add_group_members(ids["eng"]["id"], ["p2@contoso.example"])  # membership only: not in users delta

    report = sync(db, tenant.org_id, mss)
    assert fake.request_count("graph", path_contains="/users/delta") >= 1
    assert len([r for r in fake.requests if r.path == "/v1.0/users"]) == listings  # no full listing again
    emps = employees(db, tenant.org_id)
    assert emps["bob@contoso.example"].title == "Head of Sales" and emps["bob@contoso.example"].office == "Lyon"
    assert emps["new@contoso.example"].active
    assert not emps["p0@contoso.example"].active and not emps["p1@contoso.example"].active
    assert emps["p3@contoso.example"].active and emps["ann@contoso.example"].active  # untouched by a delta
    assert groups_of(db, "p2@contoso.example") == {"eng"}
    assert report.deactivated == 2 and report.created == 1

    nothing = sync(db, tenant.org_id, mss)
    assert nothing.created == nothing.updated == nothing.deactivated == 0


def test_dry_run_does_not_advance_the_delta_link(db, tenant, fake, mss):
    seed(fake)
    connect(db, tenant.org_id, fake, mss)
    sync(db, tenant.org_id, mss)
    link = delta_link(db, tenant.org_id)
    fake.update_user("bob@contoso.example", jobTitle="CFO")
    preview = sync(db, tenant.org_id, mss, dry_run=True)
    assert [c.email for c in preview.changes] == ["bob@contoso.example"]
    assert delta_link(db, tenant.org_id) == link
    assert employees(db, tenant.org_id)["bob@contoso.example"].title is None
    sync(db, tenant.org_id, mss)
    assert employees(db, tenant.org_id)["bob@contoso.example"].title == "CFO"


@pytest.mark.parametrize("status,code", [(410, "resyncRequired"), (400, "syncStateNotFound")])
def test_expired_delta_token_falls_back_to_a_full_resync(db, tenant, fake, mss, status, code):
    seed(fake)
    connect(db, tenant.org_id, fake, mss)
    sync(db, tenant.org_id, mss)
    fake.remove_user("p3@contoso.example")
    fake.expire_delta_tokens(status=status, code=code)
    report = sync(db, tenant.org_id, mss)
    assert fake.request_count("graph", status=status) >= 1
    assert report.deactivated == 1 and not employees(db, tenant.org_id)["p3@contoso.example"].active
    fake.update_user("bob@contoso.example", jobTitle="CEO")
    sync(db, tenant.org_id, mss)  # the fresh link works again
    assert employees(db, tenant.org_id)["bob@contoso.example"].title == "CEO"


def test_throttled_batch_items_are_retried(db, tenant, fake, mss):
    ids = seed(fake)
    connect(db, tenant.org_id, fake, mss)
    fake.inject(429, service="graph", path_contains=f"/users/{ids['ann']['id']}/photo", retry_after="0.2", times=2)
    sync(db, tenant.org_id, mss)
    assert employees(db, tenant.org_id)["ann@contoso.example"].photo_url.startswith("https://relais.test/assets/")
    assert fake.request_count("graph", path_contains="/photo", status=429) == 2


def test_missing_user_read_permission_is_explained(db, tenant, fake, mss):
    from service.directory.sync import SyncError

    app = fake.register_app(
        secret="another-long-secret",
        graph_roles=["MailboxConfigItem.ReadWrite"],
        exchange_roles=["Exchange.ManageAsApp"],
    )
    connect(db, tenant.org_id, fake, mss, secret="another-long-secret", client_id=app.client_id)
    with pytest.raises(SyncError) as err:
        sync(db, tenant.org_id, mss)
    assert err.value.status_code == 422 and "User.Read.All" in err.value.message


def test_paging_follows_next_links_exactly(db, tenant, fake, mss):
    ids = seed(fake)
    fake.add_group_members(ids["eng"]["id"], [f"p{i}@contoso.example" for i in range(4)])
    conn_id = connect(db, tenant.org_id, fake, mss)
    with Session(db) as s:
        conn = s.get(ProviderConnection, conn_id)
        directory = GraphDirectory.from_connection(conn, mss)
        directory.page_size, directory.groups = 2, {ids["eng"]["id"]: "eng"}
        listing = directory.list_people()
    assert listing.complete and len(listing.people) == 7
    assert len([r for r in fake.requests if r.path == "/v1.0/users"]) == 5  # 9 users, 2 a page
    assert {r.status for r in fake.requests if r.path == "/v1.0/users"} == {200}  # opaque tokens kept as given
    members = [r for r in fake.requests if "transitiveMembers" in r.path]
    assert len(members) == 3 and all(r.headers.get("consistencylevel") == "eventual" for r in members)
    assert {p.email for p in listing.people if "eng" in p.groups} == {"ann@contoso.example"} | {
        f"p{i}@contoso.example" for i in range(4)
    }
