"""The signature rendering path: compile once (CSS inlined), render per employee (Jinja only).

Regenerate the golden files with ``RELAIS_UPDATE_GOLDEN=1 pytest tests/test_rendering.py``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from lxml import html as lxml_html

from signatures.context import BannerData, BrandData, EmployeeData, SocialLink, build_context
from signatures.layouts import LAYOUTS
from signatures.rendering import (
    TemplateCompileError,
    TemplateRenderError,
    clear_compiled_cache,
    compile_template,
    compiled_for,
    render,
    render_naive,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("RELAIS_UPDATE_GOLDEN") == "1"

BRAND = BrandData(
    company_name="Acme & Co",
    website="https://www.acme.example/",
    logo_url="https://cdn.acme.example/logo.png",
    logo_width=120,
    logo_height=36,
    primary_color="#1F4E79",
    secondary_color="#5B6770",
    font_stack="Segoe UI, Arial, Helvetica, sans-serif",  # quoted names: see test_quoted_font_names
    address="1 rue de la Paix, 75002 Paris",
    social_links=(
        SocialLink("LinkedIn", "https://www.linkedin.com/company/acme"),
        SocialLink("X", "https://x.com/acme"),
    ),
    disclaimer_html="This email is <strong>confidential</strong>.",
)
SPARSE_BRAND = BrandData(company_name="Solo")
BANNER = BannerData(
    image_url="https://cdn.acme.example/banners/expo.png",
    width=480,
    height=90,
    alt="Meet us at Expo <2025> & more",
    href="https://relais.example/c/Zx8kq2",
)

FULL = EmployeeData(
    email="jane.oneil@acme.example",
    first_name="Jane",
    last_name="O'Neil",
    title="Head of R&D <Ops>",
    department="Research",
    office="Paris",
    location="Paris, France",
    phone="+33 1 23 45 67 89",
    mobile="+33 6 12 34 56 78",
    photo_url="https://cdn.acme.example/people/jane.jpg",
    locale="fr-FR",
    pronouns="she/her",
)
EMPLOYEES = {
    "full": FULL,
    "sparse": EmployeeData(email="sam@acme.example", first_name="Sam"),
    "phone-only": EmployeeData(email="p@acme.example", first_name="Pat", last_name="Lee", phone="+1 555 0100"),
    "mobile-only": EmployeeData(email="m@acme.example", first_name="Max", mobile="+44 7700 900123"),
    "dept-only": EmployeeData(email="d@acme.example", last_name="Dupont", department="R&D <Ops>"),
    "long": EmployeeData(
        email="maria.del.carmen.fernandez-de-la-vega.y.alvarez-santullano@subsidiary.acme.example",
        first_name="María del Carmen",
        last_name="Fernández de la Vega y Álvarez-Santullano",
        title="Senior Vice President, International Strategic Partnerships & Business Development (EMEA)",
        department="Partnerships",
    ),
    "accents": EmployeeData(
        email="zoe@acme.example", first_name="Zoë", last_name="Łukasiewicz-Ørsted", title="Ingénieure système"
    ),
    "arabic": EmployeeData(
        email="m.alali@acme.example", display_name="محمد العلي", title="مدير المبيعات", phone="+971 4 123 4567"
    ),
    "hebrew": EmployeeData(email="dana@acme.example", first_name="דנה", last_name="כהן", title="מהנדסת"),
    "script": EmployeeData(
        email="x@acme.example", first_name="<script>alert(1)</script>", last_name='"Q"', title="a'b"
    ),
}

SOURCES = [(name, kind) for name in sorted(LAYOUTS) for kind in ("new", "reply")]


def source_of(layout: str, kind: str) -> str:
    return getattr(LAYOUTS[layout], f"{kind}_source")


@pytest.fixture(scope="module")
def compiled():
    return {key: compile_template(source_of(*key)) for key in SOURCES}


# ---------------------------------------------------------------- canonical HTML


def _canon_style(style: str) -> str:
    decls = []
    for decl in style.split(";"):
        if ":" not in decl:
            continue
        prop, value = decl.split(":", 1)
        value = re.sub(r"\s+", " ", value.replace('"', "'")).strip()
        value = re.sub(r"\s*,\s*", ",", value)
        decls.append(f"{prop.strip().lower()}:{value}")
    return ";".join(decls)


def _text(s: str | None) -> str:
    return re.sub(r"\s+", " ", s or "")


def canonical(html: str) -> list:
    """Tree of (tag, sorted attributes, text, children, tail): attribute order, entity spelling and whitespace
    runs don't matter; everything else does."""
    root = lxml_html.fragment_fromstring(html, create_parent="div")

    def walk(el):
        attrs = sorted((k, _canon_style(v) if k == "style" else _text(v).strip()) for k, v in el.attrib.items())
        tag = el.tag if isinstance(el.tag, str) else "<!--comment-->"
        return (tag, attrs, _text(el.text), [walk(c) for c in el], _text(el.tail))

    return walk(root)


