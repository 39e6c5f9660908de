"""One brand: the stored and the rendered defaults are the same, and a missing brand is the defaults under the
organisation's name everywhere (API, templates, signatures), never a 404."""

from dataclasses import fields

import pytest
from sqlmodel import Session, select

from service.brand import brand_for
from service.directory.sync import DirectoryPerson, Listing, apply_listing
from service.errors import NotFound
from service.models import BRAND_DEFAULTS, Brand, Role
from signatures.context import BrandData
from signatures.service import org_brand
from tests.conftest import make_tenant


def test_the_table_and_the_renderer_share_the_defaults():
    stored, rendered = Brand(org_id=1, company_name="X"), BrandData(company_name="X")
    for f in fields(BRAND_DEFAULTS):
        assert getattr(stored, f.name) == getattr(rendered, f.name) == getattr(BRAND_DEFAULTS, f.name), f.name
    assert rendered.primary_color == "#1F3A5F"


def test_brand_for_falls_back_to_the_defaults_under_the_organisations_name(db):
    fresh = make_tenant(db, slug="fresh", with_brand=False)
    with Session(db) as s:
        brand = brand_for(s, fresh.org_id)
        assert brand.id is None and brand.company_name == "Fresh"
        assert org_brand(s, fresh.org_id).primary_color == BRAND_DEFAULTS.primary_color
        assert s.exec(select(Brand)).all() == []  # reading never saves
        with pytest.raises(NotFound):
            brand_for(s, fresh.org_id + 1000)


def test_a_fresh_organisation_reads_its_default_brand_and_renders_a_signature(client, db):
    fresh = make_tenant(db, slug="fresh", with_brand=False)
    with Session(db) as s:
        person = DirectoryPerson(source_id="1", email="ada@fresh.example", first_name="Ada", last_name="Lovelace")
        apply_listing(s, org_id=fresh.org_id, source="csv", listing=Listing(people=[person]), dry_run=False)
        s.commit()
        from service.directory.models import Employee

        ada = s.exec(select(Employee)).one().id

    got = client.get("/api/brand", headers=fresh.headers(Role.comms))
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["saved"] is False and body["updated_at"] is None
    assert body["company_name"] == "Fresh" and body["primary_color"] == BRAND_DEFAULTS.primary_color

    created = client.post("/api/templates", json={"name": "Basic", "layout": "classic"}, headers=fresh.headers(Role.it))
    assert created.status_code == 201, created.text
    preview = client.get(
        f"/api/templates/{created.json()['id']}/preview", params={"employee_id": ada}, headers=fresh.headers()
    )
    assert preview.status_code == 200, preview.text
    html = preview.json()["html"]
    assert "Ada" in html and BRAND_DEFAULTS.primary_color in html, html

    saved = client.put("/api/brand", json={**body, "company_name": "Fresh SA"}, headers=fresh.headers(Role.comms))
    assert saved.status_code == 200, saved.text
    assert saved.json()["saved"] is True and saved.json()["updated_at"] is not None
    again = client.get("/api/brand", headers=fresh.headers(Role.comms)).json()
    assert again["company_name"] == "Fresh SA" and again["saved"] is True


def test_newsletters_read_the_same_brand(db, settings):
    from newsletter.composition import load_context
    from newsletter.models import Issue

    fresh = make_tenant(db, slug="fresh", with_brand=False)
    with Session(db) as s:
        issue = Issue(org_id=fresh.org_id, subject="Hello")
        s.add(issue)
        s.flush()
        ctx = load_context(s, org_id=fresh.org_id, issue_id=issue.id, settings=settings)
        assert ctx.brand == org_brand(s, fresh.org_id)
        assert (ctx.brand.company_name, ctx.brand.primary_color) == ("Fresh", BRAND_DEFAULTS.primary_color)
