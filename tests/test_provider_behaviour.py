"""Providers as they really behave: hour-long Retry-After (deferred mailboxes), sustained throttling (a time
budget and adaptive concurrency), and roaming signatures turned on mid-run (no window of false success)."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import Session

from service.connections.throttle import AdaptiveLimit, Deferred, RetryPolicy, call_with_retry
from service.db import session_scope, utcnow
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import Deployment
from signatures.deploy.scheduling import changed_mailboxes
from signatures.deploy.targets.base import TransientError
from signatures.deploy.targets.microsoft import MicrosoftTarget
from tests.fakes.microsoft import FakeMicrosoft
from tests.ms_support import TENANT, connect, connection, ms_settings
from tests.test_deploy_engine_google import deploy as google_deploy
from tests.test_deploy_engine_google import fake, gapp, items, seed_workspace  # noqa: F401 - fixtures
from tests.test_microsoft_deploy import deploy as ms_deploy
from tests.test_microsoft_deploy import items as ms_items
from tests.test_microsoft_deploy import people, seed

# Time is the budget here, as in production: no cap on attempts.
PATIENT = RetryPolicy(base_delay=0.01, max_delay=0.05)


@pytest.fixture
def msfake():
    with FakeMicrosoft(tenant_id=TENANT) as f:
        yield f
        assert f.errors == []


# ---------------------------------------------------------------- long Retry-After → deferred


@pytest.mark.parametrize("status", [403, 429])
def test_gmail_hour_long_retry_after_defers_the_mailbox_and_the_rest_finishes(gapp, tenant, db, fake, status):  # noqa: F811
    emails = seed_workspace(db, tenant.org_id, fake, 5)
    fake.user_rate_limit("sendAs.patch", user=emails[2], retry_in=3600, times=None, status=status)
    dep = google_deploy(gapp, tenant)
    assert dep["status"] == "done" and dep["counts"] == {"applied": 4, "deferred": 1}, dep
    reason = items(gapp, tenant, dep["id"])[emails[2]]["reason"]
    assert reason.startswith("Gmail asked to retry after ") and "UTC (userRateLimitExceeded)" in reason
    assert "1 mailbox(es) deferred" in dep["message"]
    assert fake.requests["sendAs.patch"] == 5, "the deferred mailbox was asked once, not waited for"

    # The next scheduled run picks it up (its signature was never recorded as written) and, the limit over, writes it.
    with Session(db) as s:
        assert changed_mailboxes(s, org_id=tenant.org_id, provider="google", at=utcnow()) == [emails[2]]
    fake.clear_faults()
    again = google_deploy(gapp, tenant)
    assert again["counts"] == {"applied": 1, "unchanged": 4}


def test_exchange_retry_after_3600_defers_the_mailbox(db, tenant, msfake, settings):
    mss = ms_settings(settings, msfake, ms_concurrency=4)
    emails = people(msfake, 4)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, msfake, mss)
    msfake.long_throttle(emails[1], seconds=3600)
    dep = ms_deploy(db, tenant, mss, conn_id)
    assert dep.status == "done" and dep.counts == {"applied": 3, "deferred": 1}
    reason = ms_items(db, dep.id)[emails[1]].reason
    assert reason.startswith("Exchange Online asked to retry after ") and "(TooManyRequests)" in reason
    with session_scope(db) as s:
        retry = deploy_engine.retry_failed(s, deployment=s.get(Deployment, dep.id), created_by="t")
        assert retry.target_filter["emails"] == [emails[1]]


def test_the_defer_bound_is_a_setting():
    waits = []
    calls = iter([TransientError("busy", retry_after=3600, throttled=True)])

    def fn():
        exc = next(calls, None)
        if exc:
            raise exc
        return "ok"

    # 90 minutes allowed: the hour is waited (through the injected sleep), then the call succeeds.
    long = RetryPolicy(defer_after=90 * 60, budget_seconds=2 * 3600)
    assert call_with_retry(fn, policy=long, sleep=waits.append) == "ok" and 3600 <= waits[0] < 3601.5
    calls = iter([TransientError("busy", retry_after=3600, throttled=True, code="TooManyRequests")])
    with pytest.raises(Deferred) as info:
        call_with_retry(fn, policy=RetryPolicy(defer_after=5 * 60), sleep=waits.append)
    assert "(TooManyRequests)" in info.value.message and len(waits) == 1


def test_retry_policy_follows_the_settings(settings):
    from signatures.deploy.jobs import retry_policy

    policy = retry_policy(settings.model_copy(update={"deploy_defer_after_minutes": 2, "deploy_retry_minutes": 7}))
    assert policy.defer_after == 120 and policy.budget_seconds == 420 and policy.max_attempts is None


# ---------------------------------------------------------------- sustained throttling


def test_sustained_exchange_write_limit_converges_with_no_failures(db, tenant, msfake, settings, caplog):
    """Exchange allows 4 writes/s (burst 2); 16 mailboxes at once collide on it. With a time budget and AIMD
    concurrency every mailbox lands, none twice."""
    mss = ms_settings(settings, msfake, ms_concurrency=16)
    emails = people(msfake, 21)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, msfake, mss)
    msfake.set_write_rate(4, burst=2)
    conn = connection(db, conn_id)
    with caplog.at_level(logging.INFO, logger="signatures.deploy"):
        dep_id = _new(db, tenant)
        dep = deploy_engine.execute(
            db, dep_id, make_target=lambda s, d: MicrosoftTarget.from_connection(conn, mss), policy=PATIENT
        )
    assert dep.status == "done" and dep.counts == {"applied": 21}, dep.counts
    rejected = msfake.request_count("exchange", cmdlet="Set-MailboxMessageConfiguration") - len(msfake.writes)
    assert rejected > 0, "the fake's write limit was never reached: the test proves nothing"
    assert len(msfake.writes) == 21 and len({w.mailbox for w in msfake.writes}) == 21
    slowed = [r for r in caplog.records if r.msg == "signatures.deploy.throttled"]
    assert slowed and slowed[0].lowest < 16, "concurrency never adapted to the provider"


def test_adaptive_limit_halves_once_per_congestion_and_grows_back():
    limit = AdaptiveLimit(16)
    tokens = [limit.acquire() for _ in range(8)]
    for token in tokens:  # eight 429s from calls started together: one signal
        limit.release(token, throttled=True)
    assert limit.limit == 8
    limit.release(limit.acquire(), throttled=True)
    assert limit.limit == 4
    for _ in range(4):
        limit.release(limit.acquire(), throttled=False)
    assert limit.limit == 5
    while limit.limit > 1:
        limit.release(limit.acquire(), throttled=True)
    limit.release(limit.acquire(), throttled=True)
    assert limit.limit == 1 and limit.active == 0


def _new(db, tenant) -> int:
    with session_scope(db) as s:
        return deploy_engine.create_deployment(s, org_id=tenant.org_id, provider="microsoft", dry_run=False).id


# ---------------------------------------------------------------- roaming turned on mid-run


@pytest.mark.parametrize("write_via", ["exchange", "graph"])
def test_roaming_turned_on_mid_run_leaves_no_false_success(db, tenant, msfake, settings, write_via):
    from signatures.deploy.registry import make_target

    mss = ms_settings(settings, msfake, ms_concurrency=4)
    emails = people(msfake, 24)
    seed(db, tenant, emails)
    connect(db, tenant.org_id, msfake, mss, config={"write_via": write_via})
    msfake.change_org_after_writes(5, PostponeRoamingSignaturesUntilLater=False)
    msfake.set_latency(0.3, "exchange" if write_via == "exchange" else "graph")  # a run that lasts seconds
    dep_id = _new(db, tenant)
    dep = deploy_engine.execute(db, dep_id, make_target=lambda s, d: make_target(s, d, mss), policy=PATIENT)
    assert dep.status == "failed" and "roaming signatures were turned on" in dep.message
    assert "Set-OrganizationConfig -PostponeRoamingSignaturesUntilLater $true" in dep.message
    got = ms_items(db, dep.id)
    ignored = {w.mailbox for w in msfake.writes if not w.applied}
    assert ignored, "no write landed after the switch: the test proves nothing"
    applied = {m for m, i in got.items() if i.outcome == "applied"}
    for mailbox in applied:  # every `applied` is really visible to its user
        assert mailbox not in ignored
    unconfirmed = {m for m, i in got.items() if i.outcome == "unconfirmed"}
    assert ignored <= unconfirmed
    assert all("roaming signatures were found ON" in got[m].reason for m in unconfirmed)
    assert len(msfake.writes) < 24, "the run kept writing after roaming was found on"
    assert dep.counts.get("not_attempted", 0) == 24 - len(applied) - len(unconfirmed)


def test_a_per_mailbox_limit_does_not_slow_the_others_down():
    limit = AdaptiveLimit(8)
    per_user = iter([TransientError("user limit", retry_after=0.0, throttled=True, pause_all=False)])
    global_ = iter([TransientError("project limit", retry_after=0.0, throttled=True)])

    def call(errors):
        exc = next(errors, None)
        if exc:
            raise exc
        return "ok"

    policy = RetryPolicy(base_delay=0, max_delay=0)
    assert call_with_retry(lambda: call(per_user), policy=policy, limit=limit, sleep=lambda s: None) == "ok"
    assert limit.limit == 8
    assert call_with_retry(lambda: call(global_), policy=policy, limit=limit, sleep=lambda s: None) == "ok"
    assert limit.limit == 4


def test_throttling_that_outlasts_the_budget_defers_and_other_errors_fail():
    clock = iter(range(0, 10_000, 100))  # each look at the clock: 100 s later

    def busy():
        raise TransientError("slow down", retry_after=1.0, throttled=True, code="rateLimitExceeded", service="Gmail")

    with pytest.raises(Deferred) as info:
        call_with_retry(busy, policy=RetryPolicy(budget_seconds=250), sleep=lambda s: None, clock=lambda: next(clock))
    assert info.value.message == "Gmail kept throttling for longer than the retry budget (rateLimitExceeded)"

    def broken():
        raise TransientError("503 backend error")

    from service.connections.throttle import GaveUp

    clock = iter(range(0, 10_000, 100))
    with pytest.raises(GaveUp, match="gave up after 3 attempts"):
        call_with_retry(broken, policy=RetryPolicy(budget_seconds=250), sleep=lambda s: None, clock=lambda: next(clock))
