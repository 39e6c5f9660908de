"""The click summary (service.clicks.rollup): the figures read from it equal a recount of the raw clicks, a fold
that fails or stops half-way is resumed without counting twice, late and unsettled clicks are handled, opt-outs
hold, and the pages show the same numbers before and after folding."""

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, text
from sqlmodel import Session

from service.accounts.demo import DEMO_LOGINS_FILE
from service.app import create_app
from service.clicks import rollup
from service.clicks.models import Click, ClickDaily, ClickDailyTotal, ClickRollupMark, Verdict
from service.clicks.reports import AUDIENCE_CHANNELS, click_counts, leaderboard, verdict_reasons
from service.clicks.verdicts import BURST_WINDOW
from service.db import utcnow
from service.demo import seed_demo
from service.links import Channel
from service.models import Organisation, Role
from tests.campaign_helpers import add_employees
from tests.page_support import browser_client, sign_in

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
BASE = datetime.combine(utcnow().date() - timedelta(days=10), time(0), tzinfo=UTC)  # a UTC midnight, 10 days ago
ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]  # one instant, written in any zone
REASONS = {Verdict.human: [""], Verdict.scanner: ["ua_scanner", "burst", "ua_script,ip_scanner"],
           Verdict.crawler: ["ua_preview", "ua_bot"]}  # fmt: skip
GROUPINGS = [[], ["day"], ["day", "channel"], ["campaign"], ["article", "network"], ["employee"],
             ["employee", "day", "channel"]]  # fmt: skip
SUMMARY_TABLES = (ClickDaily, ClickDailyTotal, ClickRollupMark)


def _wipe(engine):
    with Session(engine) as s:
        for table in (Click, *SUMMARY_TABLES):
            s.execute(delete(table))
        s.commit()


def _orgs(engine, n=2) -> list[int]:
    with Session(engine) as s:
        existing = list(s.execute(select(Organisation.id).order_by(Organisation.id)).scalars())
        for i in range(len(existing), n):
            org = Organisation(name=f"Org {i}", slug=f"summary-org-{i}")
            s.add(org)
            s.flush()
            existing.append(org.id)
        s.commit()
        return existing[:n]


click_st = st.fixed_dictionaries(
    {
        "org": st.integers(0, 1),
        "employee": st.sampled_from([None, 1001, 1002, 1003]),
        "campaign": st.sampled_from([None, 1, 2]),
        "article": st.sampled_from([None, 5]),
        "channel": st.sampled_from(list(Channel)[:5]),
        "network": st.sampled_from([None, "linkedin"]),
        "verdict": st.sampled_from(list(Verdict)),
        "reason": st.integers(0, 2),
        "visitor": st.sampled_from(["v1", "v2", "v3"]),
        # from 3 hours before a UTC midnight to 27 hours after it: two day boundaries, written in three zones
        "minutes": st.integers(-180, 27 * 60),
        "zone": st.sampled_from(ZONES),
    }
)


def _rows(org_ids, clicks) -> list[dict]:
    rows = []
    for c in clicks:
        reasons = REASONS[c["verdict"]]
        link = (c["employee"] or 0) * 10 + list(Channel).index(c["channel"])
        at = (BASE + timedelta(minutes=c["minutes"])).astimezone(c["zone"])
        rows.append({"org_id": org_ids[c["org"]], "link_id": link, "employee_id": c["employee"],
                     "campaign_id": c["campaign"], "article_id": c["article"], "issue_id": None,
                     "channel": c["channel"], "network": c["network"], "occurred_at": at, "verdict": c["verdict"],
                     "reasons": reasons[c["reason"] % len(reasons)], "visitor": c["visitor"]})  # fmt: skip
    return rows


def _insert(engine, rows):
    with Session(engine) as s:
        s.add_all([Click(**r) for r in rows])
        s.commit()


COLUMN = {"day": None, "campaign": "campaign_id", "employee": "employee_id", "channel": "channel",
          "network": "network", "article": "article_id"}  # fmt: skip


