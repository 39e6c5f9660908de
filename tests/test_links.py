"""Minting: idempotent, unguessable, and no way to mint an open redirect."""

import pytest
from sqlmodel import Session

from service.errors import Invalid
from service.links import Channel, mint, resolve, url_for


def test_minting_is_idempotent_and_tokens_are_long(db, tenant):
    with Session(db) as s:
        a = mint(s, org_id=tenant.org_id, channel=Channel.signature_field, destination="https://acme.example/")
        b = mint(s, org_id=tenant.org_id, channel=Channel.signature_field, destination="https://acme.example/")
        c = mint(s, org_id=tenant.org_id, channel=Channel.share, destination="https://acme.example/", network="x")
        s.commit()
        assert a.token == b.token and a.token != c.token
        assert len(a.token) >= 22  # 16 random bytes
        assert url_for(a, "https://relais.test/").endswith(f"/c/{a.token}")
        assert url_for(c, "https://relais.test").endswith(f"/s/{c.token}")
        assert resolve(s, a.token).destination == "https://acme.example/"
        assert resolve(s, "x" * 22) is None and resolve(s, "short") is None


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "//evil.example/", "/relative", "data:text/html,x", ""])
def test_destinations_must_be_absolute_http(db, tenant, bad):
    with Session(db) as s, pytest.raises(Invalid):
        mint(s, org_id=tenant.org_id, channel=Channel.newsletter, destination=bad)


def test_employee_tokens_are_derived_verified_and_unforgeable(db, tenant, settings):
    from service.links import (
        EMPLOYEE_TOKEN_LEN,
        employee_token,
        employee_url,
        link_key,
        parse_employee_token,
        share_placeholder,
    )

    key = link_key(settings)
    with Session(db) as s:
        share = mint(
            s,
            org_id=tenant.org_id,
            channel=Channel.share,
            network="x",
            destination="https://news.example/a?utm_source=x",
        )
        s.flush()
        intent = mint(
            s,
            org_id=tenant.org_id,
            channel=Channel.share_intent,
            network="x",
            destination=f"https://twitter.com/intent/tweet?url={share_placeholder(share)}",
        )
        s.commit()
        url = employee_url(intent, 42, "https://relais.test", key)
        token = url.rsplit("/", 1)[1]
        assert url.startswith("https://relais.test/c/") and len(token) == EMPLOYEE_TOKEN_LEN
        assert parse_employee_token(token, key) == (intent.id, 42)
        got = resolve(s, token, key=key, base_url="https://relais.test")
        assert (got.id, got.employee_id, got.channel) == (intent.id, 42, Channel.share_intent)
        own_share = employee_token(share.id, 42, key)
        assert got.destination == f"https://twitter.com/intent/tweet?url=https%3A%2F%2Frelais.test%2Fs%2F{own_share}"
        assert resolve(s, own_share, key=key).destination == "https://news.example/a?utm_source=x"
        # Another employee id, a flipped bit, another key, or no key: nothing resolves.
        forged = employee_token(intent.id, 43, b"k" * 32)
        assert resolve(s, forged, key=key) is None
        flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        assert resolve(s, flipped, key=key) is None
        assert resolve(s, token) is None


def test_an_employee_token_click_is_credited_to_that_employee(client, db, tenant, settings):
    import time

    from sqlmodel import select

    from service.clicks.models import Click
    from service.links import employee_token, link_key, share_placeholder

    key = link_key(settings)
    with Session(db) as s:
        share = mint(
            s, org_id=tenant.org_id, channel=Channel.share, network="linkedin", destination="https://news.example/post"
        )
        s.flush()
        intent = mint(
            s,
            org_id=tenant.org_id,
            channel=Channel.share_intent,
            network="linkedin",
            destination=f"https://www.linkedin.com/sharing/share-offsite/?url={share_placeholder(share)}",
        )
        s.commit()
        share_id, intent_id = share.id, intent.id
    browser_ua = {
        "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0 Safari/537.36",
        "Accept": "text/html",
        "Accept-Language": "fr",
    }
    pressed = client.get(f"/c/{employee_token(intent_id, 7, key)}", headers=browser_ua, follow_redirects=False)
    assert pressed.status_code == 302
    assert pressed.headers["location"].endswith(f"%2Fs%2F{employee_token(share_id, 7, key)}")
    crawler = client.get(
        f"/s/{employee_token(share_id, 7, key)}",
        follow_redirects=False,
        headers={"User-Agent": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient)"},
    )
    assert crawler.status_code == 302 and crawler.headers["location"] == "https://news.example/post"
    assert client.get(f"/s/{employee_token(share_id, 7, b'x' * 32)}").status_code == 404
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with Session(db) as s:
            rows = s.exec(select(Click).order_by(Click.id)).all()
        if len(rows) == 2:
            break
        time.sleep(0.05)
    assert [(r.channel, r.employee_id, r.link_id, r.verdict) for r in rows] == [
        (Channel.share_intent, 7, intent_id, "human"),
        (Channel.share, 7, share_id, "crawler"),
    ]
