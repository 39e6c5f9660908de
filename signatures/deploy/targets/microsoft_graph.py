"""Microsoft 365 target, second transport: Microsoft Graph `userConfiguration` (beta) on `OWA.UserOptions`.

Selected with the connection option `{"write_via": "graph"}` (default `"exchange"`, see `MicrosoftTarget`).

- Same connection, msal tokens and httpx pool as the Exchange target (`MicrosoftClient`), same organisation check:
  `check()` reads `Get-OrganizationConfig` through Exchange's admin REST, and roaming signatures ON stop the
  deployment with the same explanation — a Graph write lands in the same classic-signature store that roaming
  clients ignore. The check is repeated while writing, as for Exchange.
- `write()` is read-merge-write: GET the configuration item; absent (404 `ErrorItemNotFound`) → POST-create it
  with our four entries; present → replace `signaturehtml`, `signaturetext`, `autoaddsignature`,
  `autoaddsignatureonreply` in its `structuredData` and PATCH the WHOLE list back, because a PATCH replaces the
  dictionary: every other entry (time zone, dark mode, ...) is sent back exactly as read. A mailbox that already
  carries this signature (HTML, text, auto-add flags) is not written (`unchanged`).
- `current(mailbox)` reads `signaturehtml`: the read-back used for verification and diffs.
- Errors as for Exchange: 429/5xx (integer or decimal Retry-After) → `TransientError`; unknown user → skipped;
  401/403 → a configuration error naming the `MailboxConfigItem.ReadWrite` permission. At most 4 requests per
  mailbox are in flight from this process, sharing the Exchange target's per-mailbox slots.

Beta: Microsoft does not support /beta in production; use this for read-back, or where Exchange admin REST is not
an option. Read-merge-write is not atomic: an option the user changes between our GET and PATCH is overwritten.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from service.connections.microsoft import MicrosoftError, error_from_response
from signatures.deploy.targets.base import (
    ConfigurationError,
    MailboxSignature,
    Outcome,
    SkipMailbox,
    TargetError,
    TransientError,
    WriteResult,
)
from signatures.deploy.targets.microsoft import MAX_SIGNATURE_CHARS, MicrosoftTarget, mailbox_slot

log = logging.getLogger(__name__)

CONFIG_NAME = "OWA.UserOptions"
SIGNATURE_KEYS = ("signaturehtml", "signaturetext", "autoaddsignature", "autoaddsignatureonreply")
PERMISSION_HELP = (
    "grant the Microsoft Graph application permission MailboxConfigItem.ReadWrite to the app (API permissions → "
    'Microsoft Graph → Application permissions) and click "Grant admin consent"'
)
ABSENT = "ErrorItemNotFound"  # the configuration item does not exist yet (the user does)


def translate_graph(exc: MicrosoftError, mailbox: str | None = None) -> TargetError:
    """A Graph failure as the engine's vocabulary: retry, skip this mailbox, or stop everything."""
    if exc.transient:
        return TransientError(
            f"Microsoft Graph is busy ({exc.status or 'network'} {exc.code}): {exc.message}",
            retry_after=exc.retry_after, throttled=exc.status == 429, code=exc.code or str(exc.status),
            service="Microsoft Graph",
        )  # fmt: skip
    if exc.kind == "config":
        return ConfigurationError(exc.message)
    if exc.status == 401:
        return ConfigurationError(
            "Microsoft Graph rejected the app's token even after a fresh one was fetched: "
            f"check the tenant id, and {PERMISSION_HELP}. ({exc.message})"
        )
    if exc.status == 403:
        return ConfigurationError(
            "Microsoft Graph refused to read or write the mailbox's OWA.UserOptions: "
            f"{PERMISSION_HELP}. ({exc.message})"
        )
    if mailbox and exc.status == 404:
        return SkipMailbox(
            f"No Exchange Online mailbox for {mailbox} in Microsoft Graph (the user may not exist, "
            "or have no licence or mailbox)."
        )
    return TargetError(f"Microsoft Graph refused the change ({exc.status} {exc.code}): {exc.message}")


# ------------------------------------------------------------ structuredData


