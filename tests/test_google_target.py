"""GoogleTarget against the fake Gmail API: what it reads and writes, and how each Google failure maps."""

from __future__ import annotations

import email.utils
import time

import pytest

from service.connections.google import GoogleClient, Problem, retry_after_seconds
from service.connections.throttle import RetryPolicy
from signatures.deploy import engine as deploy_engine
from signatures.deploy.targets.base import (
    ConfigurationError,
    MailboxSignature,
    Outcome,
    SkipMailbox,
    TargetError,
    TransientError,
)
from signatures.deploy.targets.google import GoogleTarget
from tests.fakes.google import SCOPE_USER_READONLY, FakeGoogle, fake_google

ADMIN = "admin@example.com"
ANN = "ann.lee@example.com"
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def fake():
    with fake_google() as f:
        f.add_user(ADMIN, admin=True)
        f.add_user(ANN, aliases=["ann@example.com"], send_as_aliases=["ann@example.com"])
        yield f


def target_for(fake: FakeGoogle, **kw) -> GoogleTarget:
    info = kw.pop("info", None) or fake.service_account_info()
    return GoogleTarget(
        GoogleClient(info=info, admin_subject=ADMIN, api_endpoint=fake.url, token_uri=fake.token_uri), **kw
    )


def sig(mailbox=ANN, addresses=None, html="<b>Ann Lee</b> Relais", verify_first=False):
    return MailboxSignature(
        mailbox, addresses or (mailbox,), html, "Ann Lee", "<b>A</b>", "A", "hash", verify_first=verify_first
    )


def test_lists_once_then_patches_only_addresses_that_differ(fake):
    fake.set_signature(ANN, "<b>Ann Lee</b> Relais", send_as="ann@example.com")
    target = target_for(fake)
    result = target.write(sig(addresses=(ANN, "ann@example.com")))
    assert [(r.address, r.outcome) for r in result.results] == [
        (ANN, Outcome.applied),
        ("ann@example.com", Outcome.unchanged),
    ]
    assert fake.requests["sendAs.list"] == 1 and fake.requests["sendAs.patch"] == 1
    assert [(w.send_as, w.method) for w in fake.writes] == [(ANN, "patch")]


def test_an_alias_that_is_not_a_send_as_address_is_skipped_with_a_reason(fake):
    result = target_for(fake).write(sig(addresses=(ANN, "old-name@example.com")))
    skipped = result.results[1]
    assert skipped.outcome is Outcome.skipped and "not a Gmail send-as address" in skipped.reason


def test_one_client_for_all_threads_and_one_token_per_subject(fake):
    target = target_for(fake)
    for html in ("<b>1</b>", "<b>2</b>", "<b>3</b>"):
        target.write(sig(html=html))
    assert fake.tokens_issued == 1, "the token of a subject is cached"
    assert target.client.service("gmail") is target.client.service("gmail")


def test_mail_service_not_enabled_and_unknown_user_are_skipped(fake):
    fake.add_user("nomail@example.com", mailbox=False)
    target = target_for(fake)
    with pytest.raises(SkipMailbox, match="Mail service not enabled"):
        target.write(sig("nomail@example.com"))
    with pytest.raises(SkipMailbox, match="does not exist"):
        target.write(sig("ghost@example.com"))
    assert fake.writes == []


def test_signature_too_long_is_skipped_with_its_length(fake):
    target = target_for(fake)
    with pytest.raises(SkipMailbox, match="signature is 10,001 characters; Gmail's limit is 10,000"):
        target.write(sig(html="x" * 10_001))
    fake.inject("signature_too_long", "sendAs.*", user=ANN)  # Gmail's own check (after its sanitizer)
    with pytest.raises(SkipMailbox, match="signature is 20 characters"):
        target.write(sig(html="<b>x</b>" + "y" * 12))
    assert fake.writes == []


def test_throttling_is_transient_with_retry_after(fake):
    target = target_for(fake)
    fake.rate_limit("sendAs.patch", retry_after=7)
    with pytest.raises(TransientError) as caught:
        target.write(sig())
    assert caught.value.retry_after == 7 and caught.value.pause_all
    fake.rate_limit("sendAs.patch")  # no Retry-After: backoff decides
    with pytest.raises(TransientError) as caught:
        target.write(sig())
    assert caught.value.retry_after is None
    fake.user_rate_limit("sendAs.patch", retry_in=20)
    with pytest.raises(TransientError) as caught:
        target.write(sig())
    assert 15 < caught.value.retry_after <= 20 and not caught.value.pause_all  # one user's limit
    for status in (500, 503):
        fake.server_error("sendAs.list", status=status)
        with pytest.raises(TransientError, match=str(status)):
            target.write(sig())
    assert fake.writes == []


