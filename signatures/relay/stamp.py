"""One message in, one message out: sign the author's text parts or pass the message through untouched.

The result is a list of byte pieces: the stamp header, then slices of the original message, with only the
rewritten text bodies (and, when their charset or encoding had to change, those parts' own headers) in
between. Every other byte — attachments, inline images, calendar parts, all headers — is the original's.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import getaddresses

from signatures.models import SignatureKind
from signatures.relay.classify import STAMP_HEADER, PassReason, pass_reason
from signatures.relay.mime import Part, header_block_end, locate
from signatures.relay.placement import Spot, html_spot, text_spot

HTML_WRAPPER = '<div class="relais-signature">{}</div>'
MAX_LINE = 998  # RFC 5322: longer lines must travel quoted-printable


@dataclass(frozen=True)
class Signature:
    html: str
    text: str


@dataclass
class Result:
    pieces: list[bytes | memoryview]
    signed: bool
    reason: PassReason | str | None = None  # why it passed through (None when signed; "error" when signing failed)
    kind: SignatureKind | None = None
    parts_signed: int = 0

    def as_bytes(self) -> bytes:
        return b"".join(bytes(p) for p in self.pieces)


def stamp_line(value: str) -> bytes:
    return f"{STAMP_HEADER}: {value}\r\n".encode("ascii")


def passed(raw: bytes | bytearray, reason: PassReason | str) -> Result:
    """The original message with only the stamp header added (none when it already carries one)."""
    view = memoryview(raw)
    if reason == PassReason.already_stamped:
        return Result([view], signed=False, reason=PassReason.already_stamped)
    return Result([stamp_line(f"passed; reason={reason}"), view], signed=False, reason=reason)


def sign_message(
    raw: bytes | bytearray,
    *,
    mail_from: str,
    find_employee: Callable[[str], object | None],
    signature_for: Callable[[object, SignatureKind], Signature],
    max_sign_bytes: int,
) -> Result:
    """Sign `raw` (or say why not). Exceptions propagate: the caller sends the original on unsigned."""
    root = locate(raw)
    reason = pass_reason(root, size=len(raw), max_sign_bytes=max_sign_bytes)
    if reason is not None:
        return passed(raw, reason)
    employee, reason = _identify(root, mail_from, find_employee)
    if reason is not None:
        return passed(raw, reason)
    parts = author_parts(root)
    if not parts:
        return passed(raw, PassReason.no_text)
    texts = [(part, decode_body(raw, part)) for part in parts]
    spots = [html_spot(text) if part.content_type == "text/html" else text_spot(text) for part, text in texts]
    replying = any(s.quoted for s in spots) or any(root.headers.get(h) for h in ("In-Reply-To", "References"))
    kind = SignatureKind.reply if replying else SignatureKind.new
    signature = signature_for(employee, kind)
    view = memoryview(raw)
    pieces: list[bytes | memoryview] = [stamp_line(f"signed; kind={kind.value}")]
    cursor = 0
    for (part, text), spot in zip(texts, spots, strict=True):
        header_bytes, body = _rewrite(raw, part, insert(text, spot, signature, part.content_type))
        if header_bytes is None:
            pieces += [view[cursor : part.body_start], body]
        else:
            pieces += [view[cursor : part.start], header_bytes, body]
        cursor = part.end
    pieces.append(view[cursor:])
    return Result(pieces, signed=True, kind=kind, parts_signed=len(parts))


def _identify(root: Part, mail_from: str, find_employee) -> tuple[object | None, PassReason | None]:
    """The envelope sender must be an employee, and the From header must name that same employee."""
    employee = find_employee(mail_from.strip().lower()) if mail_from else None
    if employee is None:
        return None, PassReason.unknown_sender
    addresses = [a.strip().lower() for _n, a in getaddresses(root.headers.get_all("From", [])) if a]
    if len(addresses) != 1 or find_employee(addresses[0]) != employee:
        return None, PassReason.sender_mismatch
    return employee, None


def author_parts(part: Part) -> list[Part]:
    """The text parts that carry the author's text: every alternative of the body, no attachment."""
    if part.is_multipart:
        if part.content_type == "multipart/alternative":
            return [p for child in part.children for p in author_parts(child)]
        # mixed, related and the rest: the first part is the body, the others are attachments or resources
        return author_parts(part.children[0]) if part.children else []
    if part.content_type in ("text/plain", "text/html") and not part.is_attachment:
        return [part]
    return []


# ---------------------------------------------------------------- one part


def _cte(part: Part) -> str:
    return (part.headers.get("Content-Transfer-Encoding") or "7bit").strip().lower()


def _charset(part: Part) -> str:
    return part.headers.get_content_charset() or "us-ascii"


def decode_body(raw: bytes | bytearray, part: Part) -> str:
    body = bytes(raw[part.body_start : part.end])
    cte = _cte(part)
    if cte == "base64":
        body = base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body))
    elif cte == "quoted-printable":
        body = binascii.a2b_qp(body)
    return body.decode(_charset(part))  # an unknown charset or bad bytes raise: the message passes unsigned


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text or "\n" not in text else "\n"


