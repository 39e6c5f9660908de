"""Recognition: figures per issue and article, the leaderboard and the ambassador of the month.

Built on ``service.clicks.reports.click_counts`` (human / scanner / crawler verdicts). A *confirmed post*
is an employee's share link (``/s/``) that a link-preview crawler fetched at least once: the network
built a preview, so the post was really published.

SCORE (shown to employees as ``formula``):
    score = human clicks on their share links + human clicks on their signature links + 5 × confirmed posts
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import NETWORKS, Article, Delivery, DeliveryState, IssueArticle
from service.clicks.dimensions import Label
from service.clicks.models import Click, ClickDaily, Verdict
from service.clicks.reports import AUDIENCE_CHANNELS, click_counts
from service.db import key_column
from service.directory.models import Employee
from service.links import Channel

POST_POINTS = 5
FORMULA = ("score = human clicks on your share links + human clicks on your signature links "
           f"+ {POST_POINTS} × confirmed posts (a post is confirmed when the network's preview crawler "
           "fetched your share link)")  # fmt: skip
# The same human clicks as the analytics leaderboard (AUDIENCE_CHANNELS): the employee's audience on their share
# links and on their signature; never their own share presses or reading clicks.
SIGNATURE_CHANNELS = tuple(c.value for c in AUDIENCE_CHANNELS if c is not Channel.share)


def confirmed_posts(session: Session, *, org_id: int, start: date | None = None, end: date | None = None,
                    article_ids: list[int] | None = None) -> list[dict]:  # fmt: skip
    """Share links whose first crawler fetch falls in the period: [{link_id, employee_id, article_id, network}]."""
    firsts: dict[tuple, datetime] = {}
    for table, when in ((Click, Click.occurred_at), (ClickDaily, ClickDaily.day)):
        # sqlmodel's select() overloads stop at four columns; the function itself takes any number.
        q = select(table.link_id, table.employee_id, table.article_id, table.network, sa.func.min(when)).where(  # type: ignore[call-overload]
            table.org_id == org_id, table.channel == Channel.share, table.verdict == Verdict.crawler
        )
        if article_ids is not None:
            q = q.where(col(table.article_id).in_(article_ids))
        grouped = q.group_by(table.link_id, table.employee_id, table.article_id, table.network)
        for link_id, employee_id, article_id, network, first in session.exec(grouped).all():
            if link_id is None or first is None:
                continue
            if isinstance(first, str):
                first = date.fromisoformat(first[:10])
            if not isinstance(first, datetime):
                first = datetime.combine(first, time.min, tzinfo=UTC)
            elif first.tzinfo is None:
                first = first.replace(tzinfo=UTC)
            key = (link_id, employee_id, article_id, network)
            firsts[key] = min(first, firsts.get(key, first))
    lo = datetime.combine(start, time.min, tzinfo=UTC) if start else None
    hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None
    # One post = one (share link, employee): share links are shared specs, each employee's URL is their own.
    return [
        {"link_id": k[0], "employee_id": k[1], "article_id": k[2], "network": k[3]}
        for k, t in firsts.items()
        if (lo is None or t >= lo) and (hi is None or t < hi)
    ]


def issue_figures(session: Session, *, org_id: int, issue_id: int) -> dict:
    """Emails sent; per article and per network / department: read clicks, share intents, confirmed posts,
    clicks from shared posts (human and raw)."""
    states = dict(session.exec(select(Delivery.state, sa.func.count()).where(Delivery.issue_id == issue_id)
                               .group_by(Delivery.state)).all())  # fmt: skip
    sent = states.get(DeliveryState.sent, 0) + states.get(DeliveryState.accepting, 0)
    article_ids = list(session.exec(select(IssueArticle.article_id).where(IssueArticle.issue_id == issue_id)
                                    .order_by(col(IssueArticle.position))).all())  # fmt: skip
    posts = confirmed_posts(session, org_id=org_id, article_ids=article_ids)
    dept = (
        {
            e.id: e.department
            for e in session.exec(
                select(Employee).where(col(Employee.id).in_({p["employee_id"] for p in posts if p["employee_id"]}))
            ).all()
        }
        if posts
        else {}
    )

    def blank() -> dict:
        return {"read_clicks": {"human": 0, "raw": 0}, "share_intents": {"human": 0, "raw": 0}, "confirmed_posts": 0,
                "shared_post_clicks": {"human": 0, "raw": 0}}  # fmt: skip

    per_article = {a: {"article_id": a, **blank(), "by_network": {n: blank() for n in NETWORKS}}
                   for a in article_ids}  # fmt: skip
    by_department: dict[str, dict] = {}
    total = blank()
    metric = {Channel.newsletter.value: "read_clicks", Channel.share_intent.value: "share_intents",
              Channel.share.value: "shared_post_clicks"}  # fmt: skip
    rows = (
        click_counts(
            session,
            org_id=org_id,
            channels=[Channel(c) for c in metric],
            article_ids=article_ids,
            group_by=["article", "network", "department", "channel"],
        )  # fmt: skip
        if article_ids
        else []
    )
    for row in rows:
        name = metric[row["channel"]]
        if row["article"] in per_article:
            for target in (per_article[row["article"]], total,
                           per_article[row["article"]]["by_network"].get(row["network"] or "", None),
                           by_department.setdefault(row["department"] or "(none)", blank())):  # fmt: skip
                if target is None:
                    continue
                target[name]["human"] += row["human"]
                target[name]["raw"] += row["raw"]
    for p in posts:
        a = per_article.get(p["article_id"])
        if a is None:
            continue
        a["confirmed_posts"] += 1
        total["confirmed_posts"] += 1
        if p["network"] in a["by_network"]:
            a["by_network"][p["network"]]["confirmed_posts"] += 1
        by_department.setdefault(dept.get(p["employee_id"]) or "(none)", blank())["confirmed_posts"] += 1
    return {"issue_id": issue_id, "emails_sent": sent, "failed": states.get(DeliveryState.failed, 0),
            "totals": total, "articles": list(per_article.values()), "by_department": by_department}  # fmt: skip


def leaderboard(session: Session, *, org_id: int, start: date | None = None, end: date | None = None,
                limit: int = 20) -> dict:  # fmt: skip
    scores: dict[int, dict] = {}

    def entry(emp_id: int) -> dict:
        return scores.setdefault(emp_id, {"employee_id": emp_id, "share_clicks": 0, "signature_clicks": 0,
                                          "confirmed_posts": 0, "score": 0})  # fmt: skip

    for row in click_counts(session, org_id=org_id, start=start, end=end, group_by=["employee", "channel"],
                            verdict=Verdict.human):  # fmt: skip
        if row["employee"] is None:
            continue
        if row["channel"] == Channel.share.value:
            entry(row["employee"])["share_clicks"] += row["human"]
        elif row["channel"] in SIGNATURE_CHANNELS:
            entry(row["employee"])["signature_clicks"] += row["human"]
    for p in confirmed_posts(session, org_id=org_id, start=start, end=end):
        if p["employee_id"] is not None:
            entry(p["employee_id"])["confirmed_posts"] += 1
    people = {e.id: e for e in session.exec(select(Employee).where(col(Employee.id).in_(list(scores)))).all()}
    board = []
    for emp_id, s in scores.items():
        s["score"] = s["share_clicks"] + s["signature_clicks"] + POST_POINTS * s["confirmed_posts"]
        e = people.get(emp_id)
        if s["score"] <= 0 or e is None:
            continue
        s["name"] = e.display_name or " ".join(p for p in (e.first_name, e.last_name) if p) or e.email
        s["department"] = e.department
        board.append(s)
    board.sort(key=lambda b: (-b["score"], -b["confirmed_posts"], b["name"]))
    for rank, b in enumerate(board, 1):
        b["rank"] = rank
    return {"formula": FORMULA, "start": start, "end": end, "leaderboard": board[:limit]}


def ambassador_of_the_month(session: Session, *, org_id: int, month: str) -> dict:
    """``month`` as YYYY-MM; the top of that month's leaderboard (None when nobody scored)."""
    from service.errors import Invalid

    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise Invalid(f"month must look like 2026-03, not {month!r}.") from None
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    board = leaderboard(session, org_id=org_id, start=first, end=last, limit=5)
    return {"month": month, "formula": FORMULA, "ambassador": board["leaderboard"][0] if board["leaderboard"] else None,
            "runners_up": board["leaderboard"][1:]}  # fmt: skip


def _article_titles(session: Session, org_id: int, ids: list[int]) -> dict[int, str]:
    rows = session.exec(
        select(key_column(Article), Article.title).where(Article.org_id == org_id, col(Article.id).in_(ids))
    )
    return dict(rows.all())


ARTICLE_TITLES = Label("article", "article_title", _article_titles)
