"""Every route that takes an id refuses another organisation's ids with 404, exactly as for a missing row.

The walk goes over every route of the app (as the role test does), so a route added without a tenant check
fails here instead of leaking data. Organisation A is the full demo (employees, templates, a campaign with
clicks, articles, an issue) plus a deployment; organisation B is a fresh tenant probing with A's ids.
"""

import re
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from advocacy.feeds.models import Feed, FeedItem
from newsletter.models import Article, Issue
from service.demo import seed_demo
from service.directory.models import Employee
from service.models import ApiKey, Role
from signatures.campaigns.models import BannerImage, Campaign
from signatures.deploy import engine as deploy_engine
from signatures.models import SignatureTemplate, TemplateAssignment
from tests.conftest import make_tenant
from tests.routes_support import api_routes, is_page

# Path parameters that are not an organisation's row ids: the caller's own connection, public
# content-addressed assets and icons, the employee's own preferences token, and the organisation's public slug
# (the ambassador page, public by design: tests/test_advocacy_recognition.py).
NOT_ROW_IDS = {"provider", "name", "size", "token", "slug"}

EXAMPLE_BODIES = {
    ("PUT", "/api/templates/{template_id}"): {"new_source": "<p>{{ employee.display_name }}</p>"},
    ("PATCH", "/api/campaigns/{campaign_id}"): {"name": "Renamed"},
    ("PATCH", "/api/newsletter/articles/{article_id}"): {"title": "Renamed"},
    ("PATCH", "/api/newsletter/issues/{issue_id}"): {"subject": "Renamed"},
    ("POST", "/api/newsletter/issues/{issue_id}/test"): {"address": "tester@other.example"},
    ("POST", "/api/newsletter/issues/{issue_id}/schedule"): {},
}


@pytest.fixture
def two_orgs(db, settings):
    """A's ids by path-parameter name, and B's admin headers."""
    with Session(db) as session:
        seed_demo(session, settings)
        session.commit()
        org_a = session.exec(select(Employee)).first().org_id
        dep = deploy_engine.create_deployment(
            session, org_id=org_a, provider="file", dry_run=True, target_filter={}, created_by="test"
        )
        session.commit()

        def first(model):
            row = session.exec(select(model).where(model.org_id == org_a)).first()
            assert row is not None, f"the demo seeds no {model.__name__}"
            return row.id

        ids = {
            "employee_id": first(Employee),
            "template_id": first(SignatureTemplate),
            "assignment_id": first(TemplateAssignment),
            "campaign_id": first(Campaign),
            "banner_id": first(BannerImage),
            "article_id": first(Article),
            "issue_id": first(Issue),
            "key_id": first(ApiKey),
            "feed_id": first(Feed),
            "item_id": first(FeedItem),
            "deployment_id": dep.id,
            "mailbox": session.exec(select(Employee).where(Employee.org_id == org_a)).first().email,
        }
    other = make_tenant(db, slug="other")
    return ids, other.headers(Role.admin)


def _routes_with_ids(app):
    for route in api_routes(app.routes):
        params = set(re.findall(r"\{([^}]+)\}", route.path))
        if params and not params <= NOT_ROW_IDS and not is_page(route):  # pages: tests/test_pages.py
            for method in sorted(route.methods - {"HEAD"}):
                yield route, method, params


def test_every_route_refuses_another_organisations_ids(app, client, two_orgs):
    ids, b_headers = two_orgs
    walked, leaks, unknown = 0, [], []
    for route, method, params in _routes_with_ids(app):
        missing = params - ids.keys() - {"mailbox"}
        if missing:
            unknown.append(f"{method} {route.path}: no id for {sorted(missing)}")
            continue
        if route.body_field is not None and (method, route.path) not in EXAMPLE_BODIES:
            unknown.append(f"{method} {route.path}: add an example body to EXAMPLE_BODIES")
            continue
        url = route.path.format(**{name: ids[name] for name in params})
        # Query parameters that name rows get A's ids too (e.g. a preview "as employee N").
        query = {q.alias: ids[q.alias] for q in route.dependant.query_params if q.alias in ids}
        for q in route.dependant.query_params:
            if q.field_info.is_required() and q.alias not in query:
                query[q.alias] = ids["mailbox"]  # the only required non-id query parameter is a mailbox
        response = client.request(
            method, url, params=query, json=EXAMPLE_BODIES.get((method, route.path)), headers=b_headers
        )
        walked += 1
        if response.status_code != 404:
            leaks.append(f"{method} {url} answered {response.status_code}: {response.text[:120]}")
    assert unknown == [], "routes the walk cannot probe yet:\n" + "\n".join(unknown)
    assert leaks == [], "routes that did not refuse another organisation's ids:\n" + "\n".join(leaks)
    assert walked >= 25


def test_the_same_ids_work_for_their_own_organisation(client, db, two_orgs):
    """The walk above is not vacuous: A's ids are real rows that A's own key can read."""
    ids, _ = two_orgs
    with Session(db) as session:
        org_a = session.get(Employee, ids["employee_id"]).org_id
    from service.auth import create_api_key

    with Session(db) as session:
        _row, key = create_api_key(session, org_id=org_a, name="a admin", role=Role.admin)
        session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    for url in (
        f"/api/employees/{ids['employee_id']}",
        f"/api/templates/{ids['template_id']}",
        f"/api/campaigns/{ids['campaign_id']}",
        f"/api/newsletter/articles/{ids['article_id']}",
        f"/api/newsletter/issues/{ids['issue_id']}",
        f"/api/deployments/{ids['deployment_id']}",
    ):
        assert client.get(url, headers=headers).status_code == 200, url


def test_ids_carried_in_bodies_are_scoped_too(client, two_orgs):
    """Creating B's rows that point at A's rows (a template, a banner, articles) is refused."""
    ids, b_headers = two_orgs
    probes = [
        ("PUT", "/api/assignments", {"kind": "default", "value": "", "template_id": ids["template_id"]}),
        (
            "POST",
            "/api/campaigns",
            {
                "name": "Borrowed banner",
                "destination_url": "https://other.example/",
                "starts_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
                "banner_id": ids["banner_id"],
                "alt": "x",
            },
        ),
        ("POST", "/api/newsletter/issues", {"subject": "Borrowed", "article_ids": [ids["article_id"]]}),
    ]
    for method, url, body in probes:
        response = client.request(method, url, json=body, headers=b_headers)
        assert response.status_code in (404, 422), f"{method} {url}: {response.status_code} {response.text[:200]}"
