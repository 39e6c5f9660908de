"""A contest's standings, from the raw clicks of its window (exact to the second, in any time zone).

What counts (the formulas pages show, `FORMULAS`):
- a *post* is an employee's share link (/s/) whose first fetch by a network's preview crawler falls in the
  contest (the network built the preview: the post went out). A link fetched before the contest is an older post;
- *clicks* are human clicks on the employee's posts during the contest: scanners, preview crawlers and the
  employee's own clicks (advocacy.recognition.selfclicks) never count;
- an *article shared* is a distinct article for which the employee pressed a share button (a human click on their
  share-intent link) or had a post confirmed during the contest.

The click reports (service.clicks.reports) work in whole UTC days; a contest starts and ends at a moment of the
organisation's day, so its standings read the raw clicks, which the retention period keeps (90 days by default):
announce a contest before its clicks are rolled up. The daily summary is consulted only to tell an older post
from a new one.

Ties (`TIE_RULE`): the higher secondary figure first (clicks for posts, posts for the two others), then whoever
reached their figure first (the time of their last counted action); employees still equal share the place.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from advocacy.recognition.models import Contest, Metric
from advocacy.recognition.selfclicks import own_visitors
from service.clicks.models import Click, ClickDaily, Verdict
from service.directory.audience import Audience, Match
from service.directory.models import Employee
from service.links import Channel
from service.page_strings import N_

FORMULAS = {
    Metric.confirmed_posts: N_(
        "Score = posts confirmed during the contest (a post is confirmed when the network's preview crawler fetches "
        "your share link for the first time). Ties: more human clicks on those posts first, then whoever got there "
        "first."
    ),
    Metric.clicks_per_share: N_(
        "Score = human clicks on your posts confirmed during the contest ÷ the number of those posts, counted "
        "during the contest. Scanners, link previews and your own clicks never count. Ties: more posts first, then "
        "whoever got there first."
    ),
    Metric.articles_shared: N_(
        "Score = distinct articles you shared during the contest (a share button pressed, or a post confirmed). "
        "Ties: more confirmed posts first, then whoever got there first."
    ),
    Metric.best_post: N_(
        "Communications picks the best posts among those confirmed during the contest. The standings show each "
        "post's human clicks for information; scanners, link previews and your own clicks never count."
    ),
}
METRIC_LABELS = {
    Metric.confirmed_posts: N_("Confirmed posts"),
    Metric.clicks_per_share: N_("Human clicks per post"),
    Metric.articles_shared: N_("Articles shared"),
    Metric.best_post: N_("Best post (picked by communications)"),
}


@dataclass
class Post:
    employee_id: int
    link_id: int  # the share spec; the employee's URL is (spec, employee)
    article_id: int | None
    network: str | None
    confirmed_at: datetime
    clicks: int = 0  # human clicks in the contest, without self-clicks


@dataclass
class Standing:
    employee_id: int
    score: float
    secondary: int
    reached_at: datetime
    posts: list[Post] = field(default_factory=list)
    rank: int = 0


def eligible_ids(session: Session, contest: Contest) -> set[int]:
    audience = Audience.load(contest.audience, match=Match.any)
    return {i for i in session.exec(select(Employee.id).where(audience.where(contest.org_id))).all() if i is not None}


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def contest_posts(session: Session, contest: Contest, eligible: set[int]) -> list[Post]:
    """Posts first confirmed during the contest, with their human clicks (no self-clicks) in it."""
    lo, hi, org = contest.starts_at, contest.ends_at, contest.org_id
    firsts = session.exec(
        select(Click.employee_id, Click.link_id, Click.article_id, Click.network, sa.func.min(Click.occurred_at))  # type: ignore[call-overload]
        .where(Click.org_id == org, Click.channel == Channel.share, Click.verdict == Verdict.crawler,
               col(Click.employee_id).is_not(None), Click.occurred_at < hi)
        .group_by(Click.employee_id, Click.link_id, Click.article_id, Click.network)
    ).all()  # fmt: skip
    older = set(
        session.exec(
            select(ClickDaily.employee_id, ClickDaily.link_id)
            .where(ClickDaily.org_id == org, ClickDaily.channel == Channel.share,
                   ClickDaily.verdict == Verdict.crawler, ClickDaily.day < lo.date())
            .distinct()
        ).all()
    )  # fmt: skip
    posts = {
        (e, link): Post(e, link, a, n, _aware(first))
        for e, link, a, n, first in firsts
        if e in eligible and lo <= _aware(first) < hi and (e, link) not in older
    }
    if not posts:
        return []
    own = own_visitors(session, org_id=org, lo=lo, hi=hi)
    clicks = session.exec(
        select(Click.employee_id, Click.link_id, Click.visitor, sa.func.count())
        .where(Click.org_id == org, Click.channel == Channel.share, Click.verdict == Verdict.human,
               col(Click.employee_id).is_not(None), Click.occurred_at >= lo, Click.occurred_at < hi)
        .group_by(col(Click.employee_id), col(Click.link_id), col(Click.visitor))
    ).all()  # fmt: skip
    for e, link, visitor, n in clicks:
        post = posts.get((e, link))
        if post is not None and (e, visitor) not in own:
            post.clicks += n
    return sorted(posts.values(), key=lambda p: (p.confirmed_at, p.employee_id, p.link_id))


def _shared_articles(session: Session, contest: Contest, eligible: set[int]) -> dict[int, dict[int, datetime]]:
    """Per employee, each article they pressed a share button for during the contest, and when first."""
    rows = session.exec(
        select(Click.employee_id, Click.article_id, sa.func.min(Click.occurred_at))
        .where(Click.org_id == contest.org_id, Click.channel == Channel.share_intent, Click.verdict == Verdict.human,
               col(Click.article_id).is_not(None), Click.occurred_at >= contest.starts_at,
               Click.occurred_at < contest.ends_at)
        .group_by(col(Click.employee_id), col(Click.article_id))
    ).all()  # fmt: skip
    out: dict[int, dict[int, datetime]] = defaultdict(dict)
    for e, article, first in rows:
        if e in eligible and article is not None:
            out[e][article] = _aware(first)
    return out


def standings(session: Session, contest: Contest) -> list[Standing]:
    """Eligible employees with a score above zero, best first, ranked by the tie rule."""
    eligible = eligible_ids(session, contest)
    posts = contest_posts(session, contest, eligible)
    mine: dict[int, list[Post]] = defaultdict(list)
    for p in posts:
        mine[p.employee_id].append(p)
    board: list[Standing] = []
    if contest.metric in (Metric.confirmed_posts, Metric.clicks_per_share, Metric.best_post):
        for e, ps in mine.items():
            clicks = sum(p.clicks for p in ps)
            reached = max(p.confirmed_at for p in ps)
            if contest.metric is Metric.clicks_per_share:
                board.append(Standing(e, round(clicks / len(ps), 2), len(ps), reached, ps))
            else:
                board.append(Standing(e, float(len(ps)), clicks, reached, ps))
    else:
        shared = _shared_articles(session, contest, eligible)
        for p in posts:
            when = shared[p.employee_id].get(p.article_id) if p.article_id is not None else None
            if p.article_id is not None and (when is None or p.confirmed_at < when):
                shared[p.employee_id][p.article_id] = p.confirmed_at
        for e, articles in shared.items():
            if articles:
                board.append(Standing(e, float(len(articles)), len(mine.get(e, [])), max(articles.values()),
                                      mine.get(e, [])))  # fmt: skip
    if contest.metric is Metric.clicks_per_share:
        board = [s for s in board if s.score > 0]
    board.sort(key=lambda s: (-s.score, -s.secondary, s.reached_at, s.employee_id))
    previous = None
    for position, s in enumerate(board, 1):
        key = (s.score, s.secondary, s.reached_at)
        s.rank = previous[1] if previous and previous[0] == key else position
        previous = (key, s.rank)
    return board