# ---------------------------------------------------------------- equivalence with render-then-inline


@pytest.mark.parametrize("key", SOURCES, ids=lambda k: "/".join(k))
@pytest.mark.parametrize("who", sorted(EMPLOYEES))
@pytest.mark.parametrize("with_banner", [True, False], ids=["banner", "no-banner"])
def test_fast_path_matches_render_then_inline(compiled, key, who, with_banner):
    ctx = build_context(employee=EMPLOYEES[who], brand=BRAND, banner=BANNER if with_banner else None)
    fast = render(compiled[key], ctx).html
    naive = render_naive(source_of(*key), ctx)
    assert canonical(fast) == canonical(naive)


@pytest.mark.parametrize("key", SOURCES, ids=lambda k: "/".join(k))
def test_fast_path_matches_with_a_sparse_brand(compiled, key):
    ctx = build_context(employee=FULL, brand=SPARSE_BRAND)
    assert canonical(render(compiled[key], ctx).html) == canonical(render_naive(source_of(*key), ctx))


# ---------------------------------------------------------------- protection pitfalls

PITFALLS = """<style>
  .cell { padding: 4px 8px; color: {{ brand.primary_color }}; }
  .logo { display: block; border: 0; }
</style>
<table class="t" cellpadding="0" cellspacing="0" border="0">
  <tr><td class="cell"><a href="{{ brand.website }}?utm_source=sig&utm_medium={{ employee.department | lower }}">{{ employee.full_name }}</a></td></tr>
  {% if employee.phone %}
  <tr><td class="cell">{{ employee.phone }}</td></tr>
  {% endif %}
  {% for s in brand.social_links %}
  <tr><td class="cell"><a href="{{ s.url }}">{{ s.network }}</a></td></tr>
  {% endfor %}
  <tr><td><img class="logo" src="{{ brand.logo_url }}" width="{{ brand.logo_width }}" height="{{ brand.logo_height }}" alt="{{ brand.company_name }}" border="0"></td></tr>
</table>
"""  # noqa: E501


def test_jinja_in_href_src_and_between_rows_survives_inlining():
    compiled = compile_template(PITFALLS)
    assert "}}?utm_source=sig&amp;utm_medium={{ employee.department | lower }}" in compiled.html_source
    assert "%7B" not in compiled.html_source and "{{%20" not in compiled.html_source
    assert 'src="{{ brand.logo_url }}"' in compiled.html_source
    # the {% if %} / {% for %} stayed between the rows, inside the table
    assert re.search(r"</tr>\{% if (employee.phone|_rlx_h\d+) %\}<tr>", compiled.html_source)
    assert re.search(r"</tr>\{% endfor %\}<tr>", compiled.html_source)

    emp = EmployeeData(email="a@acme.example", first_name="Ann", department="Sales", phone="+1 555")
    out = render(compiled, build_context(employee=emp, brand=BRAND)).html
    assert 'href="https://www.acme.example/?utm_source=sig&amp;utm_medium=sales"' in out
    assert 'src="https://cdn.acme.example/logo.png"' in out
    assert out.count("<tr>") == 5  # name, phone, 2 social links, logo
    assert "class=" not in out and "<style" not in out
    assert 'style="padding:4px 8px; color:#1F4E79"' in out
    assert canonical(out) == canonical(render_naive(PITFALLS, build_context(employee=emp, brand=BRAND)))

    no_phone = render(compiled, build_context(employee=FULL.__class__(email="b@x.example"), brand=BRAND)).html
    assert no_phone.count("<tr>") == 4


def test_quoted_font_names_survive(compiled):
    # Expressions in <style> land in style attributes, where escaped quotes are decoded. (Render-then-inline
    # loses this declaration: Jinja escapes the quotes inside <style>, where entities are not decoded.)
    brand = BrandData(company_name="Q", font_stack="'Segoe UI', \"Helvetica Neue\", Arial, sans-serif")
    out = render(compiled[("classic", "reply")], build_context(employee=FULL, brand=brand)).html
    root = lxml_html.fragment_fromstring(out, create_parent="div")
    assert root[0].get("style").startswith("font-family:'Segoe UI', \"Helvetica Neue\", Arial, sans-serif;")


