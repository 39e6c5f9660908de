"""The `Mailer` seam: SMTP with aiosmtplib, and an in-memory one for unit tests.

A message goes out in two steps so that the send job can commit "this one counts as sent" at the only
moment where that is (almost) true: after the whole body is on the wire and before the end-of-data
``<CRLF>.<CRLF>``. A server that never receives the terminating dot discards the transaction when the
connection drops (RFC 5321 §3.8), so before the dot a message is certainly not delivered and can be
retried; after it, it is delivered unless the server says otherwise.

    await conn.transmit(msg)      # MAIL FROM, RCPT TO, DATA, body — everything but the final dot
    conn.end_data()               # synchronous: writes ".\r\n" (no await between a commit and this)
    await conn.confirm()          # the server's reply to the dot

Every failure is a :class:`DeliveryFailure` of one of three unrelated kinds, so catching one never catches another:
:class:`TransientFailure` (4xx, connection lost or timeout before the dot: retry), :class:`PermanentFailure`
(5xx, a refused login: record it, never retry), :class:`Unconfirmed` (connection lost after the dot: the
server may or may not have accepted it; never retried, so never duplicated).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from dataclasses import dataclass, field
from typing import Protocol, cast

import aiosmtplib

from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    sender: str  # envelope MAIL FROM
    recipient: str  # envelope RCPT TO
    data: bytes  # the full message, CRLF line ends
    message_id: str
    crlf: bool = False  # the builder guarantees every line end is CRLF (no bare CR or LF): no scan needed


class DeliveryFailure(Exception):
    """A message (or the connection for it) failed; ``code`` is the server's reply code, None without a reply."""

    def __init__(self, code: int | None, message: str):
        super().__init__(f"{code or '---'} {message}")
        self.code = code
        self.message = message


class TransientFailure(DeliveryFailure):
    """Certainly not delivered, and worth trying again (4xx, or the connection failed before the dot)."""


class PermanentFailure(DeliveryFailure):
    """Refused for good (5xx, or the login was refused): trying again would fail the same way."""


class Unconfirmed(DeliveryFailure):
    """The dot was written but no reply came: perhaps delivered, so never sent again."""


class MailerConnection(Protocol):
    async def transmit(self, msg: Outgoing) -> None: ...
    def end_data(self) -> None: ...
    async def confirm(self) -> None: ...
    async def reset(self) -> None: ...
    async def close(self) -> None: ...


class Mailer(Protocol):
    async def connect(self) -> MailerConnection: ...


def _classify(code: int | None, message: str) -> TransientFailure | PermanentFailure:
    if code is not None and 500 <= code < 600:
        return PermanentFailure(code, message)
    return TransientFailure(code, message)


_LINE_ENDS = re.compile(rb"(?:\r\n|\n|\r(?!\n))")


def dot_stuff(data: bytes, *, crlf: bool = False) -> bytes:
    """CRLF line ends and RFC 5321 §4.5.2 transparency (a line starting with "." gets another), at C speed:
    line ends are only rewritten when some CR or LF is not part of a CRLF; ``crlf=True`` (the caller
    guarantees CRLF line ends only) skips even that scan."""
    if not crlf:
        n = data.count(b"\n")
        if data.count(b"\r") != n or data.count(b"\r\n") != n:
            data = _LINE_ENDS.sub(b"\r\n", data)
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data if data.endswith(b"\r\n") else data + b"\r\n"


# ---------------------------------------------------------------- SMTP


