"""Every route but the public ones refuses a missing key (401) and a key of the wrong role (403)."""

import re

import pytest
from fastapi.routing import APIRoute

from service.auth import RoleGuard
from service.models import STAFF_ROLES, Role
from tests.routes_support import PUBLIC_PAGES, api_routes, is_page

# Routes anyone may call: health, docs, the public redirect/share/asset routes, and the ambassador of the month's
# public page and widget (only for an employee who agreed: tests/test_advocacy_recognition.py), and the demo's own
# feed, served only when the demo is seeded (tests/test_advocacy_feeds.py).
PUBLIC = re.compile(
    r"^/(health|docs.*|redoc|openapi\.json|assets/.*|c/.*|s/.*|i/.*|addin/.*|u/.*"
    r"|ambassador/.*|demo/.*|\.well-known/microsoft-officeaddins-allowed\.json)$"
)


def _guards(route: APIRoute) -> list[RoleGuard]:
    found, stack = [], [route.dependant]
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, RoleGuard):
            found.append(dep.call)
        stack.extend(dep.dependencies)
    return found


def _page_guards(route: APIRoute) -> list:
    from service.accounts.guard import PageGuard

    found, stack = [], [route.dependant]
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, PageGuard):
            found.append(dep.call)
        stack.extend(dep.dependencies)
    return found


def test_every_page_declares_roles_and_sends_strangers_to_sign_in(app, client):
    pages = [r for r in api_routes(app.routes) if is_page(r) and not PUBLIC_PAGES.match(r.path)]
    assert len(pages) >= 40
    missing = [r.path for r in pages if not _page_guards(r)]
    assert missing == [], f"pages without a PageGuard: {missing}"
    for route in pages:
        for method in sorted(route.methods - {"HEAD"}):
            r = client.request(method, _url(route.path), follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/sign-in"), (method, route.path)


def _protected_routes(app):
    for route in api_routes(app.routes):
        if not PUBLIC.match(route.path) and not is_page(route):
            for method in sorted(route.methods - {"HEAD"}):
                yield route, method


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_non_public_route_declares_roles(app):
    routes = list(_protected_routes(app))
    assert len(routes) >= 15
    missing = [f"{m} {r.path}" for r, m in routes if not _guards(r)]
    assert missing == [], f"routes without a RoleGuard: {missing}"


def test_unauthenticated_requests_are_refused(app, client, tenant):
    for route, method in _protected_routes(app):
        response = client.request(method, _url(route.path))
        assert response.status_code == 401, f"{method} {route.path} answered {response.status_code}"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "API key" in response.json()["error"]["message"]


def test_bad_and_revoked_keys_are_refused(client, tenant):
    for key in ("nonsense", "rls_deadbeef_nope", tenant.keys[Role.it] + "x"):
        r = client.get("/api/employees", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401, key
    me = client.get("/api/keys", headers=tenant.headers()).json()
    it_key = next(k for k in me if k["role"] == "it")
    assert client.delete(f"/api/keys/{it_key['id']}", headers=tenant.headers()).status_code == 200
    assert client.get("/api/employees", headers=tenant.headers(Role.it)).status_code == 401


def test_wrong_roles_are_refused(app, client, tenant):
    checked = 0
    for route, method in _protected_routes(app):
        allowed = frozenset.intersection(*(g.roles for g in _guards(route)))
        assert Role.admin in allowed
        for role in STAFF_ROLES - allowed:  # no key carries the employee role
            response = client.request(method, _url(route.path), headers=tenant.headers(role))
            assert response.status_code == 403, f"{role} on {method} {route.path}: {response.status_code}"
            assert role.value in response.json()["error"]["message"]
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_a_valid_key_is_accepted_in_either_header(client, tenant, header):
    value = tenant.keys[Role.admin]
    headers = {header: f"Bearer {value}" if header == "Authorization" else value}
    assert client.get("/api/organisation", headers=headers).status_code == 200


def test_keys_are_stored_hashed_and_shown_once(client, tenant, db):
    from sqlmodel import Session, select

    from service.models import ApiKey

    created = client.post("/api/keys", json={"name": "ci", "role": "comms"}, headers=tenant.headers()).json()
    assert created["key"].startswith("rls_")
    listed = client.get("/api/keys", headers=tenant.headers()).json()
    assert all("key" not in k and "key_hash" not in k for k in listed)
    with Session(db) as s:
        row = s.exec(select(ApiKey).where(ApiKey.id == created["id"])).one()
        assert created["key"] not in row.key_hash and len(row.key_hash) == 64
    assert client.get("/api/brand", headers={"Authorization": f"Bearer {created['key']}"}).status_code == 200


def test_keys_never_cross_organisations(client, tenant, db):
    from tests.conftest import make_tenant

    other = make_tenant(db, slug="other")
    r = client.get(f"/api/templates/{1}", headers=other.headers())
    assert r.status_code == 404
    mine = client.get("/api/keys", headers=tenant.headers()).json()
    assert client.delete(f"/api/keys/{mine[0]['id']}", headers=other.headers()).status_code == 404
