"""`relais relay`: build the relay from settings and run it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket

from service.settings import Settings
from signatures.relay.server import RelayConfig, RelayHandler, RelayStats, host_port, start_relay

log = logging.getLogger(__name__)


def relay_config(settings: Settings, *, listen: str | None = None, next_hop: str | None = None) -> RelayConfig:
    listen_host, listen_port = host_port(listen or settings.relay_listen, 2525)
    hop = next_hop or settings.relay_next_hop
    if not hop:
        raise ValueError("give the next hop: --next-hop HOST:PORT or RELAIS_RELAY_NEXT_HOP")
    hop_host, hop_port = host_port(hop, 25)
    return RelayConfig(
        listen_host=listen_host,
        listen_port=listen_port,
        next_hop_host=hop_host,
        next_hop_port=hop_port,
        next_hop_starttls=settings.relay_next_hop_starttls,
        next_hop_ca_file=settings.relay_next_hop_ca_file,
        next_hop_timeout_s=settings.relay_next_hop_timeout_s,
        hostname=settings.relay_hostname or socket.getfqdn(),
        allowed_networks=tuple(settings.relay_allowed_networks),
        tls_cert_file=settings.relay_tls_cert_file,
        tls_key_file=settings.relay_tls_key_file,
        require_tls=settings.relay_require_tls,
        tls_client_ca_file=settings.relay_tls_client_ca_file,
        tls_client_subjects=tuple(settings.relay_tls_client_subjects),
        max_message_bytes=settings.relay_max_message_bytes,
        max_sign_bytes=settings.relay_max_sign_bytes,
    )


def build_handler(settings: Settings, config: RelayConfig, *, engine, org_id: int) -> RelayHandler:
    from signatures.relay.senders import SenderDirectory
    from signatures.relay.stamp import signing_processor

    directory = SenderDirectory(
        engine, org_id=org_id, settings=settings, domains=settings.relay_domains,
        cache_seconds=settings.relay_cache_seconds,
    )  # fmt: skip
    processor = signing_processor(
        find_employee=directory.employee_for,
        signature_for=directory.signature_for,
        max_sign_bytes=config.max_sign_bytes,
    )
    return RelayHandler(config, processor, domain_allowed=directory.domain_allowed, stats=RelayStats())


def status_reporter(engine, *, org_id: int, config: RelayConfig):
    """A function that writes this process's counters to the database (IT's GET /api/relay/status)."""
    from service.db import utcnow
    from signatures.relay.status import process_id, report

    row_id = process_id(utcnow())
    listen = f"{config.listen_host}:{config.listen_port}"
    hop = f"{config.next_hop_host}:{config.next_hop_port}"

    def write(counters: dict, stopped: bool = False) -> None:
        try:
            report(engine, row_id=row_id, org_id=org_id, listen=listen, next_hop=hop, counters=counters,
                   stopped=stopped)  # fmt: skip
        except Exception as exc:  # the status page is a convenience: mail flows without it
            log.warning("signatures.relay.status_failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    return write


async def serve(config: RelayConfig, handler: RelayHandler, *, log_every_s: float = 300.0,
                report=None, report_every_s: float = 60.0) -> None:  # fmt: skip
    server = await start_relay(config, handler)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets)
    print(f"relay listening on {where}; next hop {config.next_hop_host}:{config.next_hop_port}", flush=True)
    log.info("signatures.relay.started", extra={"listen": where})
    if report is not None:
        await asyncio.to_thread(report, handler.stats.snapshot())
    last_log = loop.time()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(log_every_s, report_every_s))
            except TimeoutError:
                if report is not None:
                    await asyncio.to_thread(report, handler.stats.snapshot())
                if loop.time() - last_log >= log_every_s:
                    last_log = loop.time()
                    log.info("signatures.relay.counters", extra=handler.stats.snapshot())
    finally:
        server.close()  # no new connections; transactions under way finish (or their client retries)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), timeout=30)
        log.info("signatures.relay.counters", extra=handler.stats.snapshot())
        if report is not None:
            report(handler.stats.snapshot(), stopped=True)
        print("relay stopped: " + json.dumps(handler.stats.snapshot()), flush=True)
