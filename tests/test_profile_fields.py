"""The employee profile is declared once (EmployeeBase); everything that repeats it must list the same fields."""

from dataclasses import fields

from service.directory.models import PROFILE_FIELDS, Employee, EmployeePublic
from service.directory.sources.csv_file import COLUMNS, parse_csv
from service.directory.sync import DirectoryPerson
from signatures.context import EmployeeData
from signatures.service import employee_data

EXPECTED = (
    "email", "first_name", "last_name", "display_name", "title", "department", "office", "location", "phone",
    "mobile", "manager_email", "photo_url", "locale", "pronouns",
)  # fmt: skip


def test_the_declaration():
    assert PROFILE_FIELDS == EXPECTED  # adding a field is a schema change: add its migration too
    assert set(PROFILE_FIELDS) <= set(Employee.model_fields) and set(PROFILE_FIELDS) <= set(EmployeePublic.model_fields)


def test_directory_person_and_template_data_follow_it():
    assert tuple(f.name for f in fields(DirectoryPerson)) == ("source_id", *PROFILE_FIELDS, "aliases", "groups")
    assert tuple(f.name for f in fields(EmployeeData)) == PROFILE_FIELDS


def test_csv_columns_follow_it_and_every_field_travels_to_the_template():
    assert ("email", "source_id", *PROFILE_FIELDS[1:], "aliases", "groups") == COLUMNS
    values = {f: f"{f}-value" for f in PROFILE_FIELDS[1:]}
    values |= {"manager_email": "boss@acme.example", "photo_url": "https://cdn.acme.example/p.png"}
    header = ",".join(["email", *values])
    row = ",".join(["ada@acme.example", *values.values()])
    (person,) = parse_csv(f"{header}\n{row}\n".encode())
    emp = Employee(org_id=1, source_id=person.source_id, **{f: getattr(person, f) for f in PROFILE_FIELDS})
    data = employee_data(emp)
    assert {f: getattr(data, f) for f in PROFILE_FIELDS} == {"email": "ada@acme.example", **values}
