"""Figures from clicks and impressions: counts, unique clickers, click-through rate, leaderboard, CSV,
and the retention job that rolls old raw rows up per day and deletes them.

`click_counts` is the one query other features reuse (the newsletter's figures and its ambassador
leaderboard): filter by employee, article, campaign, network, channel, verdict and UTC date range, group by
any of groups(). Raw rows and daily rollups are merged, so figures stay whole after the retention period.
"""

import io
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Date, cast, delete, distinct, func, select
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col

from service import features
from service.clicks.dimensions import Dimension
from service.clicks.models import Click, ClickDaily, Impression, ImpressionDaily, TrackingSettings, Verdict, VisitorSalt
from service.csv_safe import dict_writer
from service.db import key_column, rowcount, utcnow
from service.directory.models import Employee
from service.links import Channel
from service.models import Organisation

# Clicks by an employee's audience: on their signature's links and on the links inside posts they shared. Their
# own actions — pressing a share button, clicking "read" in their newsletter — are not clicks by their audience.
# Both leaderboards (this one and the newsletter's) count human clicks on these channels only.
AUDIENCE_CHANNELS = (Channel.signature_banner, Channel.signature_field, Channel.share)

KERNEL_GROUPS = ("day", "campaign", "employee", "department", "office", "channel", "network", "article")
KERNEL_IMPRESSION_GROUPS = {"day", "campaign", "employee", "department", "office", "channel"}


@cache
def feature_dimensions() -> dict[str, Dimension]:
    return {d.name: d for d in features.click_dimensions()}


def groups() -> tuple[str, ...]:
    """Every grouping the figures offer: the kernel's, then the features' (e.g. "variant")."""
    return KERNEL_GROUPS + tuple(feature_dimensions())


def impression_groups() -> set[str]:
    return KERNEL_IMPRESSION_GROUPS | {d.name for d in feature_dimensions().values() if d.impressions}


COLUMNS = {"campaign": "campaign_id", "employee": "employee_id", "channel": "channel", "network": "network",
           "article": "article_id"}  # fmt: skip


def _day_expr(session: Session, column):
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _day_str(value) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def _bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    lo = datetime.combine(start, time(0), tzinfo=UTC) if start else None
    hi = datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC) if end else None
    return lo, hi


def _dims(session: Session, table, group_by: Iterable[str], *, rolled: bool) -> list:
    out = []
    for g in group_by:
        if g == "day":
            out.append((table.day if rolled else _day_expr(session, table.occurred_at)).label("day"))
        elif g in ("department", "office"):
            out.append(getattr(Employee, g).label(g))
        elif g in feature_dimensions():
            out.append(feature_dimensions()[g].column().label(g))
        else:
            out.append(getattr(table, COLUMNS[g]).label(g))
    return out


def _joins(query, table, group_by: Iterable[str]):
    wanted = set(group_by)
    query = query.select_from(table)  # joins hang off the click table, whatever the first column is
    if {"department", "office"} & wanted:
        query = query.outerjoin(Employee, Employee.id == table.employee_id)
    for name, dimension in feature_dimensions().items():
        if name in wanted:
            query = dimension.join(query, table)
    return query


def _filtered(query, table, *, org_id, start, end, rolled, employee_id, article_id, campaign_id, network, channel,
              verdict, channels=None):  # fmt: skip
    query = query.where(table.org_id == org_id)
    if channels is not None and hasattr(table, "channel"):
        query = query.where(table.channel.in_(list(channels)))
    if rolled:
        if start:
            query = query.where(table.day >= start)
        if end:
            query = query.where(table.day <= end)
    else:
        lo, hi = _bounds(start, end)
        if lo:
            query = query.where(table.occurred_at >= lo)
        if hi:
            query = query.where(table.occurred_at < hi)
    for value, name in (
        (employee_id, "employee_id"),
        (article_id, "article_id"),
        (campaign_id, "campaign_id"),
        (network, "network"),
        (channel, "channel"),
        (verdict, "verdict"),
    ):
        if value is not None and hasattr(table, name):
            query = query.where(getattr(table, name) == value)
    return query


def _validate(group_by: Iterable[str]) -> list[str]:
    group_by = list(group_by)
    for g in group_by:
        if g not in groups():
            from service.errors import Invalid

            raise Invalid(f"Unknown grouping {g!r}; use any of: {', '.join(groups())}.")
    return group_by


