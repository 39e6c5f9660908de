"""Every URL that reaches a signature, newsletter or page is absolute http(s); CSS values are what the field
means (colours, font names); a brand change goes through the templates' lint."""

import pytest

from service.models import Role
from service.validation import font_stack, http_url
from tests.conftest import BRAND

BAD_URLS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "data:text/html,<script>x</script>",
    "//evil.example/x", "/relative/path", "evil.example", "https://", "https:///path", "ftp://x.example/",
    "https://user:pw@x.example/", "https://x.example:port/", "java\tscript:alert(1)", "https://x.example/\x00",
    "https://evil.example\\@good.example/", "https:// x.example/", 'https://"x.example/',
]  # fmt: skip
GOOD_URLS = ["https://www.linkedin.com/company/acme", "http://127.0.0.1:8000/assets/logo.png", "https://[::1]:8443/x",
             "https://acme.example/Salon de l'été"]  # fmt: skip
BAD_FONTS = [
    "Arial; background:url(https://evil.example/x)", "Arial} .x{color:red", "Arial</style><script>",
    'Arial, "Evil"; x:y', "expression(alert(1))", "", "Arial,,", "a" * 300,
]  # fmt: skip
GOOD_FONTS = ["Arial, Helvetica, sans-serif", "'Helvetica Neue', Arial, sans-serif", '"Segoe UI", -apple-system']


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError):
        http_url(url)


@pytest.mark.parametrize("url", GOOD_URLS)
def test_good_urls_pass(url):
    assert http_url(url) == url


@pytest.mark.parametrize("value", BAD_FONTS)
def test_font_stack_is_font_names_only(value):
    with pytest.raises(ValueError):
        font_stack(value)


@pytest.mark.parametrize("value", GOOD_FONTS)
def test_real_font_stacks_pass(value):
    assert font_stack(value) == value


def _put(client, tenant, **changes):
    body = {**BRAND, **changes}
    return client.put("/api/brand", json=body, headers=tenant.headers(Role.comms))


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "//evil.example"])
@pytest.mark.parametrize("field", ["social", "website", "logo_url"])
def test_brand_urls_must_be_http(client, tenant, url, field):
    change = {"social_links": [{"network": "LinkedIn", "url": url}]} if field == "social" else {field: url}
    r = _put(client, tenant, **change)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid" and ("url" if field == "social" else field) in error["message"]


def test_brand_css_fields_are_validated(client, tenant):
    r = _put(client, tenant, font_stack="Arial; background:url(https://evil.example/x)")
    assert r.status_code == 422 and "font_stack" in r.json()["error"]["message"]
    r = _put(client, tenant, primary_color="red;x:y")
    assert r.status_code == 422 and "primary_color" in r.json()["error"]["message"]
    r = _put(client, tenant, company_name="Acme\u202eevil")
    assert r.status_code == 422 and "company_name" in r.json()["error"]["message"]
    assert _put(client, tenant, font_stack="'Helvetica Neue', Arial, sans-serif").status_code == 200


def test_nothing_unsafe_reaches_an_exported_signature(client, tenant):
    created = client.post("/api/templates", json={"name": "Main", "layout": "classic"}, headers=tenant.headers(Role.it))
    assert created.status_code == 201, created.text
    for change in ({"font_stack": "Arial;}</style><script>x</script>"}, {"website": "javascript:alert(1)"}):
        assert _put(client, tenant, **change).status_code == 422
    brand = client.get("/api/brand", headers=tenant.headers(Role.comms)).json()
    assert "script" not in brand["font_stack"] and brand["website"].startswith("https://")


def test_brand_change_goes_through_the_templates_lint(client, tenant):
    """An http logo is what a template with an <img> is refused for: the brand is refused the same way."""
    created = client.post("/api/templates", json={"name": "Main", "layout": "classic"}, headers=tenant.headers(Role.it))
    assert created.status_code == 201, created.text
    r = _put(client, tenant, logo_url="https://relais.test/assets/logo.svg")
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert "Main" in error["message"] and error["details"]["template"] == "Main"
    assert any(e["rule"] == "img-format" for e in error["details"]["errors"])
    # the brand was not changed
    assert client.get("/api/brand", headers=tenant.headers(Role.comms)).json()["logo_url"] == BRAND["logo_url"]


def test_brand_change_is_linted_against_the_default_layout_before_any_template(client, tenant):
    r = _put(client, tenant, logo_url="https://relais.test/assets/logo.svg")
    assert r.status_code == 422 and "default layout" in r.json()["error"]["message"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "//evil.example/a"])
def test_article_and_campaign_urls_must_be_http(client, tenant, url):
    r = client.post(
        "/api/newsletter/articles", json={"url": url, "fetch": False, "title": "T"}, headers=tenant.headers(Role.comms)
    )
    assert r.status_code == 422, r.text
    r = client.post(
        "/api/newsletter/articles",
        json={"url": "https://acme.example/a", "fetch": False, "title": "T", "image_url": url},
        headers=tenant.headers(Role.comms),
    )
    assert r.status_code == 422, r.text
