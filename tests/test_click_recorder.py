"""The group-commit writer on its own: one batch shared by concurrent requests, a refused row failing only its
own request, mixed batches (clicks, impressions, burst relabelling) in one transaction, values stored as the ORM
stores them."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from service.clicks.models import Click, Impression, Verdict
from service.clicks.recorder import ClickRecorder, RecordingFailed
from service.db import make_engine
from service.links import Channel, mint


def _link(db, org_id, i=0):
    with Session(db, expire_on_commit=False) as s:
        link = mint(s, org_id=org_id, channel=Channel.signature_field, destination=f"https://acme.example/{i}")
        s.commit()
        return link


def _click(org_id, link_id, visitor="v", at=None, verdict=Verdict.human):
    return (
        "click",
        {
            "org_id": org_id,
            "link_id": link_id,
            "employee_id": None,
            "campaign_id": None,
            "article_id": None,
            "issue_id": None,
            "channel": Channel.signature_field,
            "network": "linkedin",
            "occurred_at": at or datetime.now(UTC),
            "verdict": verdict,
            "reasons": "",
            "visitor": visitor,
        },
    )


def _impression(org_id, link_id):
    return (
        "impression",
        {
            "org_id": org_id,
            "link_id": link_id,
            "employee_id": None,
            "campaign_id": None,
            "occurred_at": datetime.now(UTC),
            "verdict": Verdict.human,
            "reasons": "",
            "visitor": "w",
        },
    )


def test_concurrent_requests_share_commits_and_values_round_trip(db, tenant):
    link = _link(db, tenant.org_id)
    rec = ClickRecorder(db, idle=0.2)
    at = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)

    async def go():
        await asyncio.gather(
            *(rec.record([_click(tenant.org_id, link.id, visitor=f"v{i}", at=at)]) for i in range(200))
        )

    asyncio.run(go())
    assert rec.rows == 200
    assert rec.batches < 200  # requests waiting together were committed together
    with Session(db) as s:
        rows = s.exec(select(Click)).all()
    assert len(rows) == 200
    assert {r.visitor for r in rows} == {f"v{i}" for i in range(200)}
    r = rows[0]
    assert r.occurred_at == at and r.channel is Channel.signature_field and r.verdict is Verdict.human
    assert r.network == "linkedin" and r.employee_id is None


def test_a_refused_row_fails_only_its_own_request(db, tenant):
    link = _link(db, tenant.org_id)
    rec = ClickRecorder(db, idle=0.2)

    async def go():
        good = [rec.record([_click(tenant.org_id, link.id, visitor=f"g{i}")]) for i in range(10)]
        kind, row = _click(tenant.org_id, link.id, visitor="bad")
        bad = rec.record([(kind, dict(row, occurred_at=None))])  # NOT NULL: the database refuses this row
        return await asyncio.gather(*good, bad, return_exceptions=True)

    results = asyncio.run(go())
    assert results[:10] == [None] * 10
    assert isinstance(results[10], RecordingFailed)
    with Session(db) as s:
        assert sorted(c.visitor for c in s.exec(select(Click)).all()) == sorted(f"g{i}" for i in range(10))


def test_mixed_batch_clicks_impressions_and_burst_relabel(db, tenant):
    a, b = _link(db, tenant.org_id, 1), _link(db, tenant.org_id, 2)
    rec = ClickRecorder(db, idle=0.2)
    now = datetime.now(UTC)
    rec.record_blocking([_click(tenant.org_id, a.id, visitor="x", at=now - timedelta(seconds=1))])

    async def go():
        relabel = {"visitor": "x", "link_ids": [a.id], "since": now - timedelta(seconds=3)}
        await asyncio.gather(
            rec.record(
                [_click(tenant.org_id, b.id, visitor="x", at=now, verdict=Verdict.scanner), ("relabel", relabel)]
            ),
            rec.record([_impression(tenant.org_id, a.id)]),
        )

    asyncio.run(go())
    with Session(db) as s:
        clicks = s.exec(select(Click).order_by(Click.id)).all()
        impressions = s.exec(select(Impression)).all()
    assert [(c.link_id, c.verdict, c.reasons) for c in clicks] == [
        (a.id, Verdict.scanner, "burst"),
        (b.id, Verdict.scanner, ""),
    ]
    assert len(impressions) == 1


def test_database_down_fails_the_request_instead_of_answering(db):
    url = (
        "sqlite:////nonexistent-dir/relais.db"
        if db.url.get_backend_name() == "sqlite"
        else db.url.set(port=1).render_as_string(hide_password=False)
    )  # nothing listens on port 1
    rec = ClickRecorder(make_engine(url), idle=0.2, retries=2)
    with pytest.raises(RecordingFailed):
        rec.record_blocking([_click(1, 1)])
