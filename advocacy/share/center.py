"""What the share center shows an employee: the curated articles, each with a ready-made text per network
carrying the employee's OWN tracked link, one-click share links, their status for this employee, and how many
leaders shared it (names only for leaders who said yes).

Curated articles: those of newsletter issues sent in the last 90 days, plus those comms marked shareable.
Links: newsletter.composition.share_specs (the same /s/ share spec as the newsletter: one per article and
network) and service.links.employee_url, so the employee's /s/ link is the same wherever they got it.
Status: shared = a human click on one of their share buttons (a share_intent click attributed to them);
confirmed = a link-preview crawler fetched their /s/ link (newsletter.figures.confirmed_posts).
Leaders: employees who are someone's manager in the directory (newsletter.waves.managers_condition).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.articles import X_LIMIT, fit_x_text, x_length
from newsletter.composition import share_specs
from newsletter.figures import confirmed_posts
from newsletter.models import Article, Issue, IssueArticle, IssueStatus
from newsletter.rendering import NETWORK_STYLE
from newsletter.waves import managers_condition
from portal.visibility import consenting
from service.clicks.models import Verdict
from service.clicks.reports import click_counts
from service.db import utcnow
from service.directory.models import Employee
from service.errors import NotFound
from service.links import Channel, employee_url, link_key
from service.settings import Settings

SHARE_NETWORKS = ("linkedin", "x", "facebook", "email", "whatsapp", "bluesky")
RECENT = timedelta(days=90)
LIMIT = 30


@dataclass(frozen=True)
class NetworkShare:
    network: str
    label: str
    text: str  # the ready-made post: text, hashtags and my own /s/ link
    share_url: str  # my share button: /c/<my token>, redirects to the network's share intent with my /s/ link
    x_length: int | None = None  # X only: the weighted length (every URL counts 23)


@dataclass(frozen=True)
class ArticleCard:
    article: Article
    status: str  # not_shared / shared / confirmed
    shares: tuple[NetworkShare, ...]
    my_link: str  # my /s/ link (LinkedIn's), for "copy the link"
    leaders: int  # leaders who shared it
    leader_names: tuple[str, ...]  # those of them who agreed to be named


def curated_articles(session: Session, *, org_id: int, limit: int = LIMIT) -> list[Article]:
    since = utcnow() - RECENT
    sent = (
        select(IssueArticle.article_id)
        .join(Issue, col(Issue.id) == col(IssueArticle.issue_id))
        .where(Issue.org_id == org_id, Issue.status == IssueStatus.sent, col(Issue.finished_at) >= since)
    )
    q = select(Article).where(Article.org_id == org_id, sa.or_(col(Article.shareable), col(Article.id).in_(sent)))
    return list(session.exec(q.order_by(col(Article.id).desc()).limit(limit)).all())


def curated_article(session: Session, *, org_id: int, article_id: int) -> Article:
    for a in curated_articles(session, org_id=org_id, limit=500):
        if a.id == article_id:
            return a
    raise NotFound(f"No article {article_id} in the share center.")


def texts_for(a: Article) -> dict[str, str]:
    """Each network's ready-made text: what comms wrote, else a draft from the title and description."""
    long_text = a.title if not a.description else f"{a.title}\n\n{a.description}"
    x = a.text_x or fit_x_text(a.title, a.hashtags)
    return {"linkedin": a.text_linkedin or long_text, "x": x, "facebook": a.text_facebook or long_text,
            "email": a.text_email or a.description or a.title, "whatsapp": a.text_whatsapp or a.title,
            "bluesky": a.text_bluesky or x}  # fmt: skip


def _post(network: str, text: str, hashtags: list[str], link: str) -> str:
    tags = " ".join(f"#{t}" for t in hashtags)
    if network in ("x", "bluesky", "whatsapp"):
        return " ".join(p for p in (text, link, tags if network != "whatsapp" else "") if p)
    return "\n\n".join(p for p in (text, tags if network != "email" else "", link) if p)


