"""The click summary: raw clicks folded, per UTC day, into ClickDaily (per link and employee) and ClickDailyTotal
(per campaign, article and channel), so figures read a few rows a day instead of every click.

Folding is idempotent: a day is folded by deleting its summary rows and aggregating its raw clicks again, in one
transaction that also moves the organisation's mark (ClickRollupMark). A crash rolls back that day; the next run
starts again from the mark, so nothing is counted twice. Today is re-folded on every run (up to `SETTLE` ago);
the figures add the raw clicks after the mark (`summary_source`), so they are never staler than one run.

Only settled clicks are folded: the burst detector re-labels a visitor's human clicks of the last BURST_WINDOW
seconds as scanner ones, and a recorder batch is committed (or refused) within its 30-second timeout. Older
clicks never change, so a folded verdict stays right. An employee's opt-out works on the raw rows (the recorder
stores no employee for them), so the summary, built from those rows, attributes exactly what the raw rows do.

Days are UTC days, like the API's `start`/`end` and the rows rolled up before this summary existed.
"""

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, cast, delete, distinct, func, insert, literal, select
from sqlalchemy.sql import Select
from sqlmodel import Session, col

from service.clicks.models import Click, ClickDaily, ClickDailyTotal, ClickRollupMark, TrackingSettings
from service.db import key_column, rowcount, utcnow
from service.models import Organisation

log = logging.getLogger(__name__)

SETTLE = timedelta(minutes=5)  # clicks younger than this may still be re-labelled or committed: not folded yet
DAY = timedelta(days=1)

# The facts each summary table keeps per day (besides org_id and day); its rows hold `clicks` and `uniques`.
GRAINS: dict[Any, tuple[str, ...]] = {
    ClickDailyTotal: ("campaign_id", "article_id", "issue_id", "channel", "network", "verdict", "reasons"),
    ClickDaily: ("link_id", "employee_id", "campaign_id", "article_id", "issue_id", "channel", "network", "verdict",
                 "reasons"),
}  # fmt: skip


