"""Signature templates → email-client-safe HTML and plain text. The ONE rendering path.

Preview, export and deployment all go through :func:`compile_template` (once per template version)
and :func:`render` (once per employee):

* compile time: the template's ``<style>`` CSS is inlined with premailer. Jinja syntax is protected
  first — expressions inside attribute values and CSS become alphanumeric placeholders, everything
  between elements or in text becomes an HTML comment placeholder — so lxml neither percent-encodes
  ``{{ x }}`` in ``href``/``src`` nor moves ``{% if %}`` blocks between ``<tr>`` rows. After inlining
  the placeholders are restored and checked (each statement exactly once, in order) and the result is
  compiled with a sandboxed, autoescaping Jinja environment. A plain-text template is derived from the
  same protected tree and compiled with a non-escaping sandbox.
* render time: only Jinja runs (HTML + text), the text gets one regex pass, and the pair is hashed.

:func:`render_naive` (Jinja, then premailer on every signature) is the slow reference for tests.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import jinja2
import premailer
from jinja2 import StrictUndefined, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from lxml import etree
from lxml import html as lxml_html
from markupsafe import Markup

from service.errors import Invalid
from service.sentences import N_
from signatures import budget
from signatures.budget import BudgetExceeded
from signatures.context import BannerData, BrandData, EmployeeData, SocialLink

__all__ = [
    "CompiledTemplate",
    "RenderedSignature",
    "TemplateCompileError",
    "TemplateError",
    "TemplateRenderError",
    "compile_template",
    "compiled_for",
    "render",
    "render_naive",
    "clear_compiled_cache",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- errors


class TemplateError(Invalid):
    """One family for everything wrong with a template: it does not compile, or it fails when rendered
    (unknown name, something the sandbox forbids). ``line`` is 1-based in the author's source (None when
    unknown); ``rule`` says which kind (``compile`` or ``render``)."""

    code = "template_invalid"
    rule = "template"

    def __init__(self, line: int | None, reason: str):
        self.line = line
        self.reason = reason
        message = N_("line %(line)s: %(reason)s", line=line, reason=reason) if line else reason
        super().__init__(message, details={"line": line, "reason": reason, "rule": self.rule})


class TemplateCompileError(TemplateError):
    """The template cannot be compiled."""

    rule = "compile"


class TemplateRenderError(TemplateError):
    """The template compiled but failed for this data (unknown variable, unsafe access, bad filter input)."""

    rule = "render"


# ---------------------------------------------------------------- environments


def _finalize_html(value: Any) -> Any:
    return "" if value is None else value


def _finalize_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Markup):  # e.g. the (sanitized) disclaimer: show its text, not its tags
        return value.striptags()
    return value


def _public_attrs(cls: type) -> frozenset[str]:
    names = set(getattr(cls, "__dataclass_fields__", ()))
    names.update(n for n, v in vars(cls).items() if isinstance(v, property))
    assert not any(n.startswith("_") for n in names)
    return frozenset(names)


# The context's own dataclasses: their public fields and properties are plain data, so reading them needs
# none of the sandbox's per-access checks (which are most of the render cost). Anything else — methods,
# dunder attributes, other types — still goes through the full sandbox.
_FAST_ATTRS: dict[type, frozenset[str]] = {
    cls: _public_attrs(cls) for cls in (EmployeeData, BrandData, BannerData, SocialLink)
}


# str methods whose numeric arguments are sizes of the result (and "replace", whose growth is estimated)
_SIZED_METHODS = frozenset(("ljust", "rjust", "center", "zfill", "expandtabs"))
# filters whose numeric arguments are sizes (widths, counts) of what they build
_SIZED_FILTERS = frozenset(("center", "indent", "wordwrap", "truncate", "batch", "slice"))


def _guard_filter(name: str, func: Any) -> Any:
    """A built-in filter that counts against the render budget and refuses to build oversized values."""
    offset = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context/env/eval_ctx first

    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget.step()
        value, rest = args[offset] if len(args) > offset else None, args[offset + 1 :]
        if name in _SIZED_FILTERS:
            budget.check_arguments(rest, kwargs)
        elif name == "format" and isinstance(value, str):
            budget.check_format_string(value)
        elif name == "replace":
            budget.check_replace(value, rest)
        elif name in ("join", "sum") and isinstance(value, (list, tuple)):
            budget.check_total(value)
        return budget.check_value(func(*args, **kwargs))

    guarded.__dict__.update(getattr(func, "__dict__", {}))  # keeps Jinja's pass_context/pass_environment marker
    guarded.__name__ = getattr(func, "__name__", name)
    return guarded


_Tree = TypeVar("_Tree", bound=nodes.Node)


def _budget_loops(node: _Tree) -> _Tree:
    """Route every {% for %} loop's iterable through the render budget."""
    for loop in node.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.EnvironmentAttribute("budget_iter"), [loop.iter], [], None, None)
    return node


