"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key from RELAIS_SECRET_KEY or a key file.

The key file is created on first use with 0600 permissions, beside the SQLite database. Losing it makes
stored provider credentials unreadable, so back it up with the database (or set RELAIS_SECRET_KEY).
"""

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from service.errors import AppError
from service.settings import Settings, get_settings

KEY_FILE = "secret.key"


def key_from_passphrase(passphrase: str) -> bytes:
    """Any passphrase works: derive a Fernet key from it."""
    return base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest())


def _load_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return key_from_passphrase(settings.secret_key.get_secret_value())
    path = settings.ensure_data_dir() / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Path(path).read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


@lru_cache
def _fernet(key: bytes) -> Fernet:
    return Fernet(key)


def secret_key_bytes(settings: Settings | None = None) -> bytes:
    """The instance's key material, for deriving other keys (never used directly for two purposes)."""
    return _load_key(settings or get_settings())


def encrypt(plaintext: str, settings: Settings | None = None) -> str:
    return _fernet(_load_key(settings or get_settings())).encrypt(plaintext.encode()).decode()


def decrypt(token: str, settings: Settings | None = None) -> str:
    try:
        return _fernet(_load_key(settings or get_settings())).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise AppError(
            "A stored secret cannot be decrypted: RELAIS_SECRET_KEY or the key file changed. "
            "Restore the original key, or enter the credential again.",
            status_code=500,
        ) from exc


# The HMAC key of links already sent, kept across a key rotation (service.key_check): secret key -> link key.
_pinned_link_keys: dict[bytes, bytes] = {}


def pin_link_key(secret: bytes, link_key: bytes) -> None:
    _pinned_link_keys[secret] = link_key


def pinned_link_key(secret: bytes) -> bytes | None:
    return _pinned_link_keys.get(secret)


def fernet_for(key: bytes) -> Fernet:
    return _fernet(key)
