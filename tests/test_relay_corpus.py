"""The corpus (tests/data/relay/): every message through a real relay to a real sink, and for each one the
signature exactly where manifest.json says, once per text part, with every other byte the original's."""

import email
import email.policy
import json
import smtplib
from dataclasses import dataclass
from pathlib import Path

import pytest

from signatures.models import SignatureKind
from signatures.relay.mime import locate
from signatures.relay.placement import Spot
from signatures.relay.senders import SenderDirectory
from signatures.relay.stamp import HTML_WRAPPER, author_parts, decode_body, text_block
from tests.relay_support import ALICE, RawSink, RelayThread, make_handler, relay_config, setup_tenant, start_sink

CORPUS = Path(__file__).parent / "data" / "relay"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))


def load(name: str) -> bytes:
    """The file as SMTP carries it: CRLF line endings."""
    return (CORPUS / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass
class Env:
    sink: RawSink
    port: int
    directory: SenderDirectory
    alice: int
    handler: object


@pytest.fixture
def relay(db, client, tenant, settings):
    ids = setup_tenant(client, tenant, db, campaign=True)
    sink = RawSink()
    controller = start_sink(sink)
    config = relay_config(controller.port)
    handler, directory = make_handler(db, tenant, settings, config)
    try:
        with RelayThread(config, handler):
            yield Env(sink, config.listen_port, directory, ids[ALICE], handler)
    finally:
        controller.stop()


def send(port: int, raw: bytes, mail_from: str = ALICE) -> None:
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.sendmail(mail_from, ["bob@client.example"], raw)


def expected_position(old: str, content_type: str, where: dict) -> int:
    if "before" in where:
        marker = where["before"].replace("\n", "\r\n")
        assert marker in old, f"the manifest's marker is not in the original {content_type} part"
        return old.index(marker)
    if content_type == "text/html" and "</body>" in old.lower():
        return old.lower().rindex("</body>")
    return len(old)


def test_corpus_is_complete():
    kinds = {meta.get("passes") for meta in MANIFEST.values()} - {None}
    assert kinds >= {"calendar", "auto_reply", "read_receipt", "delivery_report", "signed_or_encrypted", "tnef",
                     "already_stamped"}  # fmt: skip
    assert sum(meta.get("kind") == "reply" for meta in MANIFEST.values()) >= 10
    assert sorted(MANIFEST) == sorted(p.name for p in CORPUS.glob("*.eml"))


@pytest.mark.parametrize("name", sorted(n for n, m in MANIFEST.items() if "passes" in m))
def test_pass_through_is_byte_identical(relay, name):
    meta = MANIFEST[name]
    raw = load(name)
    send(relay.port, raw, meta.get("mail_from", ALICE))
    (got,) = relay.sink.messages
    stamp = b"" if meta["passes"] == "already_stamped" else f"X-Relais-Signed: passed; reason={meta['passes']}\r\n"
    assert got.data == (stamp.encode() if isinstance(stamp, str) else stamp) + raw
    assert relay.handler.stats.passed[meta["passes"]] == 1 and relay.handler.stats.signed == 0


@pytest.mark.parametrize("name", sorted(n for n, m in MANIFEST.items() if "passes" not in m))
def test_signature_lands_exactly_where_stated(relay, name):
    meta = MANIFEST[name]
    raw = load(name)
    send(relay.port, raw)
    (got,) = relay.sink.messages
    stamp = f"X-Relais-Signed: signed; kind={meta['kind']}\r\n".encode()
    assert got.data.startswith(stamp)
    out = got.data[len(stamp) :]

    old_parts, new_parts = author_parts(locate(raw)), author_parts(locate(out))
    assert [p.content_type for p in old_parts] == [w["type"] for w in meta["parts"]]
    assert [p.content_type for p in new_parts] == [w["type"] for w in meta["parts"]]

    # Put the original text parts back: what remains must be the original message, byte for byte.
    rebuilt, cursor = bytearray(), 0
    for old, new in zip(old_parts, new_parts, strict=True):
        rebuilt += out[cursor : new.start] + raw[old.start : old.end]
        cursor = new.end
    rebuilt += out[cursor:]
    assert bytes(rebuilt) == raw

    signature = relay.directory.signature_for(relay.alice, SignatureKind(meta["kind"]))
    for old_part, new_part, where in zip(old_parts, new_parts, meta["parts"], strict=True):
        old, new = decode_body(raw, old_part), decode_body(out, new_part)
        position = expected_position(old, old_part.content_type, where)
        if old_part.content_type == "text/html":
            charset = old_part.headers.get_content_charset() or "us-ascii"
            block = HTML_WRAPPER.format(signature.html).encode(charset, "xmlcharrefreplace").decode(charset)
            assert new.count('class="relais-signature"') == 1
        else:
            block = text_block(old, Spot(position, "before" in where), signature.text)
            assert new.count(signature.text.strip().splitlines()[-1]) == 1
        assert new == old[:position] + block + old[position:], f"{name}: {old_part.content_type} misplaced"

    # A standard parser reads every rewritten part with its (possibly new) charset and encoding.
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    texts = [p.get_content() for p in parsed.walk() if p.get_content_type() == "text/plain" and not p.is_attachment()]
    assert all("Alice Martin" in t and "EMEA" in t for t in texts[:1])
    assert parsed["Message-ID"] == email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"]
    assert relay.handler.stats.signed == 1


def test_signature_is_the_api_rendering(relay, client, tenant):
    """The relay renders through the same path as GET /api/employees/{id}/signature (banner included)."""
    for kind in ("new", "reply"):
        api = client.get(f"/api/employees/{relay.alice}/signature?kind={kind}", headers=tenant.headers())
        assert api.status_code == 200, api.text
        ours = relay.directory.signature_for(relay.alice, SignatureKind(kind))
        assert (ours.html, ours.text) == (api.json()["html"], api.json()["text"])
    assert "/c/" in relay.directory.signature_for(relay.alice, SignatureKind.new).html  # the banner's tracked link
