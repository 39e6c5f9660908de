"""The relay as an SMTP proxy: never an open relay, TLS when required, and no message lost or doubled when
the next hop fails. Real servers only: an aiosmtpd sink as the next hop, smtplib and aiosmtplib as clients."""

import asyncio
import logging
import smtplib
import ssl

import aiosmtplib
import pytest
from sqlmodel import Session, select

from service.directory.models import Employee
from signatures.models import TemplateAssignment
from tests.fakes.tls import make_ca_and_server_cert, make_client_certificate
from tests.newsletter_support import free_port
from tests.relay_support import ALICE, BOB, RawSink, RelayThread, make_handler, relay_config, setup_tenant, start_sink

OUT = "carol@partner.example"


def message(sender=ALICE, msg_id="<m1@acme.example>", body="Hello,\r\n.leading dot\r\n", charset="utf-8") -> bytes:
    return (
        f"From: Alice Martin <{sender}>\r\nTo: <{OUT}>\r\nSubject: Hello\r\nMessage-ID: {msg_id}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n\r\n{body}"
    ).encode()


@pytest.fixture
def world(db, client, tenant, settings):
    """Returns a function that starts a relay (config overrides) in front of one sink."""
    setup_tenant(client, tenant, db)
    sink = RawSink()
    controller = start_sink(sink)
    started = []

    def start(**overrides):
        config = relay_config(overrides.pop("sink_port", controller.port), **overrides)
        handler, directory = make_handler(db, tenant, settings, config)
        relay = RelayThread(config, handler).__enter__()
        started.append(relay)
        return relay

    start.sink, start.controller = sink, controller
    yield start
    for relay in started:
        relay.__exit__(None, None, None)
    controller.stop()


def test_signs_and_keeps_the_leading_dot(world):
    relay = world()
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.sendmail(ALICE, [OUT], message())
    (got,) = world.sink.messages
    assert got.data.startswith(b"X-Relais-Signed: signed; kind=new\r\n")
    assert b"\r\n.leading dot\r\n" in got.data and b"Head of Sales" in got.data
    assert got.mail_from == ALICE and got.rcpt_tos == [OUT]


def test_alias_is_the_same_employee(world):
    relay = world()
    alias = ALICE.replace("@", ".alias@")
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.sendmail(alias, [OUT], message(sender=alias))
    assert world.sink.messages[0].data.startswith(b"X-Relais-Signed: signed")


@pytest.mark.parametrize(
    ("envelope", "header", "reason"),
    [("dave@acme.example", "dave@acme.example", "unknown_sender"), (ALICE, BOB, "sender_mismatch")],
)
def test_unknown_or_mismatched_sender_passes_unsigned(world, envelope, header, reason):
    relay = world()
    raw = message(sender=header)
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.sendmail(envelope, [OUT], raw)
    assert world.sink.messages[0].data == f"X-Relais-Signed: passed; reason={reason}\r\n".encode() + raw


def test_over_the_size_limit_passes_unsigned(world):
    relay = world(max_sign_bytes=1000)
    raw = message(body=("x" * 70 + "\r\n") * 30)
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.sendmail(ALICE, [OUT], raw)
    assert world.sink.messages[0].data == b"X-Relais-Signed: passed; reason=too_large\r\n" + raw


def test_signing_error_sends_the_original_and_logs(world, caplog):
    relay = world()
    raw = message(charset="x-no-such-charset")
    with caplog.at_level(logging.WARNING, logger="signatures.relay"), smtplib.SMTP("127.0.0.1", relay.port) as s:
        s.sendmail(ALICE, [OUT], raw)
    assert world.sink.messages[0].data == b"X-Relais-Signed: passed; reason=error\r\n" + raw
    assert any(r.getMessage() == "signatures.relay.sign_failed" for r in caplog.records)
    assert relay.handler.stats.errors == 1


def test_no_template_is_a_signing_error_not_a_bounce(world, db):
    with Session(db) as s:
        for row in s.exec(select(TemplateAssignment)).all():
            s.delete(row)
        s.commit()
    relay = world()
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.sendmail(ALICE, [OUT], message())
    assert world.sink.messages[0].data.startswith(b"X-Relais-Signed: passed; reason=error\r\n")


def test_deactivated_employee_is_unknown(world, db):
    with Session(db) as s:
        emp = s.exec(select(Employee).where(Employee.email == ALICE)).one()
        emp.active = False
        s.add(emp)
        s.commit()
    relay = world()
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        smtp.sendmail(ALICE, [OUT], message())
    assert world.sink.messages[0].data.startswith(b"X-Relais-Signed: passed; reason=unknown_sender\r\n")


# ---------------------------------------------------------------- never an open relay


def test_foreign_sender_domain_is_refused(world):
    relay = world()
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail("mallory@evil.example", [OUT], message(sender="mallory@evil.example"))
    assert refused.value.smtp_code == 550
    assert world.sink.messages == [] and relay.handler.stats.refused["sender"] == 1


def test_client_outside_the_allowed_networks_is_refused(world):
    relay = world(allowed_networks=("192.0.2.0/24",))
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail(ALICE, [OUT], message())
    assert refused.value.smtp_code == 554
    assert world.sink.messages == []


