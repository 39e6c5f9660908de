"""A real `relais relay` process SIGKILLed while a client is half way through DATA: the client sees the
connection drop, keeps the message and retries once the relay is back; the next hop gets it exactly once."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.newsletter_support import free_port
from tests.relay_support import ALICE, RawSink, setup_tenant, start_sink

ROOT = Path(__file__).resolve().parent.parent
OUT = "carol@partner.example"


def start_relay(db, settings, port: int, hop_port: int, log_path: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        RELAIS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        RELAIS_DATA_DIR=str(settings.data_dir),
        RELAIS_SEED_DEMO="false",
        RELAIS_SECRET_KEY=settings.secret_key.get_secret_value(),
        RELAIS_PUBLIC_BASE_URL=settings.public_base_url,
        RELAIS_LOG_LEVEL="WARNING",
    )
    args = ["relay", "--listen", f"127.0.0.1:{port}", "--next-hop", f"127.0.0.1:{hop_port}", "--org", "acme"]
    log = log_path.open("ab")
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args], env=env, cwd=ROOT, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(100).startswith(b"220"):
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the relay did not start:\n" + log_path.read_text())


def reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.splitlines()[-1][3:4] == b"-":
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError("closed")
        data += chunk
    return data


@pytest.mark.timeout(180)
def test_sigkill_during_data_then_retry_delivers_exactly_once(db, client, tenant, settings, tmp_path):
    setup_tenant(client, tenant, db)
    sink = RawSink()
    controller = start_sink(sink)
    port = free_port()
    raw = (
        f"From: Alice Martin <{ALICE}>\r\nTo: {OUT}\r\nSubject: Quarterly numbers\r\n"
        "Message-ID: <sigkill-1@acme.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "Numbers line\r\n"
        * 2000
    ).encode()
    relay = start_relay(db, settings, port, controller.port, tmp_path / "relay.log")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            reply(sock)  # banner
            for command in (b"EHLO exchange.test", f"MAIL FROM:<{ALICE}>".encode(), f"RCPT TO:<{OUT}>".encode()):
                sock.sendall(command + b"\r\n")
                assert reply(sock)[:1] == b"2"
            sock.sendall(b"DATA\r\n")
            assert reply(sock).startswith(b"354")
            sock.sendall(raw[: len(raw) // 2])
            time.sleep(0.3)
            relay.send_signal(signal.SIGKILL)
            relay.wait(10)
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                sock.sendall(raw[len(raw) // 2 :] + b"\r\n.\r\n")
                reply(sock)  # no 250 ever comes: the sender keeps the message
        assert sink.messages == []

        relay = start_relay(db, settings, port, controller.port, tmp_path / "relay.log")
        with smtplib.SMTP("127.0.0.1", port) as smtp:  # the sender's retry
            smtp.sendmail(ALICE, [OUT], raw)
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(30) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(10)
        controller.stop()
    assert len(sink.messages) == 1
    assert sink.messages[0].data.startswith(b"X-Relais-Signed: signed; kind=new\r\n")
    assert sink.messages[0].data.count(b"Numbers line\r\n") == 2000
    assert sink.messages[0].data.count(b"Message-ID: <sigkill-1@acme.example>") == 1
