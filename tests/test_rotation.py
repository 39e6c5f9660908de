"""Rotation properties: weights over many periods, determinism, priorities, audiences, and start/end
boundaries across timezones and DST."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from service.directory.models import Employee
from signatures.campaigns.models import Campaign, CampaignState, RotationPeriod
from signatures.campaigns.service import Audience, audience_of, choose, period_bounds

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _campaigns(weights, priorities=None):
    priorities = priorities or [0] * len(weights)
    return [
        Campaign(
            id=i + 1,
            org_id=1,
            name=f"c{i}",
            state=CampaignState.scheduled,
            destination_url="https://x",
            starts_at=T0,
            weight=w,
            priority=p,
            salt=f"s{i}",
        )
        for i, (w, p) in enumerate(zip(weights, priorities, strict=True))
    ]


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(1, 20), min_size=1, max_size=5), employee_id=st.integers(1, 10**6))
def test_each_employee_sees_campaigns_in_proportion_to_weight_over_periods(weights, employee_id):
    campaigns = _campaigns(weights)
    periods = 2000
    counts = Counter(choose(campaigns, employee_id=employee_id, period_index=p).id for p in range(periods))
    total = sum(weights)
    for c in campaigns:
        expected = periods * c.weight / total
        assert abs(counts[c.id] - expected) <= 0.01 * periods + 2, (counts, weights)


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.integers(1, 10), min_size=2, max_size=4), period=st.integers(0, 10**6))
def test_in_one_period_employees_are_spread_by_weight(weights, period):
    campaigns = _campaigns(weights)
    n = 4000
    counts = Counter(choose(campaigns, employee_id=e, period_index=period).id for e in range(1, n + 1))
    total = sum(weights)
    for c in campaigns:
        assert abs(counts[c.id] - n * c.weight / total) <= 0.05 * n, (counts, weights)


@given(employee_id=st.integers(1, 10**9), period=st.integers(0, 10**7))
def test_the_choice_is_deterministic(employee_id, period):
    a = choose(_campaigns([3, 1, 2]), employee_id=employee_id, period_index=period)
    b = choose(list(reversed(_campaigns([3, 1, 2]))), employee_id=employee_id, period_index=period)
    assert a.id == b.id  # the order campaigns come in does not matter


def test_choices_change_across_periods_and_higher_priority_wins():
    seen = {choose(_campaigns([1, 1]), employee_id=7, period_index=p).id for p in range(10)}
    assert seen == {1, 2}
    for p in range(50):
        assert choose(_campaigns([100, 1], priorities=[0, 5]), employee_id=7, period_index=p).id == 2
    assert choose([], employee_id=7, period_index=0) is None


def test_audiences_include_then_exclude():
    emp = Employee(id=5, org_id=1, email="a@x", department="Sales", office="Paris", source_id="5", active=True)

    def in_audience(stored: dict, *, employee: Employee, groups: set[str]) -> bool:
        return audience_of(Campaign(audience=stored)).includes(employee, groups)

    assert in_audience({"everyone": True}, employee=emp, groups=set())
    assert in_audience({"departments": ["Sales"]}, employee=emp, groups=set())
    assert in_audience({"offices": ["Paris"]}, employee=emp, groups=set())
    assert in_audience({"groups": ["g1"]}, employee=emp, groups={"g1"})
    assert in_audience({"employees": [5]}, employee=emp, groups=set())
    assert in_audience({"departments": ["Finance"], "offices": ["Paris"]}, employee=emp, groups=set())  # any
    assert not in_audience({"departments": ["Finance"]}, employee=emp, groups=set())
    assert not in_audience({"everyone": True, "exclude_employees": [5]}, employee=emp, groups=set())
    assert not in_audience({"everyone": True, "exclude_groups": ["g2"]}, employee=emp, groups={"g2"})
    assert not in_audience({"departments": ["Sales"], "exclude_offices": ["Paris"]}, employee=emp, groups=set())
    assert not in_audience({}, employee=emp, groups=set())
    # A campaign may ask for every criterion instead: Sales people in Lyon only.
    stored = Audience(match="all", departments=["Sales"], offices=["Lyon"]).model_dump(mode="json")
    assert not in_audience(stored, employee=emp, groups=set())
    assert in_audience({**stored, "offices": ["Paris"]}, employee=emp, groups=set())
    emp.active = False
    assert not in_audience({"everyone": True}, employee=emp, groups=set())


def test_daily_periods_follow_local_midnight_through_dst():
    paris = ZoneInfo("Europe/Paris")
    # 2026-03-29: clocks go 02:00 -> 03:00 in Paris; the local day is 23 hours long.
    at = datetime(2026, 3, 29, 12, 0, tzinfo=paris)
    idx, start, end = period_bounds(at, tz=paris, period=RotationPeriod.daily)
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=23)
    # one microsecond before local midnight is still the previous period; midnight starts the next one
    assert period_bounds(end - timedelta(microseconds=1), tz=paris, period=RotationPeriod.daily)[0] == idx
    assert period_bounds(end, tz=paris, period=RotationPeriod.daily)[0] == idx + 1
    # autumn: a 25-hour day
    _i, s2, e2 = period_bounds(datetime(2026, 10, 25, 12, tzinfo=paris), tz=paris, period=RotationPeriod.daily)
    assert e2 - s2 == timedelta(hours=25)


def test_weekly_periods_start_on_local_monday_in_each_timezone():
    for name in ("Pacific/Auckland", "America/Los_Angeles", "UTC", "Asia/Kolkata"):
        tz = ZoneInfo(name)
        idx, start, end = period_bounds(datetime(2026, 3, 11, 12, tzinfo=UTC), tz=tz, period=RotationPeriod.weekly)
        local = start.astimezone(tz)
        assert local.weekday() == 0 and (local.hour, local.minute) == (0, 0), name
        assert period_bounds(end, tz=tz, period=RotationPeriod.weekly)[0] == idx + 1
    # the same UTC instant can be in different weeks depending on the timezone
    sunday_late_utc = datetime(2026, 3, 15, 20, tzinfo=UTC)  # already Monday in Auckland
    auckland = period_bounds(sunday_late_utc, tz=ZoneInfo("Pacific/Auckland"), period=RotationPeriod.weekly)[0]
    utc = period_bounds(sunday_late_utc, tz=ZoneInfo("UTC"), period=RotationPeriod.weekly)[0]
    assert auckland == utc + 1


@given(
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    tz=st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Tehran", "UTC"]),
    period=st.sampled_from(list(RotationPeriod)),
)
def test_every_moment_lies_in_its_period(at, tz, period):
    idx, start, end = period_bounds(at, tz=ZoneInfo(tz), period=period)
    assert start <= at < end
    assert period_bounds(start, tz=ZoneInfo(tz), period=period)[0] == idx


def test_campaign_start_and_end_are_instants_whatever_the_timezone():
    start = datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("America/New_York"))
    c = _campaigns([1])[0]
    c.starts_at, c.ends_at = start, start + timedelta(days=2)
    assert c.effective_state(start - timedelta(microseconds=1)) is CampaignState.scheduled
    assert c.effective_state(start) is CampaignState.active
    assert c.effective_state(start.astimezone(ZoneInfo("Asia/Tokyo"))) is CampaignState.active
    assert c.effective_state(c.ends_at - timedelta(microseconds=1)) is CampaignState.active
    assert c.effective_state(c.ends_at) is CampaignState.ended
    c.state = CampaignState.paused
    assert c.effective_state(start) is CampaignState.paused
