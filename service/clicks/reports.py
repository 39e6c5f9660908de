"""Figures from clicks and impressions: counts, unique clickers, click-through rate, leaderboard, CSV,
and the retention job that deletes raw rows older than the retention period (their figures stay summed).

`click_counts` is the one query other features reuse (the newsletter's figures and its ambassador
leaderboard): filter by employee, article, campaign, network, channel, verdict and UTC date range, group by
any of groups(). It reads the click summary (service.clicks.rollup) plus the raw clicks not folded yet, so
figures are current and stay whole after the retention period.
"""

import io
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import case, delete, func, literal_column, select, union_all
from sqlmodel import Session, col

from service import features
from service.clicks import rollup
from service.clicks.dimensions import Dimension
from service.clicks.models import Impression, ImpressionDaily, TrackingSettings, Verdict, VisitorSalt
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
            out.append((table.day if rolled else rollup.day_expr(session, table.occurred_at)).label("day"))
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


# The summary column each grouping reads (department and office: the employee's, then their directory row;
# a feature's grouping: the column its join hangs off, e.g. the link for the A/B variant).
BASE_COLUMNS = {"day": "day", "campaign": "campaign_id", "employee": "employee_id", "department": "employee_id",
                "office": "employee_id", "channel": "channel", "network": "network", "article": "article_id",
                "reasons": "reasons"}  # fmt: skip


def _base(group: str) -> str:
    dimension = feature_dimensions().get(group)
    return dimension.source if dimension is not None else BASE_COLUMNS[group]


def click_counts(
    session: Session, *, org_id: int, start: date | None = None, end: date | None = None,
    group_by: Iterable[str] = (), employee_id: int | None = None, article_id: int | None = None,
    campaign_id: int | None = None, network: str | None = None, channel: str | None = None,
    verdict: Verdict | None = None, channels: Iterable[Channel] | None = None,
    article_ids: Iterable[int] | None = None,
) -> list[dict]:  # fmt: skip
    """Clicks per group: {<group keys>, human, scanner, crawler, raw, unique_clickers}, from the click summary
    (service.clicks.rollup) and the raw clicks not folded into it yet.

    `start`/`end` are inclusive UTC days. `unique_clickers` counts human visitors once per day and summary row
    (salted daily hashes: a person is counted once per day; one who clicked two links, or two channels, of a
    group on the same day counts once in each row)."""
    return _counts(session, org_id=org_id, start=start, end=end, group_by=_validate(group_by),
                   filters={"employee_id": employee_id, "article_id": article_id, "campaign_id": campaign_id,
                            "network": network, "channel": channel, "verdict": verdict},
                   channels=channels, article_ids=article_ids)  # fmt: skip


