"""Sharing unlocks on acceptance: the one rule every sharing path asks (`sharing_unlocked`), the detour that
newsletter share buttons take to the one-time acceptance page (`share_detour`, a kernel share gate listed in
service.features), and the signed address of that page for readers who are not signed in."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from sqlmodel import Session, col, select

from advocacy.charter.models import CharterAcceptance, CharterVersion, VersionStatus
from service.links import link_key
from service.settings import Settings

ACCEPT_PATH = "/me/charter/accept"
LINK_SECONDS = 2 * 3600  # the signed page address is made at the click: long enough to read the charter
_PURPOSE = b"relais/charter-accept/v1\x00"


def current_major(session: Session, org_id: int) -> int | None:
    """The major number of the version in force, or None when no charter is published."""
    return session.exec(
        select(CharterVersion.major)
        .where(CharterVersion.org_id == org_id, CharterVersion.status == VersionStatus.published)
        .order_by(col(CharterVersion.major).desc())
        .limit(1)
    ).first()


def sharing_unlocked(session: Session, org_id: int, employee_id: int) -> bool:
    """True when no charter is published, or the employee accepted a version of the current major number."""
    major = current_major(session, org_id)
    if major is None:
        return True
    accepted = session.exec(
        select(CharterAcceptance.id).where(
            CharterAcceptance.org_id == org_id,
            CharterAcceptance.employee_id == employee_id,
            CharterAcceptance.major == major,
        )
    ).first()
    return accepted is not None


# ---------------------------------------------------------------- the signed acceptance address


def _mac(settings: Settings, employee_id: int, expires: int, next_path: str) -> str:
    message = _PURPOSE + f"{employee_id}\x1f{expires}\x1f{next_path}".encode()
    return hmac.new(link_key(settings), message, hashlib.sha256).hexdigest()[:32]


def sign(settings: Settings, employee_id: int, next_path: str, *, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + LINK_SECONDS
    return f"{employee_id}.{expires}.{_mac(settings, employee_id, expires, next_path)}"


def verify(settings: Settings, signed: str, next_path: str, *, now: float | None = None) -> int | None:
    """The employee a signed value stands for, if it was made for this `next_path` and has not expired."""
    parts = signed.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    employee_id, expires = int(parts[0]), int(parts[1])
    if expires < (now if now is not None else time.time()):
        return None
    if not hmac.compare_digest(parts[2], _mac(settings, employee_id, expires, next_path)):
        return None
    return employee_id


def accept_url(settings: Settings, employee_id: int, next_path: str) -> str:
    return f"{ACCEPT_PATH}?{urlencode({'next': next_path, 't': sign(settings, employee_id, next_path)})}"


def share_detour(session: Session, settings: Settings, *, org_id: int, employee_id: int, next_path: str) -> str | None:
    """The kernel's share gate: where an employee's share button sends them first (None: straight on)."""
    if sharing_unlocked(session, org_id, employee_id):
        return None
    return accept_url(settings, employee_id, next_path)
