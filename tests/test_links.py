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