def day_expr(session: Session, column):
    """The UTC day of a timestamp column, as the backend computes it."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def day_start(value: date | datetime) -> datetime:
    return datetime.combine(value.date() if isinstance(value, datetime) else value, time(0), tzinfo=UTC)


def table_for(needed: Iterable[str]) -> Any:
    """The smallest summary table that has every column a figure needs."""
    wanted = set(needed)
    return ClickDailyTotal if wanted <= set(GRAINS[ClickDailyTotal]) else ClickDaily


def raw_as_summary(session: Session, table: Any, *, org_id: int, where=()) -> Select:
    """Raw clicks as `table`'s summary rows: (org_id, day, <grain>, clicks, uniques). The fold inserts this; the
    figures read it for the clicks not folded yet, so both count the same way."""
    day = day_expr(session, Click.occurred_at)
    keys = [getattr(Click, k) for k in GRAINS[table]]
    return (
        select(
            literal(org_id).label("org_id"),
            day.label("day"),
            *[k.label(name) for k, name in zip(keys, GRAINS[table], strict=True)],
            func.count().label("clicks"),
            func.count(distinct(col(Click.visitor))).label("uniques"),
        )
        .where(col(Click.org_id) == org_id, *where)
        .group_by(day, *keys)
    )


def mark_of(session: Session, org_id: int) -> ClickRollupMark | None:
    return session.get(ClickRollupMark, org_id)


def summary_parts(session: Session, table: Any, *, org_id: int, start: date | None, end: date | None,
                  columns: Iterable[str], where=lambda t: ()) -> tuple:  # fmt: skip
    """Every click of the organisation in [start, end] as `table`'s rows, with `columns` (of its grain, or "day")
    and verdict, clicks, uniques, in two parts to aggregate each and add up: the summary, which holds the clicks
    that occurred before the mark, and the raw clicks after it (grouped as the summary groups them, so unique
    visitors count the same way). `where(t)` adds conditions on the summary table's or the raw click table's
    columns (the same names). A raw row written later for a time before the mark (an import, the demo) counts
    from the next fold on."""
    mark = mark_of(session, org_id)
    names = list(dict.fromkeys([*columns, "verdict", "clicks", "uniques"]))
    folded = select(*[getattr(table, n) for n in names]).where(table.org_id == org_id, *where(table))
    if start:
        folded = folded.where(table.day >= start)
    if end:
        folded = folded.where(table.day <= end)
    # one lower bound on the raw clicks' time, so the backend's index range starts at the mark
    bounds = [b for b in (day_start(start) if start else None, mark.folded_until if mark else None) if b is not None]
    span = [Click.occurred_at >= max(bounds)] if bounds else []
    if end:
        span.append(Click.occurred_at < day_start(end) + DAY)
    tail = raw_as_summary(session, table, org_id=org_id, where=[*span, *where(Click)]).subquery("tail")
    # only the columns asked for: the per-employee figures then read the covering index alone
    return folded.subquery("folded"), select(*[tail.c[n] for n in names]).subquery("recent")


# ---------------------------------------------------------------- folding


def fold(session: Session, *, now: datetime | None = None, org_ids: Iterable[int] | None = None) -> dict:
    """Fold every organisation's settled raw clicks into the summary, one committed transaction per day.
    Returns {"days": days folded, "clicks": raw clicks read}."""
    target = (now or utcnow()) - SETTLE
    stats = {"days": 0, "clicks": 0}
    ids = list(org_ids) if org_ids is not None else list(session.execute(select(key_column(Organisation))).scalars())
    for org_id in ids:
        _ensure_mark(session, org_id)
        _fold_late(session, org_id, stats)
        while True:
            mark = _locked_mark(session, org_id)
            if mark.folded_until >= target:
                session.rollback()
                break
            first = day_start(mark.folded_until)
            until = min(first + DAY, target)
            n, top = _fold_day(session, org_id, first.date(), until)
            mark.folded_until, mark.last_click_id, mark.updated_at = until, max(mark.last_click_id, top), utcnow()
            session.add(mark)
            session.commit()
            stats["days"] += 1
            stats["clicks"] += n
    log.info("service.clicks.rollup_folded", extra=stats)
    return stats


def _ensure_mark(session: Session, org_id: int) -> None:
    """The first fold starts at the day of the organisation's earliest raw click (older days are already in the
    summary, rolled up by the retention job before it existed)."""
    if mark_of(session, org_id) is not None:
        return
    earliest = session.execute(select(func.min(Click.occurred_at)).where(col(Click.org_id) == org_id)).scalar()
    if isinstance(earliest, str):  # SQLite hands back text from an aggregate
        earliest = datetime.fromisoformat(earliest)
    start = day_start(earliest) if earliest is not None else day_start(utcnow())
    # every click there is now is at or after `start`, so none is late: late ones are those written from now on
    top = session.execute(select(func.max(Click.id))).scalar() or 0
    session.add(ClickRollupMark(org_id=org_id, folded_until=start, last_click_id=top))
    session.commit()  # a concurrent first fold may win this insert: then its mark is used


def _locked_mark(session: Session, org_id: int) -> ClickRollupMark:
    """The mark, locked for this transaction: two folds of one organisation never interleave a day."""
    query = select(ClickRollupMark).where(col(ClickRollupMark.org_id) == org_id).with_for_update()
    return session.execute(query.execution_options(populate_existing=True)).scalar_one()


def _fold_late(session: Session, org_id: int, stats: dict) -> None:
    """Re-fold, in one transaction, the retained days that got raw clicks after they were folded (written with an
    earlier time: an import, the demo). Days whose raw clicks were purged are left alone (re-folding them would
    drop what was purged)."""
    mark = _locked_mark(session, org_id)
    settings = session.get(TrackingSettings, org_id)
    kept_from = (utcnow() - timedelta(days=settings.retention_days if settings else 90)).date()
    # the rows written since the last fold, found by id (the primary key: no scan of the organisation's clicks)
    since = session.execute(
        select(col(Click.org_id), col(Click.occurred_at)).where(col(Click.id) > mark.last_click_id)
    ).all()  # fmt: skip
    boundary = day_start(mark.folded_until)
    days = sorted({at.date() for org, at in since if org == org_id and at < boundary})
    if not days:
        session.rollback()
        return
    top = mark.last_click_id
    for d in days:
        if d < kept_from:
            log.warning("service.clicks.rollup_late_purged_day", extra={"org_id": org_id, "day": d.isoformat()})
            continue
        n, day_top = _fold_day(session, org_id, d, day_start(d) + DAY)
        stats["days"] += 1
        stats["clicks"] += n
        top = max(top, day_top)
    mark.last_click_id, mark.updated_at = top, utcnow()
    session.add(mark)
    session.commit()
    log.info("service.clicks.rollup_late_days", extra={"org_id": org_id, "days": len(days)})


def _fold_day(session: Session, org_id: int, the_day: date, until: datetime) -> tuple[int, int]:
    """Replace the day's summary rows by its raw clicks before `until` (in the caller's transaction).
    Returns (raw clicks read, highest click id read)."""
    lo = day_start(the_day)
    span = (col(Click.occurred_at) >= lo, col(Click.occurred_at) < until)
    for table in GRAINS:
        session.execute(delete(table).where(table.org_id == org_id, table.day == the_day))
        columns = ["org_id", "day", *GRAINS[table], "clicks", "uniques"]
        rows = raw_as_summary(session, table, org_id=org_id, where=span)
        session.execute(insert(table).from_select(columns, rows))
    n, top = session.execute(select(func.count(), func.max(Click.id)).where(col(Click.org_id) == org_id, *span)).one()
    return int(n or 0), int(top or 0)


def purge_folded(session: Session, *, org_id: int, before: datetime) -> int:
    """Delete the organisation's raw clicks older than `before` that the summary holds. Returns how many."""
    mark = mark_of(session, org_id)
    if mark is None:
        return 0
    limit = min(before, day_start(mark.folded_until))  # whole days only: a day's raw clicks stay complete
    result = session.execute(
        delete(Click).where(
            col(Click.org_id) == org_id, col(Click.occurred_at) < limit, col(Click.id) <= mark.last_click_id
        )
    )
    return rowcount(result)
