"""Pure functions of the relay: MIME location, pass-through classes, signature placement, re-encoding."""

import pytest

from signatures.models import SignatureKind
from signatures.relay.classify import PassReason, pass_reason
from signatures.relay.mime import locate
from signatures.relay.placement import html_spot, text_spot
from signatures.relay.server import dot_stuffed, host_port
from signatures.relay.stamp import Signature, decode_body, sign_message

SIG = Signature(html="<p>SIG — Acme</p>", text="SIG — Acme")


def sign(raw: bytes, kinds: list | None = None):
    def signature_for(employee, kind):
        if kinds is not None:
            kinds.append(kind)
        return SIG

    return sign_message(
        raw, mail_from="a@acme.example", find_employee=lambda a: 1 if a == "a@acme.example" else None,
        signature_for=signature_for, max_sign_bytes=10**6,
    )  # fmt: skip


def headers(extra: str, ctype: str = "text/plain") -> bytes:
    return f"From: a@acme.example\r\n{extra}Content-Type: {ctype}\r\n\r\nHi\r\n".encode()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("Auto-Submitted: auto-generated\r\n", PassReason.auto_reply),
        ("X-Autoreply: yes\r\n", PassReason.auto_reply),
        ("Precedence: auto_reply\r\n", PassReason.auto_reply),
        (
            "X-Auto-Response-Suppress: All\r\nSubject: =?utf-8?q?R=C3=A9ponse_automatique_:_x?=\r\n",
            PassReason.auto_reply,
        ),
        ("Content-Class: urn:content-classes:calendarmessage\r\n", PassReason.calendar),
        ("X-MS-Exchange-Calendar-Series-Instance-Id: abc\r\n", PassReason.calendar),
        ("X-Relais-Signed: signed\r\n", PassReason.already_stamped),
        ("Auto-Submitted: no\r\n", None),
        ("X-Auto-Response-Suppress: All\r\nSubject: Meeting notes\r\n", None),
    ],
)
def test_header_classes(extra, reason):
    raw = headers(extra)
    assert pass_reason(locate(raw), size=len(raw), max_sign_bytes=10**6) == reason


@pytest.mark.parametrize(
    ("ctype", "reason"),
    [
        ('application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"', PassReason.signed_or_encrypted),
        ("application/x-microsoft-rpmsg-message", PassReason.signed_or_encrypted),
        ("multipart/report; report-type=delivery-status; boundary=b", PassReason.delivery_report),
        ("application/ms-tnef", PassReason.tnef),
    ],
)
def test_content_type_classes(ctype, reason):
    raw = headers("", ctype)
    assert pass_reason(locate(raw), size=len(raw), max_sign_bytes=10**6) == reason


def test_locate_keeps_preamble_epilogue_and_odd_boundaries():
    boundary = "=_a+b(c)?.*"
    raw = (
        f'From: a@acme.example\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\npreamble\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nbody\r\n--{boundary}  \r\n"
        f"Content-Type: application/octet-stream\r\n\r\n--{boundary}x is not a delimiter\r\n"
        f"--{boundary}--\r\nepilogue\r\n"
    ).encode()
    root = locate(raw)
    assert [raw[p.body_start : p.end] for p in root.children] == [b"body", f"--{boundary}x is not a delimiter".encode()]
    out = sign(raw).as_bytes()
    assert out.endswith(f"--{boundary}--\r\nepilogue\r\n".encode()) and b"preamble\r\n" in out


def test_reply_headers_without_a_quote_sign_at_the_end_with_the_reply_kind():
    kinds = []
    raw = b"From: a@acme.example\r\nIn-Reply-To: <x@y>\r\nContent-Type: text/plain\r\n\r\nShort answer.\r\n"
    result = sign(raw, kinds)
    assert kinds == [SignatureKind.reply] and result.as_bytes().endswith(b"Short answer.\r\n\r\nSIG =E2=80=94 Acme\r\n")
    assert b"Content-Transfer-Encoding: quoted-printable" in result.as_bytes()  # 7bit could not carry the dash
    assert b"charset=utf-8" in result.as_bytes()


def test_text_markers_and_false_friends():
    text = "From: the whole team, thanks!\r\nOn second thought, fine.\r\n\r\nOn Mon, 2 Mar 2026, Bob wrote:\r\n> hi\r\n"
    assert text_spot(text).position == text.index("On Mon")
    german = "Danke\r\n\r\nAm 02.03.2026 um 10:00 schrieb Bob Bauer <b@x.example>:\r\n> hallo\r\n"
    assert text_spot(german).position == german.index("Am 02")
    outlook = "Ok\r\n\r\nVon: Bob\r\nGesendet: Montag\r\nAn: Alice\r\n\r\nalt\r\n"
    assert text_spot(outlook).position == outlook.index("Von:")
    assert not text_spot("Just a note.\r\n").quoted


def test_html_end_is_outside_the_senders_signature():
    html = '<div>Hi</div><div id="Signature"><p>Alice</p><div>direct line</div>'  # unclosed body wrapper
    spot = html_spot(html)
    assert spot.position == len(html) and not spot.quoted
    html = '<body><div class="gmail_signature"><blockquote type="cite">motto</blockquote></div><p>x</p></body>'
    assert html_spot(html).position == html.index("</body>")


def test_base64_part_stays_base64_and_decodes():
    import base64

    body = base64.encodebytes("Grüße\r\n".encode("latin-1")).replace(b"\n", b"\r\n")
    raw = (
        b"From: a@acme.example\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body
    )
    out = sign(raw).as_bytes()
    root = locate(out)
    assert root.headers["Content-Transfer-Encoding"] == "base64"
    assert decode_body(out, root) == "Grüße\r\n\r\nSIG — Acme\r\n"  # charset moved to utf-8 for the dash
    assert root.headers.get_content_charset() == "utf-8"


def test_dot_stuffing_across_chunk_and_piece_boundaries():
    pieces = [b"a\r\n.b\r\n", memoryview(b".c\r\nd"), b"\r\n..e\r\nf"]
    assert b"".join(dot_stuffed(pieces, chunk=3)) == b"a\r\n..b\r\n..c\r\nd\r\n...e\r\nf\r\n"


def test_host_port():
    assert host_port("mx.example:2525", 25) == ("mx.example", 2525)
    assert host_port("[::1]:26", 25) == ("::1", 26)
    assert host_port("mx.example", 25) == ("mx.example", 25)
    with pytest.raises(ValueError):
        host_port("a:b:c", 25)


def test_client_subjects_without_a_client_ca_refuse_to_start():
    import asyncio

    from signatures.relay.server import RelayConfig, RelayHandler, start_relay

    config = RelayConfig(listen_port=0, tls_client_subjects=("mx.example",))
    handler = RelayHandler(config, lambda raw, mail_from: None, domain_allowed=lambda a: True)
    with pytest.raises(ValueError, match="RELAIS_RELAY_TLS_CLIENT_CA_FILE"):
        asyncio.run(start_relay(config, handler))
