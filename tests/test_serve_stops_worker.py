"""Stopping `relais serve` stops its job worker — SIGTERM, Ctrl-C (SIGINT), and even SIGKILL of the parent, after
which the worker notices by itself. Real processes: `main.py serve` in a subprocess on a fresh data directory."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_support import ROOT, Cli

WAIT = 90  # seconds at most for a process to appear or go: a bound, not a measurement


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whichever process reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.1)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_the_worker_never_outlives_serve(tmp_path, sig):
    cli = Cli(tmp_path / "data")
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(free_port())],
        env=cli.env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the signal goes to serve alone, not to the worker
    )
    worker = None
    try:

        def worker_started() -> bool:
            nonlocal worker
            found = [p for p in children(serve.pid) if " worker " in cmdline(p) + " "]
            worker = found[0] if found else None
            return worker is not None and "Worker started" in (tmp_path / "serve.log").read_text()

        wait_until(worker_started, "the worker to start")
        assert running(worker)
        serve.send_signal(sig)
        serve.wait(timeout=WAIT)
        wait_until(lambda: not running(worker), f"the worker {worker} to stop after {sig.name} of serve")
        if sig is not signal.SIGKILL:  # serve itself stopped its worker, then exited
            assert serve.returncode != 0 or sig is signal.SIGINT
    finally:
        for pid in (serve.pid, worker):
            if pid and running(pid):
                os.kill(pid, signal.SIGKILL)
        serve.wait(timeout=WAIT)
        log.close()
