"""The accounts' part of the demo: one page login per role, with random passwords written to
data_dir/demo-logins (owner-only), one `ROLE EMAIL PASSWORD` line each. `relais serve` says where it is."""

import os
import secrets

from sqlmodel import Session

from service.accounts.service import create_user
from service.models import Role
from service.settings import Settings

DEMO_LOGINS_FILE = "demo-logins"


def seed(session: Session, settings: Settings, org_id: int) -> None:
    lines = []
    for role in (Role.admin, Role.comms, Role.it):
        email, password = f"{role.value}@acme.example", secrets.token_urlsafe(12)
        create_user(session, org_id=org_id, email=email, role=role, name=f"Demo {role.value}", password=password)
        lines.append(f"{role.value} {email} {password}\n")
    path = settings.ensure_data_dir() / DEMO_LOGINS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)
    path.chmod(0o600)
