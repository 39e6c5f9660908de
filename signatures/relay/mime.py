"""A byte-offset view of a MIME message, so that everything the relay does not change stays byte-identical.

The stdlib parser + generator would re-fold headers and re-serialise parts. Here a message is only located:
each part knows where its headers and body start and end in the original bytes, and the relay splices the
few bodies it rewrites back in between the untouched bytes. No body is copied while locating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MAX_DEPTH = 20  # deeper nesting is not a real client's message: treat the rest as opaque


@dataclass
class Part:
    start: int  # first byte of the part's headers
    body_start: int  # first byte of its body (after the blank line)
    end: int  # one past its last body byte (the CRLF before the next delimiter is not the part's)
    headers: Message
    children: list[Part] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @property
    def is_multipart(self) -> bool:
        return self.headers.get_content_maintype() == "multipart"

    @property
    def is_attachment(self) -> bool:
        disposition = (self.headers.get("Content-Disposition") or "").split(";")[0].strip().lower()
        return disposition == "attachment" or bool(self.headers.get_filename())

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def header_block_end(raw: bytes | memoryview, start: int, end: int) -> tuple[int, int]:
    """(end of the header lines, start of the body) of the entity at raw[start:end]."""
    if raw[start : start + 2] == b"\r\n":  # no headers at all
        return start, start + 2
    if raw[start : start + 1] == b"\n":
        return start, start + 1
    match = _HEADER_END.search(raw, start, end)
    if match is None:
        return end, end
    return match.start(), match.end()


def parse_headers(raw: bytes | memoryview, start: int, end: int) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(bytes(raw[start:end]))


def locate(raw: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> Part:
    """The part tree of raw[start:end] (the whole message by default)."""
    end = len(raw) if end is None else end
    header_end, body_start = header_block_end(raw, start, end)
    part = Part(start=start, body_start=body_start, end=end, headers=parse_headers(raw, start, header_end))
    boundary = part.headers.get_boundary() if part.is_multipart else None
    if boundary and depth < _MAX_DEPTH:
        part.children = [
            locate(raw, child_start, child_end, depth + 1)
            for child_start, child_end in _child_spans(raw, body_start, end, boundary)
        ]
    return part


def _child_spans(raw: bytes, body_start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    # A delimiter is "--boundary" at the start of a line; the line break before it belongs to it (RFC 2046).
    delimiter = re.compile(rb"(?<=\n)--" + re.escape(boundary.encode("ascii", "replace")) + rb"(--)?[ \t]*(\r?\n|\Z)")
    spans: list[tuple[int, int]] = []
    child_start: int | None = None
    for match in delimiter.finditer(raw, body_start, end):  # the lookbehind sees the blank line before the body
        if child_start is not None:
            child_end = match.start() - 1  # the "\n" before "--"
            if child_end > child_start and raw[child_end - 1 : child_end] == b"\r":
                child_end -= 1
            spans.append((child_start, max(child_start, child_end)))
        if match.group(1):  # close-delimiter: the epilogue follows
            return spans
        child_start = match.end()
    if child_start is not None and child_start < end:  # no close-delimiter: the last part runs to the end
        spans.append((child_start, end))
    return spans
