"""The share center's part of the demo: the demo newsletter's articles are offered to employees at once
(comms can untick "share center" on an article's page), with texts for every network."""

from sqlmodel import Session, select

from newsletter.models import Article
from service.settings import Settings


def seed(session: Session, settings: Settings, org_id: int) -> None:
    for article in session.exec(select(Article).where(Article.org_id == org_id)).all():
        article.shareable = True
        article.text_whatsapp = article.text_whatsapp or f"À lire : {article.title}"
        session.add(article)
    session.flush()
