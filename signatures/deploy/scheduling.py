"""Which mailboxes need a new signature now: the basis of automatic re-deployment."""

from datetime import datetime

from sqlmodel import Session, col, select

from signatures.deploy.models import Deployment, DeploymentItem
from signatures.deploy.planning import plan, select_employees


def changed_mailboxes(session: Session, *, org_id: int, provider: str, at: datetime) -> list[str]:
    """Mailboxes whose signature differs from the last one written, minus those the provider already
    refused for this very content (a mailbox without mail service would otherwise be retried forever)."""
    refused = set(
        session.exec(
            select(DeploymentItem.mailbox, DeploymentItem.content_hash)
            .join(Deployment, col(Deployment.id) == DeploymentItem.deployment_id)
            .where(
                Deployment.org_id == org_id,
                Deployment.provider == provider,
                Deployment.dry_run == False,  # noqa: E712
                DeploymentItem.outcome == "skipped",
            )
        ).all()
    )
    employees = select_employees(session, org_id=org_id, target_filter={})
    return [
        mp.employee.email
        for mp in plan(session, org_id=org_id, provider=provider, employees=employees, at=at)
        if mp.action in ("added", "changed") and (mp.employee.email, mp.content_hash) not in refused
    ]