def click_counts(
    session: Session, *, org_id: int, start: date | None = None, end: date | None = None,
    group_by: Iterable[str] = (), employee_id: int | None = None, article_id: int | None = None,
    campaign_id: int | None = None, network: str | None = None, channel: str | None = None,
    verdict: Verdict | None = None, channels: Iterable[Channel] | None = None,
) -> list[dict]:  # fmt: skip
    """Clicks per group: {<group keys>, human, scanner, crawler, raw, unique_clickers}.

    `start`/`end` are inclusive UTC days. `unique_clickers` counts distinct human visitors (salted daily
    hashes: a person is counted once per day; over days that were rolled up it is the sum of daily uniques).
    """
    group_by = _validate(group_by)
    filters = dict(
        org_id=org_id,
        start=start,
        end=end,
        employee_id=employee_id,
        article_id=article_id,
        campaign_id=campaign_id,
        network=network,
        channel=channel,
        verdict=verdict,
        channels=channels,
    )
    out: dict[tuple, dict] = {}

    def add(key, v, clicks, uniques):
        row = out.get(key)
        if row is None:
            row = out[key] = {
                **dict(zip(group_by, key, strict=True)),
                "human": 0,
                "scanner": 0,
                "crawler": 0,
                "raw": 0,
                "unique_clickers": 0,
            }
        row[Verdict(v).value] += clicks
        row["raw"] += clicks
        if Verdict(v) is Verdict.human:
            row["unique_clickers"] += uniques

    for table, rolled in ((Click, False), (ClickDaily, True)):
        dims = _dims(session, table, group_by, rolled=rolled)
        measures: list[ColumnElement[Any]]
        if rolled:
            measures = [func.sum(ClickDaily.clicks), func.sum(ClickDaily.uniques)]
        else:
            measures = [func.count(), func.count(distinct(col(Click.visitor)))]
        query = select(*dims, col(table.verdict), *measures)
        query = _joins(query, table, group_by)
        query = _filtered(query, table, rolled=rolled, **filters)
        query = query.group_by(*[d for d in dims], table.verdict)
        for row in session.execute(query):
            key = tuple(
                _day_str(v) if g == "day" else (v.value if hasattr(v, "value") else v)
                for g, v in zip(group_by, row[: len(group_by)], strict=True)
            )
            add(key, row[len(group_by)], int(row[-2] or 0), int(row[-1] or 0))
    return sorted(out.values(), key=lambda r: tuple("" if r[g] is None else str(r[g]) for g in group_by))


def impression_counts(
    session: Session, *, org_id: int, start: date | None = None, end: date | None = None,
    group_by: Iterable[str] = (), employee_id: int | None = None, campaign_id: int | None = None,
) -> dict[tuple, int]:  # fmt: skip
    """Banner image loads per group (all verdicts: image proxies and Apple's privacy protection load everything)."""
    group_by = _validate(group_by)
    sql_groups = [g for g in group_by if g != "channel"]  # every image load is a signature banner's
    out: dict[tuple, int] = {}
    for table, rolled in ((Impression, False), (ImpressionDaily, True)):
        dims = _dims(session, table, sql_groups, rolled=rolled)
        measure = func.sum(ImpressionDaily.impressions) if rolled else func.count()
        query = select(*dims, measure)
        query = _joins(query, table, sql_groups)
        query = _filtered(
            query,
            table,
            org_id=org_id,
            start=start,
            end=end,
            rolled=rolled,
            employee_id=employee_id,
            article_id=None,
            campaign_id=campaign_id,
            network=None,
            channel=None,
            verdict=None,
        )
        if dims:
            query = query.group_by(*dims)
        for row in session.execute(query):
            values = dict(zip(sql_groups, row[: len(sql_groups)], strict=True))
            values["channel"] = "signature_banner"
            key = tuple(_day_str(values[g]) if g == "day" else values[g] for g in group_by)
            out[key] = out.get(key, 0) + int(row[-1] or 0)
    return out


def figures(session: Session, *, org_id: int, start: date | None = None, end: date | None = None,
            group_by: Iterable[str] = (), **filters) -> list[dict]:  # fmt: skip
    """click_counts plus image loads and click-through rate (human clicks / image loads) where meaningful, with
    the names of the employees, campaigns and articles grouped by (see `add_labels`)."""
    group_by = _validate(group_by)
    rows = click_counts(session, org_id=org_id, start=start, end=end, group_by=group_by, **filters)
    with_impressions = set(group_by) <= impression_groups() and not {"article_id", "network", "verdict"} & {
        k for k, v in filters.items() if v is not None
    }
    if with_impressions:
        loads = impression_counts(
            session,
            org_id=org_id,
            start=start,
            end=end,
            group_by=group_by,
            employee_id=filters.get("employee_id"),
            campaign_id=filters.get("campaign_id"),
        )
        channel = filters.get("channel")
        if channel is not None and channel != "signature_banner":
            loads = {}
        by_key = {tuple(r[g] for g in group_by): r for r in rows}
        for key in loads:
            if key not in by_key:
                row = {
                    **dict(zip(group_by, key, strict=True)),
                    "human": 0,
                    "scanner": 0,
                    "crawler": 0,
                    "raw": 0,
                    "unique_clickers": 0,
                }
                rows.append(row)
                by_key[key] = row
        for key, row in by_key.items():
            row["impressions"] = loads.get(key, 0)
            row["ctr"] = round(row["human"] / row["impressions"], 4) if row["impressions"] else None
    else:
        for row in rows:
            row["impressions"], row["ctr"] = None, None
    rows = sorted(rows, key=lambda r: tuple("" if r[g] is None else str(r[g]) for g in group_by))
    return add_labels(session, org_id=org_id, rows=rows, group_by=group_by)


