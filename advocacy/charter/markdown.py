"""The charter's Markdown, rendered as passages.

A *passage* is one top-level block of the document: a heading, a paragraph, a list, a quote, a table, a code
block. Each gets an anchor id derived from its own text (``p-`` and 10 hex digits of its SHA-256; a repeated
identical block gets ``-2``, ``-3``...), so a passage keeps its id when other passages are added, removed or
moved, and comments stay attached to it; rewording a passage gives it a new id, and its comments are then shown
as "on an earlier wording", with the words they were about.

Rendering: markdown-it-py in CommonMark mode with raw HTML off, then each block's HTML through the one sanitizer
(service.sanitize.clean_document: no scripts, no styles, http(s) links only).
"""

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from service.sanitize import clean_document

QUOTE_CHARS = 160


@dataclass(frozen=True)
class Passage:
    id: str
    html: str  # sanitized
    text: str  # its plain words (the quote a comment keeps)
    heading: bool


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def _blocks(tokens: list[Token]) -> list[list[Token]]:
    """Split the token stream into top-level blocks (an opening token at level 0 up to its closing one)."""
    blocks: list[list[Token]] = []
    current: list[Token] = []
    depth = 0
    for tok in tokens:
        current.append(tok)
        depth += tok.nesting
        if depth == 0:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _text(block: list[Token]) -> str:
    words = []
    for tok in block:
        if tok.type == "inline" and tok.children is not None:
            words.append("".join(c.content for c in tok.children if c.type in ("text", "code_inline", "softbreak")))
        elif tok.type in ("fence", "code_block"):
            words.append(tok.content)
    return " ".join(" ".join(words).split())


def passages(markdown: str) -> list[Passage]:
    md = _parser()
    tokens = md.parse(markdown or "")
    out: list[Passage] = []
    seen: dict[str, int] = {}
    for block in _blocks(tokens):
        text = _text(block)
        source = text or "".join(t.markup for t in block)  # a rule (---) has no words
        base = "p-" + hashlib.sha256(f"{block[0].type}\x1f{source}".encode()).hexdigest()[:10]
        seen[base] = seen.get(base, 0) + 1
        anchor = base if seen[base] == 1 else f"{base}-{seen[base]}"
        html = clean_document(md.renderer.render(block, md.options, {}))
        out.append(Passage(anchor, html, text, block[0].type == "heading_open"))
    return out


def quote_of(text: str) -> str:
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1].rstrip() + "…"
