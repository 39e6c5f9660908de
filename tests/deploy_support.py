"""Shared set-up for the deployment tests: a seeded directory with a default template, a folder target that
misbehaves on cue, and shortcuts to create and run a deployment."""

from service.connections.throttle import RetryPolicy
from service.db import session_scope
from service.directory.sync import DirectoryPerson, Listing, apply_listing
from signatures.deploy import engine as deploy_engine
from signatures.deploy.targets.base import MailboxSignature
from signatures.deploy.targets.files import FileTarget
from signatures.layouts import LAYOUTS
from signatures.models import AssignmentKind, SignatureTemplate, TemplateAssignment, TemplateVersion

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)


def seed(db, tenant, count=6):
    people = [DirectoryPerson(source_id=str(i), email=f"p{i}@acme.example", first_name=f"P{i}", last_name="Test",
                              department="Sales" if i % 2 else "Ops",
                              aliases=(f"alias{i}@acme.example",) if i == 0 else (),
                              groups=("leaders",) if i < 2 else ())
              for i in range(count)]  # fmt: skip
    with session_scope(db) as s:
        apply_listing(s, org_id=tenant.org_id, source="csv", listing=Listing(people=people), dry_run=False)
        t = SignatureTemplate(org_id=tenant.org_id, name="Corporate")
        s.add(t)
        s.flush()
        s.add(
            TemplateVersion(
                template_id=t.id,
                version=1,
                new_source=LAYOUTS["compact"].new_source,
                reply_source=LAYOUTS["compact"].reply_source,
            )
        )
        s.add(TemplateAssignment(org_id=tenant.org_id, template_id=t.id, kind=AssignmentKind.default))
        return t.id


class ScriptedTarget(FileTarget):
    """A folder target whose provider misbehaves on cue (a stand-in for a provider's faults)."""

    def __init__(self, folder, faults=None):
        super().__init__(folder)
        self.faults = dict(faults or {})  # mailbox -> list of exceptions to raise, in order
        self.calls: list[MailboxSignature] = []
        self.address_writes = 0

    def write(self, signature):
        self.calls.append(signature)
        queue = self.faults.get(signature.mailbox)
        if queue:
            raise queue.pop(0)
        result = super().write(signature)
        self.address_writes += result.writes
        return result


def run(db, dep_id, target, **kw):
    return deploy_engine.execute(db, dep_id, make_target=lambda s, d: target, policy=FAST, **kw)


def new_deployment(db, tenant, dry_run=False, **flt):
    with session_scope(db) as s:
        return deploy_engine.create_deployment(
            s, org_id=tenant.org_id, provider="file", dry_run=dry_run, target_filter=flt
        ).id
