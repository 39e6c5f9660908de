"""Server time of the main pages on an organisation with 10,000 employees and a million rolled-up clicks.

    .venv/bin/python bench/pages.py [--employees 10000] [--clicks 1000000] [--runs 7] [--database-url URL]

Seeds the demo, adds the employees through the directory sync and the clicks as daily roll-ups over the last 90
days (ClickDaily, as the retention job leaves them), signs in as the demo admin and times each page in-process
(median of
--runs after one warm-up), with /health measured the same way as the baseline. Target: 150 ms a page.
Prints one line per page, then one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import Session, select  # noqa: E402

from service.accounts.demo import DEMO_LOGINS_FILE  # noqa: E402
from service.app import create_app  # noqa: E402
from service.clicks.models import ClickDaily  # noqa: E402
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


def seed(engine, settings: Settings, employees: int, clicks: int) -> None:
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
    today = utcnow().date()
    channels = ["signature_banner", "signature_field", "newsletter", "share"]
    rows, total = [], 0
    while total < clicks:
        n = rnd.randint(1, 20)
        total += n
        rows.append({"org_id": org_id, "day": today - timedelta(days=rnd.randrange(90)),
                     "employee_id": rnd.choice(ids), "campaign_id": campaign, "channel": rnd.choice(channels),
                     "verdict": rnd.choice(["human", "human", "scanner", "crawler"]), "clicks": n,
                     "uniques": max(1, n // 2)})  # fmt: skip
    with engine.begin() as conn:
        for i in range(0, len(rows), 20_000):
            conn.execute(ClickDaily.__table__.insert(), rows[i : i + 20_000])
    print(f"seeded {len(ids)} employees, {total:,} clicks in {len(rows):,} daily roll-ups", file=sys.stderr)


def timed(client, path: str, runs: int) -> float:
    client.get(path)  # warm-up: templates compiled, caches filled
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(path)
        samples.append((time.perf_counter() - t) * 1000)
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
    seed(engine, settings, args.employees, args.clicks)
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
                      "clicks": args.clicks, "health_ms": round(baseline, 2), "pages_ms": results,
                      "worst_ms": worst, "worst_ratio_vs_health": round(worst / baseline, 1),
                      "target_ms": TARGET_MS, "all_within_target": worst <= TARGET_MS}))  # fmt: skip


if __name__ == "__main__":
    main()
