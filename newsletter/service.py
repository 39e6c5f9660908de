"""Newsletter logic without HTTP: articles, issues, scheduling and preferences. Services flush, never commit."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, col, select

from newsletter.articles import check_x_text, clean_hashtags, default_share_texts, fetch_page
from newsletter.audience import audience_of
from newsletter.models import Article, ArticleKind, Issue, IssueArticle, IssueStatus, NewsletterPreference
from newsletter.waves import LeadersWave, leaders_of
from service.db import key_column, row_id, utcnow
from service.directory.audience import Audience
from service.directory.service import check_places
from service.errors import Conflict, Invalid
from service.links import check_destination
from service.settings import Settings
from service.tenancy import get_owned
from service.validation import HttpUrl, PatchModel

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- articles


class ArticleIn(BaseModel):
    url: HttpUrl | None = Field(None, max_length=2000, description="The article's address; fetched unless fetch=false.")
    fetch: bool = Field(True, description="Read title, description, image and site name from the page.")
    kind: ArticleKind = ArticleKind.company
    title: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=2000)
    image_url: HttpUrl | None = Field(None, max_length=2000)
    site_name: str | None = Field(None, max_length=200)
    language: str | None = Field(None, max_length=20)
    text_x: str | None = Field(None, max_length=600)
    text_linkedin: str | None = Field(None, max_length=3000)
    text_facebook: str | None = Field(None, max_length=3000)
    text_email: str | None = Field(None, max_length=3000)
    text_whatsapp: str | None = Field(None, max_length=1000)
    text_bluesky: str | None = Field(None, max_length=600)
    shareable: bool | None = Field(None, description="Offer it in the employees' share center without an issue.")
    hashtags: list[str] | None = None


class ArticleUpdate(ArticleIn):
    fetch: bool = False


class ArticlePublic(BaseModel):
    id: int
    url: str
    kind: ArticleKind
    title: str
    description: str
    image_url: str | None
    site_name: str | None
    language: str | None
    text_x: str
    text_linkedin: str
    text_facebook: str
    text_email: str
    text_whatsapp: str
    text_bluesky: str
    shareable: bool
    hashtags: list[str]
    x_length: int
    fetched_at: datetime | None
    created_at: datetime
    updated_at: datetime


def article_public(a: Article) -> ArticlePublic:
    from newsletter.articles import x_length

    return ArticlePublic(**a.model_dump(exclude={"org_id"}), x_length=x_length(a.text_x, a.hashtags))


def _check_image(url: str | None) -> str | None:
    if not url:
        return None
    return check_destination(url)


def create_article(session: Session, *, org_id: int, body: ArticleIn, settings: Settings) -> Article:
    if not body.url:
        raise Invalid("An article needs the address of the page it points to (url).")
    url = check_destination(body.url)
    meta = None
    if body.fetch:
        meta = fetch_page(url, allow_private=settings.fetch_allow_private)
    title = body.title or (meta.title if meta else "") or ""
    if not title.strip():
        raise Invalid("The page has no title: give one (title).")
    description = body.description if body.description is not None else (meta.description if meta else "")
    hashtags = clean_hashtags(body.hashtags or [])
    drafts = default_share_texts(title, description, hashtags)
    article = Article(
        org_id=org_id, url=url, kind=body.kind, title=title.strip()[:500], description=description[:2000],
        image_url=_check_image(body.image_url or (meta.image_url if meta else None)),
        site_name=body.site_name or (meta.site_name if meta else None),
        language=body.language or (meta.language if meta else None),
        text_x=body.text_x if body.text_x is not None else drafts["text_x"],
        text_linkedin=body.text_linkedin if body.text_linkedin is not None else drafts["text_linkedin"],
        text_facebook=body.text_facebook if body.text_facebook is not None else drafts["text_facebook"],
        text_email=body.text_email or "", text_whatsapp=body.text_whatsapp or "",
        text_bluesky=body.text_bluesky or "", shareable=bool(body.shareable), hashtags=hashtags,
        fetched_at=utcnow() if meta else None,
    )  # fmt: skip
    check_x_text(article.text_x, article.hashtags)
    session.add(article)
    session.flush()
    log.info("newsletter.article.created", extra={"article_id": article.id, "fetched": bool(meta)})
    return article


_NOT_NULL = ("title", "description", "text_x", "text_linkedin", "text_facebook", "text_email", "text_whatsapp",
             "text_bluesky", "shareable")  # fmt: skip


def get_article(session: Session, *, org_id: int, article_id: int) -> Article:
    return get_owned(session, Article, article_id, org_id=org_id, label="article")


def update_article(session: Session, *, org_id: int, article_id: int, body: ArticleUpdate,
                   settings: Settings) -> Article:  # fmt: skip
    a = get_article(session, org_id=org_id, article_id=article_id)
    data = body.model_dump(exclude_unset=True, exclude={"fetch"})
    if "url" in data and data["url"]:
        a.url = check_destination(data.pop("url"))
    data.pop("url", None)
    if body.fetch:
        meta = fetch_page(a.url, allow_private=settings.fetch_allow_private)
        a.title, a.description = meta.title or a.title, meta.description
        a.image_url, a.site_name, a.language = meta.image_url, meta.site_name, meta.language
        a.fetched_at = utcnow()
    if "hashtags" in data:
        data["hashtags"] = clean_hashtags(data["hashtags"] or [])
    if "image_url" in data:
        data["image_url"] = _check_image(data["image_url"])
    for key, value in data.items():
        if value is None and key in _NOT_NULL:
            continue
        setattr(a, key, value)
    if not a.title.strip():
        raise Invalid("An article needs a title.")
    check_x_text(a.text_x, a.hashtags)
    a.updated_at = utcnow()
    session.add(a)
    session.flush()
    return a


# ---------------------------------------------------------------- issues


def _single_line(v: str) -> str:
    if "\n" in v or "\r" in v:
        raise ValueError("must be a single line")
    return v.strip()


class IssueIn(BaseModel):
    subject: str = Field(..., min_length=1, max_length=300)
    preheader: str = Field("", max_length=300)
    intro: str = Field("", max_length=5000, description="Plain text; blank lines separate paragraphs.")
    language: str = Field("fr", max_length=20)
    audience: Audience = Audience(everyone=True)
    leaders: LeadersWave | None = Field(None, description="Send to these leaders first, some hours before the rest.")
    article_ids: list[int] = Field([], description="In the order they appear in the email.")

    _one_line = field_validator("subject", "preheader")(_single_line)


class IssueUpdate(PatchModel):
    nullable = frozenset({"leaders"})  # null: no leaders' wave any more

    subject: str | None = Field(None, min_length=1, max_length=300)
    preheader: str | None = Field(None, max_length=300)
    intro: str | None = Field(None, max_length=5000)
    language: str | None = Field(None, max_length=20)
    audience: Audience | None = None
    leaders: LeadersWave | None = None
    article_ids: list[int] | None = None

    _one_line = field_validator("subject", "preheader")(_single_line)


class IssuePublic(BaseModel):
    id: int
    subject: str
    preheader: str
    intro: str
    language: str
    audience: Audience
    leaders: LeadersWave | None
    article_ids: list[int]
    status: IssueStatus
    scheduled_at: datetime | None
    second_wave_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime


def issue_public(session: Session, issue: Issue) -> IssuePublic:
    ids = session.exec(select(IssueArticle.article_id).where(IssueArticle.issue_id == issue.id)
                       .order_by(col(IssueArticle.position))).all()  # fmt: skip
    return IssuePublic(**issue.model_dump(exclude={"org_id", "audience", "leaders", "runner", "heartbeat_at",
                                                   "second_wave_started_at"}),
                       audience=audience_of(issue), leaders=leaders_of(issue.leaders),
                       article_ids=list(ids))  # fmt: skip


def get_issue(session: Session, *, org_id: int, issue_id: int) -> Issue:
    return get_owned(session, Issue, issue_id, org_id=org_id, label="newsletter issue")


def _set_articles(session: Session, *, org_id: int, issue: Issue, article_ids: list[int]) -> None:
    if len(set(article_ids)) != len(article_ids):
        raise Invalid("An article appears twice in this issue.")
    for aid in article_ids:
        get_article(session, org_id=org_id, article_id=aid)
    for old in session.exec(select(IssueArticle).where(IssueArticle.issue_id == issue.id)).all():
        session.delete(old)
    session.flush()
    for pos, aid in enumerate(article_ids):
        session.add(IssueArticle(issue_id=row_id(issue), article_id=aid, position=pos))


def _check_audience(session: Session, org_id: int, audience: Audience) -> dict:
    if audience.is_empty():
        raise Invalid("Choose an audience: everyone, or some departments, offices, groups, emails or employees.")
    check_places(session, org_id=org_id, departments=audience.departments, offices=audience.offices)
    return audience.model_dump(mode="json")


def _check_leaders(session: Session, org_id: int, leaders: LeadersWave | None) -> dict | None:
    if leaders is None:
        return None
    if leaders.audience is not None and not leaders.audience.is_empty():
        check_places(session, org_id=org_id, departments=leaders.audience.departments,
                     offices=leaders.audience.offices)  # fmt: skip
    return leaders.model_dump(mode="json")


def create_issue(session: Session, *, org_id: int, body: IssueIn) -> Issue:
    issue = Issue(org_id=org_id, subject=body.subject, preheader=body.preheader, intro=body.intro,
                  language=body.language, audience=_check_audience(session, org_id, body.audience),
                  leaders=_check_leaders(session, org_id, body.leaders))  # fmt: skip
    session.add(issue)
    session.flush()
    _set_articles(session, org_id=org_id, issue=issue, article_ids=body.article_ids)
    session.flush()
    return issue


def _editable(issue: Issue) -> None:
    if issue.status in (IssueStatus.sending, IssueStatus.waiting, IssueStatus.sent):
        raise Conflict(f"Issue {issue.id} is {issue.status.value}; it can no longer be edited.")


def update_issue(session: Session, *, org_id: int, issue_id: int, body: IssueUpdate) -> Issue:
    issue = get_issue(session, org_id=org_id, issue_id=issue_id)
    _editable(issue)
    data = body.model_dump(exclude_unset=True, exclude={"article_ids", "audience", "leaders"})
    for key, value in data.items():
        if value is not None:
            setattr(issue, key, value)
    if body.audience is not None:
        issue.audience = _check_audience(session, org_id, body.audience)
    if "leaders" in body.model_fields_set:
        issue.leaders = _check_leaders(session, org_id, body.leaders)
    if body.article_ids is not None:
        _set_articles(session, org_id=org_id, issue=issue, article_ids=body.article_ids)
    issue.updated_at = utcnow()
    session.add(issue)
    session.flush()
    return issue


def schedule_issue(session: Session, *, org_id: int, issue_id: int, at: datetime | None) -> Issue:
    """Schedule for ``at`` (None: now). The audience is read when the send starts, not now."""
    issue = get_issue(session, org_id=org_id, issue_id=issue_id)
    _editable(issue)
    if not session.exec(select(IssueArticle.id).where(IssueArticle.issue_id == issue.id)).first():
        raise Invalid("This issue has no articles yet: add at least one before scheduling it.")
    if at is not None and at.tzinfo is None:
        raise Invalid("Give the time with its timezone (e.g. 2026-03-02T09:00:00+01:00).")
    issue.status = IssueStatus.scheduled
    issue.scheduled_at = at or utcnow()
    issue.updated_at = utcnow()
    session.add(issue)
    session.flush()
    return issue


def unschedule_issue(session: Session, *, org_id: int, issue_id: int) -> Issue:
    issue = get_issue(session, org_id=org_id, issue_id=issue_id)
    _editable(issue)
    issue.status, issue.scheduled_at, issue.updated_at = IssueStatus.draft, None, utcnow()
    session.add(issue)
    session.flush()
    return issue


def due_issue_ids(session: Session) -> list[int]:
    now = utcnow()
    scheduled = select(key_column(Issue)).where(Issue.status == IssueStatus.scheduled, col(Issue.scheduled_at) <= now)
    sending = select(key_column(Issue)).where(Issue.status == IssueStatus.sending)  # resume after a crash
    second = select(key_column(Issue)).where(Issue.status == IssueStatus.waiting, col(Issue.second_wave_at) <= now)
    return [*session.exec(scheduled).all(), *session.exec(sending).all(), *session.exec(second).all()]


# ---------------------------------------------------------------- preferences (/u/{token})


def preference_by_token(session: Session, token: str) -> NewsletterPreference | None:
    if not 16 <= len(token) <= 32:
        return None
    return session.exec(select(NewsletterPreference).where(NewsletterPreference.token == token)).first()


def set_subscribed(session: Session, *, pref: NewsletterPreference, subscribed: bool) -> NewsletterPreference:
    if pref.subscribed != subscribed:
        pref.subscribed = subscribed
        pref.updated_at = utcnow()
        session.add(pref)
        session.flush()
        log.info("newsletter.preferences.changed", extra={"employee_id": pref.employee_id, "subscribed": subscribed})
    return pref