def test_output_is_a_fragment_not_a_document(compiled):
    out = render(compiled[("classic", "new")], build_context(employee=FULL, brand=BRAND)).html
    assert out.startswith("<table") and out.endswith("</table>")
    for tag in ("<html", "<body", "<head", "<style", "<!DOCTYPE"):
        assert tag not in out


def test_statement_inside_a_tag_is_refused_with_its_line():
    src = '<table>\n<tr>\n<td {% if employee.phone %}style="color:red"{% endif %}>x</td></tr></table>'
    with pytest.raises(TemplateCompileError) as err:
        compile_template(src)
    assert err.value.line == 3
    assert str(err.value).startswith("line 3: ")
    assert "attribute" in err.value.reason


def test_statement_inside_an_attribute_value_is_refused():
    with pytest.raises(TemplateCompileError, match="inline if"):
        compile_template('<a href="{% if x %}a{% else %}b{% endif %}">x</a>')


def test_statement_inside_style_is_refused():
    with pytest.raises(TemplateCompileError, match="<style>"):
        compile_template("<style>{% if x %}.a { color: red; }{% endif %}</style><p class='a'>x</p>")


@pytest.mark.parametrize(
    ("src", "line", "needle"),
    [
        ("<p>\n{{ employee.full_name | nosuchfilter }}</p>", 2, "nosuchfilter"),
        ("<p>\n\n{% if employee.phone %}x</p>", None, "endif"),
        ("<p>{{ employee. }}</p>", 1, ""),
        ('<p>\n{% include "x.html" %}</p>', 2, "include"),
        ("<p>{% for %}</p>", 1, ""),
    ],
)
def test_compile_errors_carry_line_and_reason(src, line, needle):
    with pytest.raises(TemplateCompileError) as err:
        compile_template(src)
    if line is not None:
        assert err.value.line == line
        assert str(err.value) == f"line {line}: {err.value.reason}"
    else:
        assert err.value.line is not None  # Jinja reports where the block ran out
    assert needle in str(err.value)
    assert err.value.status_code == 422


# ---------------------------------------------------------------- escaping and the sandbox


def test_values_are_escaped_in_html_and_raw_in_text(compiled):
    ctx = build_context(employee=EMPLOYEES["script"], brand=BRAND, banner=BANNER)
    for key in SOURCES:
        out = render(compiled[key], ctx)
        assert "<script>" not in out.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.html
        assert "<script>alert(1)</script>" in out.text  # plain text is not HTML: shown as typed
    new = render(compiled[("classic", "new")], ctx)
    assert "Meet us at Expo &lt;2025&gt; &amp; more" in new.html
    # the sanitized disclaimer is trusted markup in HTML, its text in the plain-text part
    assert "This email is <strong>confidential</strong>." in new.html
    assert "This email is confidential." in new.text


@pytest.mark.parametrize(
    "expr",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ employee.__class__ }}",
        "{{ brand.__init__.__globals__ }}",
        "{{ employee.from_obj.__func__.__globals__ }}",
        "{{ ''.format.__self__ }}",
    ],
)
def test_sandbox_refuses_unsafe_access(expr):
    compiled = compile_template(f"<p>{expr}</p>")
    with pytest.raises(TemplateRenderError, match="not allowed|does not exist"):
        render(compiled, build_context(employee=FULL, brand=BRAND))


def test_unknown_variable_is_a_render_error():
    compiled = compile_template("<p>{{ employee.salary }}</p>")
    with pytest.raises(TemplateRenderError, match="salary"):
        render(compiled, build_context(employee=FULL, brand=BRAND))


# ---------------------------------------------------------------- empty optional fields


@pytest.mark.parametrize("key", SOURCES, ids=lambda k: "/".join(k))
@pytest.mark.parametrize("who", sorted(EMPLOYEES))
def test_no_empty_rows_or_dangling_separators(compiled, key, who):
    for brand in (BRAND, SPARSE_BRAND):
        out = render(compiled[key], build_context(employee=EMPLOYEES[who], brand=brand))
        root = lxml_html.fragment_fromstring(out.html, create_parent="div")
        for td in root.iter("td"):
            if td.find(".//table") is not None or td.find(".//img") is not None:
                continue
            text = td.text_content().replace("\xa0", " ").strip()
            assert text, f"empty cell in {key} for {who}: {lxml_html.tostring(td)!r}"
            assert not re.match(r"^[|·•,]", text) and not re.search(r"[|·•,]$", text), text
            assert not re.search(r"[|·•]\s*[|·•]", text), text
        assert "None" not in out.html and "None" not in out.text
        for line in out.text.splitlines():
            assert line.strip() == line and line, repr(out.text)
            assert not re.match(r"^[|·•,]", line) and not re.search(r"[|·•,]$", line), line
            assert not re.search(r"[|·•]\s*[|·•]", line), line


