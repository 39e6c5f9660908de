"""Checks that rendered signature HTML survives Outlook (Word engine), Gmail and Apple Mail.

:func:`lint_html` inspects one rendered signature; :func:`lint_template` compiles a template, renders it
for a full and a sparse sample employee, and lints both outputs. Every message says what to change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lxml import etree
from lxml import html as lxml_html

from service.sentences import N_
from signatures.context import BannerData, BrandData, EmployeeData, SocialLink, build_context
from signatures.rendering import _JINJA_RE, TemplateError, compile_template, render

Severity = Literal["error", "warning"]

# characters; over the Gmail or Outlook add-in budget is an error, over the transport-rule one a warning
BUDGETS: dict[str, int] = {"gmail": 10_000, "outlook_addin": 30_000, "exchange_transport_rule": 5_000}
_ERROR_BUDGETS = frozenset(("gmail", "outlook_addin"))

GENERIC_FONTS = frozenset(("serif", "sans-serif", "monospace", "cursive", "fantasy", "system-ui"))
WEB_SAFE_FONTS = frozenset(
    (
        "arial", "helvetica", "helvetica neue", "verdana", "tahoma", "trebuchet ms", "segoe ui", "calibri",
        "georgia", "times new roman", "times", "courier new", "courier", "lucida grande",
        "lucida sans unicode",
        "palatino linotype", "palatino", "book antiqua", "garamond", "cambria", "candara", "century gothic",
        "gill sans", "optima", "geneva", "roboto", "-apple-system", "blinkmacsystemfont", "arial black",
        "impact", "lucida console", "consolas", "franklin gothic medium",
    )
)  # fmt: skip
_BAD_CSS = (
    ("float", re.compile(r"(?:^|;)\s*float\s*:", re.I), N_("floats are ignored by Outlook; use table cells")),
    ("flex", re.compile(r"display\s*:\s*(?:inline-)?flex|(?:^|;)\s*flex(?:-[a-z]+)?\s*:", re.I),
     N_("flexbox is not supported by Outlook or Gmail; use table cells")),
    ("grid", re.compile(r"display\s*:\s*(?:inline-)?grid|(?:^|;)\s*grid(?:-[a-z]+)?\s*:", re.I),
     N_("CSS grid is not supported by Outlook or Gmail; use table cells")),
    ("position", re.compile(r"(?:^|;)\s*position\s*:\s*(?:absolute|relative|fixed|sticky)", re.I),
     N_("positioning is stripped by Gmail and ignored by Outlook; use table cells and padding")),
    ("border-radius", re.compile(r"(?:^|;)\s*border(?:-[a-z]+)?-radius\s*:", re.I),
     N_("Outlook draws square corners (rounding needs VML); round the image itself instead")),
    ("background-image", re.compile(r"background(?:-image)?\s*:[^;]*url\(", re.I),
     N_("background images do not show in Outlook; use an <img> or a solid background-color")),
    ("negative-margin", re.compile(r"(?:^|;)\s*margin(?:-[a-z]+)?\s*:[^;]*(?:-\d|auto)", re.I),
     N_("negative or auto margins break in Outlook; use padding on cells")),
)  # fmt: skip
_PX_RE = re.compile(r"^\s*(\d+)\s*(?:px)?\s*$")


@dataclass(frozen=True, slots=True)
class LintIssue:
    rule: str
    severity: Severity
    message: str
    line: int | None = None  # in the author's template source
    field: str | None = None  # the brand field the problem comes from, when it is not the template's


@dataclass(slots=True)
class LintReport:
    issues: list[LintIssue] = field(default_factory=list)
    size: int = 0
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    @property
    def errors(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "warning"]

    def rules(self) -> set[str]:
        return {i.rule for i in self.issues}

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "issues": [asdict(i) for i in self.issues],
            "size": self.size,
            "budgets": self.budgets,
        }


def _style_map(style: str) -> dict[str, str]:
    out = {}
    for decl in style.split(";"):
        if ":" in decl:
            k, v = decl.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def _font_ok(stack: str) -> bool:
    names = [f.strip().strip("'\"").lower() for f in stack.split(",") if f.strip()]
    if not names:
        return True
    return names[-1] in GENERIC_FONTS or any(n in WEB_SAFE_FONTS for n in names)


_LOCAL_HOST_RE = re.compile(r"^http://(?:localhost|127(?:\.\d{1,3}){3}|\[::1\]|[a-z0-9.-]+\.localhost)(?::\d+)?/", re.I)


def _img_src_issue(src: str) -> tuple[str, str] | None:
    s = src.strip()
    low = s.lower()
    if not s:
        return "img-src", N_("an image has no src; add an absolute https:// URL")
    if low.startswith("data:"):
        return "img-data-uri", N_("data: URI images are blocked by Gmail and Outlook; host the image on https")
    if not low.startswith("https://"):
        return "img-https", N_("image %(src)r needs an absolute https:// URL (http/relative are blocked)", src=s[:80])
    path = low.split("?", 1)[0].split("#", 1)[0]
    if path.endswith((".svg", ".svgz")):
        return "img-format", N_("SVG image %(src)r does not show in Outlook or Gmail; use PNG or JPG", src=s[:80])
    if path.endswith(".webp"):
        return "img-format", N_("WebP image %(src)r does not show in Outlook for Windows; use PNG or JPG", src=s[:80])
    return None


LINE_ATTR = "data-rlx-line"  # lint only: marks each element of the author's source with its line
_START_TAG_RE = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)(?=[\s/>])")
_SKIPPED_RE = re.compile(r"<!--.*?-->|<style\b.*?</style\s*>", re.S | re.I)


def mark_lines(source: str) -> str:
    """The source with ``data-rlx-line="N"`` on every start tag written by the author (not those inside Jinja
    tags, comments or <style>), so issues found in the rendered, minified output point at the source line."""
    skipped = [m.span() for rx in (_JINJA_RE, _SKIPPED_RE) for m in rx.finditer(source)]
    out, pos = [], 0
    for m in _START_TAG_RE.finditer(source):
        if any(a <= m.start() < b for a, b in skipped):
            continue
        line = source.count("\n", 0, m.start()) + 1
        out.append(f'{source[pos : m.end()]} {LINE_ATTR}="{line}"')
        pos = m.end()
    out.append(source[pos:])
    return "".join(out)


def lint_html(html: str, *, marked: str | None = None, brand_fields: Mapping[str, str] | None = None) -> LintReport:
    """Lint one rendered signature (HTML fragment).

    ``marked`` is the same signature rendered from :func:`mark_lines` source: elements are checked there, and
    each issue gets its source line (an element without a mark came from data: the brand's disclaimer).
    ``brand_fields`` maps brand values (URLs) to their field name, so a problem they cause names the field."""
    report = LintReport(size=len(html))
    issues = report.issues
    brand_fields = brand_fields or {}

    def add(rule: str, severity: Severity, message: str, el: Any = None, value: str | None = None) -> None:
        line = field = None
        if el is not None and marked is not None:
            mark = el.get(LINE_ATTR)
            line = int(mark) if mark and mark.isdigit() else None
            field = None if mark else "disclaimer_html"
        elif el is not None:
            line = getattr(el, "sourceline", None)
        if value is not None and value.strip() in brand_fields:
            field = brand_fields[value.strip()]
        if field:
            if rule == "img-https" and severity == "error" and _LOCAL_HOST_RE.match(value or ""):
                severity = "warning"  # trying things out on a local install: enforced before deploying
                message = N_(
                    "%(message)s — fine while you try things out; deploying to mailboxes needs "
                    "RELAIS_PUBLIC_BASE_URL set to the https address mail clients reach, and an https logo_url",
                    message=message,
                )
            message = N_(
                "the brand's %(field)s: %(message)s (change it with PATCH /api/brand)", field=field, message=message
            )
        issues.append(LintIssue(rule, severity, message, line, field))

    for target, limit in BUDGETS.items():
        ok = len(html) <= limit
        report.budgets[target] = {"limit": limit, "size": len(html), "ok": ok}
        if not ok:
            size, most = f"{len(html):,}", f"{limit:,}"
            add(
                f"size-{target.replace('_', '-')}",
                "error" if target in _ERROR_BUDGETS else "warning",
                N_(
                    "the signature is %(size)s characters, over the %(target)s budget of %(limit)s: shorten the "
                    "disclaimer, drop rows, or move styling into fewer elements",
                    size=size,
                    target=target.replace("_", " "),
                    limit=most,
                ),
            )
    if not html.strip():
        add("empty", "error", N_("the signature is empty"))
        return report
    try:
        root = lxml_html.fragment_fromstring(marked or html, create_parent="div")
    except (etree.ParserError, ValueError) as exc:
        add("parse", "error", N_("the HTML cannot be parsed: %(error)s", error=str(exc)))
        return report

    seen_font_stacks: set[str] = set()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        if tag == "style":
            add("style-tag", "error", N_("<style> is stripped by Gmail and Outlook: inline every style"), el)
        elif tag in ("script", "iframe", "form", "object", "embed", "input", "button", "video", "audio"):
            add("forbidden-tag", "error", N_("<%(tag)s> is removed by every mail client; remove it", tag=tag), el)
        elif tag == "svg":
            add("img-format", "error", N_("inline <svg> does not show in Outlook or Gmail; use a PNG <img>"), el)
        elif tag == "link":
            add("style-tag", "error", N_("mail clients load no external stylesheet: inline every style"), el)
        if el.get("class") is not None:
            add(
                "class-attr", "error", N_("<%(tag)s class=...>: class styling does not survive; inline it", tag=tag), el
            )
        for attr in el.attrib:
            if attr.lower().startswith("on"):
                add("forbidden-tag", "error", N_("event handler %(attr)s= is removed by mail clients", attr=attr), el)
        style = el.get("style") or ""
        smap = _style_map(style)
        for rule, rx, why in _BAD_CSS:
            if rx.search(style):
                add(
                    rule,
                    "error" if rule != "negative-margin" else "warning",
                    N_("<%(tag)s>: %(why)s", tag=tag, why=why),
                    el,
                )
        if "line-height" in smap and smap.get("mso-line-height-rule", "").lower() != "exactly":
            add(
                "line-height",
                "warning",
                N_(
                    "<%(tag)s> sets line-height without mso-line-height-rule:exactly; Outlook will ignore or "
                    "distort it: add mso-line-height-rule:exactly",
                    tag=tag,
                ),
                el,
            )
        font = smap.get("font-family")
        if font is not None and font not in seen_font_stacks:
            seen_font_stacks.add(font)
            if not _font_ok(font):
                add(
                    "font-stack",
                    "warning",
                    N_(
                        "font stack %(font)r has no web-safe fallback; Outlook falls back to Times New Roman: "
                        "end it with e.g. Arial, Helvetica, sans-serif",
                        font=font,
                    ),
                    el,
                )
        if tag == "img":
            _lint_img(el, smap, add)
        elif tag == "a":
            href = (el.get("href") or "").strip()
            if href.lower().startswith("javascript:"):
                add("link-href", "error", N_("javascript: links are removed by mail clients"), el, href)
            elif href.lower().startswith("http://"):
                add("link-http", "warning", N_("link %(href)r uses http; use https", href=href[:80]), el, href)
    return report


def _lint_img(el: Any, smap: dict[str, str], add: Any) -> None:
    src_issue = _img_src_issue(el.get("src") or "")
    if src_issue:
        rule, message = src_issue
        add(rule, "error", message, el, el.get("src") or "")
    if el.get("alt") is None:
        add("img-alt", "error", N_('an image has no alt: add alt="..." (shown while images are blocked)'), el)
    if el.get("border") is None:
        add("img-border", "warning", N_('add border="0" (older Outlook outlines linked images)'), el)
    for dim in ("width", "height"):
        attr = el.get(dim)
        if attr is None:
            msg = N_(
                'an image has no %(dim)s attribute (Outlook shows it at natural size): add %(dim)s="N" and '
                "%(dim)s:Npx in its style",
                dim=dim,
            )
            add(f"img-{dim}", "error", msg, el)
            continue
        m = _PX_RE.match(attr)
        if not m:
            add(
                f"img-{dim}",
                "error",
                N_('image %(dim)s="%(value)s" must be a number of pixels', dim=dim, value=attr),
                el,
            )
            continue
        css = smap.get(dim)
        if css is None:
            msg = N_(
                "add %(dim)s:%(px)spx to the image's style too (Apple Mail, Gmail on mobile)", dim=dim, px=m.group(1)
            )
            add(f"img-{dim}", "warning", msg, el)
        elif (px := _PX_RE.match(css)) is None or px.group(1) != m.group(1):
            msg = N_(
                'image %(dim)s="%(value)s" but its style says %(dim)s:%(css)s; make them the same px',
                dim=dim,
                value=attr,
                css=css,
            )
            add(f"img-{dim}", "error", msg, el)


# ---------------------------------------------------------------- templates

SAMPLE_BRAND = BrandData(
    company_name="Example Company",
    website="https://www.example.com/",
    logo_url="https://cdn.example.com/logo.png",
    logo_width=140,
    logo_height=40,
    address="1 Example Street, 75002 Paris",
    social_links=(SocialLink("LinkedIn", "https://www.linkedin.com/company/example"),),
    disclaimer_html="<p>This email is confidential.</p>",
)
SAMPLE_EMPLOYEE = EmployeeData(
    email="alexandra.martin-dupont@example.com",
    first_name="Alexandra",
    last_name="Martin-Dupont",
    title="Senior Director, Customer Success",
    department="Customer Success",
    office="Paris",
    location="Paris, France",
    phone="+33 1 23 45 67 89",
    mobile="+33 6 12 34 56 78",
    photo_url="https://cdn.example.com/people/alexandra.jpg",
    locale="fr-FR",
    pronouns="she/her",
)
SPARSE_EMPLOYEE = EmployeeData(email="sam@example.com", first_name="Sam")
SAMPLE_BANNER = BannerData(
    image_url="https://cdn.example.com/banners/spring.png",
    width=480,
    height=90,
    alt="Meet us at the Spring Expo",
    href="https://relais.example.com/c/sampletoken",
)


def lint_template(
    source: str, sample_context: Mapping[str, Any] | None = None, *, brand: BrandData | None = None
) -> LintReport:
    """Compile (TemplateCompileError propagates), render a full and a sparse sample, lint both.

    The report's issues are the union (deduplicated); ``size``/``budgets`` are those of the larger output.
    """
    compiled = compile_template(source)
    try:
        marked = compile_template(mark_lines(source))
    except TemplateError:  # cannot happen for a source that compiles; lint without lines rather than fail
        marked = None
    brand = brand or SAMPLE_BRAND
    full = dict(sample_context) if sample_context is not None else build_context(
        employee=SAMPLE_EMPLOYEE, brand=brand, banner=SAMPLE_BANNER
    )  # fmt: skip
    sparse = build_context(employee=SPARSE_EMPLOYEE, brand=full.get("brand", brand), banner=None)
    fields = brand_fields(full.get("brand", brand))
    reports = [
        lint_html(render(compiled, ctx).html, marked=render(marked, ctx).html if marked else None, brand_fields=fields)
        for ctx in (full, sparse)
    ]
    biggest = max(reports, key=lambda r: r.size)
    merged = LintReport(size=biggest.size, budgets=biggest.budgets)
    seen = set()
    for r in reports:
        for issue in r.issues:
            key = (issue.rule, issue.message)
            if key not in seen:
                seen.add(key)
                merged.issues.append(issue)
    return merged


def brand_fields(brand: Any) -> dict[str, str]:
    """The brand's URL values by field name, to tell a problem the brand causes from one the template does."""
    if not isinstance(brand, BrandData):
        return {}
    fields = {"logo_url": brand.logo_url, "website": brand.website}
    fields.update({f"social_links[{i}].url": link.url for i, link in enumerate(brand.social_links)})
    return {value.strip(): name for name, value in fields.items() if value}