class SmtpConnection:
    def __init__(self, smtp: aiosmtplib.SMTP, timeout: float):
        self.smtp = smtp
        self.timeout = timeout
        self._dot_written = False

    async def transmit(self, msg: Outgoing) -> None:
        self._dot_written = False
        smtp = self.smtp
        try:
            await smtp.mail(msg.sender)
            await smtp.rcpt(msg.recipient)
            response = await smtp.execute_command(b"DATA")
            if response.code != 354:
                raise _classify(response.code, response.message)
            protocol = smtp.protocol
            if protocol is None or protocol.transport is None:
                raise TransientFailure(None, "connection lost")
            protocol.write(dot_stuff(msg.data, crlf=msg.crlf))
            # wait until the body has left our buffers, so the dot written after the commit is the only thing
            # still to go out
            # a stream's transport is a WriteTransport; aiosmtplib types it as the base class
            transport = cast(asyncio.WriteTransport | None, protocol.transport)
            while transport is not None and not transport.is_closing() and transport.get_write_buffer_size():
                await asyncio.sleep(0.0005)
            if transport is None or transport.is_closing():
                raise TransientFailure(None, "connection lost while sending the body")
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, exc.message) from None
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError, OSError) as exc:
            raise TransientFailure(None, f"{type(exc).__name__}: {exc}") from None

    def end_data(self) -> None:
        protocol = self.smtp.protocol
        if protocol is None:
            raise TransientFailure(None, "connection lost before the end of data")
        try:
            protocol.write(b".\r\n")
        except aiosmtplib.SMTPServerDisconnected:
            raise TransientFailure(None, "connection lost before the end of data") from None
        self._dot_written = True

    async def confirm(self) -> None:
        protocol = self.smtp.protocol
        try:
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("connection lost")
            response = await protocol.read_response(timeout=self.timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError, OSError) as exc:
            self.smtp.close()
            raise Unconfirmed(None, f"no reply to the end of data ({type(exc).__name__})") from None
        if response.code != 250:
            raise _classify(response.code, response.message)

    async def reset(self) -> None:
        try:
            await self.smtp.rset()
        except Exception:  # a broken connection: the caller reconnects
            self.smtp.close()
            raise TransientFailure(None, "connection unusable after a failure") from None

    @property
    def usable(self) -> bool:
        return self.smtp.is_connected

    async def close(self) -> None:
        try:
            if self.smtp.is_connected:
                await self.smtp.quit()
        except Exception:  # noqa: S110 - closing a broken connection
            pass
        finally:
            self.smtp.close()


class SmtpMailer:
    """aiosmtplib against ``settings.smtp_*``: implicit TLS or STARTTLS, optional AUTH."""

    def __init__(self, settings: Settings, *, tls_context: ssl.SSLContext | None = None):
        self.settings = settings
        self.tls_context = tls_context

    async def connect(self) -> SmtpConnection:
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, use_tls=s.smtp_tls, start_tls=s.smtp_starttls and not s.smtp_tls,
            username=s.smtp_username or None,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=s.smtp_timeout_s, tls_context=self.tls_context,
        )  # fmt: skip
        try:
            await smtp.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise PermanentFailure(exc.code, f"SMTP authentication failed: {exc.message}") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientFailure(None, f"cannot connect to {s.smtp_host}:{s.smtp_port}: {exc}") from None
        return SmtpConnection(smtp, s.smtp_timeout_s)


# ---------------------------------------------------------------- in memory


@dataclass
class MemoryMailer:
    """Keeps delivered messages in ``outbox``. ``refuse`` maps a recipient to an SMTP code (e.g. 550 or 451);
    ``down`` makes connecting fail (a server that is down)."""

    outbox: list[Outgoing] = field(default_factory=list)
    refuse: dict[str, int] = field(default_factory=dict)
    down: bool = False

    async def connect(self) -> MemoryConnection:
        if self.down:
            raise TransientFailure(None, "connection refused")
        return MemoryConnection(self)


class MemoryConnection:
    def __init__(self, mailer: MemoryMailer):
        self.mailer = mailer
        self.current: Outgoing | None = None
        self.usable = True

    async def transmit(self, msg: Outgoing) -> None:
        code = self.mailer.refuse.get(msg.recipient)
        if code:
            raise _classify(code, "refused by the in-memory mailer")
        self.current = msg

    def end_data(self) -> None:
        assert self.current is not None
        self.mailer.outbox.append(self.current)
        self.current = None

    async def confirm(self) -> None:
        return None

    async def reset(self) -> None:
        self.current = None

    async def close(self) -> None:
        self.usable = False