class SignatureSandbox(SandboxedEnvironment):
    # operators that can build huge values in one step are checked (and never constant-folded at compile time)
    intercepted_binops = frozenset(("**", "*", "+", "%", "//"))
    budget_iter = staticmethod(budget.guarded_iter)

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _budget_loops(super()._parse(source, name, filename))

    def getattr(self, obj: Any, attribute: str) -> Any:
        allowed = _FAST_ATTRS.get(type(obj))
        if allowed is not None and attribute in allowed:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget.step()
        budget.check_binop(operator, left, right)
        return budget.check_value(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        budget.step()
        target = getattr(__obj, "__self__", None)
        if isinstance(target, str):
            method = getattr(__obj, "__name__", "")
            if method in _SIZED_METHODS:
                budget.check_arguments(args, kwargs)
            elif method == "replace":
                budget.check_replace(target, args)
            elif method == "join" and args and isinstance(args[0], (list, tuple)):
                budget.check_total(args[0])
        return budget.check_value(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            budget.check_format_string(value.__self__)  # "{:999999999}".format(...) allocates its width
        return wrapped


def _make_env(*, autoescape: bool) -> SandboxedEnvironment:
    # No loader: templates are user-edited, so no {% include %}/{% import %}/{% extends %} of server files.
    return SignatureSandbox(
        autoescape=autoescape,
        undefined=StrictUndefined,
        finalize=_finalize_html if autoescape else _finalize_text,
        keep_trailing_newline=False,
        auto_reload=False,
        cache_size=0,
    )


HTML_ENV = _make_env(autoescape=True)
TEXT_ENV = _make_env(autoescape=False)


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    source: str  # what the author wrote
    html_source: str  # CSS inlined, Jinja restored: what runs per employee
    text_source: str  # the derived plain-text template
    html_template: jinja2.Template
    text_template: jinja2.Template


@dataclass(frozen=True, slots=True)
class RenderedSignature:
    html: str
    text: str
    content_hash: str  # sha256 hex of html + "\0" + text


# ---------------------------------------------------------------- Jinja protection

# {{ ... }}, {% ... %} and {# ... #}, skipping quoted strings so "}}" inside a literal does not end a tag.
_JINJA_RE = re.compile(
    r"""\{\{(?:[^'"}]|'[^']*'|"[^"]*"|\}(?!\}))*\}\}"""
    r"""|\{%(?:[^'"%]|'[^']*'|"[^"]*"|%(?!\}))*%\}"""
    r"""|\{\#.*?\#\}""",
    re.S,
)
_TOKEN_PREFIX = "rlxq"  # noqa: S105 - a placeholder prefix, not a secret
_TOKEN_RE = re.compile(r"<!--(rlxq\d{5}z)-->|(rlxq\d{5}z)")
_STYLE_BLOCK_RE = re.compile(r"<style\b[^>]*>.*?</style\s*>", re.S | re.I)
_BODY_RE = re.compile(r"<body\b[^>]*>(.*)</body>", re.S | re.I)


@dataclass(slots=True)
class _Protected:
    html: str  # the source with placeholders
    originals: dict[str, str]  # token -> original Jinja text
    statements: list[str]  # statement tokens in source order (each must survive exactly once)
    # expression tokens in text/between elements: must survive. (Ones in CSS may vanish legitimately, e.g.
    # an attribute overwritten by a CSS width, exactly as render-then-inline would do.)
    expressions: list[str]


def _line_of(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def _protect(source: str) -> _Protected:
    """Replace Jinja syntax with placeholders that survive lxml + premailer untouched."""
    if _TOKEN_PREFIX in source:
        raise TemplateCompileError(None, N_("the text %(text)r is reserved; remove it", text=_TOKEN_PREFIX))
    out: list[str] = []
    originals: dict[str, str] = {}
    statements: list[str] = []
    expressions: list[str] = []
    state = "data"  # data | tag | dq | sq | comment | style
    pos = 0

    def scan(chunk: str, state: str) -> str:
        i, n = 0, len(chunk)
        while i < n:
            c = chunk[i]
            if state == "data":
                if chunk.startswith("<!--", i):
                    state, i = "comment", i + 4
                    continue
                if c == "<" and i + 1 < n and (chunk[i + 1].isalpha() or chunk[i + 1] in "/!?"):
                    if chunk[i : i + 6].lower() == "<style":
                        end = chunk.find(">", i)
                        if end == -1:
                            return "tag_style"
                        state, i = "style", end + 1
                        continue
                    state = "tag"
            elif state in ("tag", "tag_style"):
                if c == '"':
                    state = "dq" if state == "tag" else "dq_style"
                elif c == "'":
                    state = "sq" if state == "tag" else "sq_style"
                elif c == ">":
                    state = "data" if state == "tag" else "style"
            elif state in ("dq", "dq_style"):
                if c == '"':
                    state = "tag" if state == "dq" else "tag_style"
            elif state in ("sq", "sq_style"):
                if c == "'":
                    state = "tag" if state == "sq" else "tag_style"
            elif state == "comment":
                if chunk.startswith("-->", i):
                    state, i = "data", i + 3
                    continue
            elif state == "style" and chunk[i : i + 7].lower() == "</style":
                state = "tag"
            i += 1
        return state

    by_text: dict[str, str] = {}  # identical expressions share a token (premailer copies CSS to attributes)
    for n, m in enumerate(_JINJA_RE.finditer(source)):
        state = scan(source[pos : m.start()], state)
        out.append(source[pos : m.start()])
        pos = m.end()
        text = m.group(0)
        if text.startswith("{#"):
            continue  # Jinja comments render nothing
        is_statement = text.startswith("{%")
        token = f"{_TOKEN_PREFIX}{n:05d}z"
        if not is_statement:
            token = by_text.setdefault(text, token)
        originals[token] = text
        line = _line_of(source, m.start())
        if state in ("tag", "tag_style", "dq_style", "sq_style") or (is_statement and state in ("dq", "sq")):
            kind = "statement" if is_statement else "expression"
            raise TemplateCompileError(
                line,
                N_(
                    "Jinja %(kind)s %(text)r inside a tag's attribute list is not supported: put expressions "
                    'inside a quoted attribute value (href="{{ url }}"), use an inline if '
                    '(style="color:{{ a if c else b }}"), or wrap the whole element in {%% if %%}…{%% endif %%}',
                    kind=kind,
                    text=text,
                ),
            )
        if state == "style":
            if is_statement:
                raise TemplateCompileError(
                    line,
                    N_(
                        "Jinja statement %(text)r inside <style> is not supported: CSS is inlined once per "
                        "template version; use expressions only (color: {{ brand.primary_color }})",
                        text=text,
                    ),
                )
            out.append(token)
        elif state in ("dq", "sq", "comment"):
            out.append(token)
        else:  # data: between elements or in text
            out.append(f"<!--{token}-->")
            (statements if is_statement else expressions).append(token)
    out.append(source[pos:])
    return _Protected("".join(out), originals, statements, expressions)


def _restore(text: str, protected: _Protected) -> str:
    originals = protected.originals
    return _TOKEN_RE.sub(lambda m: originals[m.group(1) or m.group(2)], text)


# Common subexpressions: `{{ brand.primary_color }}` may be repeated in a dozen inlined style attributes and
# `employee.phone` read in three tests. A one-level attribute read of a context name (employee, brand,
# banner) that occurs twice or more is evaluated once at the top instead. That is equivalent: the context
# holds frozen dataclasses or None, and reading an attribute of either never raises (on None it yields an
# Undefined that fails only where it is used, exactly as before).
_READ_RE = re.compile(r"(?<![\w.])(?:employee|brand|banner)\.[A-Za-z][A-Za-z0-9_]*\b(?!\s*\()")
_STRING_RE = re.compile(r"""('[^']*'|"[^"]*")""")
_CONTEXT_NAMES = frozenset(("employee", "brand", "banner"))


def _hoist(src: str) -> str:
    counts: dict[str, int] = {}
    for m in _JINJA_RE.finditer(src):
        if m.group(0).startswith("{#"):
            continue
        for code in _STRING_RE.split(m.group(0))[::2]:
            for r in _READ_RE.finditer(code):
                counts[r.group(0)] = counts.get(r.group(0), 0) + 1
    names = {read: f"_rlx_h{i}" for i, read in enumerate(r for r, n in counts.items() if n >= 2)}
    if not names:
        return src

    def rewrite(m: re.Match[str]) -> str:
        tag = m.group(0)
        if tag.startswith("{#"):
            return tag
        parts = _STRING_RE.split(tag)
        for i in range(0, len(parts), 2):
            parts[i] = _READ_RE.sub(lambda r: names.get(r.group(0), r.group(0)), parts[i])
        return "".join(parts)

    prefix = "".join(f"{{% set {name} = {read} %}}" for read, name in names.items())
    return prefix + _JINJA_RE.sub(rewrite, src)


def _can_hoist(ast: nodes.Template) -> bool:
    """Not when the template rebinds a context name or defines macros (their own scope)."""
    for node in ast.find_all((nodes.Name, nodes.Macro, nodes.CallBlock)):
        if not isinstance(node, nodes.Name) or (node.name in _CONTEXT_NAMES and node.ctx in ("store", "param")):
            return False
    return True


def _check_tokens(inlined: str, protected: _Protected, source: str) -> None:
    seen = [m.group(1) or m.group(2) for m in _TOKEN_RE.finditer(inlined)]
    stmt_set = set(protected.statements)
    stmts_seen = [t for t in seen if t in stmt_set]
    if stmts_seen != protected.statements:
        missing = [t for t in protected.statements if t not in stmts_seen] or protected.statements
        tok = missing[0]
        raise TemplateCompileError(
            _line_of(source, source.find(protected.originals[tok])),
            N_(
                "the HTML around %(text)r is malformed: the statement moved or vanished while inlining CSS "
                "(check unclosed tags and that Jinja blocks wrap whole elements)",
                text=protected.originals[tok],
            ),
        )
    seen_set = set(seen)
    for tok in protected.expressions:
        if tok not in seen_set:
            raise TemplateCompileError(
                _line_of(source, source.find(protected.originals[tok])),
                N_(
                    "the expression %(text)r vanished while inlining CSS (check unclosed tags around it)",
                    text=protected.originals[tok],
                ),
            )


# ---------------------------------------------------------------- CSS inlining (premailer)


def _inline_fragment(fragment: str, statements: frozenset[str] = frozenset()) -> str:
    """Inline a fragment's <style> CSS into style attributes; return the body content only."""
    styles = "".join(_STYLE_BLOCK_RE.findall(fragment))
    body = _STYLE_BLOCK_RE.sub("", fragment)
    doc = f"<html><head>{styles}</head><body>{body}</body></html>"
    out = premailer.Premailer(
        doc,
        remove_classes=True,
        keep_style_tags=False,
        strip_important=True,
        disable_validation=True,
        disable_leftover_css=True,
        allow_network=False,
        allow_loading_external_files=False,
        exclude_pseudoclasses=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)
    m = _BODY_RE.search(out)
    return _minify(m.group(1) if m else "", statements)


_WS_RE = re.compile(r"[ \t\n\r\f]+")  # not \s: a &nbsp; (U+00A0) is meant
_BLOCK_TAG = r"</?(?:table|tbody|thead|tfoot|tr|td|th|div|p|br|h[1-6])\b[^>]*>"
_BLOCK_WS_RE = re.compile(rf"[ \t\n\r\f]*({_BLOCK_TAG})[ \t\n\r\f]*", re.I)
# placeholders sitting between two block tags (e.g. {% endif %} {% if %} between rows): drop the spaces
_BETWEEN_BLOCKS_RE = re.compile(
    rf"({_BLOCK_TAG})((?:[ \t\n\r\f]*<!--{_TOKEN_PREFIX}\d{{5}}z-->)+)[ \t\n\r\f]*(?={_BLOCK_TAG})", re.I
)
_COMMENT_TOKEN_RE = re.compile(rf"<!--({_TOKEN_PREFIX}\d{{5}}z)-->")
_SPACE_RE = re.compile(r"[ \t\n\r\f]+")


def _minify(html: str, statements: frozenset[str] = frozenset()) -> str:
    """Collapse whitespace (the signature size budget is tight); keep one space between inline elements."""
    html = _BLOCK_WS_RE.sub(r"\1", _WS_RE.sub(" ", html))
    if statements:

        def squeeze(m: re.Match[str]) -> str:
            run = m.group(2)
            if all(t in statements for t in _COMMENT_TOKEN_RE.findall(run)):
                return m.group(1) + _SPACE_RE.sub("", run)
            return m.group(0)

        html = _BETWEEN_BLOCKS_RE.sub(squeeze, html)
    return html.strip()


# ---------------------------------------------------------------- HTML → text template

_BLOCK_TAGS = frozenset(
    ("table", "tbody", "thead", "tfoot", "tr", "div", "p", "h1", "h2", "h3", "h4", "h5", "h6")
    + ("ul", "ol", "li", "blockquote", "center", "address", "hr")
)
_CELL_TAGS = frozenset(("td", "th"))
_SKIP_TAGS = frozenset(("style", "script", "head", "title", "template"))
_SCHEME_RE = re.compile(r"^(?:mailto:|tel:|sms:|https?://)(?:www\.)?", re.I)


def _norm_url(s: str) -> str:
    return _SCHEME_RE.sub("", s.strip()).rstrip("/").lower()


class _TextBuilder:
    """Walks the protected, inlined tree and writes the plain-text rendition (placeholders kept)."""

    def __init__(self, protected: _Protected, text_hrefs: set[str]):
        self.statements = set(protected.statements)
        self.text_hrefs = text_hrefs  # hrefs of links that have visible text

    def visible(self, label: str) -> bool:
        rest = _COMMENT_TOKEN_RE.sub(lambda m: "" if m.group(1) in self.statements else "x", label)
        return bool(rest.strip())

    def element(self, el: Any, out: list[str]) -> None:
        tag = el.tag
        if tag is etree.Comment:
            body = el.text or ""
            if body.startswith(_TOKEN_PREFIX):
                out.append(f"<!--{body}-->")
            return
        if not isinstance(tag, str) or tag.lower() in _SKIP_TAGS:
            return
        tag = tag.lower()
        if tag == "br":
            out.append("\n")
        elif tag == "img":
            return  # images carry no text, except as the label of an image-only link (banner)
        elif tag == "a":
            self.link(el, out)
        else:
            block = tag in _BLOCK_TAGS or tag in _CELL_TAGS
            if block:
                out.append("\n")
            self.children(el, out)
            if block:
                out.append("\n")

    def children(self, el: Any, out: list[str]) -> None:
        if el.text:
            out.append(el.text)
        for child in el:
            self.element(child, out)
            if child.tail:
                out.append(child.tail)

    def link(self, el: Any, out: list[str]) -> None:
        parts: list[str] = []
        self.children(el, parts)
        label = "".join(parts)
        href = (el.get("href") or "").strip()
        if not self.visible(label):
            # image-only link: a banner says what it is and where it goes; a logo repeating a link already in
            # the text (the website) adds nothing
            alts = " ".join(img.get("alt", "") for img in el.iter("img") if img.get("alt"))
            if not alts or _norm_url(href) in self.text_hrefs:
                out.append(label)  # keeps the statements
                return
            label = f"{label}{alts}"
        bare_label = _COMMENT_TOKEN_RE.sub(r"\1", label)
        plain = not href or href.startswith("#") or href.lower().startswith(("tel:", "sms:", "javascript:"))
        if plain or _norm_url(bare_label) == _norm_url(href):
            out.append(label)
        else:
            shown = href[7:] if href.lower().startswith("mailto:") else href
            out.append(f"{label} <{shown}>")


def _text_hrefs(root: Any, builder_probe: _TextBuilder) -> set[str]:
    hrefs = set()
    for a in root.iter("a"):
        parts: list[str] = []
        builder_probe.children(a, parts)
        if builder_probe.visible("".join(parts)):
            hrefs.add(_norm_url(a.get("href") or ""))
    return hrefs


_TXT_SPACES_RE = re.compile(r"[ \t\r\f\v\xa0]+")
_TXT_LINES_RE = re.compile(r" ?\n[ \n]*")


def _text_template(inlined_protected: str, protected: _Protected) -> str:
    root = lxml_html.fragment_fromstring(inlined_protected or "<div></div>", create_parent="div")
    builder = _TextBuilder(protected, set())
    builder.text_hrefs = _text_hrefs(root, builder)
    parts: list[str] = []
    builder.children(root, parts)
    text = "".join(parts)
    text = _TXT_SPACES_RE.sub(" ", text)
    text = _TXT_LINES_RE.sub("\n", text).strip()
    return _restore(text, protected)


# Per render: drop blank lines, separator-only lines and separators dangling at either end of a line
# (a split/strip/join is ~10x cheaper than one regex over the text).
_TEXT_STRIP = " \t|·•"


def _clean_text(raw: str) -> str:
    return "\n".join(filter(None, [line.strip(_TEXT_STRIP) for line in raw.split("\n")]))


# ---------------------------------------------------------------- compile


# C0 controls other than tab, LF and CR, DEL and C1 controls: invisible, and refused by lxml and mail clients
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _check_source(source: str) -> None:
    if len(source) > budget.MAX_SOURCE_CHARS:
        size, limit = f"{len(source):,}", f"{budget.MAX_SOURCE_CHARS:,}"
        raise TemplateCompileError(
            None,
            N_("the template is %(size)s characters long; the limit is %(limit)s", size=size, limit=limit),
        )
    bad = _CONTROL_RE.search(source)
    if bad:
        code = f"U+{ord(bad.group()):04X}"
        raise TemplateCompileError(
            _line_of(source, bad.start()),
            N_("the invisible control character %(code)s is not allowed; delete it", code=code),
        )


def _check_jinja(source: str) -> nodes.Template:
    _check_source(source)
    try:
        ast = HTML_ENV.parse(source)
        HTML_ENV.compile(source)
    except jinja2.TemplateSyntaxError as exc:  # includes TemplateAssertionError (unknown filter/test)
        raise TemplateCompileError(exc.lineno, exc.message or "syntax error") from None
    except RecursionError:
        raise TemplateCompileError(None, N_("the template nests too deeply; flatten its expressions")) from None
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        raise TemplateCompileError(
            node.lineno, N_("include/import/extends are not available in signature templates; paste it in")
        )
    return ast


def compile_template(source: str) -> CompiledTemplate:
    """Inline the CSS once and compile the HTML and text templates. Raises TemplateCompileError."""
    ast = _check_jinja(source)
    protected = _protect(source)
    try:
        inlined = _inline_fragment(protected.html, frozenset(protected.statements))
    except Exception as exc:  # lxml/cssutils refusing the markup
        raise TemplateCompileError(None, N_("the HTML/CSS could not be processed: %(error)s", error=str(exc))) from None
    _check_tokens(inlined, protected, source)
    html_source = _restore(inlined, protected)
    text_source = _text_template(inlined, protected)
    if _can_hoist(ast):
        html_source, text_source = _hoist(html_source), _hoist(text_source)
    try:
        html_template = HTML_ENV.from_string(html_source)
        text_template = TEXT_ENV.from_string(text_source)
    except jinja2.TemplateSyntaxError as exc:
        # The source compiled on its own: the markup split a Jinja block in a way HTML cannot keep.
        raise TemplateCompileError(
            None, N_("the template's Jinja blocks do not wrap whole elements (%(error)s)", error=exc.message)
        ) from None
    return CompiledTemplate(source, html_source, text_source, html_template, text_template)


# ---------------------------------------------------------------- render


def _render_error(exc: Exception, line: int | None = None) -> TemplateRenderError:
    if isinstance(exc, SecurityError):
        return TemplateRenderError(line, f"the template tried something not allowed in signatures: {exc}")
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateRenderError(line, f"the template uses something that does not exist: {exc}")
    return TemplateRenderError(line, f"the template failed for this data: {type(exc).__name__}: {exc}")


def _template_line(exc: BaseException) -> int | None:
    """The line of the template frame an exception was raised from (Jinja maps it to the source's line)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _source_line(source: str, context: Mapping[str, Any]) -> int | None:
    """Where in the author's source a render fails: the compiled template is inlined and minified (one line),
    so on failure only, the source itself is rendered once more to find the line."""
    try:
        _raw_template(source).render(context)
    except Exception as exc:
        return _template_line(exc)
    return None


@functools.lru_cache(maxsize=32)
def _raw_template(source: str) -> jinja2.Template:
    """The author's source compiled as is (no inlining), to locate failures: once per source, not per employee."""
    return HTML_ENV.from_string(source)


def render(compiled: CompiledTemplate, context: dict[str, Any]) -> RenderedSignature:
    """Render one signature: Jinja only (CSS was inlined at compile time). Raises TemplateRenderError."""
    ht = compiled.html_template
    tt = compiled.text_template
    try:
        with budget.budget() as b:
            html = b.emit(ht.root_render_func(ht.new_context(context, shared=True)))
            raw = b.emit(tt.root_render_func(tt.new_context(context, shared=True)))
    except BudgetExceeded:
        raise
    except RecursionError:
        raise TemplateRenderError(
            None, "the template calls itself too deeply (a recursive macro?); simplify it"
        ) from None
    except Exception as exc:
        raise _render_error(exc, _source_line(compiled.source, context)) from exc
    text = _clean_text(raw)
    digest = hashlib.sha256(f"{html}\0{text}".encode()).hexdigest()
    return RenderedSignature(html, text, digest)


def render_naive(source: str, context: dict[str, Any]) -> str:
    """Reference path: Jinja on the raw template, then premailer on the result (slow; tests and bench)."""
    try:
        template = HTML_ENV.from_string(source)
        with budget.budget() as b:
            rendered = b.emit(template.root_render_func(template.new_context(context, shared=True)))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateCompileError(exc.lineno, exc.message or "syntax error") from None
    except BudgetExceeded:
        raise
    except Exception as exc:
        raise _render_error(exc, _template_line(exc)) from exc
    return _inline_fragment(rendered)


# ---------------------------------------------------------------- per-process cache

_CACHE_SIZE = 256
_cache: OrderedDict[Any, CompiledTemplate] = OrderedDict()
_cache_lock = threading.Lock()


def compiled_for(key: Any, source: str) -> CompiledTemplate:
    """The compiled template for ``key`` (e.g. ``(version_id, kind)``), compiled once per process.

    Keys must identify immutable sources: a new template version gets a new key.
    """
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    compiled = compile_template(source)  # outside the lock: compiling takes milliseconds
    with _cache_lock:
        _cache[key] = compiled
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def clear_compiled_cache() -> None:
    with _cache_lock:
        _cache.clear()
