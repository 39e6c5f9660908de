"""Microsoft 365 target: Exchange Online's admin REST `InvokeCommand` (app-only), the transport of the EXO
PowerShell v3 module.

- `check()` reads `Get-OrganizationConfig` before anything is written (dry runs too): with roaming signatures on,
  `Set-MailboxMessageConfiguration` answers 200 and changes nothing users see, so the deployment stops with the
  two ways forward instead of reporting a false success. A write is reported `applied` only after a read of the
  setting that *started after the write finished* still shows roaming postponed (`confirm_visible`, called by the
  engine at most every `confirm_every` second); otherwise it is `unconfirmed` and nothing more is written. The
  setting is also read before writes every `roaming_recheck` seconds, which stops a run sooner.
- `write()` sets SignatureHtml/SignatureText and AutoAddSignature/AutoAddSignatureOnReply for the mailbox. Exchange
  keeps one classic signature per mailbox (aliases share it): the reply signature of a template reaches users
  through the Outlook add-in (`/addin/signature?kind=reply`).
- At most `MAILBOX_CONCURRENCY` (4) requests per mailbox are in flight from this process (Exchange's limit per
  app and mailbox); every call carries `X-AnchorMailbox`. Throttling (429 with integer or decimal Retry-After,
  503) becomes `TransientError` with the server's delay and the engine retries.
- Every write reads `Get-MailboxMessageConfiguration` first and writes only if the mailbox does not already carry
  this signature (HTML, text, auto-add flags): resuming after a crash (`verify_first`) never writes a mailbox
  twice, and an unknown mailbox is skipped without spending write quota.

Exchange's `$batch` runs its items one after another on the server, so batching writes would serialise what the
per-mailbox parallelism gets for free; Relais batches on Graph instead (directory photos and managers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from sqlalchemy.orm import object_session
from sqlmodel import select

from service.connections.microsoft import ROAMING_MESSAGE, MicrosoftClient, MicrosoftError, roaming_on
from service.connections.models import ProviderConnection
from service.connections.throttle import Deferred, GaveUp, RetryPolicy, TokenBucket, call_with_retry
from service.directory.models import Employee
from service.settings import Settings
from signatures.deploy.targets.base import (
    AddressResult,
    ConfigurationError,
    MailboxSignature,
    NotVisible,
    Outcome,
    SkipMailbox,
    TargetError,
    TransientError,
    WriteResult,
)

log = logging.getLogger(__name__)

MAILBOX_CONCURRENCY = 4
NOT_FOUND_TYPES = ("ManagementObjectNotFoundException", "RecipientNotFoundException", "couldn't be found")
MAX_SIGNATURE_CHARS = 30_000  # what Outlook keeps; a longer one is cut or refused by clients

_mailbox_slots: dict[str, threading.BoundedSemaphore] = defaultdict(
    lambda: threading.BoundedSemaphore(MAILBOX_CONCURRENCY)
)
_slots_lock = threading.Lock()


def mailbox_slot(mailbox: str) -> threading.BoundedSemaphore:
    """The per-mailbox limit, shared by every Microsoft target in this process (Exchange and Graph count against
    the same per-app-per-mailbox budget)."""
    with _slots_lock:
        return _mailbox_slots[mailbox.lower()]


def translate(exc: MicrosoftError, mailbox: str | None = None) -> TargetError:
    """A Microsoft failure as the engine's vocabulary: retry, skip this mailbox, or stop everything."""
    if exc.transient:
        return TransientError(
            f"Exchange Online is busy ({exc.status or 'network'} {exc.code}): {exc.message}",
            retry_after=exc.retry_after, throttled=exc.status == 429, code=exc.code or str(exc.status),
            service="Exchange Online",
        )  # fmt: skip
    if exc.kind == "config":
        return ConfigurationError(exc.message)
    if exc.status == 401:
        return ConfigurationError(
            "Exchange Online rejected the app's token even after a fresh one was fetched. "
            f"Check the tenant id and the app's Exchange.ManageAsApp consent. ({exc.message})"
        )
    if exc.status == 403:
        return ConfigurationError(
            "Exchange Online refused the app: grant the application permission Exchange.ManageAsApp (with admin "
            "consent) and assign an Entra role to the app's service principal (Exchange Administrator or a role "
            f"group that may run Set-MailboxMessageConfiguration). ({exc.message})"
        )
    if mailbox and (exc.status == 404 or any(t.lower() in exc.message.lower() for t in NOT_FOUND_TYPES)):
        return SkipMailbox(f"No Exchange Online mailbox for {mailbox} (the user may have no licence or mailbox).")
    return TargetError(f"Exchange Online refused the change ({exc.status} {exc.code}): {exc.message}")


