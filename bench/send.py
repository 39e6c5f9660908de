"""Newsletter send throughput against the raw SMTP ceiling, in one run.

* an aiosmtpd sink runs in another process and counts Message-IDs;
* `send_issue` sends a 10-article issue to N synthetic employees (SQLite, links minted, rendered, exactly-once
  bookkeeping) over `newsletter_concurrency` connections;
* raw ceiling: aiosmtplib pushes 2,000 pre-built messages of the same size over the same number of connections,
  once before and once after the send (the machine is shared: their mean brackets load drift).

Prints one JSON line last: messages, seconds, messages_per_s, raw_messages_per_s (mean of raw_before and
raw_after), ratio, duplicates, missing.
Usage: .venv/bin/python bench/send.py [--employees 10000] [--concurrency 4]
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MSGID = re.compile(rb"^Message-ID: (<[^>]+>)", re.M | re.I)


def _sink(port: int, ready, cmd, out) -> None:
    from aiosmtpd.controller import Controller

    ids: dict[bytes, int] = {}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            m = MSGID.search(envelope.content)
            key = m.group(1) if m else b"?"
            ids[key] = ids.get(key, 0) + 1
            return "250 OK"

    c = Controller(Handler(), hostname="127.0.0.1", port=port, decode_data=False)
    c.start()
    ready.set()
    while True:
        what = cmd.get()
        if what == "stop":
            break
        out.put({k.decode(): v for k, v in ids.items()})
        ids.clear()
    c.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(engine, n: int) -> int:
    from sqlmodel import Session

    from newsletter.models import Article, Issue, IssueArticle
    from service.directory.models import Employee
    from service.models import Brand, Organisation

    with Session(engine) as s:
        org = Organisation(name="Bench", slug="bench")
        s.add(org)
        s.flush()
        s.add(Brand(org_id=org.id, company_name="Bench SA", logo_url="https://bench.example/logo.png"))
        s.bulk_insert_mappings(Employee, [
            {"org_id": org.id, "email": f"e{i}@bench.example", "first_name": f"Prénom{i}", "last_name": "Nom",
             "department": f"D{i % 12}", "source": "csv", "source_id": f"e{i}", "aliases": [], "active": True}
            for i in range(n)])  # fmt: skip
        arts = [
            Article(
                org_id=org.id,
                url=f"https://news.example/a/{i}",
                title=f"Article {i} : l'actualité",
                description="Un résumé de deux lignes pour donner envie de lire la suite. " * 2,
                image_url=f"https://news.example/img/{i}.png",
                site_name="News",
                text_x=f"À lire {i}",
                text_linkedin="Texte proposé pour LinkedIn.",
                hashtags=["RH", "emploi"],
            )
            for i in range(10)
        ]
        s.add_all(arts)
        issue = Issue(org_id=org.id, subject="La lettre de la semaine", preheader="Dix articles", intro="Bonjour.")
        s.add(issue)
        s.flush()
        for pos, a in enumerate(arts):
            s.add(IssueArticle(issue_id=issue.id, article_id=a.id, position=pos))
        s.commit()
        return issue.id


async def raw_send(port: int, payload: bytes, count: int, concurrency: int) -> None:
    import aiosmtplib

    queue: asyncio.Queue = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        while not queue.empty():
            i = queue.get_nowait()
            data = payload.replace(b"<BENCH-ID>", f"<raw-{i}@bench>".encode(), 1)
            await smtp.sendmail("comms@bench.example", [f"e{i}@bench.example"], data)
        await smtp.quit()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--employees", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--raw", type=int, default=2000)
    args = ap.parse_args()

    from sqlmodel import Session, select

    from newsletter.mailer import SmtpMailer
    from newsletter.sending import send_issue
    from service.db import make_engine
    from service.migrate import upgrade
    from service.settings import Settings

    port = free_port()
    ready, cmd, out = mp.Event(), mp.Queue(), mp.Queue()
    proc = mp.Process(target=_sink, args=(port, ready, cmd, out), daemon=True)
    proc.start()
    ready.wait(30)

    tmp = Path(tempfile.mkdtemp(prefix="relais-bench-"))
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    upgrade(engine)
    issue_id = setup(engine, args.employees)
    settings = Settings(data_dir=tmp, public_base_url="https://relais.bench", smtp_host="127.0.0.1", smtp_port=port,
                        smtp_from="Comms <comms@bench.example>", newsletter_concurrency=args.concurrency,
                        seed_demo=False, secret_key="bench")  # fmt: skip

    from newsletter.composition import build_outgoing, load_context, mint_for, recipient_of
    from newsletter.models import Delivery
    from service.directory.models import Employee

    # the raw ceiling: the same message size, pre-built, same connections; measured before AND after the send
    # (the machine is shared: the mean of the two brackets the send against load drifting during the run)
    with Session(engine) as s:
        ctx = load_context(s, org_id=1, issue_id=issue_id, settings=settings)
        emp = s.exec(select(Employee)).first()
        rc = recipient_of(emp, "x" * 22)
        views = mint_for(s, ctx, [rc])[rc.employee_id]
        sample = build_outgoing(ctx, rc, views).data
        s.commit()
    payload = re.sub(rb"(?m)^Message-ID: <[^>]+>", b"Message-ID: <BENCH-ID>", sample)

    def raw() -> float:
        t = time.perf_counter()
        asyncio.run(raw_send(port, payload, args.raw, args.concurrency))
        seconds = time.perf_counter() - t
        cmd.put("report")
        return sum(out.get(timeout=60).values()) / seconds

    raw_before = raw()

    t0 = time.perf_counter()
    rep = send_issue(engine, issue_id, SmtpMailer(settings), settings)
    seconds = time.perf_counter() - t0
    cmd.put("report")
    received = out.get(timeout=60)

    with Session(engine) as s:
        emp_ids = s.exec(select(Employee.id)).all()
        assert s.exec(select(Delivery)).first() is not None
    expected = {f"<issue-{issue_id}.emp-{e}@relais.bench>" for e in emp_ids}
    duplicates = sum(v - 1 for v in received.values() if v > 1)
    missing = len(expected - set(received))

    raw_after = raw()
    cmd.put("stop")
    proc.join(10)

    mps = rep.sent / seconds
    raw_mps = (raw_before + raw_after) / 2
    print(json.dumps({"messages": rep.sent, "seconds": round(seconds, 2), "messages_per_s": round(mps, 1),
                      "raw_messages_per_s": round(raw_mps, 1), "raw_before": round(raw_before, 1),
                      "raw_after": round(raw_after, 1), "ratio": round(mps / raw_mps, 3),
                      "duplicates": duplicates, "missing": missing, "message_bytes": len(sample),
                      "links_per_message": 90, "concurrency": args.concurrency}))  # fmt: skip


if __name__ == "__main__":
    main()
