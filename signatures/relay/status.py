"""Relay counters in the database: each process upserts its own row; IT reads the sum (GET /api/relay/status)."""

from __future__ import annotations

import os
import socket
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from service.db import session_scope, utcnow
from signatures.relay.models import RelayProcess

FRESH = timedelta(minutes=5)  # a process silent longer than this is shown as gone


def process_id(started: datetime) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{started.strftime('%Y%m%dT%H%M%S')}"


def report(engine: Engine, *, row_id: str, org_id: int, listen: str, next_hop: str, counters: dict,
           stopped: bool = False) -> None:  # fmt: skip
    with session_scope(engine) as session:
        row = session.get(RelayProcess, row_id) or RelayProcess(
            id=row_id, org_id=org_id, hostname=socket.gethostname(), listen=listen, next_hop=next_hop
        )
        row.counters, row.updated_at = counters, utcnow()
        if stopped:
            row.stopped_at = row.updated_at
        session.add(row)


def summary(session: Session, *, org_id: int, now: datetime | None = None) -> dict:
    now = now or utcnow()
    rows = session.exec(
        select(RelayProcess)
        .where(RelayProcess.org_id == org_id)
        .order_by(col(RelayProcess.updated_at).desc())
        .limit(50)
    ).all()
    counts = {"signed": 0, "errors": 0, "next_hop_failures": 0}
    passed: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    processes = []
    for row in rows:
        c = row.counters or {}
        running = row.stopped_at is None and now - row.updated_at <= FRESH
        processes.append({
            "id": row.id, "hostname": row.hostname, "listen": row.listen, "next_hop": row.next_hop,
            "running": running, "started_at": row.started_at, "updated_at": row.updated_at, "counters": c,
        })  # fmt: skip
        for key in counts:
            counts[key] += c.get(key, 0)
        passed.update(c.get("passed", {}))
        refused.update(c.get("refused", {}))
    totals = {"signed": counts["signed"], "passed": dict(passed), "errors": counts["errors"], "refused": dict(refused),
              "next_hop_failures": counts["next_hop_failures"]}  # fmt: skip
    return {"running": sum(p["running"] for p in processes), "totals": totals, "processes": processes}
