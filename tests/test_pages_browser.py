"""Each role's main journeys through the pages in Debian's chromium (Playwright), with axe-core checking every
page for serious or critical accessibility violations, no CSP violation in the console, and screenshots saved
under test-artifacts/pages/ for a person to look at."""

import json
import re
from pathlib import Path

import pytest
from sqlmodel import Session

from service.accounts.demo import DEMO_LOGINS_FILE
from service.app import create_app
from service.demo import seed_demo
from signatures.deploy import engine as deploy_engine
from signatures.deploy.registry import make_target
from tests.browser import CHROMIUM_ARGS
from tests.live_server import free_port, live_server
from tests.newsletter_support import Sink, start_sink

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
AXE = (ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js").read_text()
SHOTS = ROOT / "test-artifacts" / "pages"


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: closed before the next module's session-scoped browser starts (one Playwright at a time)."""
    import shutil

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def site(db, settings):
    """The demo organisation on a real server, deployments run inline, test sends into a real SMTP sink."""
    port, smtp_port = free_port(), free_port()
    sink = Sink()
    controller = start_sink(smtp_port, sink)
    settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}", "smtp_port": smtp_port})
    with Session(db) as s:
        seed_demo(s, settings)
        s.commit()
    logins = {r: (e, p) for r, e, p in (line.split() for line in (settings.data_dir / DEMO_LOGINS_FILE).open())}

    def run_inline(task, *args):
        if getattr(getattr(task, "func", None), "__name__", "") == "run_deployment":
            deploy_engine.execute(db, args[0], make_target=lambda s, d: make_target(s, d, settings))

    app = create_app(settings=settings, engine=db, run_task=run_inline)
    try:
        with live_server(app, port) as base:
            yield base, logins, sink
    finally:
        controller.stop()