def entry_key(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    values = (item.get("keyEntry") or {}).get("values") or []
    return str(values[0]) if values else None


def entry_value(item: dict) -> Any:
    value_entry = item.get("valueEntry") or {}
    values = value_entry.get("values") or []
    value = values[0] if values else None
    if str(value_entry.get("type", "")).lower() == "boolean" and value is not None:
        return str(value).strip().lower() == "true"
    return value


def make_entry(key: str, value: str | bool) -> dict:
    if isinstance(value, bool):
        return {
            "keyEntry": {"type": "string", "values": [key]},
            "valueEntry": {"type": "boolean", "values": ["true" if value else "false"]},
        }
    return {"keyEntry": {"type": "string", "values": [key]}, "valueEntry": {"type": "string", "values": [value]}}


def options(structured: list[dict]) -> dict[str, Any]:
    """The dictionary as plain {lower-case key: value} (for comparisons; writes keep the raw entries)."""
    return {key.lower(): entry_value(item) for item in structured if (key := entry_key(item))}


def signature_entries(signature: MailboxSignature) -> dict[str, str | bool]:
    return {
        "signaturehtml": signature.html,
        "signaturetext": signature.text,
        "autoaddsignature": True,
        "autoaddsignatureonreply": True,
    }


def merge(structured: list[dict], updates: dict[str, str | bool]) -> list[dict]:
    """Every entry of `structured` as read, with ours replaced in place (or appended): the whole dictionary, since
    a PATCH replaces it."""
    out, done = [], set()
    for item in structured:
        key = entry_key(item)
        low = key.lower() if key else None
        if low in updates and low not in done:
            out.append(make_entry(low, updates[low]))
            done.add(low)
        elif low in done:  # a duplicate of one of our keys: drop it rather than send two values
            continue
        else:
            out.append(item)
    out.extend(make_entry(k, v) for k, v in updates.items() if k not in done)
    return out


def carries(structured: list[dict], signature: MailboxSignature) -> bool:
    opts = options(structured)
    return MicrosoftTarget._carries(
        {
            "SignatureHtml": opts.get("signaturehtml"),
            "SignatureText": opts.get("signaturetext"),
            "AutoAddSignature": opts.get("autoaddsignature"),
            "AutoAddSignatureOnReply": opts.get("autoaddsignatureonreply"),
        },
        signature,
    )


# ------------------------------------------------------------ target


class GraphUserConfigTarget(MicrosoftTarget):
    """The Exchange target's connection, roaming check, pacing, stop-once and per-mailbox limit, writing through
    Graph `userConfiguration` instead of `Set-MailboxMessageConfiguration`."""

    provider = "microsoft"
    via = "graph"

    def current(self, mailbox: str) -> dict[str, str | None]:
        try:
            with mailbox_slot(mailbox):
                _identity, structured = self._read(mailbox)
        except SkipMailbox:  # no such user: nothing to show
            return {mailbox: None}
        if structured is None:
            return {mailbox: None}
        return {mailbox: options(structured).get("signaturehtml") or None}

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
            identity, structured = self._read(mailbox)  # an unknown user → SkipMailbox, no write quota spent
            if structured is not None and carries(structured, signature):
                if written_before:  # our earlier attempt landed though its answer was lost
                    return self._results(signature, Outcome.applied, "", writes=0)
                return self._results(signature, Outcome.unchanged, "already carries this signature", writes=0)
            self.bucket.acquire()
            try:
                self._store(mailbox, identity, structured, signature_entries(signature))
            except MicrosoftError as exc:
                err = translate_graph(exc, mailbox)
                self._note_ambiguous(exc, err, mailbox)
                raise err from exc
        log.info("signatures.deploy.mailbox_written", extra={"provider": self.provider, "mailbox": mailbox})
        return self._results(signature, Outcome.applied, "", writes=1)

    # ------------------------------------------------------------ Graph calls

    def _url(self, identity: str, name: str | None = CONFIG_NAME) -> str:
        base = f"{self.client.graph}/beta/users/{quote(identity, safe='@')}/mailFolders/root/userConfigurations"
        return f"{base}/{quote(name, safe='')}" if name else base

    def _read(self, mailbox: str) -> tuple[str, list[dict] | None]:
        """(the identity that found the user, OWA.UserOptions' structuredData or None when the item is absent).
        By Entra object id first, then by address (an id from an older sync may be stale). An unknown user →
        SkipMailbox."""
        for identity in dict.fromkeys([self._identity(mailbox), mailbox]):
            resp = self.client.request("GET", self._url(identity), "graph")
            if resp.status_code == 200:
                return identity, list(resp.json().get("structuredData") or [])
            exc = error_from_response(resp)
            if resp.status_code == 404:
                if exc.code == ABSENT:
                    return identity, None
                continue  # no such user under this identity
            raise translate_graph(exc, mailbox) from exc
        raise translate_graph(MicrosoftError(404, "ErrorInvalidUser", f"no user {mailbox}"), mailbox)

    def _store(self, mailbox: str, identity: str, structured: list[dict] | None, updates: dict) -> None:
        """PATCH the merged dictionary, or create the item when it is absent. A create that finds the item made
        meanwhile (409) reads it again and merges, so nothing the mailbox gained in between is dropped."""
        for _ in range(2):
            if structured is None:
                body = {"id": CONFIG_NAME, "structuredData": merge([], updates)}
                resp = self.client.request("POST", self._url(identity, None), "graph", json=body)
                if resp.status_code == 409:
                    identity, structured = self._read(mailbox)
                    continue
            else:
                body = {"structuredData": merge(structured, updates)}
                resp = self.client.request("PATCH", self._url(identity), "graph", json=body)
            if resp.status_code >= 400:
                raise error_from_response(resp)
            return
        raise MicrosoftError(409, "ErrorItemSave", f"{CONFIG_NAME} was created and removed while Relais wrote it")
