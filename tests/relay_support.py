"""Test helpers for the signing relay: a raw-recording aiosmtpd sink, the relay on its own loop thread, and a
tenant whose employees have a signature (brand, the classic template as default, optionally a campaign)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from sqlmodel import Session

from service.directory.models import Employee
from service.models import Role
from service.settings import Settings
from signatures.models import SignatureKind
from signatures.relay.senders import SenderDirectory
from signatures.relay.server import RelayConfig, RelayHandler, RelayStats, start_relay
from signatures.relay.stamp import signing_processor
from tests.newsletter_support import free_port

ALICE = "alice@acme.example"
BOB = "bob@acme.example"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class RawSink:
    """The next hop: keeps each accepted message's exact bytes. `data_reply`/`rcpt_reply` force an answer."""

    messages: list[Received] = field(default_factory=list)
    data_reply: str | None = None
    rcpt_reply: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_reply:
            return self.rcpt_reply[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 2.0.0 Ok: queued as SINK"


def start_sink(sink: RawSink, port: int | None = None, **kwargs) -> Controller:
    controller = Controller(sink, hostname="127.0.0.1", port=port or free_port(), decode_data=False, **kwargs)
    controller.start()
    return controller


class RelayThread:
    """`start_relay` on an event loop of its own, the way `relais relay` runs it in its process."""

    def __init__(self, config: RelayConfig, handler: RelayHandler):
        self.config, self.handler = config, handler
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None

    def __enter__(self) -> RelayThread:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start_relay(self.config, self.handler), self.loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        async def close():
            self.server.close()
            await asyncio.wait_for(self.server.wait_closed(), 5)

        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def port(self) -> int:
        return self.config.listen_port


def setup_tenant(client, tenant, engine, *, campaign: bool = False) -> dict[str, int]:
    """Brand, the classic template as the organisation default, Alice and Bob; returns their ids."""
    r = client.put(
        "/api/brand", json={"company_name": "Acme", "website": "https://acme.example"}, headers=tenant.headers()
    )
    assert r.status_code == 200, r.text
    t = client.post("/api/templates", json={"name": "Classic", "layout": "classic"}, headers=tenant.headers(Role.it))
    assert t.status_code == 201, t.text
    a = client.put(
        "/api/assignments", json={"template_id": t.json()["id"], "kind": "default"}, headers=tenant.headers(Role.it)
    )
    assert a.status_code == 200, a.text
    ids = {}
    with Session(engine) as s:
        for email, first, title in ((ALICE, "Alice", "Head of Sales — EMEA"), (BOB, "Bob", "Engineer")):
            e = Employee(
                org_id=tenant.org_id, email=email, first_name=first, last_name="Martin", display_name=f"{first} Martin",
                title=title, source_id=email, aliases=[email.replace("@", ".alias@")],
            )  # fmt: skip
            s.add(e)
            s.flush()
            ids[email] = e.id
        s.commit()
    if campaign:
        from tests.campaign_helpers import make_campaign

        make_campaign(client, tenant, "spring")
    return ids


def relay_config(sink_port: int, **overrides) -> RelayConfig:
    values = dict(
        listen_host="127.0.0.1", listen_port=free_port(), next_hop_host="127.0.0.1", next_hop_port=sink_port,
        next_hop_timeout_s=5.0, hostname="relay.acme.test",
    )  # fmt: skip
    values.update(overrides)
    return RelayConfig(**values)


def make_handler(engine, tenant, settings: Settings, config: RelayConfig, **directory_kwargs):
    directory = SenderDirectory(engine, org_id=tenant.org_id, settings=settings, **directory_kwargs)
    processor = signing_processor(
        find_employee=directory.employee_for, signature_for=directory.signature_for,
        max_sign_bytes=config.max_sign_bytes,
    )  # fmt: skip
    return RelayHandler(config, processor, domain_allowed=directory.domain_allowed, stats=RelayStats()), directory


def signature(directory: SenderDirectory, employee_id: int, kind: SignatureKind):
    return directory.signature_for(employee_id, kind)