def statuses(session: Session, *, org_id: int, employee_id: int, article_ids: list[int]) -> dict[int, str]:
    confirmed = {p["article_id"] for p in confirmed_posts(session, org_id=org_id, article_ids=article_ids)
                 if p["employee_id"] == employee_id}  # fmt: skip
    pressed = click_counts(session, org_id=org_id, channel=Channel.share_intent.value, employee_id=employee_id,
                           group_by=["article"], verdict=Verdict.human)  # fmt: skip
    shared = {r["article"] for r in pressed if r["human"] > 0}
    return {a: "confirmed" if a in confirmed else "shared" if a in shared else "not_shared" for a in article_ids}


def leader_ids(session: Session, *, org_id: int) -> set[int]:
    """The directory's managers (newsletter.waves: the leaders' wave uses the same definition), active ones."""
    rows = session.exec(select(Employee.id).where(Employee.org_id == org_id, col(Employee.active),
                                                  managers_condition(org_id)))  # fmt: skip
    return {i for i in rows.all() if i is not None}


def leaders_who_shared(session: Session, *, org_id: int, article_ids: list[int]) -> dict[int, set[int]]:
    """Per article, the leaders who pressed a share button (a human click) or whose post was confirmed."""
    leaders = leader_ids(session, org_id=org_id)
    out: dict[int, set[int]] = {a: set() for a in article_ids}
    if not leaders:
        return out
    for r in click_counts(session, org_id=org_id, channel=Channel.share_intent.value, group_by=["article", "employee"],
                          verdict=Verdict.human):  # fmt: skip
        if r["article"] in out and r["employee"] in leaders and r["human"] > 0:
            out[r["article"]].add(r["employee"])
    for p in confirmed_posts(session, org_id=org_id, article_ids=article_ids):
        if p["employee_id"] in leaders and p["article_id"] in out:
            out[p["article_id"]].add(p["employee_id"])
    return out


def _name(e: Employee) -> str:
    return e.display_name or " ".join(p for p in (e.first_name, e.last_name) if p) or e.email


def share_center(session: Session, *, org_id: int, employee_id: int, settings: Settings) -> list[ArticleCard]:
    articles = curated_articles(session, org_id=org_id)
    ids = [a.id for a in articles if a.id is not None]
    status = statuses(session, org_id=org_id, employee_id=employee_id, article_ids=ids)
    shared_by = leaders_who_shared(session, org_id=org_id, article_ids=ids)
    everyone = set().union(*shared_by.values()) if shared_by else set()
    named = consenting(session, org_id, "leader_name_visible", list(everyone)) if everyone else set()
    people = {e.id: _name(e) for e in session.exec(select(Employee).where(col(Employee.id).in_(named))).all()}
    base, key = settings.public_base_url, link_key(settings)
    cards = []
    for a in articles:
        texts = texts_for(a)
        shares, my_link = [], ""
        for network, share, intent in share_specs(session, org_id=org_id, article=a, issue_id=None,
                                                  networks=SHARE_NETWORKS, texts=texts):  # fmt: skip
            link = employee_url(share, employee_id, base, key)
            my_link = my_link or link
            shares.append(NetworkShare(
                network, NETWORK_STYLE[network][0], _post(network, texts[network], a.hashtags, link),
                employee_url(intent, employee_id, base, key),
                x_length(texts[network], a.hashtags) if network == "x" else None,
            ))  # fmt: skip
        leaders = shared_by.get(a.id or 0, set())
        cards.append(ArticleCard(a, status[a.id or 0], tuple(shares), my_link, len(leaders),
                                 tuple(sorted(people[i] for i in leaders if i in people))))  # fmt: skip
    session.flush()
    return cards


__all__ = ["X_LIMIT", "ArticleCard", "NetworkShare", "curated_article", "share_center"]
