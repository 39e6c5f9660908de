"""CSV import: dry run reports, bad rows refuse the whole file with line numbers, deactivation keeps history."""

from sqlmodel import Session, select

from service.directory.models import Employee, EmployeeGroup
from service.models import Role

HEADER = "email,first_name,last_name,title,department,office,phone,aliases,groups\n"
GOOD = (
    HEADER
    + "ada@acme.example,Ada,Lovelace,Engineer,R&D <Ops>,Paris,+33 1 00,ada.l@acme.example,leaders;eng\n"
    + "sean@acme.example,Seán,O'Neil,Sales Lead,Sales,Lyon,,,\n"
)


def _import(client, tenant, body: str, dry_run: bool, role=Role.it):
    return client.post(
        f"/api/directory/import?dry_run={str(dry_run).lower()}",
        files={"file": ("people.csv", body.encode("utf-8"), "text/csv")},
        headers=tenant.headers(role),
    )


def _employees(db):
    with Session(db) as s:
        return {e.email: e for e in s.exec(select(Employee)).all()}


def test_dry_run_reports_without_writing(client, tenant, db):
    r = _import(client, tenant, GOOD, dry_run=True)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2 and r.json()["dry_run"] is True
    assert _employees(db) == {}


def test_import_creates_updates_and_deactivates(client, tenant, db):
    assert _import(client, tenant, GOOD, dry_run=False).json()["created"] == 2
    people = _employees(db)
    assert people["ada@acme.example"].department == "R&D <Ops>"
    assert people["ada@acme.example"].aliases == ["ada.l@acme.example"]
    assert people["sean@acme.example"].last_name == "O'Neil" and people["sean@acme.example"].phone is None
    with Session(db) as s:
        assert sorted(s.exec(select(EmployeeGroup.group_key)).all()) == ["eng", "leaders"]

    changed = HEADER + (
        "ada@acme.example,Ada,Lovelace,Principal Engineer,R&D <Ops>,Paris,+33 1 00,ada.l@acme.example,eng\n"
    )
    preview = _import(client, tenant, changed, dry_run=True).json()
    assert (preview["updated"], preview["deactivated"], preview["created"]) == (1, 1, 0)
    ada = next(c for c in preview["changes"] if c["email"] == "ada@acme.example")
    assert set(ada["fields"]) == {"title", "groups"}

    applied = _import(client, tenant, changed, dry_run=False).json()
    assert applied["deactivated"] == 1
    people = _employees(db)
    assert people["sean@acme.example"].active is False and people["sean@acme.example"].deactivated_at
    assert people["ada@acme.example"].title == "Principal Engineer"
    again = _import(client, tenant, changed, dry_run=False).json()
    assert (again["created"], again["updated"], again["deactivated"], again["unchanged"]) == (0, 0, 0, 1)


def test_bad_rows_are_reported_with_line_numbers_and_nothing_is_applied(client, tenant, db):
    body = (
        HEADER
        + "ok@acme.example,Ok,Person,,,,,,\n"
        + "not-an-email,Bad,Row,,,,,,\n"
        + "ok@acme.example,Dup,Licate,,,,,,\n"
        + "x@acme.example,X,Y,,,,,bad alias,\n"
        + "y@acme.example,too,many,columns,,,,,,,,\n"
    )
    r = _import(client, tenant, body, dry_run=False)
    assert r.status_code == 422
    error = r.json()["error"]
    assert "nothing was imported" in error["message"]
    by_line = {e["line"]: e["reason"] for e in error["details"]["errors"]}
    assert set(by_line) == {3, 4, 5, 6}
    assert "not an email" in by_line[3]
    assert "already appears on line 2" in by_line[4]
    assert "alias" in by_line[5]
    assert "more values than columns" in by_line[6]
    assert _employees(db) == {}


def test_file_level_problems_are_explained(client, tenant):
    r = _import(client, tenant, "name,title\nA,B\n", dry_run=True)
    assert r.status_code == 422 and "no email column" in r.json()["error"]["message"]
    r = _import(client, tenant, "email,shoe_size\na@b.example,42\n", dry_run=True)
    assert "shoe_size" in r.json()["error"]["message"]
    r = client.post(
        "/api/directory/import",
        files={"file": ("x.csv", b"email\n\xff\xfe@x\n", "text/csv")},
        headers=tenant.headers(Role.it),
    )
    # not UTF-8, so read as Windows-1252: the row is then refused for what it says, on its line
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["line"] == 2


def test_comms_cannot_import(client, tenant):
    assert _import(client, tenant, GOOD, dry_run=True, role=Role.comms).status_code == 403
