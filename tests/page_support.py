"""Signing in to the pages from tests: a user per role and a TestClient holding their session cookie."""

import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from service.accounts.service import create_user
from service.models import Role

PASSWORD = "correct horse battery staple"


def make_user(engine, org_id: int, role: Role, email: str | None = None, **kw):
    with Session(engine) as s:
        user = create_user(
            s, org_id=org_id, email=email or f"{role.value}@acme.example", role=role, password=PASSWORD, **kw
        )
        s.commit()
        return user.id


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD):
    page = client.get("/sign-in")
    return client.post(
        "/sign-in", data={"email": email, "password": password, "csrf": csrf_of(page.text)}, follow_redirects=False
    )


def browser_client(app, **kw) -> TestClient:
    """A client on https: the test settings serve the app under https, so the session cookie is Secure."""
    return TestClient(app, base_url="https://testserver", **kw)


def signed_in_client(app, email: str, password: str = PASSWORD) -> TestClient:
    client = browser_client(app)
    r = sign_in(client, email, password)
    assert r.status_code == 303, r.text
    return client