def leaderboard(session: Session, *, org_id: int, start: date | None = None, end: date | None = None,
                limit: int = 20, channel: Channel | None = None) -> list[dict]:  # fmt: skip
    """Employees by the human clicks their audience made (AUDIENCE_CHANNELS; `channel` narrows to one of them).
    Ties: more unique clickers first, then name."""
    channels = [c for c in AUDIENCE_CHANNELS if channel is None or c == channel]
    rows = [
        r
        for r in click_counts(session, org_id=org_id, start=start, end=end, group_by=["employee"], channels=channels)
        if r["employee"] is not None and r["human"] > 0
    ]
    people = (
        {
            e.id: e
            for e in session.execute(
                select(Employee).where(col(Employee.id).in_([r["employee"] for r in rows]))
            ).scalars()
        }
        if rows
        else {}
    )
    board = []
    for r in rows:
        e = people.get(r["employee"])
        board.append(
            {
                "employee_id": r["employee"],
                "name": (e.display_name or " ".join(p for p in (e.first_name, e.last_name) if p) or e.email)
                if e
                else None,
                "email": e.email if e else None,
                "department": e.department if e else None,
                "human": r["human"],
                "raw": r["raw"],
                "unique_clickers": r["unique_clickers"],
            }
        )
    board.sort(key=lambda b: (-b["human"], -b["unique_clickers"], b["name"] or ""))
    for rank, b in enumerate(board, 1):
        b["rank"] = rank
    return board[:limit]


# ---------------------------------------------------------------- names, CSV, verdict reasons


@cache
def feature_labels() -> dict[str, Any]:
    return {label.group: label for label in features.click_labels()}


def label_columns(group_by: Iterable[str]) -> dict[str, list[str]]:
    """The name columns each grouping adds: employee -> employee_name, employee_email; campaign -> campaign_name."""
    out = {}
    for g in group_by:
        if g == "employee":
            out[g] = ["employee_name", "employee_email"]
        elif g in feature_labels():
            out[g] = [feature_labels()[g].column]
    return out


def add_labels(session: Session, *, org_id: int, rows: list[dict], group_by: Iterable[str]) -> list[dict]:
    """Name the ids of the employee, campaign and article groupings in every row (None when it has no id)."""
    for g in label_columns(group_by):
        ids = sorted({r[g] for r in rows if r.get(g) is not None})
        if g == "employee":
            people = {e.id: e for e in session.execute(select(Employee).where(
                col(Employee.org_id) == org_id, col(Employee.id).in_(ids))).scalars()} if ids else {}  # fmt: skip
            for r in rows:
                e = people.get(r.get(g))
                r["employee_name"] = _person_name(e) if e else None
                r["employee_email"] = e.email if e else None
        else:
            label = feature_labels()[g]
            names = label.names(session, org_id, ids) if ids else {}
            for r in rows:
                r[label.column] = names.get(r.get(g))
    return rows


def _person_name(e: Employee) -> str:
    return e.display_name or " ".join(p for p in (e.first_name, e.last_name) if p) or e.email


# Excel opens a CSV with the list separator of the reader's locale: `;` where the decimal mark is a comma.
SEMICOLON_LANGUAGES = frozenset(("fr", "de", "es", "it", "nl", "pt", "da", "fi", "nb", "no", "sv", "pl", "cs", "ru"))
CSV_SEPARATORS = {",": ",", ";": ";", "comma": ",", "semicolon": ";", "tab": "\t"}


def csv_separator(sep: str | None, accept_language: str | None) -> str:
    """The `sep` asked for, else `;` for a reader whose first language writes decimals with a comma."""
    if sep:
        if sep not in CSV_SEPARATORS:
            from service.errors import Invalid

            raise Invalid(f"Unknown CSV separator {sep!r}; use ',', ';' or 'tab'.")
        return CSV_SEPARATORS[sep]
    first = (accept_language or "").split(",")[0].strip().lower()
    return ";" if first[:2] in SEMICOLON_LANGUAGES else ","


