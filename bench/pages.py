"""Server time of the main pages on an organisation with 10,000 employees and a million rolled-up clicks.

    .venv/bin/python bench/pages.py [--employees 10000] [--clicks 1000000] [--runs 7] [--database-url URL]

Seeds the demo, adds the employees through the directory sync and the clicks as raw rows over the last 90 days,
folds them into the click summary (service.clicks.rollup: the minutes younger than its settle time stay raw, as
they would in production), signs in as the demo admin and times each page in-process (median of --runs after one
warm-up), with /health measured the same way as the baseline. Target: 150 ms a page.
Prints one line per page, then one JSON line last (with the fold's time for the million clicks).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time as clock
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import Session, select  # noqa: E402

from service.accounts.demo import DEMO_LOGINS_FILE  # noqa: E402
from service.app import create_app  # noqa: E402
from service.clicks.models import Click  # noqa: E402
from service.clicks.rollup import fold  # noqa: E402
from service.db import make_engine, utcnow  # noqa: E402
from service.demo import demo_people, seed_demo  # noqa: E402
from service.directory.models import Employee  # noqa: E402
from service.directory.sync import Listing, apply_listing  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.models import Organisation  # noqa: E402
from service.settings import Settings  # noqa: E402
from signatures.campaigns.models import Campaign  # noqa: E402
from tests.page_support import browser_client, sign_in  # noqa: E402

PAGES = ["/app/dashboard", "/app/analytics", "/app/analytics?group_by=department&start=2000-01-01",
         "/app/analytics?group_by=employee&start=2000-01-01", "/app/campaigns",
         "/app/campaigns/new", "/app/newsletter", "/app/newsletter/issues/1", "/app/directory",
         "/app/directory?q=martin", "/app/deployments", "/app/templates/1", "/app/connections",
         "/app/admin/users", "/app/admin/keys"]  # fmt: skip
TARGET_MS = 150


def seed(engine, settings: Settings, employees: int, clicks: int) -> float:
    with Session(engine) as s:
        seed_demo(s, settings)
        s.commit()
    with Session(engine) as s:
        org = s.exec(select(Organisation)).one()
        # distinct from the demo's own 50
        people = [replace(p, source_id=f"bench-{p.source_id}", email=f"b.{p.email}")
                  for p in demo_people(count=employees, seed=11)]  # fmt: skip
        apply_listing(s, org_id=org.id, source="bench", listing=Listing(people=people, complete=False), dry_run=False)
        s.commit()
        ids = s.exec(select(Employee.id).where(Employee.org_id == org.id)).all()
        campaign = s.exec(select(Campaign.id)).first()
        org_id = org.id
    rnd = random.Random(3)
    now = utcnow()
    channels = list(enumerate(["signature_banner", "signature_field", "newsletter", "share"]))
    reasons = {"human": "", "scanner": "ua_scanner", "crawler": "ua_preview"}
    rows: list[dict] = []
    # Clicks come in clusters, as before this summary existed (95,220 rolled-up rows for a million clicks): one
    # employee's link on one day gets 1-20 clicks of one verdict from a few visitors; the day is within the last 90,
    # the clicks of today up to now (its last minutes stay raw: the summary's tail).
    while len(rows) < clicks:
        n = min(rnd.randint(1, 20), clicks - len(rows))
        employee = rnd.choice(ids)
        i, channel = rnd.choice(channels)
        verdict = rnd.choice(["human", "human", "scanner", "crawler"])
        ago = rnd.randrange(90)
        day = datetime.combine((now - timedelta(days=ago)).date(), time(0), tzinfo=UTC)
        span = (now - day).total_seconds() if ago == 0 else 86400
        visitors = [f"{rnd.getrandbits(40):010x}" for _ in range(max(1, n // 2))]
        rows += [{"org_id": org_id, "link_id": employee * 10 + i, "employee_id": employee, "campaign_id": campaign,
                  "channel": channel, "occurred_at": day + timedelta(seconds=rnd.uniform(0, span)), "verdict": verdict,
                  "reasons": reasons[verdict], "visitor": rnd.choice(visitors)} for _ in range(n)]  # fmt: skip
    with engine.begin() as conn:
        for i in range(0, len(rows), 20_000):
            conn.execute(Click.__table__.insert(), rows[i : i + 20_000])
    started = clock.perf_counter()
    with Session(engine) as s:
        folded = fold(s, now=now)
    seconds = clock.perf_counter() - started
    print(f"seeded {len(ids)} employees, {clicks:,} raw clicks; folded {folded['days']} days in {seconds:.1f} s",
          file=sys.stderr)  # fmt: skip
    return seconds


def timed(client, path: str, runs: int) -> float:
    client.get(path)  # warm-up: templates compiled, caches filled
    samples = []
    for _ in range(runs):
        t = clock.perf_counter()
        r = client.get(path)
        samples.append((clock.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--employees", type=int, default=10_000)
    ap.add_argument("--clicks", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="relais-bench-pages-"))
    url = args.database_url or f"sqlite:///{tmp / 'relais.db'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = Settings(data_dir=tmp, database_url=url, seed_demo=False, secret_key="bench",
                        public_base_url="https://relais.bench")  # fmt: skip
    fold_seconds = seed(engine, settings, args.employees, args.clicks)
    email, password = next(line.split()[1:] for line in (tmp / DEMO_LOGINS_FILE).open() if line.startswith("admin"))
    client = browser_client(create_app(settings=settings, engine=engine))
    assert sign_in(client, email, password).status_code == 303
    baseline = timed(client, "/health", args.runs)
    results = {}
    for path in PAGES:
        results[path] = round(timed(client, path, args.runs), 1)
        flag = "" if results[path] <= TARGET_MS else "  OVER TARGET"
        print(f"{path:45s} {results[path]:8.1f} ms{flag}")
    worst = max(results.values())
    print(json.dumps({"bench": "pages", "backend": engine.dialect.name, "employees": args.employees,
                      "clicks": args.clicks, "fold_s": round(fold_seconds, 1), "health_ms": round(baseline, 2),
                      "pages_ms": results,
                      "pages_ratio_vs_health": {p: round(ms / baseline, 1) for p, ms in results.items()},
                      "worst_ms": worst, "worst_ratio_vs_health": round(worst / baseline, 1),
                      "target_ms": TARGET_MS, "all_within_target": worst <= TARGET_MS}))  # fmt: skip


if __name__ == "__main__":
    main()