def _recount(rows, org_id, group_by, *, channels=None, start=None, end=None) -> list[dict]:
    """The figures from the raw rows, in Python: counts per verdict; unique clickers as documented (a human visitor
    counted once per UTC day and row of the summary table the grouping reads)."""
    grain = rollup.GRAINS[rollup.table_for([COLUMN[g] for g in group_by if COLUMN[g]] +
                                           (["channel"] if channels else []))]  # fmt: skip
    out: dict[tuple, dict] = {}
    visitors: dict[tuple, set] = defaultdict(set)
    for r in rows:
        day = r["occurred_at"].astimezone(UTC).date()
        if r["org_id"] != org_id or (channels and r["channel"] not in channels):
            continue
        if (start and day < start) or (end and day > end):
            continue
        key = tuple(day.isoformat() if g == "day" else getattr(r[COLUMN[g]], "value", r[COLUMN[g]]) for g in group_by)
        row = out.setdefault(key, {**dict(zip(group_by, key, strict=True)), "human": 0, "scanner": 0, "crawler": 0,
                                   "raw": 0, "unique_clickers": 0})  # fmt: skip
        row[r["verdict"].value] += 1
        row["raw"] += 1
        if r["verdict"] is Verdict.human:
            visitors[(key, day, *(r[k] for k in grain))].add(r["visitor"])
    for (key, *_rest), seen in visitors.items():
        out[key]["unique_clickers"] += len(seen)
    return sorted(out.values(), key=lambda r: tuple("" if r[g] is None else str(r[g]) for g in group_by))


def _without_uniques(rows):
    return [{k: v for k, v in r.items() if k != "unique_clickers"} for r in rows]


def _check(engine, org_ids, rows, *, uniques=True):
    one_day = BASE.date() + timedelta(days=1)
    with Session(engine) as s:
        for org_id in org_ids:
            for group_by in GROUPINGS:
                got, want = click_counts(s, org_id=org_id, group_by=group_by), _recount(rows, org_id, group_by)
                assert (got if uniques else _without_uniques(got)) == (want if uniques else _without_uniques(want))
            got = click_counts(s, org_id=org_id, group_by=["employee"], channels=AUDIENCE_CHANNELS, start=one_day,
                               end=one_day)  # fmt: skip
            want = _recount(rows, org_id, ["employee"], channels=AUDIENCE_CHANNELS, start=one_day, end=one_day)
            assert (got if uniques else _without_uniques(got)) == (want if uniques else _without_uniques(want))
            reasons = verdict_reasons(s, org_id=org_id)
            for v in Verdict:
                mine = [r for r in rows if r["org_id"] == org_id and r["verdict"] is v]
                assert reasons[v.value]["clicks"] == len(mine)
                for code in ("burst", "ip_scanner", "ua_preview"):
                    assert reasons[v.value]["reasons"].get(code, 0) == sum(code in r["reasons"] for r in mine)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clicks=st.lists(click_st, max_size=40), cut=st.integers(0, 30 * 60))
def test_the_summary_counts_what_the_raw_clicks_say(db, clicks, cut):
    _wipe(db)
    org_ids = _orgs(db)
    rows = _rows(org_ids, clicks)
    _insert(db, rows)
    _check(db, org_ids, rows)  # nothing folded yet: every figure from the raw clicks
    with Session(db) as s:  # folded up to a moment inside the clicks' span: the rest is the raw tail
        rollup.fold(s, now=BASE - timedelta(minutes=180) + timedelta(minutes=cut) + rollup.SETTLE)
    # a visitor who clicked on both sides of the mark within one day and row counts on each side, so unique
    # clickers are compared once the day is folded whole
    _check(db, org_ids, rows, uniques=False)
    with Session(db) as s:
        rollup.fold(s, now=BASE + timedelta(days=2) + rollup.SETTLE)
        assert s.execute(select(func.count()).select_from(ClickRollupMark)).scalar() == len(org_ids)
    _check(db, org_ids, rows)
    with Session(db) as s:  # folding again changes nothing
        before = _summary(s)
        rollup.fold(s, now=BASE + timedelta(days=2) + rollup.SETTLE)
        assert _summary(s) == before


def _summary(s) -> list[tuple]:
    out = []
    for table in (ClickDaily, ClickDailyTotal):
        cols = [table.org_id, table.day, *[getattr(table, k) for k in rollup.GRAINS[table]], table.clicks,
                table.uniques]  # fmt: skip
        out += sorted((table.__name__, *[str(v) for v in r]) for r in s.execute(select(*cols)).all())
    return out


def _spread(org_id, days=4) -> list[dict]:
    rows = []
    for d in range(days):
        for i in range(6):
            verdict = [Verdict.human, Verdict.scanner, Verdict.crawler][i % 3]
            rows.append({"org_id": org_id, "link_id": 1 + i % 2, "employee_id": 1001 + i % 2, "campaign_id": 1,
                         "article_id": None, "issue_id": None, "channel": Channel.signature_banner, "network": None,
                         "occurred_at": BASE + timedelta(days=d, hours=3 * i), "verdict": verdict,
                         "reasons": REASONS[verdict][0], "visitor": f"v{i}"})  # fmt: skip
    return rows