def _counts(session: Session, *, org_id: int, start: date | None, end: date | None, group_by: list[str],
            filters: dict, channels: Iterable[Channel] | None = None, article_ids: Iterable[int] | None = None,
            top: int | None = None, keep=lambda row: True) -> list[dict]:  # fmt: skip
    """The one aggregation behind every click figure. Groups may include "reasons" (the verdict's reason codes).

    With `top`: only the `top` rows with the most human clicks, then unique clickers, that `keep` accepts, and the
    rows tied with the last of them, in that order (the database sorts; the rest is never read)."""
    filters = {k: v for k, v in filters.items() if v is not None}
    channel_list = None if channels is None else [Channel(c) for c in channels]
    article_list = None if article_ids is None else list(article_ids)
    bases = list(dict.fromkeys(_base(g) for g in group_by))
    needed = [b for b in bases if b != "day"] + list(filters)
    needed += (["channel"] if channel_list is not None else []) + (["article_id"] if article_list is not None else [])
    table = rollup.table_for(needed)

    def where(t) -> list:
        conditions = [getattr(t, name) == value for name, value in filters.items()]
        if channel_list is not None:
            conditions.append(t.channel.in_(channel_list))
        if article_list is not None:
            conditions.append(t.article_id.in_(article_list))
        return conditions

    parts = rollup.summary_parts(session, table, org_id=org_id, start=start, end=end, columns=bases, where=where)
    measures = ("human", "scanner", "crawler", "raw", "unique_clickers")

    def aggregated(src):  # each part grouped on its own (the summary straight from its index), then added up
        humans = src.c.verdict == Verdict.human
        return select(
            *[src.c[b] for b in bases],
            func.sum(case((humans, src.c.clicks), else_=0)).label("human"),
            func.sum(case((src.c.verdict == Verdict.scanner, src.c.clicks), else_=0)).label("scanner"),
            func.sum(case((src.c.verdict == Verdict.crawler, src.c.clicks), else_=0)).label("crawler"),
            func.sum(src.c.clicks).label("raw"),
            func.sum(case((humans, src.c.uniques), else_=0)).label("unique_clickers"),
        ).group_by(*[src.c[b] for b in bases])

    both = union_all(*[aggregated(p) for p in parts]).subquery("both")
    inner = select(*[both.c[b] for b in bases], *[func.sum(both.c[k]).label(k) for k in measures]).group_by(
        *[both.c[b] for b in bases]
    )
    joined = [g for g in group_by if g in ("department", "office") or g in feature_dimensions()]
    if joined:  # group the summary first, then join the few grouped rows to the directory or the feature's tables
        grouped = inner.subquery("grouped")
        dims: list = []
        for g in group_by:
            if g in ("department", "office"):
                dims.append(getattr(Employee, g).label(g))
            elif g in feature_dimensions():
                dims.append(feature_dimensions()[g].column().label(g))
            else:
                dims.append(grouped.c[_base(g)].label(g))
        query = select(*dims, *[func.sum(grouped.c[k]).label(k) for k in measures]).select_from(grouped)
        if {"department", "office"} & set(joined):
            query = query.outerjoin(Employee, col(Employee.id) == grouped.c.employee_id)
        for g in joined:
            if g in feature_dimensions():
                query = feature_dimensions()[g].join(query, grouped.c)
        query = query.group_by(*dims)
    else:
        query = inner
    if top is not None:
        query = query.order_by(literal_column("human").desc(), literal_column("unique_clickers").desc())
    out: list[dict] = []
    n = len(group_by)  # each row: the groups in order (their base columns are distinct when nothing is joined), then
    day = group_by.index("day") if "day" in group_by else -1  # the measures
    edge = None
    result = session.execute(query)
    for row in result:
        keys = [getattr(v, "value", v) for v in row[:n]]
        if day >= 0:
            keys[day] = _day_str(keys[day])
        item = dict(zip(group_by, keys, strict=True))
        item.update(zip(measures, [int(v or 0) for v in row[n:]], strict=True))
        if not item["raw"] or not keep(item):  # without groupings the aggregate is one row even over no clicks
            continue
        if top is not None:
            rank = (item["human"], item["unique_clickers"])
            if edge is not None and rank != edge:
                break
            if len(out) + 1 == top:
                edge = rank
        out.append(item)
    result.close()  # with `top`, the rows after the last tie are left unread
    if top is not None:
        return out
    return sorted(out, key=lambda r: tuple("" if r[g] is None else str(r[g]) for g in group_by))


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
            group_by: Iterable[str] = (), labelled: bool = True, **filters) -> list[dict]:  # fmt: skip
    """click_counts plus image loads and click-through rate (human clicks / image loads) where meaningful, with
    the names of the employees, campaigns and articles grouped by (see `add_labels`; `labelled=False` for a
    caller that names only the rows it shows)."""
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
    return add_labels(session, org_id=org_id, rows=rows, group_by=group_by) if labelled else rows


