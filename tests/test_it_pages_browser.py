"""IT's journey through the directory sync, the Outlook add-in and the relay pages in Debian's chromium: "sync
now" against the Google fake with its progress followed live (htmx polling), the manifest downloaded, the relay
processes and setup steps; axe-core on each page, no CSP violation, screenshots in test-artifacts/pages/."""

import json
import threading
from pathlib import Path

import pytest
from sqlmodel import Session, select

from service.accounts.demo import DEMO_LOGINS_FILE
from service.app import create_app
from service.connections.models import Provider
from service.connections.service import save_connection
from service.demo import seed_demo
from service.directory.runs import run_sync
from service.models import Organisation
from signatures.relay.status import report
from tests.fakes.google import fake_google
from tests.live_server import free_port, live_server
from tests.test_pages_browser import Visit, browser  # noqa: F401 - the module's browser fixture

pytestmark = pytest.mark.browser
ADMIN = "admin@example.com"


@pytest.fixture
def it_site(db, settings):
    """The demo organisation with a Google connection (the fake), a relay that reported, and "sync now" jobs
    held until the test releases them, so the page can be seen waiting, then done."""
    port = free_port()
    settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    with fake_google() as fake:
        fake.add_user(ADMIN, admin=True)
        fake.seed_users(3)
        settings.google_api_endpoint, settings.google_token_uri = fake.url, fake.token_uri
        with Session(db) as s:
            seed_demo(s, settings)
            org_id = s.exec(select(Organisation.id)).one()
            save_connection(s, org_id=org_id, provider=Provider.google, config={"admin_subject": ADMIN},
                            secret=json.dumps(fake.service_account_info()), settings=settings)  # fmt: skip
            s.commit()
        report(db, row_id="relay-1:42:x", org_id=org_id, listen="0.0.0.0:25", next_hop="smtp-relay.gmail.com:587",
               counters={"signed": 12, "passed": {"calendar": 2}, "errors": 0, "refused": {}})  # fmt: skip
        logins = {r: (e, p) for r, e, p in (line.split() for line in (settings.data_dir / DEMO_LOGINS_FILE).open())}
        release, workers = threading.Event(), []

        def run_later(task, *args):
            if getattr(getattr(task, "func", None), "__name__", "") == "run_directory_sync":

                def work():
                    release.wait(30)
                    run_sync(db, settings, args[0])

                workers.append(threading.Thread(target=work, daemon=True))
                workers[-1].start()

        app = create_app(settings=settings, engine=db, run_task=run_later)
        with live_server(app, port) as base:
            yield base, logins, release
        release.set()
        for w in workers:
            w.join(10)


def test_it_sync_addin_and_relay_journey(browser, it_site):  # noqa: F811
    base, logins, release = it_site
    v = Visit(browser, base, "it-pages")
    try:
        v.sign_in(*logins["it"])
        page = v.page
        v.go("/app/directory")
        page.get_by_role("link", name="Sync status and history").click()
        page.wait_for_load_state("networkidle")
        assert "Google Workspace" in page.locator("#h-source").locator("..").inner_text()
        v.check("directory-sync")
        page.get_by_role("button", name="Sync now").click()
        page.wait_for_load_state("load")
        assert "/app/directory/sync/" in page.url
        page.wait_for_selector("#sync-progress[hx-trigger]")  # polling while the job waits for a worker
        assert "Waiting for the worker" in page.locator("#sync-progress").inner_text()
        v.check("directory-sync-running")
        release.set()
        page.wait_for_selector("#sync-progress:not([hx-trigger]) .badge-done", timeout=20000)
        assert "4" in page.locator("#sync-progress .stats").inner_text()  # the admin and three people, new
        v.check("directory-sync-done")
        v.go("/app/directory/sync")
        assert page.locator("#syncs tbody tr").count() == 1
        page.locator("#f-state").select_option("failed")
        page.wait_for_function("() => location.search.includes('state=failed')")
        assert "No sync matches" in page.locator("#syncs").inner_text()

        page.get_by_role("link", name="Outlook add-in").click()
        page.wait_for_load_state("networkidle")
        assert "Outlook refuses add-ins served over http" in page.content()  # this test server is plain http
        with page.expect_download() as download:
            page.get_by_role("link", name="Download the manifest").click()
        saved = download.value
        assert saved.suggested_filename == "relais-outlook-manifest.xml"
        assert "<OfficeApp" in Path(saved.path()).read_text(encoding="utf-8")
        v.check("addin")

        page.get_by_role("link", name="Mail-flow relay").click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("cell", name="smtp-relay.gmail.com:587").count() == 1
        assert "meeting invitation: 2" in page.locator("table").inner_text()
        page.get_by_text("Google Workspace: Admin console steps").click()
        assert page.locator("details.setup[open]").count() == 2
        v.check("relay")
    finally:
        v.close()
