"""The API documentation opens with no internet: Swagger UI and ReDoc come from the app's vendored copies, and a
real browser that may reach nothing but the app renders both, with no request to another host and no CSP error."""

import shutil

import pytest

from tests.browser import CHROMIUM_ARGS
from tests.live_server import live_server


@pytest.fixture(scope="module")
def browser():
    """Module-scoped, so Playwright's loop is gone before the next module's tests run their own event loops."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_docs_pages_reference_only_the_app(client):
    for path, asset in (("/docs", "/static/vendor/swagger-ui/swagger-ui-bundle.js"),
                        ("/redoc", "/static/vendor/redoc/redoc.standalone.js")):  # fmt: skip
        page = client.get(path)
        assert page.status_code == 200 and asset in page.text
        assert "https://" not in page.text.replace("https://relais.test", "")
        assert "jsdelivr" not in page.headers["content-security-policy"]
        assert client.get(asset).status_code == 200


@pytest.mark.browser
@pytest.mark.parametrize(("path", "ready"), [("/docs", ".opblock"), ("/redoc", "[data-item-id]")])
def test_docs_render_in_a_browser_that_reaches_nothing_else(app, browser, path, ready):
    with live_server(app) as base:
        context = browser.new_context()
        page = context.new_page()
        foreign, problems = [], []

        def route(r):
            if r.request.url.startswith(base):
                r.continue_()
            else:  # "no internet": anything else is refused before it leaves the browser
                foreign.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(base + path)
        page.wait_for_selector(ready, timeout=30_000)
        context.close()
    assert foreign == [], f"{path} asked another host for {foreign}"
    # ReDoc's sidebar links Redocly's logo from their CDN: the policy refusing it is the guarantee at work.
    refused = [p for p in problems if "Content Security Policy" in p and "cdn.redoc.ly/redoc/logo" not in p]
    assert refused == [], problems
