"""An employee's own signature: the new-mail and reply versions exactly as a deployment writes them
(signatures.renderer.SignatureRenderer, with the banner the rotation serves now), and whether IT installs it for
them (a Google or Microsoft deployment wrote this mailbox), which decides what the install guide says first."""

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from service.directory.models import Employee
from service.errors import AppError
from service.settings import Settings
from signatures.deploy.models import SignatureState
from signatures.models import SignatureKind
from signatures.renderer import SignatureRenderer
from signatures.rendering import RenderedSignature

# Deployment targets that write mailboxes for the employee, and the mail app each one fills
MAILBOX_TARGETS = {"google": "Gmail", "microsoft": "Outlook"}


@dataclass(frozen=True)
class MySignature:
    new: RenderedSignature | None = None
    reply: RenderedSignature | None = None
    problem: str | None = None  # why there is nothing to show (no template applies, the template fails)
    installed_in: tuple[str, ...] = field(default=())  # mail apps IT writes this signature into, e.g. ("Gmail",)

    @property
    def ready(self) -> bool:
        return self.new is not None


def installed_in(session: Session, employee: Employee) -> tuple[str, ...]:
    """The mail apps a deployment (applied, not a dry run) wrote this employee's mailbox in."""
    providers = session.exec(
        select(SignatureState.provider).where(
            SignatureState.employee_id == employee.id, col(SignatureState.provider).in_(list(MAILBOX_TARGETS))
        )
    ).all()
    return tuple(sorted({MAILBOX_TARGETS[p] for p in providers}))


def my_signature(session: Session, employee: Employee, settings: Settings) -> MySignature:
    renderer = SignatureRenderer(session, org_id=employee.org_id, settings=settings)
    try:
        version, new = renderer.render(employee, SignatureKind.new)
        _version, reply = renderer.render(employee, SignatureKind.reply, version=version)
    except AppError as exc:
        return MySignature(problem=exc.message, installed_in=installed_in(session, employee))
    return MySignature(new=new, reply=reply, installed_in=installed_in(session, employee))


def rendered(session: Session, employee: Employee, settings: Settings, kind: SignatureKind) -> RenderedSignature:
    """One version (raises AppError when none renders)."""
    renderer = SignatureRenderer(session, org_id=employee.org_id, settings=settings)
    version = renderer.version_for(employee)
    return renderer.render(employee, kind, version=version)[1]
