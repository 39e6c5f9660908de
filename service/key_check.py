"""The secret key must be the one the database was set up with, or the service does not start.

Everything durable hangs off that key: provider credentials are encrypted with it, and every employee link
in a sent signature or newsletter is an HMAC under a key derived from it. A key that silently changed (an
unset RELAIS_SECRET_KEY, a lost key file) would make those secrets unreadable and every link already sent
404 for good. So the first start stores a fingerprint of the key in the database, and every start after it
compares: a different key, or a missing key file, stops the service with a sentence saying what to do.

`rotate_secret_key` (`relais secrets rotate`) changes the key on purpose: it re-encrypts every stored secret
with the new key and keeps the links' HMAC key of before (stored encrypted with the new key), so links already
sent keep working.
"""

import base64
import hashlib
import hmac

from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.crypto import KEY_FILE, fernet_for, pin_link_key, secret_key_bytes
from service.db import get_existing
from service.models import InstanceKey
from service.settings import Settings


class SecretKeyMismatch(RuntimeError):
    """The service must not start: the message says why and what to do."""


def fingerprint(key: bytes) -> str:
    return hmac.new(key, b"relais/key-check/v1", hashlib.sha256).hexdigest()


def _restore_hint(settings: Settings) -> str:
    return (
        f"Restore the original key: set RELAIS_SECRET_KEY to it, or put back {settings.data_dir / KEY_FILE} "
        "from your backup (after an interrupted `relais secrets rotate`, the new key is in secret.key.new). "
        "Stored credentials and every link already sent depend on it. (To start over with "
        "an empty database instead, point RELAIS_DATA_DIR or RELAIS_DATABASE_URL at a new one.)"
    )


def check_secret_key(engine: Engine, settings: Settings) -> None:
    """Record the key's fingerprint on first start; refuse any other key afterwards (SecretKeyMismatch)."""
    with Session(engine) as session:
        row = session.get(InstanceKey, 1)
        if row is not None and settings.secret_key is None and not (settings.data_dir / KEY_FILE).exists():
            raise SecretKeyMismatch(
                f"This database was set up with a secret key, but RELAIS_SECRET_KEY is unset and the key file "
                f"{settings.data_dir / KEY_FILE} is missing. {_restore_hint(settings)}"
            )
        current = fingerprint(secret_key_bytes(settings))  # creates the key file on a first start
        if row is None:
            session.add(InstanceKey(id=1, fingerprint=current))
            session.commit()
            return
        if hmac.compare_digest(row.fingerprint, current) and row.link_key_enc:
            secret = secret_key_bytes(settings)
            pin_link_key(secret, base64.b64decode(fernet_for(secret).decrypt(row.link_key_enc.encode())))
        if not hmac.compare_digest(row.fingerprint, current):
            source = (
                "RELAIS_SECRET_KEY"
                if settings.secret_key is not None
                else f"the key file {settings.data_dir / KEY_FILE}"
            )
            raise SecretKeyMismatch(
                f"The secret key ({source}) is not the one this database was set up with. {_restore_hint(settings)}"
            )


def rotate_secret_key(engine: Engine, settings: Settings, new_key: bytes) -> int:
    """Re-encrypt every stored secret from the current key to `new_key` (a Fernet key) and keep the links'
    HMAC key; one transaction. Returns how many secrets were re-encrypted. The caller then installs the new
    key (key file or RELAIS_SECRET_KEY) before the service starts again."""
    from service.connections.models import ProviderConnection
    from service.links import link_key

    check_secret_key(engine, settings)  # the current key must be the database's (and pins its link key)
    old, new = fernet_for(secret_key_bytes(settings)), fernet_for(new_key)
    links = link_key(settings)
    with Session(engine) as session:
        rows = [r for r in session.query(ProviderConnection).all() if r.secret_encrypted]
        for row in rows:
            row.secret_encrypted = new.encrypt(old.decrypt(row.secret_encrypted.encode())).decode()
            session.add(row)
        instance = get_existing(session, InstanceKey, 1)  # check_secret_key made sure of it
        instance.fingerprint = fingerprint(new_key)
        instance.link_key_enc = new.encrypt(base64.b64encode(links)).decode()
        session.add(instance)
        session.commit()
    pin_link_key(new_key, links)
    return len(rows)
