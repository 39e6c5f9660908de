"""The relay: an aiosmtpd server that proxies each SMTP transaction to the next hop as it happens.

MAIL and RCPT are forwarded at once, so the client gets the next hop's own answer for every recipient, and
the end of DATA is answered only after the next hop accepted the (signed) message. A next hop that is down,
slow or answers 4xx becomes a 4xx: the sender (Exchange Online, Gmail) keeps the message and retries, so the
relay queues nothing and loses nothing. A 5xx passes back as it came.

Message bytes are read into one buffer and streamed to the next hop in line-aligned chunks, dot-stuffed on
the way, so a large attachment is held once (plus the parts the relay rewrote).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import ssl
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
from aiosmtpd.smtp import MISSING, SMTP

from signatures.relay.stamp import Result, passed

log = logging.getLogger(__name__)

Processor = Callable[[bytearray, str], Result]
NEXT_HOP_DOWN = "451 4.4.1 The next hop is unavailable; try again later"
NEXT_HOP_LOST = "451 4.4.2 The next hop did not confirm the message; try again later"


@dataclass(frozen=True)
class RelayConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 2525
    next_hop_host: str = "127.0.0.1"
    next_hop_port: int = 25
    next_hop_starttls: bool = False
    next_hop_ca_file: str = ""
    next_hop_timeout_s: float = 60.0
    hostname: str = "relais-relay"
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    tls_cert_file: str = ""
    tls_key_file: str = ""
    require_tls: bool = False
    tls_client_ca_file: str = ""
    tls_client_subjects: tuple[str, ...] = ()
    max_message_bytes: int = 157_286_400
    max_sign_bytes: int = 33_554_432

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.allowed_networks]


def host_port(value: str, default_port: int) -> tuple[str, int]:
    """ "host:port", "[v6]:port" or "host" → (host, port)."""
    match = re.fullmatch(r"\[(?P<v6>[^\]]+)\](?::(?P<p6>\d+))?|(?P<host>[^:]+)(?::(?P<port>\d+))?", value.strip())
    if not match:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = match.group("v6") or match.group("host")
    port = match.group("p6") or match.group("port")
    return host, int(port) if port else default_port


@dataclass
class RelayStats:
    """Per-process counters, logged periodically (signatures.relay.counters) and on shutdown."""

    signed: int = 0
    passed: Counter = field(default_factory=Counter)  # by reason
    errors: int = 0  # signing failed: sent on unsigned
    refused: Counter = field(default_factory=Counter)  # open-relay attempts and TLS refusals, by kind
    next_hop_failures: int = 0

    def record(self, result: Result) -> None:
        if result.signed:
            self.signed += 1
        else:
            self.passed[str(result.reason)] += 1

    def snapshot(self) -> dict:
        return {
            "signed": self.signed,
            "passed": dict(sorted(self.passed.items())),
            "errors": self.errors,
            "refused": dict(sorted(self.refused.items())),
            "next_hop_failures": self.next_hop_failures,
        }


# ---------------------------------------------------------------- writing DATA to the next hop

_LEADING_DOT = re.compile(rb"(?m)^\.")
CHUNK = 256 * 1024


def dot_stuffed(pieces: Iterable[bytes | memoryview], chunk: int = CHUNK) -> Iterator[bytes]:
    """The message as line-aligned chunks of about `chunk` bytes, leading dots doubled (RFC 5321 §4.5.2).

    Small pieces (the rewritten parts between slices of the original) are gathered into one write.
    """
    carry = b""
    ready: list[bytes] = []
    size = 0
    for piece in pieces:
        view = memoryview(piece)
        for offset in range(0, len(view), chunk):
            block = carry + bytes(view[offset : offset + chunk])
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                carry = block
                continue
            ready.append(_LEADING_DOT.sub(b"..", block[:cut]))  # every block starts at a line start
            size += cut
            carry = block[cut:]
            if size >= chunk:
                yield b"".join(ready) if len(ready) > 1 else ready[0]
                ready, size = [], 0
    if carry:
        ready.append(_LEADING_DOT.sub(b"..", carry) + b"\r\n")
    if ready:
        yield b"".join(ready)


async def send_data(smtp: aiosmtplib.SMTP, pieces: list, timeout: float) -> aiosmtplib.SMTPResponse:
    """DATA without aiosmtplib's whole-message copies: stream the chunks, honouring the socket's flow control."""
    start = await smtp.execute_command(b"DATA", timeout=timeout)
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = smtp.protocol
    if protocol is None:  # the next hop hung up after its 354
        raise aiosmtplib.SMTPServerDisconnected("the next hop closed the connection before the message was sent")
    for block in dot_stuffed(pieces):
        protocol.write(block)
        await asyncio.wait_for(protocol._drain_helper(), timeout)  # aiosmtplib's flow control (pinned 5.x)
    protocol.write(b".\r\n")
    reply = await protocol.read_response(timeout=timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply


# ---------------------------------------------------------------- the SMTP side


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP with a DATA reader that keeps the message in one buffer (not a list of lines)."""

    async def smtp_DATA(self, arg: str) -> None:  # noqa: C901 - mirrors aiosmtpd's own state machine
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert envelope is not None  # as in aiosmtpd's own smtp_DATA: HELO made one
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        buffer = bytearray()
        limit = self.data_size_limit
        too_much = too_long = in_long_line = False
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                log.info("signatures.relay.connection_lost_during_data")
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as exc:
                too_long = in_long_line = True
                await self._reader.read(exc.consumed)
                continue
            if in_long_line:  # the tail of an over-long line, never a terminator
                in_long_line = False
                continue
            if line == b".\r\n":
                break
            if too_much or too_long:
                continue
            if limit and len(buffer) + len(line) > limit:
                too_much = True
                buffer = bytearray()
                continue
            if line.startswith(b"."):
                buffer += memoryview(line)[1:]
            else:
                buffer += line
        if too_long or too_much:
            await self.push(
                "500 Line too long (see RFC5321 4.5.3.1.6)" if too_long else "552 Error: Too much mail data"
            )
            self._set_post_data_state()
            return
        # kept as the bytearray (no bytes copy of the message); aiosmtpd annotates these bytes only
        envelope.content = envelope.original_content = buffer  # type: ignore[assignment]
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def connection_lost(self, error: Exception | None) -> None:
        session: Any = self.session  # the handler keeps the next hop's connection on aiosmtpd's Session
        upstream = getattr(session, "upstream", None)
        if upstream is not None:
            session.upstream = None
            upstream.close()
        super().connection_lost(error)


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    """The next hop's answer, for the client. Its 421 ("closing") becomes our 451: this relay is not closing."""
    text = " ".join(line.strip() for line in (exc.message or "").splitlines())
    code = 451 if exc.code == 421 else exc.code
    return f"{code} {text}".strip()


