"""Deployment push: a real worker process deploys N mailboxes to a provider fake with per-call latency and a
write limit, then deploys again (nothing should be written).

    .venv/bin/python bench/push.py [--provider google] [--mailboxes 2000] [--latency 0.02] [--write-limit 200]
                                   [--kill] [--concurrency N] [--workers 3]

* The fake runs in this process; the deployment runs in `python main.py worker` (SQLite in a temp dir).
* `seconds` is the deployment's own duration (started_at → finished_at: planning, rendering and pushing).
  The worker first runs a one-mailbox dry run, so loading the provider's client libraries (once per worker
  process) is not counted either; with `--kill` the span includes the kill, the restart and that reload.
* `floor_seconds` = mailboxes / write limit: no client can be faster without being throttled.
* `--kill` SIGKILLs the worker when half the mailboxes are done and starts a new one, which resumes.
* `--workers 3` runs three worker processes sharing the deployment, on a throwaway PostgreSQL database
  (127.0.0.1:5432) and Huey on Redis (127.0.0.1:6379, a queue of its own); with `--kill`, the one holding the
  lease is SIGKILLed half way and not restarted: the other two finish (one takes the lease over).

A provider is a small class (`GoogleBench`): start its fake, seed users, give the connection and the worker's
environment, and count writes. `--provider microsoft` is one more class in PROVIDERS.

Prints human-readable lines, then one JSON line last: mailboxes, seconds, floor_seconds, ratio_to_floor,
writes, duplicate_writes, second_run_writes, second_run_seconds (+ kill details with --kill).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from service.connections.models import Provider  # noqa: E402
from service.connections.service import save_connection  # noqa: E402
from service.db import make_engine, session_scope  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.models import Brand, Organisation  # noqa: E402
from service.settings import Settings  # noqa: E402
from signatures.deploy import engine as deploy_engine  # noqa: E402
from signatures.deploy.models import Deployment  # noqa: E402

SECRET_KEY = "bench-secret-key"
BRAND = dict(
    company_name="Bench Co",
    website="https://bench.test",
    logo_url="https://bench.test/assets/logo.png",
    logo_width=160,
    logo_height=48,
    primary_color="#1F3A5F",
    secondary_color="#6B7280",
    font_stack="Arial, Helvetica, sans-serif",
    address="1 Bench Street, Paris",
    social_links=[],
    disclaimer_html="<p>Confidential.</p>",
)


class GoogleBench:
    """The Google Workspace fake: token endpoint, Gmail sendAs, Directory."""

    name = "google"
    admin = "admin@example.com"

    def __init__(self, latency: float, write_limit: float):
        from tests.fakes.google import fake_google

        self._cm = fake_google(latency=latency, write_limit_per_s=write_limit)
        self.fake = None

    def __enter__(self):
        self.fake = self._cm.__enter__()
        self.fake.add_user(self.admin, admin=True)
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)

    def seed(self, engine, org_id: int, mailboxes: int) -> list[str]:
        from tests.google_support import seed_workspace

        return seed_workspace(engine, org_id, self.fake, mailboxes)

    def connection(self) -> tuple[Provider, dict, str]:
        return Provider.google, {"admin_subject": self.admin}, json.dumps(self.fake.service_account_info())

    def worker_env(self, concurrency: int | None) -> dict[str, str]:
        env = {"RELAIS_GOOGLE_API_ENDPOINT": self.fake.url, "RELAIS_GOOGLE_TOKEN_URI": self.fake.token_uri}
        if concurrency:
            env["RELAIS_GOOGLE_CONCURRENCY"] = str(concurrency)
        return env

    def writes(self) -> int:
        return len(self.fake.writes)

    def duplicate_writes(self) -> int:
        return len(self.fake.duplicate_writes())

    def rewritten(self) -> list[str]:
        """Addresses written more than once, whatever the signature (a mailbox written twice)."""
        seen: dict[tuple[str, str], list] = {}
        for w in self.fake.writes:
            seen.setdefault((w.user.lower(), w.send_as.lower()), []).append(w)
        return [f"{k[1]}: {[(round(w.at, 3), w.method, w.changed, w.signature[:60]) for w in ws]}"
                for k, ws in seen.items() if len(ws) > 1]  # fmt: skip

    def write_times(self) -> list[float]:
        """Wall-clock time (time.time) of each write, for the timeline figures (optional for a provider)."""
        return sorted(w.at for w in self.fake.writes)

    def throttled(self) -> int:
        return sum(1 for r in self.fake.request_log if r.status == 429)

    def carries(self, emails: list[str]) -> int:
        """How many mailboxes carry a non-empty signature on every send-as address."""
        return sum(all(s["signature"] for s in self.fake.send_as(e)) for e in emails)

    def reset(self) -> None:
        self.fake.reset_counters()


def _microsoft_bench():
    from bench.push_microsoft import MicrosoftBench

    return MicrosoftBench


# provider name -> a function returning its bench class (imported lazily: a run loads one provider's fake)
PROVIDERS = {"google": lambda: GoogleBench, "microsoft": _microsoft_bench}


class Worker:
    def __init__(self, env: dict[str, str], log: Path, profile: str | None = None):
        self.env, self.log, self.profile = env, log, profile
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        command = [sys.executable, str(ROOT / "main.py")]
        if self.profile:  # the sampling profiler over every thread of the worker (bench/sampler.py)
            command = [sys.executable, "-c", f"import bench.sampler as s; s.run_main({self.profile!r})"]
        self.proc = subprocess.Popen(
            [*command, "worker", "--threads", "1"],
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    cpu_seconds = 0.0  # user + system CPU of every worker process this bench ran

    def cpu_now(self) -> float:
        """User + system CPU seconds of the running worker so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc and self.proc.returncode is None:
            if self.proc.poll() is not None:  # it ended by itself (its CPU is not counted): say so
                print(f"worker {self.proc.pid} had ended by itself ({self.proc.returncode}); see {self.log}",
                      file=sys.stderr)  # fmt: skip
                return
            self.proc.send_signal(sig)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                pid, _status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.proc.returncode = _status
                    self.cpu_seconds += usage.ru_utime + usage.ru_stime
                    return
                time.sleep(0.05)
            self.proc.kill()
            _pid, _status, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = _status
            self.cpu_seconds += usage.ru_utime + usage.ru_stime