def test_text_alternative_reads_well(compiled):
    out = render(compiled[("classic", "new")], build_context(employee=FULL, brand=BRAND, banner=BANNER))
    lines = out.text.splitlines()
    assert lines[0] == "Jane O'Neil (she/her)"
    assert "Head of R&D <Ops> | Research" in lines
    assert "T +33 1 23 45 67 89 | M +33 6 12 34 56 78" in lines  # tel: links show only the number
    assert any(line.startswith("E jane.oneil@acme.example") for line in lines)  # mailto: label == address
    assert "www.acme.example <https://www.acme.example/>" in out.text
    assert "LinkedIn <https://www.linkedin.com/company/acme>" in out.text
    assert "Meet us at Expo <2025> & more <https://relais.example/c/Zx8kq2>" in lines  # banner: alt + link
    assert "Acme & Co <" not in out.text  # the logo link repeats the website: dropped
    sparse = render(compiled[("classic", "new")], build_context(employee=EMPLOYEES["sparse"], brand=BRAND))
    assert sparse.text.splitlines()[0] == "Sam"
    assert "Meet us" not in sparse.text


def test_content_hash_covers_html_and_text(compiled):
    out = render(compiled[("compact", "new")], build_context(employee=FULL, brand=BRAND))
    assert out.content_hash == hashlib.sha256(f"{out.html}\0{out.text}".encode()).hexdigest()
    other = render(compiled[("compact", "new")], build_context(employee=EMPLOYEES["sparse"], brand=BRAND))
    assert other.content_hash != out.content_hash
    again = render(compile_template(source_of("compact", "new")), build_context(employee=FULL, brand=BRAND))
    assert again == out  # deterministic across compilations


def test_compiled_for_compiles_once_per_key():
    clear_compiled_cache()
    src = source_of("compact", "reply")
    a = compiled_for(("v1", "reply"), src)
    assert compiled_for(("v1", "reply"), src) is a
    assert compiled_for(("v2", "reply"), src) is not a


def test_hoisting_keeps_undefined_banner_safe():
    # banner.width is read up front (it repeats); with no banner that must not fail
    src = (
        "<table><tr><td>{{ employee.full_name }}</td></tr>{% if banner %}<tr><td>"
        '<img src="{{ banner.image_url }}" width="{{ banner.width }}" height="{{ banner.height }}" alt="b" '
        'style="width:{{ banner.width }}px;height:{{ banner.height }}px"></td></tr>{% endif %}</table>'
    )
    compiled = compile_template(src)
    assert "{% set" in compiled.html_source
    assert render(compiled, build_context(employee=FULL, brand=BRAND)).html.count("<tr>") == 1
    with_banner = render(compiled, build_context(employee=FULL, brand=BRAND, banner=BANNER)).html
    assert 'width="480"' in with_banner and "width:480px" in with_banner


# ---------------------------------------------------------------- golden files


@pytest.mark.parametrize("key", SOURCES, ids=lambda k: "/".join(k))
def test_golden(compiled, key):
    out = render(compiled[key], build_context(employee=FULL, brand=BRAND, banner=BANNER))
    name = "-".join(key)
    html_path, text_path = GOLDEN / f"{name}.html", GOLDEN / f"{name}.txt"
    if UPDATE_GOLDEN:
        GOLDEN.mkdir(exist_ok=True)
        html_path.write_text(out.html + "\n", encoding="utf-8")
        text_path.write_text(out.text + "\n", encoding="utf-8")
    assert html_path.exists(), "run with RELAIS_UPDATE_GOLDEN=1 to create the golden files"
    assert out.html == html_path.read_text(encoding="utf-8").removesuffix("\n")
    assert out.text == text_path.read_text(encoding="utf-8").removesuffix("\n")


def test_no_hoisting_when_a_context_name_is_rebound():
    src = "<p>{{ employee.email }}</p>{% for employee in [employee] %}<p>{{ employee.email }}</p>{% endfor %}"
    compiled = compile_template(src)
    assert "_rlx_h" not in compiled.html_source
    out = render(compiled, build_context(employee=FULL, brand=BRAND))
    assert out.html.count(FULL.email) == 2