class MicrosoftTarget:
    provider = "microsoft"
    confirm_every = 1.0  # seconds between the org-config reads that confirm finished writes (confirm_visible)

    def __init__(self, client: MicrosoftClient, *, concurrency: int = 16, writes_per_second: float | None = None,
                 roaming_recheck: float = 15.0, policy: RetryPolicy | None = None,
                 object_ids: dict[str, str] | None = None):  # fmt: skip
        self.client = client
        # mailbox address -> Entra object id (from the directory sync): the immutable Identity Exchange resolves
        # directly, and survives renames of the UPN. Unknown addresses are sent as they are.
        self.object_ids = {k.lower(): v for k, v in (object_ids or {}).items()}
        self.concurrency = concurrency
        self.writes_per_second = writes_per_second
        self.bucket = TokenBucket(writes_per_second)
        self.roaming_recheck = roaming_recheck
        self.policy = policy or RetryPolicy(max_attempts=5)
        self._roaming_checked_at = 0.0
        self._roaming_lock = threading.Lock()
        self._stopped: ConfigurationError | None = None  # once tripped, no further call reaches Microsoft
        self._written: dict[str, bool] = {}
        self._written_lock = threading.Lock()

    @classmethod
    def from_connection(cls, conn: ProviderConnection, settings: Settings) -> MicrosoftTarget:
        pool = settings.ms_concurrency + 4
        session = object_session(conn)
        object_ids = {}
        if session is not None:
            # object_session() answers SQLAlchemy's Session type, which has no exec()
            rows = session.execute(select(Employee.email, Employee.source_id).where(
                Employee.org_id == conn.org_id, Employee.source == "microsoft")).all()  # fmt: skip
            object_ids = dict(rows)
        return cls(
            MicrosoftClient.from_connection(conn, settings, pool=pool),
            concurrency=settings.ms_concurrency,
            writes_per_second=settings.ms_writes_per_second,
            object_ids=object_ids,
        )

    def _identity(self, mailbox: str) -> str:
        return self.object_ids.get(mailbox.lower(), mailbox)

    # ------------------------------------------------------------ seam

    def check(self) -> list[str]:
        self._check_roaming()
        return []

    def current(self, mailbox: str) -> dict[str, str | None]:
        config, _identity = self._message_configuration(mailbox)
        if config is None:
            return {mailbox: None}
        return {mailbox: config.get("SignatureHtml") or None}

    def write(self, signature: MailboxSignature) -> WriteResult:
        if self._stopped is not None:
            raise self._stopped
        try:
            return self._write(signature)
        except ConfigurationError as exc:
            self._stopped = self._stopped or exc
            raise

    def _write(self, signature: MailboxSignature) -> WriteResult:
        mailbox = signature.mailbox
        if len(signature.html) > MAX_SIGNATURE_CHARS:
            raise SkipMailbox(
                f"The signature is {len(signature.html)} characters; Outlook keeps at most "
                f"{MAX_SIGNATURE_CHARS}. Shorten the template."
            )
        with self._written_lock:
            written_before = self._written.pop(mailbox.lower(), False)
        with mailbox_slot(mailbox):
            if time.monotonic() - self._roaming_checked_at > self.roaming_recheck:
                self._check_roaming()
            # Read first (always, so `verify_first` after a crash is covered too): a mailbox that already
            # carries this signature is not written again, and an unknown mailbox costs no write quota.
            config, identity = self._message_configuration(mailbox)
            if config is None:
                raise SkipMailbox(
                    f"No Exchange Online mailbox for {mailbox} (the user may have no licence or mailbox)."
                )
            if self._carries(config, signature):
                if written_before:  # our earlier attempt landed though its answer was lost
                    return self._results(signature, Outcome.applied, "", writes=0)
                return self._results(signature, Outcome.unchanged, "already carries this signature", writes=0)
            self.bucket.acquire()
            try:
                self.client.invoke("Set-MailboxMessageConfiguration", {
                    "Identity": identity,
                    "SignatureHtml": signature.html,
                    "SignatureText": signature.text,
                    "AutoAddSignature": True,
                    "AutoAddSignatureOnReply": True,
                }, anchor=mailbox)  # fmt: skip
            except MicrosoftError as exc:
                err = translate(exc, mailbox)
                self._note_ambiguous(exc, err, mailbox)
                raise err from exc
        log.info("signatures.deploy.mailbox_written", extra={"provider": self.provider, "mailbox": mailbox})
        return self._results(signature, Outcome.applied, "", writes=1)

    # ------------------------------------------------------------ helpers

    def _note_ambiguous(self, exc: MicrosoftError, err: Exception, mailbox: str) -> None:
        """A write lost to a dropped connection or a 5xx may still have landed: remember it, so the retry
        that finds the signature in place reports it applied rather than unchanged."""
        if isinstance(err, TransientError) and exc.status in (0, 500, 502, 503, 504):
            with self._written_lock:
                self._written[mailbox.lower()] = True

    @staticmethod
    def _results(signature: MailboxSignature, outcome: Outcome, reason: str, *, writes: int) -> WriteResult:
        return WriteResult([AddressResult(a, outcome, reason) for a in signature.addresses], writes=writes)

    @staticmethod
    def _carries(config: dict, signature: MailboxSignature) -> bool:
        return (
            (config.get("SignatureHtml") or "") == signature.html
            and (config.get("SignatureText") or "") == signature.text
            and bool(config.get("AutoAddSignature"))
            and bool(config.get("AutoAddSignatureOnReply"))
        )

    def _message_configuration(self, mailbox: str) -> tuple[dict | None, str]:
        """(Get-MailboxMessageConfiguration, the Identity that found it): by object id first, then by address
        (an object id from an older sync may be stale)."""
        identities = list(dict.fromkeys([self._identity(mailbox), mailbox]))
        for identity in identities:
            try:
                values = self.client.invoke("Get-MailboxMessageConfiguration", {"Identity": identity}, anchor=mailbox)
            except MicrosoftError as exc:
                err = translate(exc, mailbox)
                if isinstance(err, SkipMailbox):
                    continue
                raise err from exc
            if values:
                return values[0], identity
        return None, mailbox

    def _check_roaming(self) -> None:
        """Read Get-OrganizationConfig (with retries for throttling); roaming on → ConfigurationError."""
        with self._roaming_lock:
            if self._roaming_checked_at and time.monotonic() - self._roaming_checked_at <= self.roaming_recheck:
                return
            started = time.monotonic()
            if roaming_on(self._organization_config()):
                log.warning(
                    "signatures.deploy.roaming_on",
                    extra={"provider": self.provider, "tenant_id": self.client.creds.tenant_id},
                )
                raise ConfigurationError(ROAMING_MESSAGE)
            self._roaming_checked_at = started

    def confirm_visible(self) -> NotVisible | None:
        """Called by the engine after writes finished and before they are recorded `applied`: a fresh read of
        Get-OrganizationConfig, started after those writes, must still show roaming signatures postponed.
        Otherwise they are `unconfirmed` (Exchange answered 200, but users of roaming clients may not see them)
        and no further write is sent."""
        started = time.monotonic()
        try:
            config = self._organization_config()
        except ConfigurationError as exc:
            self._stopped = self._stopped or exc
            return NotVisible(
                "written, but the organisation's settings could not be read afterwards to confirm that roaming "
                "signatures are still off",
                f"Stopped writing: could not confirm the writes are visible to users. {exc.message}",
            )
        if roaming_on(config):
            tenant_id = self.client.creds.tenant_id
            log.warning("signatures.deploy.roaming_on", extra={"provider": self.provider, "tenant_id": tenant_id})
            self._stopped = self._stopped or ConfigurationError(ROAMING_MESSAGE)
            return NotVisible(
                "written, but roaming signatures were found ON in the tenant right after: users of Outlook on the "
                "web and the new Outlook may not see it",
                "Stopped writing: roaming signatures were turned on while this deployment was running, so the "
                "mailboxes written since the last check are unconfirmed. " + ROAMING_MESSAGE,
            )
        with self._roaming_lock:
            self._roaming_checked_at = max(self._roaming_checked_at, started)
        return None

    def _organization_config(self) -> dict:
        """Get-OrganizationConfig, retried on throttling; any failure is a ConfigurationError."""

        def read() -> list[dict]:
            try:
                return self.client.invoke("Get-OrganizationConfig")
            except MicrosoftError as exc:
                raise translate(exc) from exc

        try:
            values = call_with_retry(read, policy=self.policy)
        except (GaveUp, Deferred) as exc:
            raise ConfigurationError(
                f"Could not read the organisation's settings from Exchange Online: {exc.last.message}"
            ) from exc
        except TargetError as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"Could not read Get-OrganizationConfig: {exc.message}") from exc
        return values[0] if values else {}
