"""Lint rules for rendered signature HTML: each fires on a bad snippet; the shipped layouts lint clean."""

from __future__ import annotations

import pytest

from signatures.context import BrandData, EmployeeData, build_context
from signatures.layouts import LAYOUTS
from signatures.lint import BUDGETS, SAMPLE_BRAND, lint_html, lint_template
from signatures.rendering import TemplateCompileError

GOOD_IMG = (
    '<img src="https://cdn.example.com/a.png" width="100" height="40" alt="Acme" border="0" '
    'style="display:block; width:100px; height:40px">'
)
GOOD = (
    '<table cellpadding="0" cellspacing="0" border="0"><tr>'
    '<td style="font-family:Arial, Helvetica, sans-serif; font-size:12px; line-height:16px; '
    'mso-line-height-rule:exactly">Jane <a href="https://example.com" style="color:#123456">example.com</a>'
    f"</td></tr><tr><td>{GOOD_IMG}</td></tr></table>"
)


def img(**attrs: str | None) -> str:
    base = {
        "src": "https://cdn.example.com/a.png",
        "width": "100",
        "height": "40",
        "alt": "Acme",
        "border": "0",
        "style": "display:block; width:100px; height:40px",
    }
    base.update(attrs)
    return "<img " + " ".join(f'{k}="{v}"' for k, v in base.items() if v is not None) + ">"


def test_good_snippet_is_clean():
    report = lint_html(GOOD)
    assert report.issues == []
    assert report.ok
    assert report.size == len(GOOD)


BAD = [
    ("style-tag", "error", "<style>.a{color:red}</style><p>x</p>"),
    ("style-tag", "error", '<link rel="stylesheet" href="https://x.example/a.css"><p>x</p>'),
    ("class-attr", "error", '<p class="name">x</p>'),
    ("forbidden-tag", "error", "<p>x</p><script>alert(1)</script>"),
    ("forbidden-tag", "error", '<iframe src="https://x.example"></iframe>'),
    ("forbidden-tag", "error", '<form action="https://x.example"><p>x</p></form>'),
    ("forbidden-tag", "error", '<p onclick="x()">x</p>'),
    ("img-https", "error", img(src="http://cdn.example.com/a.png")),
    ("img-https", "error", img(src="/static/logo.png")),
    ("img-data-uri", "error", img(src="data:image/png;base64,iVBORw0KGgo=")),
    ("img-format", "error", img(src="https://cdn.example.com/logo.svg")),
    ("img-format", "error", img(src="https://cdn.example.com/logo.webp?v=2")),
    ("img-format", "error", '<svg width="10" height="10"></svg>'),
    ("img-alt", "error", img(alt=None)),
    ("img-width", "error", img(width=None)),
    ("img-height", "error", img(height=None)),
    ("img-width", "error", img(width="100", style="display:block; width:120px; height:40px")),
    ("img-height", "warning", img(style="display:block; width:100px")),
    ("img-width", "error", img(width="50%")),
    ("img-border", "warning", img(border=None)),
    ("float", "error", '<td style="float:left">x</td>'),
    ("flex", "error", '<div style="display:flex">x</div>'),
    ("grid", "error", '<div style="display:grid; grid-template-columns:1fr 1fr">x</div>'),
    ("position", "error", '<div style="position:absolute; top:0">x</div>'),
    ("border-radius", "error", '<td style="border-radius:4px">x</td>'),
    ("background-image", "error", "<td style=\"background-image:url('https://x.example/a.png')\">x</td>"),
    ("background-image", "error", '<td style="background:#fff url(https://x.example/a.png)">x</td>'),
    ("negative-margin", "warning", '<p style="margin:0 -4px">x</p>'),
    ("line-height", "warning", '<td style="line-height:18px">x</td>'),
    ("font-stack", "warning", "<td style=\"font-family:'Brand Sans'\">x</td>"),
    ("link-href", "error", '<a href="javascript:alert(1)">x</a>'),
    ("link-http", "warning", '<a href="http://example.com">x</a>'),
]


@pytest.mark.parametrize(("rule", "severity", "snippet"), BAD, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(BAD)])
def test_rule_fires(rule, severity, snippet):
    report = lint_html(snippet)
    hits = [i for i in report.issues if i.rule == rule]
    assert hits, report.issues
    assert hits[0].severity == severity
    assert len(hits[0].message) > 20  # says what to change
    assert report.ok is (severity != "error" and not report.errors)


def test_issue_lines_point_into_the_html():
    report = lint_html('<table>\n<tr>\n<td class="x">a</td></tr></table>')
    assert report.issues[0].line == 3


def test_web_safe_stacks_pass():
    for stack in ("Arial, sans-serif", "'Segoe UI', Tahoma, sans-serif", "Georgia, 'Times New Roman', serif",
                  "'Brand Sans', Helvetica, Arial, sans-serif", "Verdana"):  # fmt: skip
        assert lint_html(f'<p style="font-family:{stack}">x</p>').issues == [], stack


def test_line_height_with_mso_rule_passes():
    assert lint_html('<p style="line-height:18px; mso-line-height-rule:exactly">x</p>').issues == []


@pytest.mark.parametrize(
    ("size", "failing"),
    [
        (4_000, set()),
        (6_000, {"exchange_transport_rule"}),
        (12_000, {"exchange_transport_rule", "gmail"}),
        (31_000, {"exchange_transport_rule", "gmail", "outlook_addin"}),
    ],
)
def test_size_budgets(size, failing):
    html = "<p>" + "x" * (size - 7) + "</p>"
    report = lint_html(html)
    assert report.size == size
    assert {t for t, b in report.budgets.items() if not b["ok"]} == failing
    assert report.budgets["gmail"] == {"limit": BUDGETS["gmail"], "size": size, "ok": size <= 10_000}
    # Gmail and the Outlook add-in refuse oversize signatures: errors; the transport rule is a warning
    assert report.ok is not ({"gmail", "outlook_addin"} & failing)
    if "exchange_transport_rule" in failing:
        issue = next(i for i in report.issues if i.rule == "size-exchange-transport-rule")
        assert issue.severity == "warning"


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("kind", ["new", "reply"])
def test_shipped_layouts_lint_clean(layout, kind):
    source = getattr(LAYOUTS[layout], f"{kind}_source")
    report = lint_template(source)
    assert report.issues == [], report.issues
    assert report.budgets["gmail"]["ok"] and report.budgets["exchange_transport_rule"]["ok"]
    assert report.as_dict()["ok"] is True


def test_lint_template_with_a_custom_sample_and_brand():
    source = LAYOUTS["classic"].new_source
    ctx = build_context(employee=EmployeeData(email="a@example.com", first_name="A"), brand=SAMPLE_BRAND)
    assert lint_template(source, ctx).ok
    bad_brand = BrandData(company_name="B", logo_url="http://cdn.example.com/logo.svg", font_stack="Brand Sans")
    report = lint_template(source, brand=bad_brand)
    assert {"img-https", "font-stack"} <= report.rules()
    assert not report.ok


def test_lint_template_renders_a_sparse_employee_too():
    # only the sparse sample (no phone) renders this branch, whose image has no alt
    source = (
        '<table><tr><td>{% if not employee.phone %}<img src="https://x.example/a.png">{% endif %}</td></tr></table>'
    )
    report = lint_template(source)
    assert "img-alt" in report.rules()


def test_lint_template_propagates_compile_errors():
    with pytest.raises(TemplateCompileError):
        lint_template("<p>{% if %}</p>")