def insert(text: str, spot: Spot, signature: Signature, content_type: str) -> str:
    """`text` with the signature block at `spot` (the block's shape is what tests look for)."""
    if content_type == "text/html":
        return text[: spot.position] + HTML_WRAPPER.format(signature.html) + text[spot.position :]
    return text[: spot.position] + text_block(text, spot, signature.text) + text[spot.position :]


def text_block(text: str, spot: Spot, signature_text: str) -> str:
    nl = _newline(text)
    sig = nl.join(signature_text.strip("\r\n").splitlines())
    if spot.quoted:  # above the quote, separated from it by a blank line
        return sig + nl + nl
    head = text[: spot.position]
    lead = "" if not head else (nl if head.endswith("\n") else nl + nl)
    return lead + sig + nl


def _rewrite(raw, part: Part, text: str) -> tuple[bytes | None, bytes]:
    """(the part's new header block or None when unchanged, its new encoded body)."""
    charset, cte = _charset(part), _cte(part)
    try:
        data = text.encode(charset)
    except UnicodeEncodeError:
        if part.content_type == "text/html":  # character references keep the declared charset working
            data = text.encode(charset, errors="xmlcharrefreplace")
        else:
            charset, data = "utf-8", text.encode("utf-8")
    new_cte = cte
    if cte in ("7bit", "8bit", "binary") and (
        (cte == "7bit" and not data.isascii()) or any(len(line) > MAX_LINE for line in data.splitlines())
    ):
        new_cte = "quoted-printable"
    if new_cte == "base64":
        original = raw[part.body_start : part.end]
        nl = b"\n" if b"\n" in original and b"\r\n" not in original else b"\r\n"
        body = base64.encodebytes(data).replace(b"\n", nl)
    elif new_cte == "quoted-printable":
        body = binascii.b2a_qp(data, istext=True)
        if b"\n" not in data or b"\r\n" in data:  # b2a_qp breaks lines with "\n" unless it saw CRLF: keep CRLF
            body = re.sub(rb"(?<!\r)\n", b"\r\n", body)
    else:
        body = data
    original_ends_with_newline = raw[part.end - 1 : part.end] == b"\n"
    if not original_ends_with_newline and body.endswith(b"\n") and new_cte == "base64":
        body = body.rstrip(b"\r\n")
    if charset == _charset(part) and new_cte == cte:
        return None, body
    header_end, body_start = header_block_end(raw, part.start, part.end)
    headers = bytes(raw[part.start : header_end])
    if charset != _charset(part):
        headers = _set_charset(headers, charset)
    if new_cte != cte:
        headers = _set_cte(headers, new_cte)
    return headers + bytes(raw[header_end:body_start]), body


_CONTENT_TYPE = re.compile(rb"(?im)^content-type[ \t]*:(?:[^\r\n]*)(?:\r?\n[ \t][^\r\n]*)*")
_CHARSET_PARAM = re.compile(rb"""(?i)(charset[ \t]*=[ \t]*)("[^"]*"|[^;\s]+)""")
_CTE = re.compile(rb"(?im)^(content-transfer-encoding[ \t]*:[ \t]*)([^\r\n]*)")


def _set_charset(headers: bytes, charset: str) -> bytes:
    match = _CONTENT_TYPE.search(headers)
    if match is None:
        return headers + (b"\r\n" if headers else b"") + b"Content-Type: text/plain; charset=" + charset.encode()
    field_bytes = match.group(0)
    if _CHARSET_PARAM.search(field_bytes):
        new_field = _CHARSET_PARAM.sub(lambda m: m.group(1) + charset.encode(), field_bytes, count=1)
    else:
        new_field = field_bytes + b"; charset=" + charset.encode()
    return headers[: match.start()] + new_field + headers[match.end() :]


def _set_cte(headers: bytes, cte: str) -> bytes:
    if _CTE.search(headers):
        return _CTE.sub(lambda m: m.group(1) + cte.encode(), headers, count=1)
    nl = b"\n" if b"\n" in headers and b"\r\n" not in headers else b"\r\n"
    return headers + (nl if headers else b"") + b"Content-Transfer-Encoding: " + cte.encode()


def signing_processor(*, find_employee, signature_for, max_sign_bytes: int):
    """The relay's processor: sign what may be signed (see `sign_message`)."""

    def process(raw: bytearray, mail_from: str) -> Result:
        return sign_message(
            raw,
            mail_from=mail_from,
            find_employee=find_employee,
            signature_for=signature_for,
            max_sign_bytes=max_sign_bytes,
        )

    return process


def forwarding_processor(raw: bytearray, mail_from: str) -> Result:
    """No signing at all: the baseline proxy of bench/relay.py."""
    return Result([memoryview(raw)], signed=False, reason=PassReason.already_stamped)
