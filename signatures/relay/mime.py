"""A byte-offset view of a MIME message, so that everything the relay does not change stays byte-identical.

The stdlib parser + generator would re-fold headers and re-serialise parts. Here a message is only located:
each part knows where its headers and body start and end in the original bytes, and the relay splices the
few bodies it rewrites back in between the untouched bytes. No body is copied while locating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MAX_DEPTH = 20  # deeper nesting is not a real client's message: treat the rest as opaque


@dataclass
class Part:
    start: int  # first byte of the part's headers
    body_start: int  # first byte of its body (after the blank line)
    end: int  # one past its last body byte (the CRLF before the next delimiter is not the part's)
    headers: Message
    content_type: str = "text/plain"
    children: list[Part] = field(default_factory=list)
    _filename: str | None = field(default=None, repr=False)

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def filename(self) -> str:
        if self._filename is None:
            self._filename = self.headers.get_filename() or ""
        return self._filename

    @property
    def is_attachment(self) -> bool:
        disposition = (self.headers.get("Content-Disposition") or "").split(";")[0].strip().lower()
        return disposition == "attachment" or bool(self.filename)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def header_block_end(raw: bytes | bytearray | memoryview, start: int, end: int) -> tuple[int, int]:
    """(end of the header lines, start of the body) of the entity at raw[start:end]."""
    if raw[start : start + 2] == b"\r\n":  # no headers at all
        return start, start + 2
    if raw[start : start + 1] == b"\n":
        return start, start + 1
    match = _HEADER_END.search(raw, start, end)
    if match is None:
        return end, end
    return match.start(), match.end()


def parse_headers(raw: bytes | bytearray | memoryview, start: int, end: int) -> Message:
    """The header fields as the stdlib's compat32 parser stores them (without its per-line feed machinery)."""
    message = Message(policy=compat32)
    name: str | None = None
    value: list[str] = []
    for line in bytes(raw[start:end]).decode("ascii", "surrogateescape").splitlines(keepends=True):
        if line[:1] in (" ", "\t") and name is not None:
            value.append(line)
            continue
        if name is not None:
            message.set_raw(name, "".join(value).rstrip("\r\n"))
        field_name, colon, rest = line.partition(":")
        if not colon or not field_name.strip() or " " in field_name.strip():
            name, value = None, []  # not a header line (the stdlib would call it a defect): ignore it
            continue
        name, value = field_name.rstrip(" \t"), [rest.lstrip(" \t")]
    if name is not None:
        message.set_raw(name, "".join(value).rstrip("\r\n"))
    return message


def locate(raw: bytes | bytearray, start: int = 0, end: int | None = None, depth: int = 0) -> Part:
    """The part tree of raw[start:end] (the whole message by default)."""
    end = len(raw) if end is None else end
    header_end, body_start = header_block_end(raw, start, end)
    headers = parse_headers(raw, start, header_end)
    part = Part(start, body_start, end, headers, content_type=headers.get_content_type())
    boundary = part.headers.get_boundary() if part.is_multipart else None
    if boundary and depth < _MAX_DEPTH:
        part.children = [
            locate(raw, child_start, child_end, depth + 1)
            for child_start, child_end in _child_spans(raw, body_start, end, boundary)
        ]
    return part


def _child_spans(raw: bytes | bytearray, body_start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    """Spans of the parts between "--boundary" lines; the line break before a delimiter belongs to it (RFC 2046)."""
    needle = b"\n--" + boundary.encode("ascii", "replace")
    spans: list[tuple[int, int]] = []
    child_start: int | None = None
    at = body_start - 1  # the body starts right after a line break, so a first delimiter there is found too
    while (at := raw.find(needle, at, end)) != -1:
        tail = at + len(needle)
        closing = raw[tail : tail + 2] == b"--"
        line_end = raw.find(b"\n", tail, end)
        line_end = end if line_end == -1 else line_end + 1
        if raw[tail + (2 if closing else 0) : line_end].strip(b" \t\r\n"):  # "--boundaryX": not a delimiter
            at = tail
            continue
        if child_start is not None:
            child_end = at - 1 if at > child_start and raw[at - 1 : at] == b"\r" else at
            spans.append((child_start, max(child_start, child_end)))
        if closing:  # the epilogue follows
            return spans
        child_start = line_end
        at = line_end - 1
    if child_start is not None and child_start < end:  # no close-delimiter: the last part runs to the end
        spans.append((child_start, end))
    return spans