class Workers:
    """One or several worker processes, started, measured and stopped together (`--workers`)."""

    def __init__(self, env: dict[str, str], log: Path, count: int = 1, profile: str | None = None):
        self.log = log
        self.members = [Worker(env, log, profile if i == 0 else None) for i in range(count)]

    def start(self) -> None:
        for w in self.members:
            if w.proc is None or w.proc.returncode is not None:
                w.start()

    def cpu_now(self) -> float:
        return sum(w.cpu_now() for w in self.members if w.proc and w.proc.returncode is None)

    @property
    def cpu_seconds(self) -> float:
        return sum(w.cpu_seconds for w in self.members)

    def reset_cpu(self) -> None:
        for w in self.members:
            w.cpu_seconds = 0.0

    def kill(self, sig=signal.SIGKILL, pid: int | None = None) -> None:
        for w in self.members:
            if pid is None or (w.proc and w.proc.pid == pid):
                w.kill(sig)


def state(engine, dep_id: int) -> Deployment:
    with Session(engine) as s:
        return s.get(Deployment, dep_id)


def run_deployment(
    engine,
    org_id: int,
    provider: str,
    worker: Workers,
    *,
    warm_up: str,
    kill_at: int | None = None,
    timeout: float = 600,
) -> dict:
    with session_scope(engine) as s:
        # A one-mailbox dry run first, picked up by the same worker: it loads the provider's client libraries
        # (~0.3 s, once per worker process), as a long-running worker already has.
        deploy_engine.create_deployment(
            s,
            org_id=org_id,
            provider=provider,
            dry_run=True,
            target_filter={"emails": [warm_up]},
            created_by="bench warm-up",
        )
        dep_id = deploy_engine.create_deployment(
            s, org_id=org_id, provider=provider, dry_run=False, created_by="bench"
        ).id
    worker.start()
    killed_at = None
    cpu_at_start = cpu_at_end = None  # the worker's CPU when the deployment started and ended (/proc)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            dep = state(engine, dep_id)
            if cpu_at_start is None and dep.started_at is not None:
                cpu_at_start = worker.cpu_now()
            if dep.status.value in ("done", "failed"):
                cpu_at_end = worker.cpu_now()
                break
            if kill_at is not None and killed_at is None and dep.done >= kill_at:
                killed_at = dep.done
                if len(worker.members) > 1:  # the lease holder dies; the others finish without it
                    worker.kill(pid=int(dep.worker.rsplit(":", 1)[1]))
                else:
                    worker.kill()
                    worker.start()
            time.sleep(0.05)
    finally:
        worker.kill(signal.SIGTERM)
    dep = state(engine, dep_id)
    if dep.status.value != "done":
        raise SystemExit(f"deployment {dep_id} ended {dep.status.value}: {dep.message} (see {worker.log})")
    return {
        "id": dep_id,
        "seconds": (dep.finished_at - dep.started_at).total_seconds(),
        "counts": dep.counts,
        "started": dep.started_at.timestamp(),
        "finished": dep.finished_at.timestamp(),
        "killed_at": killed_at,
        "writes_recorded": dep.writes,
        # CPU of the deployment itself (start-up and the warm-up dry run excluded); None across a kill
        "deployment_cpu": None if killed_at is not None or cpu_at_start is None else cpu_at_end - cpu_at_start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="google")
    parser.add_argument("--mailboxes", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every call by the fake")
    parser.add_argument("--write-limit", type=float, default=200.0, help="writes/s before the fake answers 429")
    parser.add_argument("--concurrency", type=int, default=None, help="override the provider's concurrency setting")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the worker half way and start another")
    parser.add_argument("--profile", default=None, help="write a sampling profile of the worker to this file")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the deployment (>1: "
                        "PostgreSQL and Redis on 127.0.0.1)")  # fmt: skip
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL even for one worker (a baseline for "
                        "--workers)")  # fmt: skip
    args = parser.parse_args()
    with shared_database(args.workers > 1 or args.postgres) as database_url:
        bench_push(args, database_url)


@contextlib.contextmanager
def shared_database(postgres: bool):
    """None (SQLite in the temp dir), or a throwaway PostgreSQL database (several workers need one)."""
    if not postgres:
        yield None
        return
    import sqlalchemy as sa

    name = f"relais_bench_{os.getpid()}"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def bench_push(args, database_url: str | None) -> None:

    with tempfile.TemporaryDirectory(prefix="relais-bench-push-") as tmp, \
            PROVIDERS[args.provider]()(args.latency, args.write_limit) as bench:  # fmt: skip
        data = Path(tmp)
        settings = Settings(
            data_dir=data,
            database_url=database_url or f"sqlite:///{data / 'relais.db'}",
            seed_demo=False,
            secret_key=SECRET_KEY,
            public_base_url="https://bench.test",  # deployments to mailboxes need https
        )
        engine = make_engine(settings.database_url)
        upgrade(engine)
        with session_scope(engine) as s:
            org = Organisation(name="Bench", slug="bench")
            s.add(org)
            s.flush()
            s.add(Brand(org_id=org.id, **BRAND))
            org_id = org.id
        t0 = time.perf_counter()
        emails = bench.seed(engine, org_id, args.mailboxes)
        provider, config, secret = bench.connection()
        with session_scope(engine) as s:
            save_connection(s, org_id=org_id, provider=provider, config=config, secret=secret, settings=settings)
        print(
            f"seeded {len(emails)} mailboxes in {time.perf_counter() - t0:.1f}s ({args.provider} fake, "
            f"{args.latency * 1000:.0f} ms latency, {args.write_limit:.0f} writes/s)",
            file=sys.stderr,
        )

        env = dict(
            os.environ,
            RELAIS_DATABASE_URL=settings.database_url,
            RELAIS_DATA_DIR=str(data),
            RELAIS_PUBLIC_BASE_URL=settings.public_base_url,
            RELAIS_SEED_DEMO="false",
            RELAIS_SECRET_KEY=SECRET_KEY,
            RELAIS_LOG_LEVEL="WARNING",
            **bench.worker_env(args.concurrency),
        )
        if args.workers > 1:
            env.update(RELAIS_REDIS_URL="redis://127.0.0.1:6379/11", RELAIS_QUEUE_NAME=f"relais-bench-{os.getpid()}",
                       RELAIS_DEPLOY_HELPERS=str(args.workers - 1))  # fmt: skip
        worker = Workers(env, data / "worker.log", count=args.workers, profile=args.profile)
        first = run_deployment(
            engine,
            org_id,
            provider.value,
            worker,
            warm_up=emails[0],
            kill_at=args.mailboxes // 2 if args.kill else None,
        )
        writes, duplicates, throttled = bench.writes(), bench.duplicate_writes(), bench.throttled()
        rewritten = bench.rewritten() if hasattr(bench, "rewritten") else []
        for line in rewritten[:5]:
            print(f"written twice: {line}", file=sys.stderr)
        first_cpu = worker.cpu_seconds
        worker.reset_cpu()
        times = bench.write_times() if hasattr(bench, "write_times") else []
        carrying = bench.carries(emails)
        print(
            f"first run: {first['seconds']:.2f}s {first['counts']} writes={writes} duplicates={duplicates} "
            f"429s={throttled} killed_at={first['killed_at']}",
            file=sys.stderr,
        )
        bench.reset()
        second = run_deployment(engine, org_id, provider.value, worker, warm_up=emails[0])
        print(f"second run: {second['seconds']:.2f}s {second['counts']} writes={bench.writes()}", file=sys.stderr)

        floor = args.mailboxes / args.write_limit
        result = {
            "provider": args.provider,
            "mode": "kill" if args.kill else "normal",
            "workers": args.workers,
            "database": "postgresql" if database_url else "sqlite",
            "mailboxes": args.mailboxes,
            "seconds": round(first["seconds"], 3),
            "floor_seconds": round(floor, 3),
            "ratio_to_floor": round(first["seconds"] / floor, 3),
            "writes": writes,
            "duplicate_writes": duplicates,
            "addresses_written_twice": len(rewritten),
            "second_run_writes": bench.writes(),
            "second_run_seconds": round(second["seconds"], 3),
            "throttled_429": throttled,
            "worker_cpu_seconds": round(first_cpu, 2),  # includes the worker's start-up (imports)
            # the deployment's own CPU per mailbox (polled every 50 ms: ± a few hundredths of a second in all)
            "worker_cpu_ms_per_mailbox": (
                round(first["deployment_cpu"] * 1000 / args.mailboxes, 3) if first["deployment_cpu"] else None
            ),
            "mailboxes_carrying_signature": carrying,
            "latency_s": args.latency,
            "write_limit_per_s": args.write_limit,
        }
        if args.kill:
            result["killed_at_done"] = first["killed_at"]
        if times:  # where the time beyond the floor goes
            result["first_write_after_s"] = round(times[0] - first["started"], 3)
            result["last_write_to_done_s"] = round(first["finished"] - times[-1], 3)
            result["writes_per_s_between"] = round((len(times) - 1) / max(1e-9, times[-1] - times[0]), 1)
        result.update(getattr(bench, "extra_figures", dict)())  # provider-specific figures
        print(json.dumps(result))


if __name__ == "__main__":
    main()
