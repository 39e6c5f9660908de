"""The charter's part of the demo: version 1.0 published (in French, the demo organisation's language) and a
draft of 1.1 that employees can comment on, where comms asked a first question on the new passage."""

from sqlmodel import Session, select

from advocacy.charter.markdown import passages, quote_of
from advocacy.charter.models import CharterComment, CharterVersion, VersionStatus
from service.accounts.models import User
from service.db import row_id, utcnow
from service.models import Role
from service.settings import Settings

CHARTER_FR = """# Charte des réseaux sociaux d'ACME

Vous pouvez parler de votre travail, de nos produits et de nos réussites : c'est même bienvenu.

## Ce que vous pouvez partager

- les articles de la lettre interne et du blog, avec les textes proposés ou vos propres mots ;
- vos photos d'événements publics (salons, inaugurations), sans badge ni écran visibles.

## Ce que nous vous demandons

- dites que vous travaillez chez ACME quand vous parlez de l'entreprise ;
- ne publiez ni chiffres non publiés, ni informations sur nos clients ;
- restez courtois, même face à une critique : transmettez-la à l'équipe communication.

## Vos droits

Partager reste un choix. Vos clics sont comptés pour vous seulement si vous le voulez
(page « Mes données »), et personne ne voit vos chiffres sans votre accord.
"""

DRAFT_ADDITION = """
## Intelligence artificielle

Si un outil d'IA vous aide à écrire un message, relisez-le : vous en restez l'auteur.
"""


def seed(session: Session, settings: Settings, org_id: int) -> None:
    now = utcnow()
    title = "Charte des réseaux sociaux"
    session.add(CharterVersion(org_id=org_id, status=VersionStatus.published, title=title, body=CHARTER_FR, major=1,
                               minor=0, changelog="Première version, écrite avec les ambassadeurs.", published_at=now,
                               created_at=now, updated_at=now))  # fmt: skip
    draft = CharterVersion(org_id=org_id, title=title, body=CHARTER_FR + DRAFT_ADDITION)
    session.add(draft)
    session.flush()
    comms = session.exec(select(User).where(User.org_id == org_id, User.role == Role.comms)).first()
    if comms is not None:  # the accounts demo made one
        new = passages(draft.body)[-1]
        session.add(CharterComment(org_id=org_id, version_id=row_id(draft), passage=new.id, quote=quote_of(new.text),
                                   author_user_id=row_id(comms), from_comms=True,
                                   body="Nouveau passage : est-il clair pour vous ?"))  # fmt: skip
        session.flush()
