"""`relais relay setup microsoft|google` and the relay's CLI wiring."""

from typer.testing import CliRunner

import main
from signatures.relay.setup import google_steps, microsoft_script


def test_microsoft_script_has_connectors_rule_and_loop_exception():
    script = microsoft_script(relay_host="relay.acme.example", domains=["acme.example", "acme.fr"])
    assert "New-OutboundConnector -Name 'Relais signatures (to relay)'" in script
    assert "-IsTransportRuleScoped $true" in script and "-SmartHosts 'relay.acme.example'" in script
    assert "-TlsSenderCertificateName 'relay.acme.example'" in script
    assert "-ExceptIfHeaderMatchesMessageHeader 'X-Relais-Signed'" in script
    assert "-SenderDomainIs 'acme.example','acme.fr'" in script
    pilot = microsoft_script(relay_host="relay.acme.example", domains=["acme.example"], group="pilot@acme.example")
    assert "-FromMemberOf 'pilot@acme.example'" in pilot and "-SenderDomainIs" not in pilot


def test_google_steps_name_the_route_the_exception_and_the_return_path():
    steps = google_steps(relay_host="relay.acme.example", domains=["acme.example"], group="pilot@acme.example")
    for needle in ("Hosts > ADD ROUTE", "Not contains text  Content: X-Relais-Signed:", "smtp-relay.gmail.com:587",
                   "4.6 million", "pilot@acme.example"):  # fmt: skip
        assert needle in steps


def test_cli_setup_uses_the_employee_domains(db, tenant, settings, monkeypatch, tmp_path):
    from sqlmodel import Session

    from service.directory.models import Employee

    with Session(db) as s:
        s.add(Employee(org_id=tenant.org_id, email="zoe@acme-corp.example", source_id="z"))
        s.commit()
    monkeypatch.setenv("RELAIS_DATABASE_URL", db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    main.get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            main.cli, ["relay", "setup", "microsoft", "--relay-host", "relay.acme-corp.example"]
        )
        bad = CliRunner().invoke(main.cli, ["relay", "setup", "lotus"])
    finally:
        main.get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "-SenderDomainIs 'acme-corp.example'" in result.output
    assert bad.exit_code == 2 and "'lotus' is not one of" in " ".join(bad.output.replace("│", " ").split())


def test_cli_relay_without_next_hop_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RELAIS_RELAY_NEXT_HOP", raising=False)
    main.get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main.cli, ["relay", "--listen", "127.0.0.1:2525"])
    finally:
        main.get_settings.cache_clear()
    assert result.exit_code != 0 and "RELAIS_RELAY_NEXT_HOP" in result.output
