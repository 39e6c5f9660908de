"""Planning and the dry run of a large tenant: how long, and how much memory the worker needs.

    .venv/bin/python bench/plan.py [--mailboxes 100000]

* Seeds N employees (bulk inserts, SQLite in a temp dir), two templates (a default and a department one), then
  runs a dry-run deployment in a fresh process — the worker's path: select the employees, render both variants of
  every signature, hash and compare with the last written, commit the items in chunks — and measures that process.
* Prints `seconds` (the deployment's started_at → finished_at), `peak_rss_mb` of the planning process (its
  `ru_maxrss`), and the same for a tenth of the mailboxes in the same run (`small_*`), so growth with N shows.
  Targets: ≤ 60 s and ≤ 500 MB at 100,000 mailboxes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402

from service.db import make_engine, session_scope, utcnow  # noqa: E402
from service.directory.models import Employee  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.models import Brand, Organisation  # noqa: E402

DEPARTMENTS = ("Sales", "R&D", "Ops", "Finance")


def seed(url: str, org_slug: str, mailboxes: int) -> int:
    from bench.push import BRAND
    from signatures.layouts import LAYOUTS
    from signatures.models import AssignmentKind, TemplateAssignment
    from signatures.service import create_template

    engine = make_engine(url)
    with session_scope(engine) as s:
        org = Organisation(name=org_slug, slug=org_slug)
        s.add(org)
        s.flush()
        s.add(Brand(org_id=org.id, **BRAND))
        org_id = org.id
        for name, layout, kind, value in (
            ("Corporate", "compact", AssignmentKind.default, ""),
            ("Sales", "classic", AssignmentKind.department, "Sales"),
        ):
            template, _v, _w = create_template(
                s, org_id=org_id, name=name, description="", new_source=LAYOUTS[layout].new_source,
                reply_source=LAYOUTS[layout].reply_source, created_by="bench",
            )  # fmt: skip
            s.add(TemplateAssignment(org_id=org_id, template_id=template.id, kind=kind, value=value))
    now = utcnow()
    rows = [
        dict(org_id=org_id, email=f"user{i:06d}@{org_slug}.example", first_name=f"Given{i}", last_name=f"Family{i}",
             display_name=f"Given{i} Family{i}", title="Engineer", department=DEPARTMENTS[i % len(DEPARTMENTS)],
             office="Paris", phone="+33 1 23 45 67 89", aliases=[], active=True, source="google",
             source_id=f"g{i}", created_at=now, updated_at=now)
        for i in range(mailboxes)
    ]  # fmt: skip
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(Employee), rows[start : start + 5000])
    return org_id


def plan_once(url: str, org_id: int) -> dict:
    """Runs in its own process: a dry-run deployment, as a worker runs it."""
    from signatures.deploy import engine as deploy_engine
    from signatures.deploy.models import Deployment
    from signatures.deploy.targets.files import FileTarget

    engine = make_engine(url)
    with session_scope(engine) as s:
        dep_id = deploy_engine.create_deployment(s, org_id=org_id, provider="file", dry_run=True).id
    cpu = time.process_time()
    deploy_engine.execute(engine, dep_id, make_target=lambda s, d: FileTarget(Path(tempfile.mkdtemp())))
    with Session(engine) as s:
        dep = s.get(Deployment, dep_id)
        seconds = (dep.finished_at - dep.started_at).total_seconds()
        counts = dict(dep.counts)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB → MB on Linux
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "peak_rss_mb": peak, "counts": counts}


def measure(url: str, org_id: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--plan", url, str(org_id)], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--plan", nargs=2, metavar=("URL", "ORG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plan:
        print(json.dumps(plan_once(args.plan[0], int(args.plan[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="relais-bench-plan-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'relais.db'}"
        upgrade(make_engine(url))
        t0 = time.perf_counter()
        small_org = seed(url, "small", args.mailboxes // 10)
        big_org = seed(url, "big", args.mailboxes)
        print(f"seeded {args.mailboxes // 10:,} + {args.mailboxes:,} employees in {time.perf_counter() - t0:.1f}s",
              file=sys.stderr)  # fmt: skip
        small = measure(url, small_org)
        print(f"{args.mailboxes // 10:,}: {small}", file=sys.stderr)
        big = measure(url, big_org)
        print(f"{args.mailboxes:,}: {big}", file=sys.stderr)
    print(json.dumps({
        "mailboxes": args.mailboxes, "seconds": round(big["seconds"], 2), "cpu_seconds": round(big["cpu_seconds"], 2),
        "peak_rss_mb": round(big["peak_rss_mb"], 1), "counts": big["counts"],
        "small_mailboxes": args.mailboxes // 10, "small_seconds": round(small["seconds"], 2),
        "small_peak_rss_mb": round(small["peak_rss_mb"], 1),
        "ms_per_mailbox": round(big["seconds"] * 1000 / args.mailboxes, 3),
        "targets": {"seconds": 60, "peak_rss_mb": 500},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
