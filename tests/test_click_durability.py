"""No click is lost: SIGKILL the real server (uvicorn, one worker) under load, then every 302 the clients
received must have its row in the database (a few more rows are allowed: requests in flight at the kill)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlmodel import Session, func, select

from service.clicks.models import Click
from service.links import Channel, mint

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(db, tmp_path, port):
    env = {
        **os.environ,
        "RELAIS_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "RELAIS_DATA_DIR": str(tmp_path / "data"),
        "RELAIS_SEED_DEMO": "false",
        "RELAIS_SECRET_KEY": "durability-test",
        "RELAIS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "service.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start: {proc.stderr.read().decode()[-2000:]}")


def test_sigkill_under_load_loses_no_answered_click(db, tenant, tmp_path):
    with Session(db, expire_on_commit=False) as s:
        links = [
            mint(s, org_id=tenant.org_id, channel=Channel.signature_field, destination=f"https://acme.example/{i}")
            for i in range(8)
        ]
        s.commit()
    port = _free_port()
    proc = _start(db, tmp_path, port)
    answered = [0] * CLIENTS
    stop = threading.Event()

    def drive(n: int) -> None:
        ua = f"Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0 client{n}"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            i = 0
            while not stop.is_set():
                try:
                    r = http.get(
                        f"/c/{links[(n + i) % len(links)].token}", headers={"user-agent": ua}, follow_redirects=False
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 302:
                    answered[n] += 1
                i += 1

    threads = [threading.Thread(target=drive, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    # let the load build up, then kill the server without warning
    deadline = time.monotonic() + 20
    while sum(answered) < 1500 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    received = sum(answered)
    with Session(db) as s:
        recorded = s.exec(select(func.count()).select_from(Click)).one()
    assert received >= 1000, "the load never built up"
    assert recorded >= received, f"lost clicks: {received} redirects answered, {recorded} rows"
    assert recorded <= received + CLIENTS, f"{recorded} rows for {received} redirects"