class Visit:
    """One browser context: checks each page it lands on (axe, CSP) and keeps screenshots."""

    def __init__(self, chromium, base: str, name: str, locale: str = "en-GB", width: int = 1280, **options):
        self.context = chromium.new_context(locale=locale, viewport={"width": width, "height": 900}, **options)
        self.page = self.context.new_page()
        self.base, self.name, self.csp_errors = base, name, []
        self.page.on("console", self._console)
        SHOTS.mkdir(parents=True, exist_ok=True)

    def _console(self, msg):
        if "Content Security Policy" in msg.text or "Refused to" in msg.text:
            self.csp_errors.append(msg.text)

    def go(self, path: str):
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def check(self, label: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        page.screenshot(path=str(SHOTS / f"{self.name}-{label}.png"), full_page=True)
        page.evaluate(AXE)  # evaluated by the driver, not injected as a script: the page's CSP stays on
        result = page.evaluate("""async () => {
            const r = await axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "best-practice"]});
            return r.violations.filter(v => ["serious", "critical"].includes(v.impact))
                .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }""")
        assert result == [], f"{self.name}-{label}: {json.dumps(result, indent=1)}"
        assert self.csp_errors == [], f"{self.name}-{label}: {self.csp_errors}"

    def sign_in(self, email: str, password: str) -> None:
        self.go("/")
        self.page.get_by_label(re.compile("^(Email|E-mail)")).fill(email)
        self.page.get_by_label(re.compile("^(Password|Mot de passe)")).fill(password)
        self.page.get_by_role("button", name=re.compile("Sign in|Se connecter")).click()
        self.page.wait_for_load_state("networkidle")

    def close(self):
        self.context.close()


def test_comms_journey(browser, site):
    base, logins, sink = site
    v = Visit(browser, base, "comms")
    try:
        v.go("/")
        v.check("sign-in")
        v.sign_in(*logins["comms"])
        page = v.page
        assert page.url.endswith("/app/dashboard")
        assert page.locator("canvas[data-chart]").count() == 1
        v.check("dashboard")
        v.go("/app/campaigns")
        v.check("campaigns")
        page.get_by_role("link", name="New campaign").first.click()
        page.wait_for_load_state("networkidle")
        page.get_by_label("Name").fill("Winter fair")
        page.get_by_label("Where the banner leads").fill("https://acme.example/winter")
        page.locator("input[name=v-0-banner_id]").first.check()
        page.get_by_label("Banner text for blocked images").fill("Meet us at the winter fair")
        page.wait_for_selector("#live iframe")
        assert "This audience reaches 5" in page.locator("#live").inner_text()  # 50 demo people
        page.locator("#f-exclude_departments").select_option(index=0)  # an exclusion narrows the live count
        page.wait_for_function("() => !document.querySelector('#live').innerText.includes('reaches 50 ')")
        frame = page.frame_locator("#live iframe")
        assert frame.locator("img[alt='Meet us at the winter fair']").count() == 1  # the banner in a real signature
        v.check("campaign-new")
        page.get_by_role("button", name="Save the campaign").click()
        page.wait_for_load_state("networkidle")
        assert "/app/campaigns" in page.url and page.get_by_text("Winter fair").count() == 1
        assert page.locator(".toast").count() == 1
        v.go("/app/analytics")
        page.locator("#f-group").select_option("department")
        page.wait_for_function("() => location.search.includes('group_by=department')")
        assert page.locator("#analytics-body table").first.is_visible()
        assert "group_by=department" in page.get_by_role("link", name="Export CSV").get_attribute("href")
        v.check("analytics")
        v.go("/app/newsletter")
        v.check("newsletter")
        page.locator("table a[href^='/app/newsletter/issues/']").first.click()
        page.wait_for_load_state("networkidle")
        page.get_by_label("Send a test to").fill("boss@acme.example")
        page.get_by_role("button", name="Send a test").click()
        page.wait_for_selector("#test-result.alert-ok")
        assert len(sink.messages) == 1 and "<boss@acme.example>" in sink.messages[0]["To"]
        v.check("issue")
    finally:
        v.close()


def test_it_journey(browser, site):
    base, logins, _sink = site
    v = Visit(browser, base, "it")
    try:
        v.sign_in(*logins["it"])
        page = v.page
        assert page.url.endswith("/app/deployments")
        v.check("deployments")
        page.locator("#f-provider").select_option("file")
        page.get_by_role("button", name="Start").click()
        page.wait_for_load_state("networkidle")
        assert re.search(r"/app/deployments/\d+", page.url)
        page.get_by_role("button", name="Show").first.click()
        page.wait_for_selector("#diff pre.diff")
        v.check("deployment-dry-run")
        page.get_by_role("button", name="Apply for real").click()
        page.wait_for_load_state("networkidle")
        assert "Written to file" in page.locator(".subtitle").inner_text()
        v.check("deployment-applied")
        v.go("/app/directory")
        page.get_by_label("Search").fill("o'neil")
        page.wait_for_function("() => location.search.includes('q=o')")
        assert page.locator("#people tbody tr").count() >= 1
        v.check("directory")
        v.go("/app/directory/import")
        page.set_input_files(
            "#f-file",
            files=[
                {
                    "name": "people.csv",
                    "mimeType": "text/csv",
                    "buffer": b"email,first_name,last_name,department\nnew.hire@acme.example,Nour,Haddad,Sales\n",
                }
            ],
        )
        page.get_by_role("button", name="Dry run").click()
        page.wait_for_load_state("networkidle")
        assert "new.hire@acme.example" in page.content()
        v.check("import-dry-run")
        page.get_by_role("button", name="Apply these changes").click()
        page.wait_for_load_state("networkidle")
        v.go("/app/directory?q=new.hire")
        assert page.locator("#people tbody tr").count() == 1
        v.go("/app/templates")
        page.locator("a[href^='/app/templates/']").first.click()
        page.wait_for_load_state("networkidle")
        page.locator("#f-source").fill('<div style="display:flex">{{ employee.first_name }}</div>')
        page.wait_for_selector('.lint-list li.lint-error:has-text("flexbox")')
        page.frame_locator("iframe[name=template-preview]").locator("div").first.wait_for()
        v.check("template-editor")
        v.go("/app/connections")
        v.check("connections")
    finally:
        v.close()


def test_admin_journey_and_a_phone(browser, site):
    base, logins, _sink = site
    v = Visit(browser, base, "admin")
    try:
        v.sign_in(*logins["admin"])
        page = v.page
        v.go("/app/admin/users")
        page.get_by_label("Email").fill("new.comms@acme.example")
        page.get_by_role("button", name="Add the user").click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("cell", name="new.comms@acme.example", exact=True).count() == 1
        v.check("users")
        v.go("/app/admin/keys")
        page.get_by_label("Who or what uses it").fill("intranet export")
        page.get_by_role("button", name="Create the key").click()
        page.wait_for_load_state("networkidle")
        assert page.locator(".key-once").inner_text().startswith("rls_")
        v.check("keys")
        v.go("/app/account")
        v.check("account")
    finally:
        v.close()
    phone = Visit(browser, base, "phone", width=390)
    try:
        phone.sign_in(*logins["comms"])
        menu = phone.page.get_by_role("button", name="Menu")
        assert menu.is_visible() and not phone.page.locator("#nav").is_visible()
        menu.click()
        assert phone.page.locator("#nav").is_visible()
        phone.check("dashboard")
    finally:
        phone.close()


def test_french_pages(browser, site):
    base, logins, _sink = site
    v = Visit(browser, base, "fr", locale="fr-FR")
    try:
        v.go("/")
        assert v.page.get_by_role("heading", name="Connexion à Relais").count() == 1
        v.sign_in(*logins["admin"])
        for path, heading in [
            ("/app/dashboard", "Tableau de bord"),
            ("/app/campaigns", "Campagnes"),
            ("/app/newsletter", "Lettre interne"),
            ("/app/deployments", "Déploiements"),
            ("/app/directory", "Annuaire"),
            ("/app/admin/users", "Utilisateurs"),
        ]:
            v.go(path)
            assert v.page.get_by_role("heading", name=heading, exact=True).count() >= 1, path
            v.check(path.strip("/").replace("/", "-"))
    finally:
        v.close()


@pytest.fixture
def sso_site(db, settings):
    """The demo organisation on a real server, with the fake Entra ID beside it (its own CA: the browser is told to
    accept it, the app trusts it through ms_ca_bundle)."""
    from tests.fakes.microsoft import FakeMicrosoft

    port = free_port()
    with FakeMicrosoft(tenant_id="7d2b8f4e-1c3a-4b5d-9e6f-0a1b2c3d4e5f") as entra:
        base_url = f"http://127.0.0.1:{port}"
        reg = entra.register_app(secret="Brw8Q~" + "b" * 34, redirect_uris=[base_url + "/sign-in/sso/callback"])
        entra.add_user("nadia@acme.example", display_name="Nadia Benali")
        entra.add_user("otto@acme.example", display_name="Otto Klein")
        group = entra.add_group("Relais communications", ["nadia@acme.example"])["id"]
        pointed = {"public_base_url": base_url, "ms_authority_host": entra.authority_host}
        settings = settings.model_copy(update={**pointed, "ms_ca_bundle": entra.ca_file})
        with Session(db) as s:
            seed_demo(s, settings)
            s.commit()
        logins = {r: (e, p) for r, e, p in (line.split() for line in (settings.data_dir / DEMO_LOGINS_FILE).open())}
        with live_server(create_app(settings=settings, engine=db), port) as base:
            yield base, logins, entra, reg, group


def test_sso_journey(browser, sso_site):
    """An administrator sets up Entra ID on the page; then people sign in through the fake Entra in the browser."""
    base, logins, entra, reg, group = sso_site
    admin = Visit(browser, base, "sso-admin")
    try:
        admin.sign_in(*logins["admin"])
        page = admin.go("/app/admin/sso")
        admin.check("admin-sso")
        page.get_by_label("Identity provider").select_option("microsoft")
        page.get_by_label("Application (client) id").fill(reg.client_id)
        page.get_by_label("Client secret").fill(reg.secrets[0])
        page.get_by_label("Directory (tenant) id").fill(entra.tenant_id)
        page.get_by_label("Your email domains").fill("acme.example")
        page.get_by_label("Groups and their roles").fill(f"{group} comms")
        page.get_by_role("button", name="Save").click()
        page.wait_for_load_state("networkidle")
        assert page.locator(".toast").count() == 1 and "Set. Leave empty to keep the stored one." in page.content()
        assert reg.secrets[0] not in page.content()
        admin.check("admin-sso-saved")
    finally:
        admin.close()

    entra.sign_in_as("nadia@acme.example")
    person = Visit(browser, base, "sso-person", ignore_https_errors=True)
    try:
        page = person.go("/sign-in")
        page.get_by_label(re.compile("^Email")).fill("nadia@acme.example")
        continue_ms = page.get_by_role("button", name="Continue with Microsoft")
        continue_ms.wait_for()  # htmx asked which provider the domain leads to
        person.check("sign-in-sso")
        continue_ms.click()
        page.wait_for_url(re.compile(r"/app/dashboard$"))
        page.wait_for_load_state("networkidle")
        assert page.get_by_text("nadia@acme.example").count() == 1 and "Communications" in page.content()
        assert entra.request_count(path_contains="/oauth2/v2.0/authorize") == 1
    finally:
        person.close()

    entra.sign_in_as("otto@acme.example")  # in no group: the default role is "deny"
    stranger = Visit(browser, base, "sso-refused", locale="fr-FR", ignore_https_errors=True)
    try:
        page = stranger.go("/sign-in")
        page.get_by_label(re.compile("^(Email|E-mail)")).fill("otto@acme.example")
        page.get_by_role("button", name="Continuer avec Microsoft").click()
        page.wait_for_load_state("networkidle")
        assert (
            "/sign-in/sso/callback" in page.url and page.get_by_role("heading", name="Vous n'êtes pas connecté").count()
        )
        assert "admin@acme.example" in page.content()
        stranger.check("sso-refused")
    finally:
        stranger.close()
