"""The Outlook add-in page (manifest download, deployment steps, the add-in's addresses, the https check) and
the relay status page (processes, alive or gone, counters with reasons, the provider setup text from the
registry, the empty state): role checks and another organisation's relays."""

from datetime import timedelta

import pytest
from sqlmodel import Session

from service.app import create_app
from service.db import utcnow
from service.directory.models import Employee
from service.models import Role
from signatures.relay.models import RelayProcess
from signatures.relay.setup import setup_for
from signatures.relay.status import report
from tests.conftest import make_tenant
from tests.page_support import make_user, signed_in_client


@pytest.fixture
def site(db, settings, tenant):
    make_user(db, tenant.org_id, Role.it)
    make_user(db, tenant.org_id, Role.comms)
    return create_app(settings=settings, engine=db)


def test_the_addin_page_offers_the_manifest_and_the_steps(site, settings):
    it = signed_in_client(site, "it@acme.example")
    page = it.get("/app/addin")
    assert page.status_code == 200
    assert 'href="/addin/manifest.xml" download' in page.text
    assert "Integrated apps → Upload custom apps" in page.text and "24 hours" in page.text
    assert "https://relais.test/addin/launchevent.js" in page.text
    assert "https://relais.test/.well-known/microsoft-officeaddins-allowed.json" in page.text
    assert "Served on https" in page.text
    assert "No Entra app id is set" in page.text and "No Microsoft 365 connection" in page.text  # what is missing
    manifest = it.get("/addin/manifest.xml")  # the link's target: the public manifest route, this instance's URLs
    assert manifest.status_code == 200 and "https://relais.test/addin/launchevent.html" in manifest.text
    french = it.get("/app/addin", headers={"Accept-Language": "fr"})
    assert "Complément Outlook" in french.text and "Télécharger le manifeste" in french.text
    assert "No Entra app id is set" not in french.text and "Served on https" not in french.text


def test_the_addin_page_says_when_the_instance_is_on_http(db, settings, tenant):
    make_user(db, tenant.org_id, Role.it)
    plain = settings.model_copy(update={"public_base_url": "http://relais.test", "addin_client_id": "abc"})
    it = signed_in_client(create_app(settings=plain, engine=db), "it@acme.example")
    page = it.get("/app/addin")
    assert "Outlook refuses add-ins served over http" in page.text and "RELAIS_PUBLIC_BASE_URL" in page.text
    assert "checked for the Entra app id abc" in page.text
    french = it.get("/app/addin", headers={"Accept-Language": "fr"})
    assert "Outlook refuses" not in french.text and "http://relais.test" in french.text


def test_the_relay_page_empty_says_how_to_start_one(site, db, tenant):
    it = signed_in_client(site, "it@acme.example")
    page = it.get("/app/relay")
    assert page.status_code == 200 and "No relay has reported yet" in page.text and "relais relay" in page.text
    assert 'href="/app/relay"' in page.text  # in the navigation, beside Deployments
    with Session(db) as s:
        s.add(Employee(org_id=tenant.org_id, email="ana@acme.example", source_id="1"))
        s.commit()
        microsoft = setup_for(s, site.state.settings, org_id=tenant.org_id, provider="microsoft")
    page = it.get("/app/relay")
    assert "New-OutboundConnector" in page.text and "-SenderDomainIs &#39;acme.example&#39;" in page.text
    assert "Content compliance" in page.text  # Google's steps too
    assert microsoft.splitlines()[0] in page.text  # the same text as the CLI and the API
    api = it.get("/api/relay/setup/microsoft")
    assert api.status_code in (401, 403)  # a page session is not an API credential


def test_the_relay_page_shows_each_process_and_its_counters(site, db, tenant):
    counters = {"signed": 41, "passed": {"calendar": 3, "auto_reply": 2}, "errors": 1, "refused": {"network": 4},
                "next_hop_failures": 0}  # fmt: skip
    report(db, row_id="relay-a:1:x", org_id=tenant.org_id, listen="0.0.0.0:25", next_hop="acme.mail.protection"
           ".outlook.com:25", counters=counters)  # fmt: skip
    with Session(db) as s:
        s.add(RelayProcess(id="relay-b:2:y", org_id=tenant.org_id, hostname="relay-b", listen="0.0.0.0:2525",
                           next_hop="smtp-relay.gmail.com:587", counters={"signed": 5},
                           updated_at=utcnow() - timedelta(minutes=30)))  # fmt: skip
        other = make_tenant(db, "globex")
        s.add(RelayProcess(id="globex:3:z", org_id=other.org_id, hostname="globex-relay", listen="x", next_hop="y"))
        s.commit()
    it = signed_in_client(site, "it@acme.example")
    page = it.get("/app/relay")
    assert "acme.mail.protection.outlook.com:25" in page.text and "relay-b" in page.text
    assert page.text.count(">alive<") == 1 and page.text.count(">gone<") == 1  # by the last report's age
    assert "meeting invitation: 3" in page.text and "automatic reply: 2" in page.text
    assert ">46<" in page.text  # signed, both processes
    assert "globex-relay" not in page.text
    french = it.get("/app/relay", headers={"Accept-Language": "fr"})
    assert "invitation à une réunion: 3" in french.text and "meeting invitation" not in french.text


@pytest.mark.parametrize("path", ["/app/addin", "/app/relay", "/app/directory/sync"])
def test_comms_cannot_open_the_it_pages(site, path):
    comms = signed_in_client(site, "comms@acme.example")
    assert comms.get(path).status_code == 403
    assert f'href="{path}"' not in comms.get("/app/dashboard").text
    it = signed_in_client(site, "it@acme.example")
    assert it.get(path).status_code == 200
