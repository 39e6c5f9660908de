"""Who a deployment, a campaign or a newsletter issue is for: one `Audience` type, one matching rule.

An audience selects *active* employees. Its inclusion criteria (departments, offices, groups, emails,
employee ids) combine as `match` says:

- `any`: an employee matching at least one criterion is in (no criterion: nobody);
- `all`: an employee must match every criterion given (no criterion: everyone).

`everyone` includes every active employee whatever the criteria. Exclusions (`exclude_*`) always win, in
both modes: matching any one of them takes the employee out.

Each criterion is declared once below (`CRITERIA`), with its SQL condition and its Python test side by
side; `Audience.where` and `Audience.includes` are both built from that table, and a property test checks
that they agree on random employees and audiences (tests/test_audience.py).
"""

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from service.directory.models import Employee, EmployeeGroup


class Match(StrEnum):
    any = "any"  # campaigns and newsletter issues
    all = "all"  # deployments


class Person(Protocol):
    """What the Python predicate reads of an employee (an `Employee` row fits)."""

    id: int | None
    email: str
    department: str | None
    office: str | None
    active: bool


@dataclass(frozen=True)
class Criterion:
    """One way to pick employees: the SQL condition and the Python test for a list of wanted values.

    Both are two-valued: a NULL column matches nothing (never NULL in SQL, which `NOT` would turn into
    "excluded")."""

    sql: Callable[[list, int], ColumnElement[bool]]  # (values, org_id) -> condition over Employee
    test: Callable[[Person, Collection[str], frozenset], bool]  # (employee, its groups, values) -> bool
    prepare: Callable[[list], frozenset] = frozenset


def _column(column) -> Criterion:
    name = column.key
    return Criterion(
        sql=lambda values, org_id: sa.and_(col(column).is_not(None), col(column).in_(values)),
        test=lambda emp, groups, values: getattr(emp, name) in values,  # None is in no set of strings
    )


def _emails(values: list[str]) -> frozenset:
    # As given or lower-cased: directory sources store addresses lower-cased, people type them as they like.
    return frozenset(values) | {v.lower() for v in values}


CRITERIA: dict[str, Criterion] = {
    "departments": _column(Employee.department),
    "offices": _column(Employee.office),
    "emails": Criterion(
        sql=lambda values, org_id: col(Employee.email).in_(sorted(_emails(values))),
        test=lambda emp, groups, values: emp.email in values,
        prepare=_emails,
    ),
    "employees": Criterion(
        sql=lambda values, org_id: col(Employee.id).in_(values),
        test=lambda emp, groups, values: emp.id in values,
    ),
    "groups": Criterion(
        sql=lambda values, org_id: col(Employee.id).in_(
            select(EmployeeGroup.employee_id).where(
                EmployeeGroup.org_id == org_id, col(EmployeeGroup.group_key).in_(values)
            )
        ),
        test=lambda emp, groups, values: not values.isdisjoint(groups),
    ),
}


class Audience(BaseModel):
    """Who is in: see the module docstring for the rule. Stored as JSON (its `model_dump()`)."""

    match: Match = Field(Match.any, description="any: one criterion is enough; all: every criterion must match.")
    everyone: bool = Field(False, description="Every active employee (the criteria are ignored; exclusions apply).")
    departments: list[str] = []
    offices: list[str] = []
    groups: list[str] = Field([], description="Directory group keys (e.g. sales@example.com).")
    emails: list[str] = []
    employees: list[int] = Field([], description="Employee ids.")
    exclude_departments: list[str] = []
    exclude_offices: list[str] = []
    exclude_groups: list[str] = []
    exclude_emails: list[str] = []
    exclude_employees: list[int] = []

    def inclusions(self) -> dict[str, list]:
        """The inclusion criteria given (non-empty), by name."""
        return {name: getattr(self, name) for name in CRITERIA if getattr(self, name)}

    def exclusions(self) -> dict[str, list]:
        return {name: getattr(self, f"exclude_{name}") for name in CRITERIA if getattr(self, f"exclude_{name}")}

    def is_empty(self) -> bool:
        """True when it can select nobody whoever the employees are (`any` with no criterion)."""
        return not self.everyone and self.match is Match.any and not self.inclusions()

    # -- SQL

    def where(self, org_id: int) -> ColumnElement[bool]:
        """The condition selecting this audience among `Employee` rows (use with `select(Employee)`)."""
        conditions: list[ColumnElement[bool]] = [col(Employee.org_id) == org_id, col(Employee.active).is_(True)]
        if not self.everyone:
            included = [CRITERIA[name].sql(values, org_id) for name, values in self.inclusions().items()]
            if self.match is Match.all:
                conditions += included
            else:
                conditions.append(sa.or_(*included) if included else sa.false())
        excluded = [CRITERIA[name].sql(values, org_id) for name, values in self.exclusions().items()]
        if excluded:
            conditions.append(sa.not_(sa.or_(*excluded)))
        return sa.and_(*conditions)

    def query(self, org_id: int):
        """`select(Employee)` of this audience, in no particular order (add `.order_by`)."""
        return select(Employee).where(self.where(org_id))

    # -- Python

    def predicate(self) -> Callable[[Person, Collection[str]], bool]:
        """A fast `(employee, groups) -> bool` with the value sets built once: reuse it for many employees."""
        included = [(CRITERIA[name].test, CRITERIA[name].prepare(v)) for name, v in self.inclusions().items()]
        excluded = [(CRITERIA[name].test, CRITERIA[name].prepare(v)) for name, v in self.exclusions().items()]
        everyone, match_all = self.everyone, self.match is Match.all

        def includes(emp: Person, groups: Collection[str]) -> bool:  # plain loops: this runs per employee
            if not emp.active:
                return False
            for test, values in excluded:
                if test(emp, groups, values):
                    return False
            if everyone:
                return True
            for test, values in included:
                if test(emp, groups, values) is not match_all:
                    return not match_all  # any: the first match is enough; all: the first miss is fatal
            return match_all

        return includes

    def includes(self, employee: Person, groups: Collection[str]) -> bool:
        """Whether `employee` (with its directory `groups`) is in; same answer as `where`."""
        return self.predicate()(employee, groups)

    @classmethod
    def load(cls, stored: dict[str, Any] | None, *, match: Match) -> "Audience":
        """An audience from stored JSON; `match` is the feature's mode when the JSON does not say (older rows)."""
        return cls.model_validate({"match": match, **(stored or {})})