def _fail_inserts_on(engine, day) -> None:
    """A real database fault in the middle of a day's fold: the per-employee rows of `day` are refused (the day's
    totals were already written in the same transaction)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"CREATE TRIGGER fail_fold BEFORE INSERT ON clickdaily WHEN NEW.day = '{day}' "
                              "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))  # fmt: skip
        else:
            conn.execute(text(f"CREATE FUNCTION fail_fold() RETURNS trigger AS $$ BEGIN IF NEW.day = DATE '{day}' "
                              "THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$ "
                              "LANGUAGE plpgsql"))  # fmt: skip
            conn.execute(text("CREATE TRIGGER fail_fold BEFORE INSERT ON clickdaily FOR EACH ROW "
                              "EXECUTE FUNCTION fail_fold()"))  # fmt: skip


def _mend(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER fail_fold" + ("" if engine.dialect.name == "sqlite" else " ON clickdaily")))
        if engine.dialect.name != "sqlite":
            conn.execute(text("DROP FUNCTION fail_fold()"))


def test_a_fold_stopped_between_days_or_failing_mid_day_resumes_without_counting_twice(db):
    _wipe(db)
    (org_id,) = _orgs(db, 1)
    rows = _spread(org_id)
    _insert(db, rows)
    with Session(db) as s:  # stopped after two days (each day is its own committed transaction)
        assert rollup.fold(s, now=BASE + timedelta(days=2) + rollup.SETTLE)["days"] == 2
    _check(db, [org_id], rows)
    _fail_inserts_on(db, (BASE + timedelta(days=3)).date())
    try:
        with Session(db) as s, pytest.raises(Exception, match="disk full"):
            rollup.fold(s, now=BASE + timedelta(days=5))
        with Session(db) as s:
            mark = s.get(ClickRollupMark, org_id)
            assert mark is not None and mark.folded_until == BASE + timedelta(days=3)  # day 4 rolled back whole
            day4 = (BASE + timedelta(days=3)).date()
            assert s.execute(select(ClickDailyTotal).where(ClickDailyTotal.day == day4)).first() is None
        _check(db, [org_id], rows)  # meanwhile the figures are whole: the summary to the mark, then raw clicks
    finally:
        _mend(db)
    with Session(db) as s:
        rollup.fold(s, now=BASE + timedelta(days=5))
        resumed = _summary(s)
    _check(db, [org_id], rows)
    with Session(db) as s:  # the same summary as one fold from scratch
        for table in SUMMARY_TABLES:
            s.execute(delete(table))
        s.commit()
        rollup.fold(s, now=BASE + timedelta(days=5))
        assert _summary(s) == resumed


def test_unsettled_clicks_stay_raw_so_a_burst_relabel_is_counted(db):
    # the burst detector re-labels a visitor's clicks of the last BURST_WINDOW seconds, and a recorder batch is
    # committed within its 30-second timeout: younger clicks than SETTLE are never folded
    assert rollup.SETTLE.total_seconds() > BURST_WINDOW + 30
    _wipe(db)
    (org_id,) = _orgs(db, 1)
    now = utcnow()
    rows = _spread(org_id, days=1)
    for r in rows:
        r["occurred_at"] = now - timedelta(minutes=1)
    _insert(db, rows)
    with Session(db) as s:
        rollup.fold(s, now=now)
        assert s.execute(select(func.count()).select_from(ClickDaily)).scalar() == 0
        s.execute(Click.__table__.update().values(verdict=Verdict.scanner, reasons="burst"))  # as the recorder does
        s.commit()
        assert click_counts(s, org_id=org_id)[0]["scanner"] == len(rows)
        rollup.fold(s, now=now + rollup.SETTLE + timedelta(minutes=1))
        assert s.execute(select(func.sum(ClickDaily.clicks))).scalar() == len(rows)
        assert click_counts(s, org_id=org_id)[0]["scanner"] == len(rows)
        assert verdict_reasons(s, org_id=org_id)["scanner"]["reasons"] == {"burst": len(rows)}


def test_a_click_written_late_for_a_folded_day_is_counted_at_the_next_fold(db):
    _wipe(db)
    (org_id,) = _orgs(db, 1)
    rows = _spread(org_id)
    _insert(db, rows)
    with Session(db) as s:
        rollup.fold(s, now=BASE + timedelta(days=5))
    late = {**rows[0], "visitor": "late"}  # day 1, long folded (an import, the demo)
    _insert(db, [late])
    with Session(db) as s:
        assert click_counts(s, org_id=org_id)[0]["raw"] == len(rows)  # not yet
        assert rollup.fold(s, now=BASE + timedelta(days=5))["days"] >= 1
    _check(db, [org_id], [*rows, late])


def test_purging_raw_clicks_keeps_their_figures(db):
    from service.clicks.reports import rollup_and_purge

    _wipe(db)
    (org_id,) = _orgs(db, 1)
    rows = _spread(org_id)
    for r in rows:
        r["occurred_at"] -= timedelta(days=100)  # past the 90-day retention
    _insert(db, rows)
    with Session(db) as s:
        before = click_counts(s, org_id=org_id, group_by=["day", "employee"])
        stats = rollup_and_purge(s)
        s.commit()
        assert stats["clicks"] == len(rows)
        assert s.execute(select(func.count()).select_from(Click)).scalar() == 0
        assert click_counts(s, org_id=org_id, group_by=["day", "employee"]) == before


def test_an_opted_out_employees_clicks_are_not_attributed_in_the_summary(client, tenant, db):
    from service.links import mint

    h = tenant.headers(Role.comms)
    a, b = add_employees(db, tenant.org_id, [("a@acme.example", "Sales", "Paris", []),
                                             ("b@acme.example", "Sales", "Lyon", [])])  # fmt: skip
    with Session(db, expire_on_commit=False) as s:
        la, lb = (mint(s, org_id=tenant.org_id, channel=Channel.signature_field, employee_id=e,
                       destination="https://acme.example/") for e in (a, b))  # fmt: skip
        s.commit()
    assert client.put(f"/api/tracking/opt-outs/{b}", headers=h).status_code == 200
    for token, agent in ((la.token, CHROME), (lb.token, CHROME + " x"), (lb.token, CHROME + " y")):
        assert client.get(f"/c/{token}", headers={"user-agent": agent}, follow_redirects=False).status_code == 302
    with Session(db) as s:
        raw = click_counts(s, org_id=tenant.org_id, group_by=["employee"])
        rollup.fold(s, now=utcnow() + rollup.SETTLE + timedelta(minutes=1))
        assert s.execute(select(func.count()).select_from(ClickDaily).where(ClickDaily.employee_id == b)).scalar() == 0
        assert click_counts(s, org_id=tenant.org_id, group_by=["employee"]) == raw
        assert [(r["employee"], r["human"]) for r in raw] == [(None, 2), (a, 1)]
        assert [r["employee_id"] for r in leaderboard(s, org_id=tenant.org_id)] == [a]


DEMO_PAGES = ["/app/dashboard", "/app/analytics", "/app/analytics?group_by=department&start=2000-01-01",
              "/app/analytics?group_by=employee&start=2000-01-01", "/app/analytics?group_by=variant",
              "/app/analytics?group_by=day&channel=signature_banner", "/app/analytics.csv?group_by=office"]  # fmt: skip


def test_the_pages_show_the_same_numbers_from_the_summary_as_from_the_raw_clicks(db, settings):
    with Session(db) as s:
        seed_demo(s, settings)
        s.commit()
    admin = next(line.split() for line in (settings.data_dir / DEMO_LOGINS_FILE).read_text().splitlines()
                 if line.startswith("admin"))  # fmt: skip
    client = browser_client(create_app(settings=settings, engine=db))
    assert sign_in(client, admin[1], admin[2]).status_code == 303
    with Session(db) as s:
        assert s.execute(select(func.count()).select_from(ClickRollupMark)).scalar() == 0  # all raw so far
        assert s.execute(select(func.count()).select_from(Click)).scalar() > 50

    def pages():
        out = {}
        for path in DEMO_PAGES:
            r = client.get(path)
            assert r.status_code == 200, path
            out[path] = r.text.replace(r.cookies.get("relais_csrf", "") or "", "")
        return out

    raw = pages()
    assert "Human clicks" in raw["/app/dashboard"]
    with Session(db) as s:
        assert rollup.fold(s, now=utcnow() + rollup.SETTLE + timedelta(minutes=1))["clicks"] > 50
        assert s.execute(select(func.count()).select_from(ClickDaily)).scalar() > 0
    assert pages() == raw
