"""Which `SignatureTarget` and `Directory` serve a provider. Provider modules are imported lazily so a
deployment that uses one provider never loads the other's client libraries."""

from pathlib import Path

from sqlmodel import Session

from service.connections.models import Provider
from service.connections.service import get_connection
from service.errors import Invalid
from service.settings import Settings
from signatures.deploy.models import Deployment
from signatures.deploy.targets.base import SignatureTarget
from signatures.deploy.targets.files import FileTarget

PROVIDERS = ("google", "microsoft", "file")


def export_folder(settings: Settings, org_id: int) -> Path:
    return settings.ensure_data_dir() / "export" / f"org-{org_id}"


def make_target(session: Session, deployment: Deployment, settings: Settings) -> SignatureTarget:
    if deployment.provider == "file":
        return FileTarget(export_folder(settings, deployment.org_id))
    if deployment.provider == Provider.google:
        from signatures.deploy.targets.google import GoogleTarget

        conn = get_connection(session, org_id=deployment.org_id, provider=Provider.google)
        return GoogleTarget.from_connection(conn, settings)
    if deployment.provider == Provider.microsoft:
        from signatures.deploy.targets.microsoft import MicrosoftTarget

        conn = get_connection(session, org_id=deployment.org_id, provider=Provider.microsoft)
        if (conn.config or {}).get("write_via") == "graph":  # Graph userConfiguration (beta), opt-in
            from signatures.deploy.targets.microsoft_graph import GraphUserConfigTarget

            return GraphUserConfigTarget.from_connection(conn, settings)
        return MicrosoftTarget.from_connection(conn, settings)
    raise Invalid(f"Unknown provider {deployment.provider!r}; choose one of {', '.join(PROVIDERS)}.")
