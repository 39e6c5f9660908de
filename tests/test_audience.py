"""The one Audience type: its SQL condition and its Python predicate agree, on every backend."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col

from service.directory.audience import Audience, Match
from service.directory.models import Employee, EmployeeGroup
from service.models import Organisation

# Small pools so that random audiences and employees often meet; case variants and empty strings on purpose.
NAMES = ["Sales", "sales", "IT", "", "Équipe"]
GROUPS = ["all@x.test", "Sales@x.test", "sales@x.test", "it@x.test"]
LOCALS = ["ana", "Ana", "bob", "BOB", "émile", "Émile"]

person = st.fixed_dictionaries({
    "local": st.sampled_from(LOCALS),
    "department": st.none() | st.sampled_from(NAMES),
    "office": st.none() | st.sampled_from(NAMES),
    "active": st.booleans(),
    "groups": st.sets(st.sampled_from(GROUPS), max_size=3),
})  # fmt: skip
people = st.lists(person, max_size=8)
some = st.lists(st.sampled_from(NAMES), max_size=2)
some_groups = st.lists(st.sampled_from(GROUPS), max_size=2)
some_emails = st.lists(st.sampled_from([f"{n}@x.test" for n in LOCALS] + ["ANA@X.TEST", "nobody@x.test"]), max_size=2)


def audiences(ids: list[int]):
    some_ids = st.lists(st.sampled_from(ids + [10**9]), max_size=2)
    return st.builds(
        Audience, match=st.sampled_from(Match), everyone=st.booleans() if ids else st.just(False),
        departments=some, offices=some, groups=some_groups, emails=some_emails, employees=some_ids,
        exclude_departments=some, exclude_offices=some, exclude_groups=some_groups, exclude_emails=some_emails,
        exclude_employees=some_ids,
    )  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=people, data=st.data())
def test_sql_and_predicate_agree(db, population, data):
    with Session(db) as session:
        org = Organisation(name="Audience", slug="audience")
        other = Organisation(name="Other", slug="other")
        session.add_all([org, other])
        session.flush()
        groups_of: dict[int, set[str]] = {}
        emps: list[Employee] = []
        for n, p in enumerate(population):
            email = f"{p['local']}@x.test"
            if any(e.email == email for e in emps):  # unique per organisation
                email = f"{p['local']}{n}@x.test"
            emp = Employee(org_id=org.id, email=email, department=p["department"], office=p["office"],
                           active=p["active"], source_id=str(n))  # fmt: skip
            session.add(emp)
            session.flush()
            for key in p["groups"]:
                session.add(EmployeeGroup(org_id=org.id, employee_id=emp.id, group_key=key))
            groups_of[emp.id] = set(p["groups"])
            emps.append(emp)
        # Another organisation's employee in the same groups: never part of this organisation's audiences.
        stranger = Employee(org_id=other.id, email="ana@x.test", department="Sales", source_id="s")
        session.add(stranger)
        session.flush()
        session.add(EmployeeGroup(org_id=other.id, employee_id=stranger.id, group_key="all@x.test"))
        session.flush()
        for _ in range(6):
            audience = data.draw(audiences([e.id for e in emps]))
            in_sql = set(session.exec(audience.query(org.id).with_only_columns(col(Employee.id))).all())
            check = audience.predicate()
            in_python = {e.id for e in emps if check(e, groups_of[e.id])}
            assert in_sql == in_python, audience
            assert all(audience.includes(e, groups_of[e.id]) == (e.id in in_sql) for e in emps)
        session.rollback()


def _emp(**kw) -> Employee:
    base = dict(id=5, org_id=1, email="ana@x.test", department="Sales", office="Paris", source_id="5", active=True)
    return Employee(**{**base, **kw})


def test_any_needs_one_criterion_all_needs_every_one():
    emp = _emp()
    sales_or_lyon = dict(departments=["Sales"], offices=["Lyon"])
    assert Audience(match=Match.any, **sales_or_lyon).includes(emp, set())
    assert not Audience(match=Match.all, **sales_or_lyon).includes(emp, set())
    assert Audience(match=Match.all, departments=["Sales"], offices=["Paris"]).includes(emp, set())
    # No criterion: nobody in `any` mode, everyone in `all` mode (a deployment with no filter).
    assert not Audience(match=Match.any).includes(emp, set())
    assert Audience(match=Match.any).is_empty() and not Audience(match=Match.all).is_empty()
    assert Audience(match=Match.all).includes(emp, set())
    assert not Audience(match=Match.all).includes(_emp(active=False), set())


def test_exclusions_win_and_a_missing_value_is_never_excluded():
    assert not Audience(everyone=True, exclude_groups=["g"]).includes(_emp(), {"g"})
    assert not Audience(match=Match.all, exclude_emails=["ANA@x.test"]).includes(_emp(), set())
    # Excluding Sales does not exclude the people with no department (SQL NULL would, without care).
    assert Audience(everyone=True, exclude_departments=["Sales"]).includes(_emp(department=None), set())
    assert Audience(emails=["Ana@X.test"]).includes(_emp(), set())  # typed in any case: matches the lower-cased
    assert not Audience(emails=["ana@x.test"]).includes(_emp(email="Ana@x.test"), set())  # stored as is


def test_stored_json_without_a_mode_gets_the_features_mode():
    assert Audience.load({"departments": ["Sales"]}, match=Match.all).match is Match.all
    assert Audience.load(None, match=Match.any).is_empty()
    assert Audience.load({"match": "any", "everyone": True}, match=Match.all).match is Match.any