def test_configured_domains_replace_the_employee_domains(db, client, tenant, settings):
    setup_tenant(client, tenant, db)
    sink = RawSink()
    controller = start_sink(sink)
    config = relay_config(controller.port)
    handler, _ = make_handler(db, tenant, settings, config, domains=["acme-group.example"])
    try:
        with RelayThread(config, handler), smtplib.SMTP("127.0.0.1", config.listen_port) as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused):
                smtp.sendmail(ALICE, [OUT], message())
            smtp.rset()
            smtp.sendmail("x@acme-group.example", [OUT], message(sender="x@acme-group.example"))
    finally:
        controller.stop()
    assert sink.messages[0].data.startswith(b"X-Relais-Signed: passed; reason=unknown_sender")


# ---------------------------------------------------------------- the next hop fails


def test_next_hop_down_is_a_4xx_and_the_retry_delivers_once(db, client, tenant, settings):
    setup_tenant(client, tenant, db)
    hop_port = free_port()
    config = relay_config(hop_port)
    handler, _ = make_handler(db, tenant, settings, config)
    sink = RawSink()
    with RelayThread(config, handler):
        with smtplib.SMTP("127.0.0.1", config.listen_port) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as e:
            smtp.sendmail(ALICE, [OUT], message())
        assert e.value.smtp_code == 451  # the sender keeps the message and retries
        controller = start_sink(sink, port=hop_port)
        try:
            with smtplib.SMTP("127.0.0.1", config.listen_port) as smtp:
                smtp.sendmail(ALICE, [OUT], message())
        finally:
            controller.stop()
    assert len(sink.messages) == 1
    assert handler.stats.next_hop_failures == 1 and handler.stats.signed == 1


@pytest.mark.parametrize(
    ("reply", "code"),
    [("451 4.3.0 Try again later", 451), ("421 4.3.2 Shutting down", 451), ("554 5.6.0 Rejected", 554)],
)
def test_next_hop_data_answer_passes_back(world, reply, code):
    relay = world()
    world.sink.data_reply = reply
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp, pytest.raises(smtplib.SMTPDataError) as error:
        smtp.sendmail(ALICE, [OUT], message())
    assert error.value.smtp_code == code
    world.sink.data_reply = None
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:  # the same connection pool recovers
        smtp.sendmail(ALICE, [OUT], message())
    assert len(world.sink.messages) == 1


def test_recipients_are_answered_by_the_next_hop_one_by_one(world):
    relay = world()
    world.sink.rcpt_reply["gone@partner.example"] = "550 5.1.1 No such user"
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        refused = smtp.sendmail(ALICE, [OUT, "gone@partner.example"], message())
    assert refused == {"gone@partner.example": (550, b"5.1.1 No such user")}
    assert world.sink.messages[0].rcpt_tos == [OUT]


def test_slow_next_hop_times_out_as_4xx(world):
    relay = world(next_hop_timeout_s=0.5)

    async def slow(server, session, envelope):
        await asyncio.sleep(2)
        return "250 OK"

    world.sink.handle_DATA = slow
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp, pytest.raises(smtplib.SMTPDataError) as error:
        smtp.sendmail(ALICE, [OUT], message())
    assert error.value.smtp_code == 451


def test_several_messages_on_one_connection_with_aiosmtplib(world):
    relay = world()

    async def run():
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as smtp:
            for n in range(3):
                await smtp.sendmail(ALICE, [OUT], message(msg_id=f"<m{n}@acme.example>"))

    asyncio.run(run())
    assert [m.data.count(b"X-Relais-Signed: signed") for m in world.sink.messages] == [1, 1, 1]


# ---------------------------------------------------------------- TLS


@pytest.fixture
def certs(tmp_path):
    return make_ca_and_server_cert(tmp_path / "tls")


def test_tls_required_refuses_plain_and_accepts_starttls(world, certs):
    relay = world(tls_cert_file=certs.cert_file, tls_key_file=certs.key_file, require_tls=True)
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail(ALICE, [OUT], message())
    assert refused.value.smtp_code == 530
    context = ssl.create_default_context(cafile=certs.ca_file)
    with smtplib.SMTP("localhost", relay.port) as smtp:
        smtp.starttls(context=context)
        smtp.sendmail(ALICE, [OUT], message())
    assert len(world.sink.messages) == 1


def test_client_certificate_subject_is_checked(world, certs, tmp_path):
    good, bad = make_client_certificate("outbound.protection.outlook.com"), make_client_certificate("evil.example")
    trusted = tmp_path / "clients.pem"
    trusted.write_text(good.certificate_pem + bad.certificate_pem)
    relay = world(
        tls_cert_file=certs.cert_file, tls_key_file=certs.key_file, require_tls=True,
        tls_client_ca_file=str(trusted), tls_client_subjects=("outbound.protection.outlook.com",),
    )  # fmt: skip

    def send(identity):
        context = ssl.create_default_context(cafile=certs.ca_file)
        if identity is not None:
            cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
            cert.write_text(identity.certificate_pem)
            key.write_text(identity.private_key_pem)
            context.load_cert_chain(cert, key)
        with smtplib.SMTP("localhost", relay.port) as smtp:
            smtp.starttls(context=context)
            smtp.sendmail(ALICE, [OUT], message())

    for identity in (None, bad):
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(identity)
        assert refused.value.smtp_code == 550
    send(good)
    assert len(world.sink.messages) == 1
    assert relay.handler.stats.refused["certificate"] == 2
