"""Password hashing (argon2id, argon2-cffi's defaults) and the rules a new password must meet."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
MIN_LENGTH = 12
# Verified against when the email is unknown, so a miss costs as long as a hit (no user enumeration by timing).
_DUMMY = _hasher.hash("not a password of anyone")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def password_problem(password: str) -> str | None:
    """English sentence saying what to fix, or None (translated where it is shown)."""
    if len(password) < MIN_LENGTH:
        return "Use at least 12 characters."
    if len(password) > 256:
        return "Use at most 256 characters."
    if password.strip() != password:
        return "Remove the spaces at the start or the end."
    return None
