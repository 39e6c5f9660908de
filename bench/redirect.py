"""Redirect benchmark: the real service's /c/{token} against a bare FastAPI app answering the same path with a
302 from an in-memory dict and recording nothing.

Both run under uvicorn with one worker and the same flags (httptools + uvloop, no access log — production
settings: Relais keeps no raw IPs, so no access log either), each driven by wrk (Debian package; `make
system-deps`) with 64 connections for 10 s after a 3 s warm-up. Run against SQLite (temp data dir) and a
throwaway PostgreSQL database. Prints one JSON line last: top-level figures for SQLite, plus `sqlite`,
`postgres` objects. clicks_recorded counts rows written during the measured run only; it must be at least
the 302s wrk counted and at most that plus the connections in flight when wrk stopped.

    .venv/bin/python bench/redirect.py [--postgres-admin URL] [--duration 10] [--connections 64]
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.clicks.models import Click  # noqa: E402
from service.db import make_engine  # noqa: E402
from service.links import Channel, mint  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.models import Organisation  # noqa: E402

BARE_APP = textwrap.dedent("""
    import json, os
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse
    LINKS = json.loads(os.environ["BENCH_LINKS"])
    app = FastAPI()

    @app.get("/c/{token}")
    async def follow(token: str):
        return RedirectResponse(LINKS[token], status_code=302, headers={"Cache-Control": "no-store"})
""")

LUA = textwrap.dedent("""
    local tokens = {%s}
    local n = 0
    request = function()
      n = n + 1
      local ua = "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0 wrk" .. (n %% 97)
      return wrk.format("GET", "/c/" .. tokens[(n %% #tokens) + 1], {["User-Agent"] = ua})
    end
    done = function(summary, latency, requests)
      local codes = 0
      io.write(string.format("JSON {\\"requests\\": %%d, \\"non2xx3xx\\": %%d, \\"p99_us\\": %%d, "
        .. "\\"connect_err\\": %%d, \\"read_err\\": %%d, \\"write_err\\": %%d, \\"timeouts\\": %%d, "
        .. "\\"status_err\\": %%d}\\n",
        summary.requests, summary.errors.status, latency:percentile(99), summary.errors.connect, summary.errors.read,
        summary.errors.write, summary.errors.timeout, summary.errors.status))
    end
""")
UVICORN = ["--workers", "1", "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/c/x", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def wrk(port: int, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    data["rps"] = rps
    return data


def run_server(cmd_app: str, env: dict, cwd: Path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", cmd_app, "--host", "127.0.0.1", "--port", str(port), *UVICORN],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_up(port, proc)
    return proc, port


def count_clicks(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(Click)).one()


def measure(url: str, data_dir: Path, args) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as s:
        org = Organisation(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
        s.add(org)
        s.flush()
        links = [
            mint(
                s,
                org_id=org.id,
                channel=Channel.signature_banner,
                campaign_id=1,
                destination=f"https://acme.example/landing/{i}?utm_source=sig",
            )
            for i in range(64)
        ]
        s.commit()
    tokens = {link.token: link.destination for link in links}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(LUA % ", ".join(f'"{t}"' for t in tokens))
        bare_py = Path(tmp) / "bare_redirect_app.py"
        bare_py.write_text(BARE_APP)
        base_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env = {
            **base_env,
            "RELAIS_DATABASE_URL": url,
            "RELAIS_DATA_DIR": str(data_dir),
            "RELAIS_SEED_DEMO": "false",
            "RELAIS_SECRET_KEY": "bench",
            "RELAIS_LOG_LEVEL": "WARNING",
        }
        results = {}
        # the service
        proc, port = run_server("service.asgi:app", env, ROOT)
        try:
            wrk(port, script, args.warmup, args.connections)
            time.sleep(0.5)
            before = count_clicks(engine)
            svc = wrk(port, script, args.duration, args.connections)
            time.sleep(1.0)  # let requests that were in flight when wrk stopped finish
            recorded = count_clicks(engine) - before
        finally:
            proc.terminate()
            proc.wait(10)
        # the bare app
        proc, port = run_server(
            "bare_redirect_app:app", {**base_env, "BENCH_LINKS": json.dumps(tokens), "PYTHONPATH": tmp}, Path(tmp)
        )
        try:
            wrk(port, script, args.warmup, args.connections)
            bare = wrk(port, script, args.duration, args.connections)
        finally:
            proc.terminate()
            proc.wait(10)
    engine.dispose()
    responses = svc["requests"] - svc["non2xx3xx"]
    results.update(
        rps=round(svc["rps"], 1),
        bare_rps=round(bare["rps"], 1),
        ratio=round(svc["rps"] / bare["rps"], 3),
        p99_ms=round(svc["p99_us"] / 1000, 2),
        bare_p99_ms=round(bare["p99_us"] / 1000, 2),
        responses=responses,
        errors=svc["non2xx3xx"] + svc["read_err"] + svc["timeouts"],
        clicks_recorded=recorded,
        clicks_ok=responses <= recorded <= responses + args.connections,
    )
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--postgres-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        out["sqlite"] = measure(f"sqlite:///{data / 'relais.db'}", data, args)
        print("sqlite", json.dumps(out["sqlite"]), file=sys.stderr)
    if not args.skip_postgres:
        base = make_url(args.postgres_admin)
        name = f"relais_bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            with tempfile.TemporaryDirectory() as tmp:
                out["postgres"] = measure(
                    base.set(database=name).render_as_string(hide_password=False), Path(tmp), args
                )
                print("postgres", json.dumps(out["postgres"]), file=sys.stderr)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(json.dumps({**out["sqlite"], **out}))


if __name__ == "__main__":
    main()
