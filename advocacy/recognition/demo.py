"""Recognition's part of the demo: shares that went out (a preview crawler fetched them) and their human clicks,
last month and this week, a contest running now, and an ambassador who agreed to appear in public."""

from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from advocacy.recognition.models import Contest, Metric
from newsletter.models import Article
from portal.visibility import set_choices
from service.clicks.models import Click, Verdict
from service.db import row_id, utcnow
from service.directory.models import Employee
from service.links import Channel, mint
from service.settings import Settings


def seed(session: Session, settings: Settings, org_id: int) -> None:
    people = session.exec(
        select(Employee).where(Employee.org_id == org_id, col(Employee.active)).order_by(col(Employee.id)).limit(4)
    ).all()
    articles = session.exec(select(Article).where(Article.org_id == org_id).order_by(col(Article.id))).all()
    if len(people) < 4 or not articles:
        return
    now = utcnow()
    last_month = now.replace(day=1) - timedelta(days=10)
    # (employee, when, network, human clicks): the first is last month's ambassador; the last three posted this week
    shares = [(people[0], last_month, "linkedin", 9), (people[1], last_month + timedelta(days=1), "linkedin", 4),
              (people[0], now - timedelta(days=2), "x", 6), (people[2], now - timedelta(days=1), "x", 3),
              (people[3], now - timedelta(hours=20), "facebook", 2)]  # fmt: skip
    for i, (person, when, network, clicks) in enumerate(shares):
        article = articles[i % len(articles)]
        spec = mint(session, org_id=org_id, channel=Channel.share, destination=article.url,
                    article_id=row_id(article), network=network)  # fmt: skip
        facts: dict[str, Any] = dict(org_id=org_id, link_id=row_id(spec), employee_id=row_id(person),
                                     article_id=row_id(article), channel=Channel.share, network=network)  # fmt: skip
        session.add(Click(**facts, occurred_at=when, verdict=Verdict.crawler, reasons="ua_preview"))
        for n in range(clicks):
            session.add(Click(**facts, occurred_at=when + timedelta(minutes=10 + n), verdict=Verdict.human,
                              visitor=f"demo{i:02d}{n:02d}"))  # fmt: skip
        session.add(Click(**facts, occurred_at=when + timedelta(minutes=5), verdict=Verdict.scanner,
                          reasons="ua_scanner"))  # fmt: skip
    set_choices(session, org_id=org_id, employee_id=row_id(people[0]), rank_visible=True, public_ambassador=True)
    set_choices(session, org_id=org_id, employee_id=row_id(people[2]), rank_visible=True)
    session.add(Contest(org_id=org_id, title="Défi LinkedIn de décembre", metric=Metric.confirmed_posts,
                        description="Partagez nos actualités : chaque publication confirmée compte.",
                        starts_at=now - timedelta(days=3), ends_at=now + timedelta(days=11)))  # fmt: skip
    session.flush()
