"""Which messages must cross the relay untouched, and why (docs/mail-flow.md lists them for IT).

Every check reads only headers and content types, never a body, so a pass-through costs no decoding.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from enum import StrEnum

from signatures.relay.mime import Part

STAMP_HEADER = "X-Relais-Signed"


class PassReason(StrEnum):
    already_stamped = "already_stamped"
    too_large = "too_large"
    calendar = "calendar"
    auto_reply = "auto_reply"
    read_receipt = "read_receipt"
    delivery_report = "delivery_report"
    signed_or_encrypted = "signed_or_encrypted"
    tnef = "tnef"
    unknown_sender = "unknown_sender"
    sender_mismatch = "sender_mismatch"
    no_text = "no_text"


_SECURE_TYPES = {
    "multipart/signed",  # S/MIME clear-signed and PGP/MIME signed
    "multipart/encrypted",  # PGP/MIME encrypted
    "application/pkcs7-mime",  # S/MIME opaque-signed or enveloped
    "application/x-pkcs7-mime",
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
    "application/pgp-encrypted",
    "application/pgp-signature",
    "application/x-microsoft-rpmsg-message",  # Microsoft Purview (RMS) protected mail
    "application/vnd.ms-office.rpmsg",
}
_CALENDAR_TYPES = {"text/calendar", "application/ics"}
_OOF_SUBJECT = re.compile(
    r"^\s*(automatic reply|réponse automatique|automatische antwort|respuesta automática|risposta automatica)\s*:",
    re.IGNORECASE,
)


def pass_reason(root: Part, *, size: int, max_sign_bytes: int) -> PassReason | None:
    """Why this message must pass untouched, or None when it may be signed."""
    h = root.headers
    if h.get(STAMP_HEADER) is not None:
        return PassReason.already_stamped
    if size > max_sign_bytes:
        return PassReason.too_large
    structural = _structural_reason(root)
    if structural is not None:
        return structural
    if h.get("X-MS-Exchange-Calendar-Series-Instance-Id") is not None or "calendarmessage" in (
        h.get("Content-Class") or ""
    ).lower().replace(" ", ""):
        return PassReason.calendar
    if _is_auto_reply(h):
        return PassReason.auto_reply
    return None


def _structural_reason(root: Part) -> PassReason | None:
    for part in root.walk():
        ctype = part.content_type
        if ctype == "multipart/report":
            report_type = (part.headers.get_param("report-type") or "").lower()
            return PassReason.read_receipt if report_type == "disposition-notification" else PassReason.delivery_report
        if ctype in ("message/disposition-notification",):
            return PassReason.read_receipt
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            return PassReason.delivery_report
        if ctype in _SECURE_TYPES:
            return PassReason.signed_or_encrypted
        if ctype in _CALENDAR_TYPES:
            return PassReason.calendar
        if ctype == "application/ms-tnef" or part.filename.lower() == "winmail.dat":
            return PassReason.tnef
    return None


def _is_auto_reply(h) -> bool:
    auto_submitted = (h.get("Auto-Submitted") or "").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if any(h.get(name) is not None for name in ("X-Autoreply", "X-Autorespond", "Auto-Replied", "X-Autoresponder")):
        return True
    if (h.get("Precedence") or "").strip().lower() == "auto_reply":
        return True
    # Exchange's out-of-office carries no Auto-Submitted. It is written by an inbox rule (OOF rules are
    # server-side rules), which stamps X-MS-Exchange-Inbox-Rules-Loop, and it asks for no auto-replies back
    # (X-Auto-Response-Suppress: All) under an "Automatic reply:" subject in the mailbox's language.
    if h.get("X-MS-Exchange-Inbox-Rules-Loop") is not None:
        return True
    suppress = (h.get("X-Auto-Response-Suppress") or "").lower()
    return "all" in suppress and bool(_OOF_SUBJECT.match(_decoded(h.get("Subject") or h.get("Thread-Topic") or "")))


def _decoded(value) -> str:
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, ValueError, UnicodeDecodeError):
        return str(value)