def to_csv(rows: list[dict], group_by: list[str], *, delimiter: str = ",") -> str:
    """CSV that Excel opens as it is: a UTF-8 BOM (names keep their accents), CRLF, and with `;` a decimal comma."""
    buf = io.StringIO()
    labels = label_columns(group_by)
    fields = [c for g in group_by for c in (g, *labels.get(g, []))]
    fields += ["human", "raw", "scanner", "crawler", "unique_clickers", "impressions", "ctr"]
    writer = dict_writer(buf, fields, extrasaction="ignore", delimiter=delimiter)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k), delimiter) for k in fields})
    return "\ufeff" + buf.getvalue()


def _csv_value(value, delimiter: str):
    if value is None:
        return ""
    if isinstance(value, float) and delimiter == ";":
        return str(value).replace(".", ",")
    return value


def verdict_reasons(session: Session, *, org_id: int, start: date | None = None, end: date | None = None) -> dict:
    """Clicks per verdict, and per reason within each verdict (a click may have several reasons).

    Reasons are kept on raw clicks only: days already rolled up (older than the retention period) count in
    `clicks` but not in `reasons`."""
    clicks = {v.value: 0 for v in Verdict}
    reasons_of: dict[str, dict[str, int]] = {v.value: {} for v in Verdict}
    query = _filtered(select(col(Click.verdict), col(Click.reasons), func.count()), Click, org_id=org_id, start=start,
                      end=end, rolled=False, employee_id=None, article_id=None, campaign_id=None, network=None,
                      channel=None, verdict=None).group_by(Click.verdict, Click.reasons)  # fmt: skip
    for verdict, reasons, n in session.execute(query):
        key = Verdict(verdict).value
        clicks[key] += n
        counted = reasons_of[key]
        for reason in filter(None, (reasons or "").split(",")):
            counted[reason] = counted.get(reason, 0) + n
    rolled = _filtered(select(col(ClickDaily.verdict), func.sum(ClickDaily.clicks)), ClickDaily, org_id=org_id,
                       start=start, end=end, rolled=True, employee_id=None, article_id=None, campaign_id=None,
                       network=None, channel=None, verdict=None).group_by(ClickDaily.verdict)  # fmt: skip
    for verdict, n in session.execute(rolled):
        clicks[Verdict(verdict).value] += int(n or 0)
    return {
        key: {"clicks": clicks[key], "reasons": dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))}
        for key, counted in reasons_of.items()
    }


# ---------------------------------------------------------------- retention


def rollup_and_purge(session: Session, *, now: datetime | None = None) -> dict:
    """Roll raw click and impression rows older than each organisation's retention period up into daily rows,
    delete them, and delete visitor salts older than yesterday. Idempotent; run it daily."""
    now = now or utcnow()
    stats = {"clicks": 0, "impressions": 0, "salts": 0}
    retention = {s.org_id: s.retention_days for s in session.execute(select(TrackingSettings)).scalars()}
    for org_id in session.execute(select(key_column(Organisation))).scalars():
        cutoff_day = (now - timedelta(days=retention.get(org_id, 90))).date()
        cutoff = datetime.combine(cutoff_day, time(0), tzinfo=UTC)
        stats["clicks"] += _roll(session, Click, ClickDaily, org_id, cutoff)
        stats["impressions"] += _roll(session, Impression, ImpressionDaily, org_id, cutoff)
    salts = session.execute(delete(VisitorSalt).where(col(VisitorSalt.day) < (now - timedelta(days=1)).date()))
    stats["salts"] = rowcount(salts) or 0
    session.flush()
    return stats


def _roll(session: Session, raw, daily, org_id: int, cutoff: datetime) -> int:
    keys = ["link_id", "employee_id", "campaign_id", "verdict"]
    if raw is Click:
        keys += ["article_id", "issue_id", "channel", "network"]
    day = _day_expr(session, raw.occurred_at).label("day")
    cols = [getattr(raw, k) for k in keys]
    measures = [func.count()] + ([func.count(distinct(col(raw.visitor)))] if raw is Click else [])
    where = (raw.org_id == org_id, raw.occurred_at < cutoff)
    groups = session.execute(select(day, *cols, *measures).where(*where).group_by(day, *cols)).all()
    if not groups:
        return 0
    for g in groups:
        facts = dict(zip(keys, g[1 : 1 + len(keys)], strict=True))
        the_day = g[0] if isinstance(g[0], date) else date.fromisoformat(str(g[0])[:10])
        query = select(daily).where(
            daily.org_id == org_id,
            daily.day == the_day,
            *[(getattr(daily, k).is_(None) if v is None else getattr(daily, k) == v) for k, v in facts.items()],
        )
        row = session.execute(query).scalars().first()
        if row is None:
            row = daily(org_id=org_id, day=the_day, **facts)
        if raw is Click:
            row.clicks += g[-2]
            row.uniques += g[-1]
        else:
            row.impressions += g[-1]
        session.add(row)
    session.flush()
    result = session.execute(delete(raw).where(*where))
    return rowcount(result) or 0