class RelayHandler:
    def __init__(self, config: RelayConfig, processor: Processor, *, domain_allowed: Callable[[str], bool],
                 stats: RelayStats | None = None):  # fmt: skip
        self.config = config
        self.processor = processor
        self.domain_allowed = domain_allowed
        self.stats = stats or RelayStats()
        self.networks = config.networks()
        self.subjects = {s.strip().lower() for s in config.tls_client_subjects if s.strip()}
        self.next_hop_tls = _client_context(config.next_hop_ca_file) if config.next_hop_starttls else None

    # ------------------------------------------------------------ who may use the relay

    def client_refusal(self, session) -> str | None:
        host = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return self._refuse("network", "554 5.7.1 Client host rejected: unknown address")
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not any(address in network for network in self.networks):
            return self._refuse("network", f"554 5.7.1 Client host rejected: {address} may not relay here")
        if self.subjects:
            names = _certificate_names(session.ssl)
            if not names & self.subjects:
                return self._refuse("certificate", "550 5.7.1 Client certificate missing or not accepted")
        return None

    def _refuse(self, kind: str, reply: str) -> str:
        self.stats.refused[kind] += 1
        log.warning("signatures.relay.refused", extra={"kind": kind, "reply": reply})
        return reply

    # ------------------------------------------------------------ the transaction, hop by hop

    async def handle_MAIL(self, server, session, envelope, address: str, mail_options: list[str]) -> str:
        refusal = self.client_refusal(session)
        if refusal:
            return refusal
        # The null sender (bounces) names no domain; it is accepted only from an allowed client, like all mail.
        if address.strip("<> ") and not await asyncio.to_thread(self.domain_allowed, address):
            return self._refuse("sender", "550 5.7.1 Relaying denied: the sender's domain is not this organisation's")
        options = [o for o in mail_options if o.upper().startswith(("BODY=", "SMTPUTF8"))]
        for attempt in (1, 2):  # a reused next-hop connection may have timed out: reconnect once
            try:
                try:
                    upstream = await self._upstream(session)
                except aiosmtplib.SMTPResponseException as exc:  # a refusing banner: not this message's fault
                    raise aiosmtplib.SMTPConnectError(str(exc)) from exc
                upstream_options = [o for o in options if upstream.supports_extension(o.split("=")[0].lower())]
                sender = address if address.strip("<> ") else ""  # the null sender travels as <>
                await upstream.mail(sender, options=upstream_options, timeout=self.config.next_hop_timeout_s)
                break
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421:
                    self._drop_upstream(session)
                return _reply(exc)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                self._drop_upstream(session)
                if attempt == 2:
                    self.stats.next_hop_failures += 1
                    log.warning("signatures.relay.next_hop_down", extra={"error": str(exc) or type(exc).__name__})
                    return NEXT_HOP_DOWN
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:
        refusal = self.client_refusal(session)
        if refusal:
            return refusal
        upstream = getattr(session, "upstream", None)
        if upstream is None:
            return "503 5.5.1 Error: need MAIL command"
        try:
            await upstream.rcpt(address, timeout=self.config.next_hop_timeout_s)
        except aiosmtplib.SMTPResponseException as exc:
            return _reply(exc)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._drop_upstream(session)
            self.stats.next_hop_failures += 1
            return NEXT_HOP_DOWN
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        upstream = getattr(session, "upstream", None)
        if upstream is None:
            return NEXT_HOP_LOST
        result = await asyncio.to_thread(self._process, envelope.content, envelope.mail_from or "")
        try:
            reply = await send_data(upstream, result.pieces, self.config.next_hop_timeout_s)
        except aiosmtplib.SMTPResponseException as exc:
            self._drop_upstream(session)
            if exc.code >= 500:
                log.warning("signatures.relay.next_hop_refused", extra={"reply": _reply(exc)})
                return _reply(exc)
            self.stats.next_hop_failures += 1
            return _reply(exc) if 400 <= exc.code < 500 else NEXT_HOP_LOST
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._drop_upstream(session)
            self.stats.next_hop_failures += 1
            log.warning("signatures.relay.next_hop_lost", extra={"error": str(exc) or type(exc).__name__})
            return NEXT_HOP_LOST
        self.stats.record(result)
        if result.signed:
            log.info("signatures.relay.signed", extra={"kind": str(result.kind), "parts": result.parts_signed})
        else:
            log.info("signatures.relay.passed", extra={"reason": str(result.reason)})
        return f"250 2.0.0 OK: {reply.message}"[:500]

    async def handle_RSET(self, server, session, envelope) -> str:
        upstream = getattr(session, "upstream", None)
        if upstream is not None:
            try:
                await upstream.rset(timeout=self.config.next_hop_timeout_s)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self._drop_upstream(session)
        return "250 2.0.0 OK"

    async def handle_QUIT(self, server, session, envelope) -> str:
        upstream = getattr(session, "upstream", None)
        session.upstream = None
        if upstream is not None:
            try:
                await upstream.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                upstream.close()
        return "221 2.0.0 Bye"

    def _process(self, raw: bytearray, mail_from: str) -> Result:
        try:
            return self.processor(raw, mail_from)
        except Exception as exc:  # mail must flow: the original goes on unsigned, IT sees why in the log
            self.stats.errors += 1
            log.exception("signatures.relay.sign_failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return passed(raw, "error")

    async def _upstream(self, session) -> aiosmtplib.SMTP:
        upstream = getattr(session, "upstream", None)
        if upstream is not None and upstream.is_connected:
            return upstream
        cfg = self.config
        upstream = aiosmtplib.SMTP(
            hostname=cfg.next_hop_host,
            port=cfg.next_hop_port,
            local_hostname=cfg.hostname,
            timeout=cfg.next_hop_timeout_s,
            start_tls=cfg.next_hop_starttls,
            tls_context=self.next_hop_tls,
        )
        await upstream.connect()
        session.upstream = upstream
        return upstream

    def _drop_upstream(self, session) -> None:
        upstream = getattr(session, "upstream", None)
        session.upstream = None
        if upstream is not None:
            upstream.close()


def _certificate_names(ssl_info) -> set[str]:
    if not ssl_info:
        return set()
    cert = ssl_info.get("peercert") or {}
    names = {value.lower() for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"}
    names |= {value.lower() for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}
    return names


def _client_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def server_tls_context(config: RelayConfig) -> ssl.SSLContext | None:
    if not config.tls_cert_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file or None)
    if config.tls_client_ca_file:
        context.verify_mode = ssl.CERT_OPTIONAL  # checked per transaction against tls_client_subjects
        context.load_verify_locations(config.tls_client_ca_file)
    return context


async def start_relay(config: RelayConfig, handler: RelayHandler) -> asyncio.Server:
    if config.require_tls and not config.tls_cert_file:
        raise ValueError("TLS is required but no certificate is configured (RELAIS_RELAY_TLS_CERT_FILE)")
    if config.tls_client_subjects and not (config.tls_client_ca_file and config.tls_cert_file):
        raise ValueError(
            "client certificate subjects are checked only over TLS with a client CA: set RELAIS_RELAY_TLS_CERT_FILE "
            "and RELAIS_RELAY_TLS_CLIENT_CA_FILE"
        )
    tls = server_tls_context(config)
    loop = asyncio.get_running_loop()

    def factory() -> RelaySMTP:
        return RelaySMTP(
            handler,
            hostname=config.hostname,
            ident="Relais signature relay",
            tls_context=tls,
            require_starttls=config.require_tls,
            data_size_limit=config.max_message_bytes,
            decode_data=False,
            enable_SMTPUTF8=True,
            loop=loop,
        )

    return await loop.create_server(factory, host=config.listen_host, port=config.listen_port)
