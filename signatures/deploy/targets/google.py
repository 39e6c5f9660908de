"""Gmail signatures through the Gmail API (`users.settings.sendAs`), acting as each mailbox by domain-wide
delegation.

Per mailbox: one `sendAs.list`, then a `sendAs.patch` only for the addresses (primary first, then aliases
that are send-as addresses) whose signature differs from the HTML to deploy. Reading before writing is
what makes a retry or a resumed deployment safe: an address that already carries the HTML is reported
`unchanged` and never written again. Gmail applies a signature to new mail only, so the new-mail signature
(`html`) is written.

Errors are mapped to the seam's exceptions: throttling, 5xx and dropped connections are transient (with
Google's Retry-After honoured, from the header or the "Retry after <time>" message); a user without a
mailbox, unknown to Google, or whose signature is over Gmail's limit is skipped with the reason; missing
delegation, scopes or a disabled API stop the deployment once with one message.
"""

from __future__ import annotations

import logging
import threading

from service.connections.google import GoogleClient
from service.connections.throttle import TokenBucket
from service.settings import Settings
from signatures.deploy.targets.base import (
    AddressResult,
    ConfigurationError,
    MailboxSignature,
    Outcome,
    SkipMailbox,
    TargetError,
    TransientError,
    WriteResult,
)

log = logging.getLogger(__name__)

MAX_SIGNATURE_CHARS = 10_000


def signature_too_long(length: int) -> str:
    return (
        f"signature is {length:,} characters; Gmail's limit is 10,000 — shorten the template (fewer "
        "or shorter blocks, no inline styles repeated per cell) or the employee's fields"
    )


class GoogleTarget:
    provider = "google"

    def __init__(self, client: GoogleClient, *, concurrency: int = 16, writes_per_second: float | None = 190.0):
        self.client = client
        self.concurrency = concurrency
        self.writes_per_second = writes_per_second
        self.bucket = TokenBucket(writes_per_second)
        # Addresses written by an attempt that then failed transiently: reported `applied` (and counted)
        # when the engine's retry finds them already carrying the signature.
        self._written: dict[str, set[str]] = {}
        self._written_lock = threading.Lock()

    @classmethod
    def from_connection(cls, conn, settings: Settings) -> GoogleTarget:
        try:
            client = GoogleClient.from_connection(conn, settings)
        except ValueError as exc:  # an unreadable private key
            raise ConfigurationError(f"The service-account key could not be loaded ({exc}); upload it again.") from None
        return cls(client, concurrency=settings.google_concurrency, writes_per_second=settings.google_writes_per_second)

    # ------------------------------------------------------------------ seam

    def check(self) -> list[str]:
        subject = self.client.admin_subject
        try:
            self.client.token(subject, "gmail")
        except Exception as exc:  # noqa: BLE001 - classified below
            problem = self.client.explain(exc, subject=subject)
            if problem.kind == "transient":
                return [
                    f"Could not check the Google credentials before starting ({problem.message}); mailboxes "
                    "are retried as usual."
                ]
            raise ConfigurationError(problem.message) from None
        return []

    def current(self, mailbox: str) -> dict[str, str | None]:
        return {entry["sendAsEmail"]: entry.get("signature") or None for entry in self._send_as(mailbox)}

    def write(self, signature: MailboxSignature) -> WriteResult:
        mailbox = signature.mailbox
        entries = {e["sendAsEmail"].lower(): e for e in self._send_as(mailbox)}
        result = WriteResult()
        too_long = len(signature.html) > MAX_SIGNATURE_CHARS
        with self._written_lock:
            written_before = self._written.pop(mailbox.lower(), set())
        patch = self.client.resource("gmail", "users", "settings", "sendAs").patch
        sending = None
        landed_earlier = 0  # writes of an earlier attempt found in place now
        try:
            for address in signature.addresses:
                entry = entries.get(address.lower())
                if entry is None:
                    result.results.append(
                        AddressResult(
                            address, Outcome.skipped, f"{address} is not a Gmail send-as address of {mailbox}"
                        )
                    )
                    continue
                if (entry.get("signature") or "") == signature.html:
                    if address.lower() in written_before:
                        landed_earlier += 1
                        result.results.append(AddressResult(address, Outcome.applied))
                    else:
                        result.results.append(AddressResult(address, Outcome.unchanged, "already up to date"))
                    continue
                if too_long:
                    raise SkipMailbox(signature_too_long(len(signature.html)))
                self.bucket.acquire()
                sending = address.lower()
                self._call(
                    patch(userId=mailbox, sendAsEmail=entry["sendAsEmail"], body={"signature": signature.html}),
                    mailbox,
                    length=len(signature.html),
                )
                result.writes += 1
                result.results.append(AddressResult(address, Outcome.applied))
                sending = None
        except TransientError:
            # Remember what this attempt wrote, and the write in flight (its response may be lost after it
            # landed): a retry that finds those addresses up to date reports them applied, not unchanged.
            written = {r.address.lower() for r in result.results if r.outcome is Outcome.applied}
            written |= written_before | ({sending} if sending else set())
            # (an address whose write was refused, 429 say, is in `sending` too: harmless, since a retry that
            # finds it different writes it and counts that write, not this one)
            if written:  # remember them for the retry, which will find them already written
                with self._written_lock:
                    self._written[mailbox.lower()] = written
            raise
        result.writes += landed_earlier
        return result

    # ------------------------------------------------------------------ Gmail calls

    def _send_as(self, mailbox: str) -> list[dict]:
        api = self.client.resource("gmail", "users", "settings", "sendAs")
        return self._call(api.list(userId=mailbox), mailbox).get("sendAs", [])

    def _call(self, request, mailbox: str, *, length: int | None = None) -> dict:
        try:
            return self.client.execute(request, subject=mailbox, kind="gmail")
        except Exception as exc:  # noqa: BLE001 - classified into the seam's exceptions
            raise self._error(exc, mailbox, length=length) from exc

    def _error(self, exc: BaseException, mailbox: str, *, length: int | None) -> TargetError:
        problem = self.client.explain(exc, subject=mailbox)
        if problem.kind == "transient":
            log.info(
                "signatures.deploy.transient_error",
                extra={
                    "provider": self.provider,
                    "mailbox": mailbox,
                    "status": problem.status,
                    "reason": problem.reason,
                    "retry_after": problem.retry_after,
                },
            )
            return TransientError(
                problem.message, problem.retry_after, pause_all=not problem.per_user, code=problem.reason,
                throttled=problem.throttled, service="Gmail",
            )  # fmt: skip
        if problem.kind == "mailbox":
            return SkipMailbox(problem.message)
        if problem.kind == "configuration":
            return ConfigurationError(problem.message)
        if length is not None and problem.status == 400 and problem.reason == "invalidArgument":
            return SkipMailbox(signature_too_long(length) + f" (Gmail: {problem.message})")
        return TargetError(problem.message)
