""" "Open my space" links in newsletter emails: they sign the employee in to the portal without a password.

A token is the employee id and an expiry, signed with HMAC-SHA256 under a key derived from the instance's secret
(service.crypto), so nothing is stored per email. It works for OPEN_LINK_HOURS after the send: long enough to
read the newsletter over a weekend, short enough that an old or forwarded email does not stay a key to
someone's space. It stops working at once when the employee leaves (deactivated) or their account is disabled;
rotating the instance secret revokes every link. Like the emailed sign-in link, a GET only shows a button and
the POST signs in: scanners prefetch links, and a session nobody asked for must not be created.
"""

import base64
import hashlib
import hmac
import struct
from datetime import datetime, timedelta

from service.crypto import secret_key_bytes
from service.db import utcnow
from service.settings import Settings

OPEN_LINK_HOURS = 48
_PAYLOAD = struct.Struct(">QQ")  # employee id, expiry (unix seconds)
_MAC_BYTES = 16
PATH = "/sign-in/open/"


def open_key(settings: Settings) -> bytes:
    return hashlib.sha256(b"relais/portal-open/v1\x00" + secret_key_bytes(settings)).digest()


def expiry_from(now: datetime | None = None) -> int:
    return int(((now or utcnow()) + timedelta(hours=OPEN_LINK_HOURS)).timestamp())


def open_token(employee_id: int, expires: int, key: bytes) -> str:
    payload = _PAYLOAD.pack(employee_id, expires)
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def open_url(base_url: str, employee_id: int, expires: int, key: bytes) -> str:
    return f"{base_url.rstrip('/')}{PATH}{open_token(employee_id, expires, key)}"


def parse_open_token(token: str, key: bytes, now: datetime | None = None) -> int | None:
    """The employee id of a genuine, unexpired token; None otherwise."""
    if not token or len(token) > 60:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    if len(payload) != _PAYLOAD.size or len(mac) != _MAC_BYTES:
        return None
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]):
        return None
    employee_id, expires = _PAYLOAD.unpack(payload)
    return employee_id if expires > (now or utcnow()).timestamp() else None
