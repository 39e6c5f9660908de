"""Failures are rate limited per client address; successes never are (a mail scanner's burst passes)."""

from fastapi.testclient import TestClient
from sqlmodel import Session

from service.links import Channel, mint, url_for
from service.rate_limits import AUTH, PUBLIC_TOKENS, Limit, RateLimits, _Buckets


def _client(app, address):
    return TestClient(app, client=(address, 40000))


def _frozen_buckets(app, client) -> None:
    """Stop the app's buckets from leaking while the test walks: on a loaded machine the requests are slow
    enough for the bucket to drain between them, and the walk would never reach the limit."""
    client.get("/health")  # builds the middleware stack
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, RateLimits):
        layer = getattr(layer, "app", None)
    assert isinstance(layer, RateLimits), "the rate limits are not in the middleware stack"
    layer.tokens.clock = layer.auth.clock = lambda: 1000.0


def test_guessing_api_keys_gets_429_and_others_are_not_affected(app, tenant):
    with _client(app, "203.0.113.7") as guesser, _client(app, "198.51.100.2") as user:
        _frozen_buckets(app, guesser)
        statuses = [
            guesser.get(
                "/api/employees", headers={"Authorization": f"Bearer rls_0000000{i % 10}_{'x' * 32}"}
            ).status_code
            for i in range(int(AUTH.burst) + 5)
        ]
        assert statuses[: int(AUTH.burst)] == [401] * int(AUTH.burst)
        assert set(statuses[int(AUTH.burst) :]) == {429}
        refused = guesser.get("/api/employees", headers=tenant.headers())
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "too_many_requests"
        assert user.get("/api/employees", headers=tenant.headers()).status_code == 200
        # no key at all is not guessing: never limited
        assert user.get("/api/employees").status_code == 401


def test_a_scanner_burst_on_real_links_is_never_refused(app, tenant, db):
    with Session(db, expire_on_commit=False) as s:
        links = [mint(s, org_id=tenant.org_id, channel=Channel.newsletter, article_id=i,
                      destination=f"https://acme.example/{i}") for i in range(20)]  # fmt: skip
        s.commit()
    base = app.state.settings.public_base_url
    with _client(app, "40.94.0.1") as scanner:
        for _ in range(int(PUBLIC_TOKENS.burst) * 2 // len(links)):
            for link in links:
                path = url_for(link, base).removeprefix(base)
                assert scanner.get(path, follow_redirects=False).status_code == 302


def test_walking_random_tokens_gets_429(app):
    with _client(app, "192.0.2.9") as walker, _client(app, "192.0.2.10") as other:
        _frozen_buckets(app, walker)
        statuses = [walker.get(f"/c/bogus{i}").status_code for i in range(int(PUBLIC_TOKENS.burst) + 3)]
        assert statuses[: int(PUBLIC_TOKENS.burst)] == [404] * int(PUBLIC_TOKENS.burst) and statuses[-1] == 429
        assert other.get("/c/bogus").status_code == 404


def test_buckets_drain_and_stay_bounded(monkeypatch):
    now = [0.0]
    b = _Buckets(Limit(burst=3, per_second=1), clock=lambda: now[0])
    for _ in range(3):
        b.fail("a")
    assert b.retry_after("a") == 1
    now[0] += 1.0
    assert b.retry_after("a") == 0
    monkeypatch.setattr("service.rate_limits.MAX_ADDRESSES", 5)
    for i in range(10):
        b.fail(f"x{i}")
    assert len(b.levels) == 5
