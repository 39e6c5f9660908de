"""Where a signature goes in one text part: directly above the first quote marker, else at the end.

Quotes nest (each earlier message carries its own markers further down), so only the first marker counts.
The markers are the ones clients write (docs/mail-flow.md): Outlook desktop/web/mobile, Gmail, Apple Mail and
iOS Mail, Thunderbird, and the plain-text attribution lines in English, French and German.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ATTR = r"""\s*=\s*["']?"""
_HTML_MARKERS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"<div\b[^>]*\bid" + _ATTR + r"appendonsend\b",  # new Outlook / Outlook on the web: the signature slot
        r"<div\b[^>]*\bid" + _ATTR + r"divRplyFwdMsg\b",  # Outlook: the header block of the quoted message
        r"<div\b[^>]*\bstyle" + _ATTR + r"[^\"'>]*border-top\s*:\s*solid\s+#(?:E1E1E1|B5C4DF)",  # Outlook (Word)
        r"<div\b[^>]*\bclass" + _ATTR + r"(?:[\w-]+\s+)*gmail_quote\b",  # Gmail
        r"<blockquote\b[^>]*\btype" + _ATTR + r"cite\b",  # Apple Mail, iOS Mail, Thunderbird
        r"<div\b[^>]*\bclass" + _ATTR + r"(?:[\w-]+\s+)*moz-(?:cite-prefix|forward-container)\b",  # Thunderbird
        r"<div\b[^>]*\bclass" + _ATTR + r"(?:[\w-]+\s+)*yahoo_quoted\b",  # Yahoo
    )
]
# Outlook draws its separator rule just before the quoted header block: the signature goes above the rule.
_RULE_BEFORE = re.compile(r"<hr\b[^>]*>\s*$", re.IGNORECASE)
_SENDER_SIGNATURE = re.compile(
    r"""\b(?:id\s*=\s*["']?(?:Signature|ms-outlook-mobile-signature|AppleMailSignature)\b"""
    r"""|class\s*=\s*["']?(?:[\w-]+\s+)*(?:gmail_signature|moz-signature)\b)""",
    re.IGNORECASE,
)
_TAG = re.compile(r"<!--.*?-->|<(/?)([a-zA-Z][\w:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.DOTALL)
_RAW_TEXT = {"style", "script", "title", "textarea"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "o:p"}
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Spot:
    position: int  # index in the decoded text where the signature block is inserted
    quoted: bool  # a quote marker was found: the signature goes above it (reply/forward)


def html_spot(html: str) -> Spot:
    start = 0
    while (first := min((m.start() for p in _HTML_MARKERS if (m := p.search(html, start))), default=None)) is not None:
        rule = _RULE_BEFORE.search(html, start, first)
        position = rule.start() if rule else first
        outside = _outside_sender_signature(html, position)
        if outside == position:
            return Spot(position, True)
        start = outside  # a quote inside the sender's own signature is not the thread: look further on
    body_ends = list(_BODY_END.finditer(html))
    position = body_ends[-1].start() if body_ends else len(html)
    return Spot(_outside_sender_signature(html, position), False)


def _outside_sender_signature(html: str, position: int) -> int:
    """Move `position` past the end of the sender's own signature element when it falls inside one."""
    stack: list[tuple[str, bool]] = []
    pos = 0
    while True:
        match = _TAG.search(html, pos)
        if match is None or match.start() >= position:
            break
        pos = match.end()
        closing, name, attrs = match.group(1), (match.group(2) or "").lower(), match.group(3) or ""
        if not name:
            continue  # comment
        if closing:
            for i in range(len(stack) - 1, -1, -1):
                if stack[i][0] == name:
                    del stack[i:]
                    break
        elif name in _RAW_TEXT:
            close = re.compile(rf"</{name}\s*>", re.IGNORECASE).search(html, pos)
            pos = close.end() if close else len(html)
        elif name not in _VOID and not attrs.rstrip().endswith("/"):
            stack.append((name, bool(_SENDER_SIGNATURE.search(attrs))))
    inside = next((i for i, (_name, is_signature) in enumerate(stack) if is_signature), None)
    if inside is None:
        return position
    depth = len(stack) - inside  # open elements at and below the signature element
    pos = position
    while depth:
        match = _TAG.search(html, pos)
        if match is None:
            return len(html)
        pos = match.end()
        tag = (match.group(2) or "").lower()
        if not tag or tag in _VOID:
            continue
        if match.group(1):
            depth -= 1
        elif not (match.group(3) or "").rstrip().endswith("/"):
            depth += 1
    return pos


# ---------------------------------------------------------------- plain text

_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Forwarded message|Ursprüngliche Nachricht|Weitergeleitete Nachricht"
    r"|Message d['’]origine|Message transféré|Mensaje original|Messaggio originale)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_BEGIN_FORWARDED = re.compile(
    r"^\s*(?:Begin forwarded message|Début du message réexpédié|Anfang der weitergeleiteten Nachricht)\s*:\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(
    r"^\s*(?:On\b.{0,300}\bwrote|Le\b.{0,300}\ba\s+écrit|Am\b.{0,300}\bschrieb\b.{0,300})\s*:\s*$",
    re.IGNORECASE,
)
_HEADER_FIRST = re.compile(r"^\s*\*?(?:From|De|Von)\*?\s?:\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:Sent|Date|Envoyé|Gesendet|Datum|To|À|An|Subject|Objet|Betreff)\*?\s?:", re.IGNORECASE
)
_UNDERLINE = re.compile(r"^\s*_{10,}\s*$")


def text_spot(text: str) -> Spot:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    stripped = [line.rstrip("\r\n").replace("\u00a0", " ") for line in lines]
    for i, line in enumerate(stripped):
        nxt = stripped[i + 1] if i + 1 < len(stripped) else ""
        if _is_marker(line, nxt, stripped[i + 1 : i + 5]):
            return Spot(offsets[i], True)
    return Spot(len(text), False)


def _is_marker(line: str, nxt: str, following: list[str]) -> bool:
    if line.startswith(">"):
        return True
    if _SEPARATOR.match(line) or _BEGIN_FORWARDED.match(line) or _ATTRIBUTION.match(line):
        return True
    if line.lstrip().startswith(("On ", "Le ", "Am ")) and _ATTRIBUTION.match(f"{line} {nxt}"):
        return True  # an attribution wrapped over two lines (Gmail wraps at 78 columns)
    if _HEADER_FIRST.match(line) and any(_HEADER_NEXT.match(f) for f in following):
        return True  # Outlook's "From: / Sent: / To: / Subject:" block
    return bool(_UNDERLINE.match(line) and _HEADER_FIRST.match(nxt))