def leaderboard(session: Session, *, org_id: int, start: date | None = None, end: date | None = None,
                limit: int = 20, channel: Channel | None = None) -> list[dict]:  # fmt: skip
    """Employees by the human clicks their audience made (AUDIENCE_CHANNELS; `channel` narrows to one of them).
    Ties: more unique clickers first, then name."""
    channels = [c for c in AUDIENCE_CHANNELS if channel is None or c == channel]
    # The database ranks by human clicks and unique clickers; only the top rows and their ties get a name (the
    # last tie-break): the thousands of others are never read.
    rows = _counts(session, org_id=org_id, start=start, end=end, group_by=["employee"], filters={}, channels=channels,
                   top=limit, keep=lambda r: r["employee"] is not None and r["human"] > 0)  # fmt: skip
    people = _people(session, org_id, [r["employee"] for r in rows])
    board = []
    for r in rows:
        e = people.get(r["employee"])
        board.append(
            {
                "employee_id": r["employee"],
                "name": _person_name(e) if e else None,
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


def _people(session: Session, org_id: int, ids: list[int]) -> dict[Any, Any]:
    """The directory rows' name columns (not whole rows: a grouping by employee names thousands)."""
    if not ids:
        return {}
    names = (Employee.id, Employee.display_name, Employee.first_name, Employee.last_name, Employee.email,
             Employee.department)  # fmt: skip
    query = select(*[col(c) for c in names]).where(col(Employee.org_id) == org_id, col(Employee.id).in_(ids))
    return {row.id: row for row in session.execute(query)}


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
            people = _people(session, org_id, ids)
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


def _person_name(e: Any) -> str:
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

    Days rolled up before the summary kept reasons (migration 0110) count in `clicks` but not in `reasons`."""
    clicks = {v.value: 0 for v in Verdict}
    reasons_of: dict[str, dict[str, int]] = {v.value: {} for v in Verdict}
    for row in _counts(session, org_id=org_id, start=start, end=end, group_by=["reasons"], filters={}):
        for key, counted in reasons_of.items():
            n = row[key]
            if not n:
                continue
            clicks[key] += n
            for reason in filter(None, (row["reasons"] or "").split(",")):
                counted[reason] = counted.get(reason, 0) + n
    return {
        key: {"clicks": clicks[key], "reasons": dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))}
        for key, counted in reasons_of.items()
    }


# ---------------------------------------------------------------- retention


def rollup_and_purge(session: Session, *, now: datetime | None = None) -> dict:
    """Fold settled raw clicks into the click summary (service.clicks.rollup), then delete raw clicks older than
    each organisation's retention period (their figures stay in the summary), roll raw impressions older than it
    up into daily rows, and delete visitor salts older than yesterday. Idempotent; run it daily."""
    now = now or utcnow()
    stats = {"clicks": 0, "impressions": 0, "salts": 0, "folded_days": rollup.fold(session, now=now)["days"]}
    retention = {s.org_id: s.retention_days for s in session.execute(select(TrackingSettings)).scalars()}
    for org_id in session.execute(select(key_column(Organisation))).scalars():
        cutoff = datetime.combine((now - timedelta(days=retention.get(org_id, 90))).date(), time(0), tzinfo=UTC)
        stats["clicks"] += rollup.purge_folded(session, org_id=org_id, before=cutoff)
        stats["impressions"] += _roll(session, Impression, ImpressionDaily, org_id, cutoff)
    salts = session.execute(delete(VisitorSalt).where(col(VisitorSalt.day) < (now - timedelta(days=1)).date()))
    stats["salts"] = rowcount(salts) or 0
    session.flush()
    return stats


def _roll(session: Session, raw, daily, org_id: int, cutoff: datetime) -> int:
    """Impressions only (clicks have their summary): per day and link facts, added to the daily rows."""
    keys = ["link_id", "employee_id", "campaign_id", "verdict"]
    day = rollup.day_expr(session, raw.occurred_at).label("day")
    cols = [getattr(raw, k) for k in keys]
    measures = [func.count()]
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
        row.impressions += g[-1]
        session.add(row)
    session.flush()
    result = session.execute(delete(raw).where(*where))
    return rowcount(result) or 0