def test_retry_after_formats():
    assert retry_after_seconds({"retry-after": "12"}, "") == 12
    in_30 = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_seconds({"retry-after": in_30}, "") <= 30
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 40)) + ".000Z"
    assert 35 < retry_after_seconds({}, f"User-rate limit exceeded.  Retry after {when}") <= 40
    assert retry_after_seconds({}, "Rate Limit Exceeded") is None
    assert retry_after_seconds({"retry-after": "soon"}, "") is None


def test_a_lost_response_is_not_resent_and_the_retry_finds_the_write(fake):
    """A write applied, then the connection dropped: httplib2 would resend it; the target surfaces the error
    and the engine's retry reads the mailbox again, finds the signature, and does not write twice."""
    target = target_for(fake)
    fake.drop("sendAs.patch", user=ANN, after_apply=True)
    result = deploy_engine.write_with_retries(target, sig(), FAST)
    assert [r.outcome for r in result.results] == [Outcome.applied] and result.writes == 1
    assert len(fake.writes) == 1 and fake.duplicate_writes() == []
    assert fake.signature(ANN) == "<b>Ann Lee</b> Relais"


def test_a_dropped_read_is_retried(fake):
    target = target_for(fake)
    fake.drop("sendAs.list", user=ANN, times=None)
    with pytest.raises(TransientError, match="connection"):
        target.write(sig())
    fake.clear_faults()
    assert target.write(sig()).results[0].outcome is Outcome.applied


def test_missing_delegation_is_a_configuration_error_with_the_client_id(fake):
    info = fake.service_account_info(delegated_scopes=[SCOPE_USER_READONLY])
    target = target_for(fake, info=info)
    with pytest.raises(ConfigurationError) as caught:
        target.check()
    message = caught.value.message
    assert info["client_id"] in message and "gmail.settings.basic" in message and "Domain-wide delegation" in message
    with pytest.raises(ConfigurationError, match="Domain-wide delegation"):
        target.write(sig())


def test_check_names_a_missing_admin_subject(fake):
    target = GoogleTarget(
        GoogleClient(
            info=fake.service_account_info(),
            admin_subject="nobody@example.com",
            api_endpoint=fake.url,
            token_uri=fake.token_uri,
        )
    )
    with pytest.raises(ConfigurationError, match="admin subject nobody@example.com does not exist"):
        target.check()


def test_insufficient_permissions_and_disabled_api_are_configuration_errors(fake):
    target = target_for(fake)
    fake.inject(
        "error",
        "sendAs.list",
        status=403,
        reason="insufficientPermissions",
        message="Request had insufficient authentication scopes.",
    )
    with pytest.raises(ConfigurationError, match="lacks a scope"):
        target.write(sig())
    fake.clear_faults()
    fake.inject(
        "error",
        "sendAs.list",
        status=403,
        reason="accessNotConfigured",
        message="Gmail API has not been used in project 123 before or it is disabled.",
    )
    with pytest.raises(ConfigurationError, match="Gmail API is not enabled"):
        target.write(sig())


def test_other_client_errors_fail_the_mailbox(fake):
    fake.inject("error", "sendAs.patch", status=400, reason="badRequest", message="Odd request")
    with pytest.raises(TargetError, match="Odd request") as caught:
        target_for(fake).write(sig())
    assert type(caught.value) is TargetError
    assert isinstance(Problem("other", 400, "x", "y"), Problem)


def test_concurrency_and_rate_come_from_settings(fake, settings, db, tenant):
    from service.connections.models import Provider
    from service.connections.service import save_connection
    from service.db import session_scope

    settings.google_concurrency, settings.google_writes_per_second = 7, 50.0
    settings.google_api_endpoint, settings.google_token_uri = fake.url, fake.token_uri
    with session_scope(db) as s:
        row = save_connection(
            s,
            org_id=tenant.org_id,
            provider=Provider.google,
            config={"admin_subject": ADMIN},
            secret=_json(fake),
            settings=settings,
        )
        target = GoogleTarget.from_connection(row, settings)
    assert target.concurrency == 7 and target.writes_per_second == 50.0 and target.bucket.rate == 50.0
    assert target.check() == []


def _json(fake):
    import json

    return json.dumps(fake.service_account_info())
