"""IT's relay page data: every relay process reports its counters; the API sums them and serves the setup text."""

import smtplib

from service.models import Role
from signatures.relay.run import status_reporter
from tests.relay_support import ALICE, RawSink, RelayThread, make_handler, relay_config, setup_tenant, start_sink


def test_counters_reach_the_status_api_and_setup_text_is_served(db, client, tenant, settings):
    setup_tenant(client, tenant, db)
    sink = RawSink()
    controller = start_sink(sink)
    config = relay_config(controller.port)
    handler, _ = make_handler(db, tenant, settings, config)
    report = status_reporter(db, org_id=tenant.org_id, config=config)
    try:
        with RelayThread(config, handler), smtplib.SMTP("127.0.0.1", config.listen_port) as smtp:
            smtp.sendmail(ALICE, ["x@partner.example"], b"From: <alice@acme.example>\r\nSubject: a\r\n\r\nHi\r\n")
            smtp.sendmail(ALICE, ["x@partner.example"], b"From: <bob@acme.example>\r\nSubject: b\r\n\r\nHi\r\n")
    finally:
        controller.stop()
    report(handler.stats.snapshot())
    status = client.get("/api/relay/status", headers=tenant.headers(Role.it))
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["running"] == 1
    assert body["totals"]["signed"] == 1 and body["totals"]["passed"] == {"sender_mismatch": 1}
    report(handler.stats.snapshot(), stopped=True)
    assert client.get("/api/relay/status", headers=tenant.headers(Role.it)).json()["running"] == 0

    assert client.get("/api/relay/status", headers=tenant.headers(Role.comms)).status_code == 403
    text = client.get("/api/relay/setup/microsoft?group=pilot@acme.example", headers=tenant.headers(Role.it))
    assert text.status_code == 200 and "-FromMemberOf 'pilot@acme.example'" in text.text
    bad = client.get("/api/relay/setup/lotus", headers=tenant.headers(Role.it))
    assert bad.status_code == 422 and "error" in bad.json()
