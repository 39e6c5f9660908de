"""The newsletter feature's part of the demo: two articles with share texts and a draft issue with a leaders' wave."""

from sqlmodel import Session

from service.db import row_id
from service.settings import Settings


def seed(session: Session, settings: Settings, org_id: int) -> None:
    seed_newsletter(session, org_id)


def seed_newsletter(session: Session, org_id: int) -> None:
    """Two articles with ready-made share text and a draft issue: preview it for anyone, then send it."""
    from newsletter.models import Article, Issue, IssueArticle

    articles = [
        Article(org_id=org_id, url="https://acme.example/news/entrepot-lyon",
                title="Notre nouvel entrepôt de Lyon ouvre ses portes",
                description="12 000 m² bas carbone pour livrer la région en moins de 24 heures.",
                site_name="ACME Logistique", text_x="Notre entrepôt bas carbone de Lyon ouvre : 24 h pour livrer "
                "toute la région.", text_linkedin="Fier·e de voir ouvrir notre entrepôt bas carbone de Lyon !",
                hashtags=["logistique", "Lyon"]),
        Article(org_id=org_id, url="https://acme.example/news/salon-2027", title="Rendez-vous au salon 2027",
                description="Toute l'équipe vous attend stand B12.", site_name="ACME Logistique",
                text_x="Venez nous voir au salon Transport & Logistique, stand B12.", hashtags=["salon"]),
    ]  # fmt: skip
    session.add_all(articles)
    issue = Issue(
        org_id=org_id,
        subject="La lettre d'ACME — novembre",
        preheader="Lyon, le salon, et vous",
        intro="Bonjour,\n\nDeux nouvelles à partager avec votre réseau ce mois-ci.",
        # leaders first: the directory's "leaders" group gets it two hours before everyone else
        leaders={"managers": False, "audience": {"groups": ["leaders"]}, "hours": 2},
    )
    session.add(issue)
    session.flush()
    for position, article in enumerate(articles):
        session.add(IssueArticle(issue_id=row_id(issue), article_id=row_id(article), position=position))
