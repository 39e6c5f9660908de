"""The `SignatureTarget` seam: writes one mailbox's signature to a provider (or a folder).

A target raises the exceptions of service.connections.errors and the engine owns the retry policy, so every
provider gets the same behaviour: transient errors retried with backoff (honouring Retry-After), per-mailbox
problems skipped with a reason, configuration errors stopping the whole deployment once.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from service.connections.errors import (  # noqa: F401 - the seam's exceptions, raised by every target
    ConfigurationError,
    SkipMailbox,
    TargetError,
    TransientError,
)


class Outcome(StrEnum):
    applied = "applied"
    unchanged = "unchanged"
    skipped = "skipped"
    failed = "failed"
    # The provider asked to wait longer than a deployment holds a mailbox: the next scheduled run retries it.
    deferred = "deferred"
    # Written, but not known to be visible to its user (e.g. roaming signatures found on right after).
    unconfirmed = "unconfirmed"


@dataclass(frozen=True)
class MailboxSignature:
    """What one mailbox should carry. `addresses` are the primary address first, then aliases."""

    mailbox: str
    addresses: tuple[str, ...]
    html: str
    text: str
    reply_html: str
    reply_text: str
    content_hash: str
    # True when an earlier attempt may already have written this mailbox (a worker died mid-write): the
    # target must read what the mailbox carries before writing, so nothing is written twice.
    verify_first: bool = False


@dataclass
class AddressResult:
    address: str
    outcome: Outcome
    reason: str = ""


@dataclass
class WriteResult:
    results: list[AddressResult] = field(default_factory=list)
    writes: int = 0  # provider write calls made (for audit and the benchmark)


@dataclass
class NotVisible:
    """What `confirm_visible()` answers when writes that landed may not be seen by their users."""

    reason: str  # for each mailbox written: why its write is not known to be visible
    message: str  # for the deployment: why it stopped writing, and what to do


class SignatureTarget(Protocol):
    provider: str
    # How many mailboxes are written at once, and the steady write rate the provider allows.
    concurrency: int
    writes_per_second: float | None

    def check(self) -> list[str]:
        """Before anything is written: raise ConfigurationError, or return warnings to show the admin."""
        ...

    def current(self, mailbox: str) -> dict[str, str | None]:
        """What each address of the mailbox carries now (address -> HTML), for diffs and verification."""
        ...

    def write(self, signature: MailboxSignature) -> WriteResult:
        """Write (only what differs) and say what happened to each address."""
        ...

    # Optional: `confirm_visible() -> NotVisible | None`, called after writes finished and before they are
    # recorded `applied` (at most every `confirm_every` seconds): None when they are known to be visible.
