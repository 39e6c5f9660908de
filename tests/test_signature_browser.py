"""Every shipped layout, rendered in a real browser: images at their declared sizes, nothing wider than a
mail pane, no empty rows for missing fields, text readable on a dark background (logo on a solid tile)."""

import io

import pytest
from PIL import Image

from signatures.context import BannerData, BrandData, EmployeeData, SocialLink, build_context
from signatures.layouts import LAYOUTS
from signatures.rendering import compile_template, render
from tests.browser import browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), "#888888").save(buf, "PNG")
    return buf.getvalue()


PIXEL = _png()
BRAND = BrandData(company_name="ACME Logistique", website="https://acme.example", logo_url="https://cdn.test/logo.png",
                  logo_width=160, logo_height=48, primary_color="#1F3A5F", secondary_color="#5B6675",
                  font_stack="Arial, Helvetica, sans-serif", address="12 rue de la Paix, Paris",
                  social_links=(SocialLink("LinkedIn", "https://linkedin.com/company/acme"),),
                  disclaimer_html="<p>Confidential.</p>")  # fmt: skip
FULL = EmployeeData(
    email="chevalier@acme.example",
    first_name="Marie-Éléonore",
    last_name="Chevalier-Delacroix",
    title="Directrice des opérations internationales",
    department="R&D <Ops>",
    office="Paris",
    phone="+33 1 84 88 00 10",
    mobile="+33 6 12 34 56 78",
    photo_url="https://cdn.test/p.png",
)
SPARSE = EmployeeData(email="x@acme.example", first_name="Noa", last_name="כהן")
BANNER = BannerData(
    image_url="https://cdn.test/banner.png", width=480, height=90, alt="Expo", href="https://r.test/c/t"
)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("source", ["new_source", "reply_source"])
@pytest.mark.parametrize("employee", [FULL, SPARSE], ids=["full", "sparse"])
def test_layout_renders_soundly_in_chromium(browser, layout, source, employee):  # noqa: F811
    html = render(
        compile_template(getattr(LAYOUTS[layout], source)),
        build_context(employee=employee, brand=BRAND, banner=BANNER),
    ).html
    # Serve every image as a real 1x1 PNG so the browser lays them out at their declared sizes.
    page = browser.new_page(viewport={"width": 800, "height": 600})
    page.route("https://cdn.test/**", lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL))
    page.set_content(f"<!doctype html><html><body style='margin:0;background:#121212'>{html}</body></html>")
    page.wait_for_load_state("networkidle")
    report = page.evaluate("""() => {
        const imgs = [...document.images].map(i => ({src: i.getAttribute('src'), w: i.width, h: i.height,
            aw: +i.getAttribute('width'), ah: +i.getAttribute('height'), loaded: i.complete && i.naturalWidth > 0}));
        const cells = [...document.querySelectorAll('td')];
        const emptyRows = [...document.querySelectorAll('tr')].filter(r =>
            r.innerText.trim() === '' && r.querySelectorAll('img').length === 0 &&
            r.getBoundingClientRect().height > 4).length;
        return {imgs, emptyRows, cells: cells.length,
                width: Math.max(...[...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right)),
                text: document.body.innerText};
    }""")
    page.close()
    assert report["width"] <= 650, f"signature is {report['width']}px wide"
    assert report["cells"] > 0
    for img in report["imgs"]:
        assert img["loaded"], img
        assert (img["w"], img["h"]) == (img["aw"], img["ah"]), img
    assert report["emptyRows"] == 0
    assert employee.last_name in report["text"]
    assert "<" not in report["text"].replace("R&D <Ops>", "")
