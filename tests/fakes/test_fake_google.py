"""Tests of the fake Google server, driven only through the real google-auth and google-api-python-client."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
import threading
import time
from collections.abc import Iterator

import google.auth.transport.requests
import google_auth_httplib2
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from .google import (
    SCOPE_GMAIL_BASIC,
    SCOPE_GROUP_READONLY,
    SCOPE_MEMBER_READONLY,
    SCOPE_USER_READONLY,
    FakeGoogle,
    fake_google,
    loopback_http,
)

ADMIN = "admin@example.com"
ANN = "ann.lee@example.com"
BOB = "bob.stone@example.com"
DIRECTORY_SCOPES = [SCOPE_USER_READONLY, SCOPE_GROUP_READONLY, SCOPE_MEMBER_READONLY]


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with fake_google() as f:
        f.add_user(ADMIN, admin=True)
        f.add_user(
            ANN,
            title="Engineer",
            department="R&D",
            phones=[{"value": "+33 1 23", "type": "work"}],
            aliases=["ann@example.com"],
            org_unit="/Staff",
        )
        f.add_user(BOB)
        yield f


@pytest.fixture
def info(fake: FakeGoogle) -> dict[str, str]:
    return fake.service_account_info()


def creds_for(info: dict[str, str], subject: str | None, scopes: list[str]) -> service_account.Credentials:
    creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    return creds.with_subject(subject) if subject else creds


def gmail(fake: FakeGoogle, info: dict[str, str], subject: str, scopes: list[str] | None = None):
    creds = creds_for(info, subject, scopes or [SCOPE_GMAIL_BASIC])
    http = google_auth_httplib2.AuthorizedHttp(creds, http=loopback_http(timeout=10))
    return build("gmail", "v1", http=http, static_discovery=True, client_options={"api_endpoint": fake.url})


def directory(fake: FakeGoogle, info: dict[str, str], subject: str = ADMIN):
    # The plain `credentials=` path (httplib2.Http built by the library; NO_PROXY set by fake_google()).
    return build(
        "admin",
        "directory_v1",
        credentials=creds_for(info, subject, DIRECTORY_SCOPES),
        static_discovery=True,
        client_options={"api_endpoint": fake.url},
    )


def send_as(svc):
    return svc.users().settings().sendAs()


def error_of(exc: HttpError) -> dict:
    return json.loads(exc.content)["error"]


# ------------------------------------------------------------------------------------------------ auth


def test_token_flow_issues_bearer_tokens_bound_to_subject_and_scopes(fake, info):
    creds = creds_for(info, ANN, [SCOPE_GMAIL_BASIC])
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token.startswith("ya29.")
    remaining = (creds.expiry - dt.datetime.now(dt.UTC).replace(tzinfo=None)).total_seconds()
    assert 3500 < remaining <= 3600
    token = fake.tokens[creds.token]
    assert token.subject == ANN
    assert token.scopes == frozenset({SCOPE_GMAIL_BASIC})
    assert fake.tokens_issued == 1
    assert fake.request_log[-1].path == "/token"


def test_assertion_signed_by_another_key_is_rejected(fake, info):
    impostor = dict(info)
    impostor["private_key"] = fake.service_account_info("other@relais-test.iam.gserviceaccount.com")["private_key"]
    with pytest.raises(RefreshError, match="invalid_grant: Invalid JWT Signature"):
        creds_for(impostor, ANN, [SCOPE_GMAIL_BASIC]).refresh(google.auth.transport.requests.Request())
    assert fake.tokens_issued == 0


def test_unauthorized_client_when_scope_not_delegated(fake):
    info = fake.service_account_info(delegated_scopes=[SCOPE_USER_READONLY])
    with pytest.raises(RefreshError) as caught:
        send_as(gmail(fake, info, ANN)).list(userId=ANN).execute()
    assert "unauthorized_client" in str(caught.value)
    assert caught.value.args[1]["error_description"].startswith("Client is unauthorized to retrieve access tokens")
    assert not caught.value.retryable
    # Granting delegation fixes it.
    fake.delegate(info["client_id"], [SCOPE_GMAIL_BASIC])
    assert send_as(gmail(fake, info, ANN)).list(userId=ANN).execute()["sendAs"]


def test_unauthorized_client_fault_for_one_user(fake, info):
    fault = fake.inject("unauthorized_client", "token", user=BOB)
    with pytest.raises(RefreshError, match="unauthorized_client"):
        send_as(gmail(fake, info, BOB)).list(userId=BOB).execute()
    assert send_as(gmail(fake, info, ANN)).list(userId=ANN).execute()["sendAs"]
    assert fault.hits == 1


def test_invalid_grant_for_unknown_subject(fake, info):
    with pytest.raises(RefreshError, match="invalid_grant: Invalid email or User ID"):
        send_as(gmail(fake, info, "ghost@example.com")).list(userId="ghost@example.com").execute()


def test_missing_and_invalid_bearer_token(fake, info):
    svc = build("gmail", "v1", http=loopback_http(), static_discovery=True, client_options={"api_endpoint": fake.url})
    with pytest.raises(HttpError) as caught:
        send_as(svc).list(userId=ANN).execute()
    assert caught.value.resp.status == 401
    assert error_of(caught.value)["errors"][0]["reason"] == "required"
    assert error_of(caught.value)["status"] == "UNAUTHENTICATED"
    assert "www-authenticate" in caught.value.resp

    req = send_as(svc).list(userId=ANN)
    req.headers["authorization"] = "Bearer ya29.not-a-token"
    with pytest.raises(HttpError) as caught:
        req.execute()
    assert caught.value.resp.status == 401
    assert caught.value.error_details[0]["reason"] == "authError"


def test_expired_token_is_refreshed_by_the_client(fake, info):
    svc = gmail(fake, info, ANN)
    send_as(svc).list(userId=ANN).execute()
    fake.expire_tokens()
    assert send_as(svc).list(userId=ANN).execute()["sendAs"]
    assert fake.tokens_issued == 2
    assert [r.status for r in fake.request_log if r.route == "sendAs.list"] == [200, 401, 200]


def test_insufficient_scopes(fake, info):
    svc = gmail(fake, info, ANN, scopes=[SCOPE_USER_READONLY])
    with pytest.raises(HttpError) as caught:
        send_as(svc).list(userId=ANN).execute()
    assert caught.value.resp.status == 403
    assert caught.value.error_details[0]["reason"] == "insufficientPermissions"
    assert error_of(caught.value)["message"] == "Request had insufficient authentication scopes."


# ------------------------------------------------------------------------------------------------ directory


def test_users_list_pages_and_filters(fake, info):
    fake.seed_users(7, aliases_every=3)
    fake.add_user("zed.gone@example.com", suspended=True)
    fake.add_user("custom@example.com", custom_schemas={"Relais": {"pronouns": "she/her"}})
    users_api = directory(fake, info).users()
    req = users_api.list(customer="my_customer", projection="full", query="isSuspended=false", maxResults=4)
    pages, users = 0, []
    while req is not None:
        resp = req.execute()
        pages += 1
        assert len(resp["users"]) <= 4
        users.extend(resp["users"])
        if "nextPageToken" in resp:
            assert resp["nextPageToken"] not in json.dumps(resp["users"])
        req = users_api.list_next(req, resp)
    emails = [u["primaryEmail"] for u in users]
    assert pages == 3
    assert len(emails) == len(set(emails)) == 11  # 3 fixture users + 7 seeded + custom; not the suspended one
    assert "zed.gone@example.com" not in emails
    ann = next(u for u in users if u["primaryEmail"] == ANN)
    assert ann["name"] == {"givenName": "Ann", "familyName": "Lee", "fullName": "Ann Lee"}
    assert ann["organizations"][0]["title"] == "Engineer"
    assert ann["organizations"][0]["department"] == "R&D"
    assert ann["phones"] == [{"value": "+33 1 23", "type": "work"}]
    assert ann["aliases"] == ["ann@example.com"]
    assert ann["orgUnitPath"] == "/Staff"
    assert ann["isMailboxSetup"] is True and ann["suspended"] is False and ann["archived"] is False
    assert ann["id"].isdigit()
    custom = next(u for u in users if u["primaryEmail"] == "custom@example.com")
    assert custom["customSchemas"] == {"Relais": {"pronouns": "she/her"}}
    basic = users_api.list(customer="my_customer", query="email:custom*").execute()
    assert [u["primaryEmail"] for u in basic["users"]] == ["custom@example.com"]
    assert "customSchemas" not in basic["users"][0]
    assert [r.path for r in fake.request_log if r.route == "users.list"][0] == "/admin/directory/v1/users"


def test_users_list_requires_admin_subject(fake, info):
    with pytest.raises(HttpError) as caught:
        directory(fake, info, subject=ANN).users().list(customer="my_customer").execute()
    assert caught.value.resp.status == 403
    assert caught.value.error_details[0]["reason"] == "forbidden"


def test_users_get_and_query_filters(fake, info):
    fake.add_user("old.timer@example.com", archived=True, org_unit="/Staff/Alumni")
    api = directory(fake, info).users()
    assert api.get(userKey="ann@example.com").execute()["primaryEmail"] == ANN  # by alias
    staff = api.list(customer="my_customer", query="orgUnitPath='/Staff' isArchived=false").execute()
    assert [u["primaryEmail"] for u in staff["users"]] == [ANN]
    with pytest.raises(HttpError) as caught:
        api.list(customer="my_customer", query="shoeSize=42").execute()
    assert caught.value.resp.status == 400
    with pytest.raises(HttpError) as caught:
        api.get(userKey="ghost@example.com").execute()
    assert caught.value.resp.status == 404


def test_bad_page_token_is_rejected(fake, info):
    with pytest.raises(HttpError) as caught:
        directory(fake, info).users().list(customer="my_customer", pageToken="forged").execute()
    assert caught.value.resp.status == 400


def test_groups_and_members_with_derived_membership(fake, info):
    fake.add_group("leaders@example.com", members=[ADMIN])
    fake.add_group("staff@example.com", name="Staff", members=[ANN, BOB, "leaders@example.com"])
    api = directory(fake, info)
    groups = api.groups().list(customer="my_customer").execute()["groups"]
    assert [(g["email"], g["directMembersCount"]) for g in groups] == [
        ("leaders@example.com", "1"),
        ("staff@example.com", "3"),
    ]
    assert api.groups().list(userKey=ANN).execute()["groups"][0]["email"] == "staff@example.com"

    direct = api.members().list(groupKey="staff@example.com").execute()["members"]
    assert [(m["email"], m["type"]) for m in direct] == [
        (ANN, "USER"),
        (BOB, "USER"),
        ("leaders@example.com", "GROUP"),
    ]

    req = api.members().list(groupKey="staff@example.com", includeDerivedMembership=True, maxResults=2)
    members, pages = [], 0
    while req is not None:
        resp = req.execute()
        pages += 1
        members.extend(resp["members"])
        req = api.members().list_next(req, resp)
    assert pages == 2
    assert {m["email"] for m in members if m["type"] == "USER"} == {ANN, BOB, ADMIN}
    with pytest.raises(HttpError) as caught:
        api.members().list(groupKey="nope@example.com").execute()
    assert caught.value.resp.status == 404
    assert [r.path for r in fake.request_log if r.route == "members.list"][0] == (
        "/admin/directory/v1/groups/staff%40example.com/members"
    )


# ------------------------------------------------------------------------------------------------ gmail


def test_send_as_list_patch_update(fake, info):
    api = send_as(gmail(fake, info, ANN))
    listed = api.list(userId=ANN).execute()["sendAs"]
    assert [(s["sendAsEmail"], s.get("isPrimary", False)) for s in listed] == [
        (ANN, True),
        ("ann@example.com", False),
    ]

    patched = api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "<b>Ann</b>"}).execute()
    assert patched["signature"] == "<b>Ann</b>"
    assert patched["displayName"] == "Ann Lee"  # patch merges
    assert fake.signature(ANN) == "<b>Ann</b>"
    assert api.get(userId="me", sendAsEmail=ANN).execute()["signature"] == "<b>Ann</b>"

    updated = api.update(userId=ANN, sendAsEmail="ann@example.com", body={"signature": "alias"}).execute()
    assert updated["signature"] == "alias"
    assert updated["displayName"] == ""  # update replaces
    assert fake.signature(ANN, "ann@example.com") == "alias"

    api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "<b>Ann</b>"}).execute()
    assert [(w.send_as, w.method, w.changed) for w in fake.writes] == [
        (ANN, "patch", True),
        ("ann@example.com", "update", True),
        (ANN, "patch", False),
    ]
    assert fake.duplicate_writes() == [fake.writes[2]]
    assert fake.writes[0].user == ANN and fake.writes[0].at <= time.time()
    paths = [r.path for r in fake.request_log if r.route.startswith("sendAs.")]
    assert paths[:2] == [
        "/gmail/v1/users/ann.lee%40example.com/settings/sendAs",
        "/gmail/v1/users/ann.lee%40example.com/settings/sendAs/ann.lee%40example.com",
    ]


def test_other_users_mailbox_is_forbidden(fake, info):
    with pytest.raises(HttpError) as caught:
        send_as(gmail(fake, info, ANN)).list(userId=BOB).execute()
    assert caught.value.resp.status == 403
    assert fake.writes == []


def test_unknown_send_as_is_not_found(fake, info):
    with pytest.raises(HttpError) as caught:
        send_as(gmail(fake, info, ANN)).patch(userId=ANN, sendAsEmail="x@example.com", body={}).execute()
    assert caught.value.resp.status == 404


def test_signature_too_long(fake, info):
    api = send_as(gmail(fake, info, ANN))
    api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "x" * 10_000}).execute()
    with pytest.raises(HttpError) as caught:
        api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "x" * 10_001}).execute()
    assert caught.value.resp.status == 400
    assert caught.value.error_details[0]["reason"] == "invalidArgument"
    assert fake.signature(ANN) == "x" * 10_000

    fake.inject("signature_too_long", "sendAs.*", user=ANN, times=1)
    with pytest.raises(HttpError) as caught:
        api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "short"}).execute()
    assert caught.value.error_details[0]["reason"] == "invalidArgument"
    assert len(fake.writes) == 1


def test_mail_service_not_enabled(fake, info):
    fake.add_user("nomail@example.com", mailbox=False)
    with pytest.raises(HttpError) as caught:
        send_as(gmail(fake, info, "nomail@example.com")).list(userId="nomail@example.com").execute()
    assert caught.value.resp.status == 400
    assert caught.value.reason == "Mail service not enabled"
    assert caught.value.error_details[0]["reason"] == "failedPrecondition"
    assert error_of(caught.value)["status"] == "FAILED_PRECONDITION"

    fake.inject("mail_not_enabled", user=BOB)
    with pytest.raises(HttpError) as caught:
        send_as(gmail(fake, info, BOB)).patch(userId=BOB, sendAsEmail=BOB, body={"signature": "s"}).execute()
    assert caught.value.error_details[0]["reason"] == "failedPrecondition"
    assert fake.writes == []


# ------------------------------------------------------------------------------------------------ faults


@pytest.mark.parametrize(
    ("inject", "status", "reason", "status_name", "retry_after"),
    [
        (
            lambda f: f.rate_limit("sendAs.patch", retry_after=7),
            429,
            "rateLimitExceeded",
            "RESOURCE_EXHAUSTED",
            "7",
        ),
        (lambda f: f.rate_limit("sendAs.patch"), 429, "rateLimitExceeded", "RESOURCE_EXHAUSTED", None),
        (
            lambda f: f.user_rate_limit("sendAs.patch"),
            403,
            "userRateLimitExceeded",
            "PERMISSION_DENIED",
            None,
        ),
        (lambda f: f.server_error("sendAs.patch", status=500), 500, "backendError", "INTERNAL", None),
        (lambda f: f.server_error("sendAs.patch", status=503), 503, "backendError", "UNAVAILABLE", None),
    ],
    ids=["429-retry-after", "429", "403-user-rate", "500", "503"],
)
def test_injected_errors_reach_the_client(fake, info, inject, status, reason, status_name, retry_after):
    fault = inject(fake)
    api = send_as(gmail(fake, info, ANN))
    with pytest.raises(HttpError) as caught:
        api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "s"}).execute()
    assert caught.value.resp.status == status
    assert caught.value.error_details[0]["reason"] == reason
    assert error_of(caught.value)["status"] == status_name
    assert caught.value.resp.get("retry-after") == retry_after
    assert fault.hits == 1 and fake.writes == []
    # times=1: the next call goes through.
    api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "s"}).execute()
    assert len(fake.writes) == 1


def test_user_rate_limit_message_carries_an_rfc3339_timestamp(fake, info):
    fake.user_rate_limit(user=ANN, retry_in=60)
    with pytest.raises(HttpError) as caught:
        send_as(gmail(fake, info, ANN)).list(userId=ANN).execute()
    message = error_of(caught.value)["message"]
    match = re.fullmatch(r"User-rate limit exceeded\.  Retry after (\S+)", message)
    assert match, message
    when = dt.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    assert 50 < (when - dt.datetime.now(dt.UTC)).total_seconds() <= 61


def test_faults_are_scoped_to_user_and_route(fake, info):
    fake.server_error("sendAs.patch", user=BOB, times=None)
    ann, bob = send_as(gmail(fake, info, ANN)), send_as(gmail(fake, info, BOB))
    ann.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "a"}).execute()
    bob.list(userId=BOB).execute()
    for _ in range(2):
        with pytest.raises(HttpError):
            bob.patch(userId=BOB, sendAsEmail=BOB, body={"signature": "b"}).execute()
    fake.clear_faults()
    bob.patch(userId=BOB, sendAsEmail=BOB, body={"signature": "b"}).execute()
    assert [w.user for w in fake.writes] == [ANN, BOB]


def test_slow_responses(fake, info):
    api = send_as(gmail(fake, info, ANN))
    api.list(userId=ANN).execute()  # token fetched outside the timing
    fault = fake.slow(0.5, "sendAs.list", times=1)
    start = time.monotonic()
    api.list(userId=ANN).execute()
    assert time.monotonic() - start >= 0.5
    start = time.monotonic()
    api.list(userId=ANN).execute()
    assert time.monotonic() - start < 0.4
    assert fault.hits == 1


def test_global_latency():
    with fake_google(latency=0.05) as fake:
        fake.add_user(ANN)
        api = send_as(gmail(fake, fake.service_account_info(), ANN))
        api.list(userId=ANN).execute()
        start = time.monotonic()
        for _ in range(3):
            api.list(userId=ANN).execute()
        assert time.monotonic() - start >= 0.15


def test_dropped_connection_reaches_the_client(fake, info):
    api = send_as(gmail(fake, info, ANN))
    api.list(userId=ANN).execute()
    fake.drop("sendAs.patch", times=None)
    with pytest.raises(http.client.RemoteDisconnected):
        api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "s"}).execute()
    assert fake.writes == []
    assert fake.requests["sendAs.patch"] == 2  # httplib2 resent it once on a fresh connection
    assert [r.status for r in fake.request_log if r.route == "sendAs.patch"][-1] == 0


def test_single_drop_is_retried_by_httplib2_and_after_apply_duplicates_the_write(fake, info):
    api = send_as(gmail(fake, info, ANN))
    api.list(userId=ANN).execute()
    fake.drop("sendAs.patch", times=1, after_apply=True)
    result = api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "s"}).execute()
    assert result["signature"] == "s"
    assert fake.requests["sendAs.patch"] == 2
    assert len(fake.writes) == 2
    assert fake.duplicate_writes() == [fake.writes[1]]


def test_injected_token_endpoint_errors(fake, info):
    fake.server_error("token", status=503, times=None)
    with pytest.raises(RefreshError):
        send_as(gmail(fake, info, ANN)).list(userId=ANN).execute()
    assert fake.requests["token"] >= 2  # google-auth retries 503s on the token endpoint
    assert fake.tokens_issued == 0


# ------------------------------------------------------------------------------------------------ batch


def test_batch_of_patches_for_several_mailboxes(fake, info):
    fake.rate_limit("sendAs.patch", user=BOB, retry_after=3)
    results: dict[str, tuple] = {}
    batch = BatchHttpRequest(
        callback=lambda rid, resp, exc: results.__setitem__(rid, (resp, exc)), batch_uri=fake.gmail_batch_uri
    )
    for user in (ANN, BOB, ADMIN):
        api = send_as(gmail(fake, info, user))
        batch.add(api.patch(userId=user, sendAsEmail=user, body={"signature": f"sig {user}"}), request_id=user)
    batch.execute()
    assert results[ANN][0]["signature"] == f"sig {ANN}"
    assert results[ADMIN][1] is None
    exc = results[BOB][1]
    assert isinstance(exc, HttpError)
    assert exc.resp.status == 429 and exc.resp["retry-after"] == "3"
    assert exc.error_details[0]["reason"] == "rateLimitExceeded"
    assert {(w.user, w.batched) for w in fake.writes} == {(ANN, True), (ADMIN, True)}
    assert fake.requests["batch"] == 1
    assert [r.path for r in fake.request_log if r.route == "batch"] == ["/batch/gmail/v1"]


def test_batch_over_100_parts_is_rejected(fake, info):
    api = send_as(gmail(fake, info, ANN))
    batch = BatchHttpRequest(batch_uri=fake.gmail_batch_uri)
    for _ in range(101):
        batch.add(api.get(userId=ANN, sendAsEmail=ANN))
    with pytest.raises(HttpError) as caught:
        batch.execute()
    assert caught.value.resp.status == 400


# ------------------------------------------------------------------------------- write limit, load


def test_write_limit_answers_429_with_retry_after():
    with fake_google(write_limit_per_s=2, write_burst=2) as fake:
        fake.add_user(ANN)
        api = send_as(gmail(fake, fake.service_account_info(), ANN))
        for i in range(2):
            api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": str(i)}).execute()
        with pytest.raises(HttpError) as caught:
            api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "late"}).execute()
        assert caught.value.resp.status == 429
        assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
        wait = int(caught.value.resp["retry-after"])
        assert wait == 1
        time.sleep(wait)
        api.patch(userId=ANN, sendAsEmail=ANN, body={"signature": "late"}).execute()
        assert [w.signature for w in fake.writes] == ["0", "1", "late"]


def test_concurrent_writers():
    with fake_google(latency=0.02) as fake:
        users = fake.seed_users(20)
        info = fake.service_account_info()
        errors: list[BaseException] = []

        def worker(user: str) -> None:
            try:
                api = send_as(gmail(fake, info, user))
                for i in range(10):
                    api.patch(userId=user, sendAsEmail=user, body={"signature": f"v{i}"}).execute()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(u,)) for u in users]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        elapsed = time.monotonic() - start
        assert errors == []
        assert len(fake.writes) == 200
        assert fake.max_in_flight >= 10
        assert elapsed < 8.0  # 200 writes at 20 ms each, 20 at a time: ~1 s with the token fetches
        assert all(fake.signature(u) == "v9" for u in users)


def test_a_request_cut_short_is_not_applied(fake: FakeGoogle) -> None:
    """A client killed mid-request (a SIGKILLed worker) leaves a body shorter than its Content-Length: like a
    real server, the fake applies nothing, so the write is not counted."""
    import socket

    path = f"/gmail/v1/users/{ADMIN}/settings/sendAs/{ADMIN}"
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 200\r\n\r\n{{\"signature\": \"<p>half".encode())  # fmt: skip
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""  # closed without an answer
    assert fake.writes == [] and fake.request_count == 0
