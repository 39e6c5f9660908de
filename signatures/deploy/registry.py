"""The registry of signature targets: the one place that says which targets exist.

Two kinds:
- mailbox targets write one mailbox at a time through the `SignatureTarget` seam and are what deployments
  run on (Google, Microsoft, the folder export);
- tenant-wide targets configure once for everyone instead (the mail-flow relay): they are never deployed
  mailbox by mailbox, so they register what an admin needs to set them up.

The API's validation, the CLI's help and docs/deployments.md ("Adding a target") are derived from here, and an
unknown name is refused before anything is created. Provider modules are imported lazily, so a deployment that
uses one provider never loads another's client libraries.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from service.connections.models import Provider
from service.connections.service import get_connection
from service.directory.models import Employee
from service.errors import Invalid
from service.settings import Settings
from signatures.deploy.https_rule import HttpsGuard, https_problem
from signatures.deploy.models import Deployment, SignatureState
from signatures.deploy.targets.base import SignatureTarget

BuildTarget = Callable[[Session, Deployment, Settings], SignatureTarget]


@dataclass(frozen=True)
class MailboxTarget:
    name: str
    description: str
    connection: Provider | None  # the provider connection it writes through, if any
    build: BuildTarget


@dataclass(frozen=True)
class TenantWideTarget:
    name: str
    description: str
    setup: Callable[..., str]  # the setup an admin applies once (e.g. connector and rule scripts)


def export_folder(settings: Settings, org_id: int) -> Path:
    return settings.ensure_data_dir() / "export" / f"org-{org_id}"


def _file(session: Session, deployment: Deployment, settings: Settings) -> SignatureTarget:
    from signatures.deploy.targets.files import FileTarget

    keep = active_addresses(session, deployment.org_id)
    if not deployment.dry_run:  # their files go: a person who comes back gets them written again
        forget_addresses(session, deployment.org_id, "file", keep=keep)
    return FileTarget(export_folder(settings, deployment.org_id), keep=keep, prune=not deployment.dry_run)


def active_addresses(session: Session, org_id: int) -> set[str]:
    """Every address (primary and aliases, lower case) of the organisation's active employees."""
    rows = session.exec(select(Employee.email, Employee.aliases).where(
        Employee.org_id == org_id, Employee.active == True)).all()  # noqa: E712  # fmt: skip
    return {a.lower() for email, aliases in rows for a in [email, *(aliases or [])]}


def forget_addresses(session: Session, org_id: int, provider: str, *, keep: set[str]) -> None:
    """Drop what Relais remembers writing to addresses outside `keep`."""
    for state in session.exec(
        select(SignatureState).where(SignatureState.org_id == org_id, SignatureState.provider == provider)
    ).all():
        if state.address.lower() not in keep:
            session.delete(state)


def _google(session: Session, deployment: Deployment, settings: Settings) -> SignatureTarget:
    from signatures.deploy.targets.google import GoogleTarget

    conn = get_connection(session, org_id=deployment.org_id, provider=Provider.google)
    return GoogleTarget.from_connection(conn, settings)


def _microsoft(session: Session, deployment: Deployment, settings: Settings) -> SignatureTarget:
    conn = get_connection(session, org_id=deployment.org_id, provider=Provider.microsoft)
    if (conn.config or {}).get("write_via") == "graph":  # Graph userConfiguration (beta), opt-in
        from signatures.deploy.targets.microsoft_graph import GraphUserConfigTarget

        return GraphUserConfigTarget.from_connection(conn, settings)
    from signatures.deploy.targets.microsoft import MicrosoftTarget

    return MicrosoftTarget.from_connection(conn, settings)


MAILBOX_TARGETS: dict[str, MailboxTarget] = {
    t.name: t
    for t in (
        MailboxTarget("google", "Gmail signatures of every send-as address (Gmail API)", Provider.google, _google),
        MailboxTarget(
            "microsoft",
            "Outlook on the web signatures (Exchange Online admin API; Graph with write_via=graph)",
            Provider.microsoft,
            _microsoft,
        ),
        MailboxTarget("file", "a folder export: one HTML and one text file per mailbox", None, _file),
    )
}


def _relay_setup(provider: str, **kwargs) -> str:
    from signatures.relay import setup

    builders = {"microsoft": setup.microsoft_script, "google": setup.google_steps}
    if provider not in builders:
        raise Invalid(f"The relay is set up on microsoft or google, not {provider!r}.")
    return builders[provider](**kwargs)


TENANT_WIDE_TARGETS: dict[str, TenantWideTarget] = {
    "relay": TenantWideTarget(
        "relay",
        "the mail-flow relay: signs every outgoing message in transit (docs/mail-flow.md)",
        _relay_setup,
    ),
}


def mailbox_target(name: str) -> MailboxTarget:
    """The mailbox target called `name`, or a 422 that lists the ones there are."""
    try:
        return MAILBOX_TARGETS[name]
    except KeyError:
        raise Invalid(f"Unknown target {name!r}; choose one of {target_names()}.") from None


def target_names() -> str:
    return ", ".join(MAILBOX_TARGETS)


def targets_help() -> str:
    """One line per target, for --help and the API description."""
    return "; ".join(f"{t.name}: {t.description}" for t in MAILBOX_TARGETS.values())


def make_target(session: Session, deployment: Deployment, settings: Settings) -> SignatureTarget:
    target = mailbox_target(deployment.provider).build(session, deployment, settings)
    if deployment.provider == "file":  # a folder export writes to no mailbox
        return target
    problem = https_problem(session, org_id=deployment.org_id, settings=settings)
    return HttpsGuard(target, problem, refuse=not deployment.dry_run) if problem else target
