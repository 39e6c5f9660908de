"""Employees sign in to their space by an emailed link (through a real SMTP sink) or the newsletter's signed
"Open my space" link: single use, expiry, throttling, no enumeration, deactivated people refused, and scanners
that open links without signing anyone in."""

import re
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from service.accounts import open_links
from service.accounts.models import SignInLink, User, WebSession
from service.accounts.service import user_by_email
from service.accounts.sessions import COOKIE
from service.app import create_app
from service.db import utcnow
from service.directory.models import Employee
from service.models import Role
from tests.newsletter_support import Sink, free_port, start_sink
from tests.page_support import PASSWORD, browser_client, csrf_of, make_user, signed_in_client


def _employee(db, org_id, email, *, locale=None, active=True, name="Ana Lima") -> int:
    with Session(db) as s:
        row = Employee(org_id=org_id, email=email, display_name=name, first_name=name.split()[0], source_id=email,
                       locale=locale, active=active)  # fmt: skip
        s.add(row)
        s.commit()
        return row.id


@pytest.fixture
def mail(db, settings):
    """The app with its SMTP settings pointed at a real aiosmtpd sink on loopback."""
    port = free_port()
    sink = Sink()
    controller = start_sink(port, sink)
    try:
        yield create_app(settings=settings.model_copy(update={"smtp_port": port}), engine=db), sink
    finally:
        controller.stop()


def _ask(client, email, next_path=""):
    page = client.get("/sign-in")
    return client.post("/sign-in/link", data={"link_email": email, "next": next_path, "csrf": csrf_of(page.text)})


def _link_in(message) -> str:
    body = message.get_body(("plain",)).get_content()
    return re.search(r"https://relais\.test(/sign-in/link/\S+)", body).group(1)


def _press(client, path):
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf": csrf_of(page.text)}, follow_redirects=False)


def _sessions(db) -> int:
    with Session(db) as s:
        return len(s.exec(select(WebSession)).all())


def test_an_emailed_link_signs_an_employee_in_once_and_creates_their_account(db, tenant, mail):
    app, sink = mail
    employee_id = _employee(db, tenant.org_id, "Ana@acme.example", locale="fr-FR")
    client = browser_client(app)
    r = _ask(client, "ana@ACME.example", next_path="/me/data")
    assert r.status_code == 200 and "we sent it a sign-in link" in r.text
    assert len(sink.messages) == 1 and sink.messages[0]["To"] == "Ana@acme.example"
    assert "Votre lien de connexion" in sink.messages[0]["Subject"]  # the employee's locale: French
    path = _link_in(sink.messages[0])
    with Session(db) as s:  # only the hash is stored
        assert path.rsplit("/", 1)[1] not in {row.id for row in s.exec(select(SignInLink)).all()}
        assert user_by_email(s, "ana@acme.example") is None  # nothing created until the link is used
    done = _press(client, path)
    assert done.status_code == 303 and done.headers["location"] == "/me/data"
    assert client.get("/me").status_code == 200
    with Session(db) as s:
        user = user_by_email(s, "ana@acme.example")
        assert user.role is Role.employee and user.employee_id == employee_id and user.password_hash is None
    # single use: the same link again shows no button, and posting it anyway signs no one in
    other = browser_client(app)
    again = other.get(path)
    assert again.status_code == 404 and "no longer works" in again.text
    form = other.get("/sign-in")  # a valid form token for this browser
    replay = other.post(path, data={"csrf": csrf_of(form.text)}, follow_redirects=False)
    assert replay.status_code == 404 and COOKIE not in other.cookies and _sessions(db) == 1


def test_a_scanner_opening_the_link_does_not_use_it(db, tenant, mail):
    app, sink = mail
    _employee(db, tenant.org_id, "bo@acme.example")
    client = browser_client(app)
    _ask(client, "bo@acme.example")
    path = _link_in(sink.messages[0])
    scanner = browser_client(app)
    for _ in range(3):  # a mail gateway, a link preview, a second gateway: GETs only
        assert scanner.get(path, headers={"user-agent": "Mozilla/5.0 (scanner)"}).status_code == 200
    assert _sessions(db) == 0 and COOKIE not in scanner.cookies
    assert _press(client, path).status_code == 303
    assert _sessions(db) == 1


def test_an_expired_link_and_an_unknown_one(db, tenant, mail):
    app, sink = mail
    _employee(db, tenant.org_id, "cy@acme.example")
    client = browser_client(app)
    _ask(client, "cy@acme.example")
    path = _link_in(sink.messages[0])
    with Session(db) as s:
        row = s.exec(select(SignInLink)).one()
        assert timedelta(minutes=14) < row.expires_at - row.created_at <= timedelta(minutes=15)
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
        s.commit()
    assert client.get(path).status_code == 404
    page = client.get("/sign-in")
    assert client.post(path, data={"csrf": csrf_of(page.text)}).status_code == 404
    assert client.get("/sign-in/link/made-up").status_code == 404
    assert _sessions(db) == 0


def test_the_answer_is_the_same_for_unknown_deactivated_and_real_addresses(db, tenant, mail):
    app, sink = mail
    _employee(db, tenant.org_id, "real@acme.example")
    _employee(db, tenant.org_id, "gone@acme.example", active=False)
    answers = {}
    for email in ("real@acme.example", "nobody@acme.example", "gone@acme.example"):
        r = _ask(browser_client(app), email)
        answers[email] = (r.status_code, r.text.replace(email, "EMAIL"))
    real = answers["real@acme.example"]
    assert real[0] == 200
    # the same page, word for word (the form token aside)
    strip = lambda t: re.sub(r'value="[^"]{20,}"', "", t)  # noqa: E731
    assert {strip(text) for _status, text in answers.values()} == {strip(real[1])}
    assert [m["To"] for m in sink.messages] == ["real@acme.example"]  # the others get no mail


def test_a_deactivated_employee_cannot_use_a_link_sent_before_they_left(db, tenant, mail):
    app, sink = mail
    employee_id = _employee(db, tenant.org_id, "dee@acme.example")
    client = browser_client(app)
    _ask(client, "dee@acme.example")
    path = _link_in(sink.messages[0])
    with Session(db) as s:
        emp = s.get(Employee, employee_id)
        emp.active = False
        s.add(emp)
        s.commit()
    r = _press(client, path)
    assert r.status_code == 403 and "cannot sign in" in r.text and _sessions(db) == 0


def test_a_disabled_account_gets_no_link(db, tenant, mail):
    app, sink = mail
    _employee(db, tenant.org_id, "eve@acme.example")
    make_user(db, tenant.org_id, Role.employee, email="eve@acme.example")
    with Session(db) as s:
        user = user_by_email(s, "eve@acme.example")
        user.disabled_at = utcnow()
        s.add(user)
        s.commit()
    assert _ask(browser_client(app), "eve@acme.example").status_code == 200
    assert sink.messages == []


def test_link_requests_are_throttled_per_address_and_per_client(db, tenant, mail):
    app, sink = mail
    _employee(db, tenant.org_id, "flo@acme.example")
    client = browser_client(app)
    for _ in range(3):
        assert _ask(client, "flo@acme.example").status_code == 200
    refused = _ask(client, "flo@acme.example")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "900"
    assert "Too many sign-in links were asked for. Wait 15 minutes" in refused.text
    assert len(sink.messages) == 3
    # the same client asking for other addresses: 20 requests in the window, then refused too
    for i in range(17):
        assert _ask(client, f"x{i}@acme.example").status_code == 200
    assert _ask(client, "other@acme.example").status_code == 429


def test_an_existing_account_is_linked_and_staff_land_where_asked(db, tenant, mail):
    app, sink = mail
    employee_id = _employee(db, tenant.org_id, "comms@acme.example")
    with Session(db) as s:  # a staff account made before the directory had this person
        s.add(User(org_id=tenant.org_id, email="comms@acme.example", role=Role.comms))
        s.commit()
    client = browser_client(app)
    _ask(client, "comms@acme.example", next_path="//evil.example/")  # not a same-site path: dropped
    r = _press(client, _link_in(sink.messages[0]))
    assert r.status_code == 303 and r.headers["location"] == "/me"
    with Session(db) as s:
        user = user_by_email(s, "comms@acme.example")
        assert user.employee_id == employee_id and user.role is Role.comms  # linked, role kept


def test_smtp_down_gives_the_same_answer(db, tenant, settings):
    app = create_app(settings=settings.model_copy(update={"smtp_port": free_port()}), engine=db)  # nothing listens
    _employee(db, tenant.org_id, "gus@acme.example")
    r = _ask(browser_client(app), "gus@acme.example")
    assert r.status_code == 200 and "we sent it a sign-in link" in r.text


def test_the_form_needs_its_token_and_an_address(db, tenant, mail):
    app, sink = mail
    client = browser_client(app)
    client.get("/sign-in")
    assert client.post("/sign-in/link", data={"link_email": "a@acme.example", "csrf": "forged"}).status_code == 400
    page = client.get("/sign-in")
    empty = client.post("/sign-in/link", data={"link_email": "", "csrf": csrf_of(page.text)})
    assert empty.status_code == 422 and "Enter your work email address." in empty.text
    assert sink.messages == []


# ---------------------------------------------------------------- the newsletter's "Open my space"


def _open_path(settings, employee_id, expires=None) -> str:
    key = open_links.open_key(settings)
    return open_links.PATH + open_links.open_token(employee_id, expires or open_links.expiry_from(), key)


def test_open_my_space_signs_in_by_a_button_and_expires(app, db, tenant, settings):
    employee_id = _employee(db, tenant.org_id, "hal@acme.example")
    path = _open_path(settings, employee_id)
    scanner = browser_client(app)
    assert scanner.get(path).status_code == 200 and _sessions(db) == 0  # a GET signs no one in
    client = browser_client(app)
    r = _press(client, path)
    assert r.status_code == 303 and r.headers["location"] == "/me"
    assert client.get("/me").status_code == 200
    # reusable within its lifetime (it is in an email the employee may open twice); signed in: straight to /me
    assert client.get(path, follow_redirects=False).headers["location"] == "/me"
    expired = _open_path(settings, employee_id, expires=int((utcnow() - timedelta(minutes=1)).timestamp()))
    assert browser_client(app).get(expired).status_code == 404
    lifetime = open_links.expiry_from() - utcnow().timestamp()
    assert 47 * 3600 < lifetime <= 48 * 3600


def test_open_my_space_refuses_a_tampered_token_and_a_deactivated_employee(app, db, tenant, settings):
    ana = _employee(db, tenant.org_id, "ana@acme.example")
    bob = _employee(db, tenant.org_id, "bob@acme.example", name="Bob Stone")
    token = _open_path(settings, ana).rsplit("/", 1)[1]
    forged = open_links.open_token(bob, open_links.expiry_from(), b"another key" * 3)
    for bad in (forged, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x" * 300, "test-copy"):
        assert browser_client(app).get(open_links.PATH + bad).status_code == 404, bad
    client = browser_client(app)
    page = client.get(open_links.PATH + token)
    with Session(db) as s:
        emp = s.get(Employee, ana)
        emp.active = False
        s.add(emp)
        s.commit()
    r = client.post(open_links.PATH + token, data={"csrf": csrf_of(page.text)})
    assert r.status_code == 404 and _sessions(db) == 0
    assert browser_client(app).get(open_links.PATH + token).status_code == 404


def test_open_my_space_never_opens_a_staff_account(app, db, tenant, settings):
    employee_id = _employee(db, tenant.org_id, "admin@acme.example")
    make_user(db, tenant.org_id, Role.admin)  # an administrator who is also in the directory
    path = _open_path(settings, employee_id)
    client = browser_client(app)
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/me"
    form = client.get("/sign-in")
    posted = client.post(path, data={"csrf": csrf_of(form.text)}, follow_redirects=False)
    assert posted.headers["location"] == "/sign-in?next=/me" and _sessions(db) == 0


def test_the_newsletter_carries_each_recipients_own_open_link(app, db, tenant, settings):
    import email
    import email.policy

    from newsletter.composition import Recipient, build_outgoing, load_context
    from newsletter.models import Issue

    ana = _employee(db, tenant.org_id, "ana@acme.example")
    with Session(db) as s:
        issue = Issue(org_id=tenant.org_id, subject="Hello", language="en")
        s.add(issue)
        s.commit()
        ctx = load_context(s, org_id=tenant.org_id, issue_id=issue.id, settings=settings)

    def sent(test: bool):
        rc = Recipient(ana, "ana@acme.example", "Ana", "Ana Lima", "t" * 22)
        msg = email.message_from_bytes(build_outgoing(ctx, rc, [], test=test).data, policy=email.policy.default)
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        return re.search(r"Open my space: (\S+)", text).group(1), html

    url, html = sent(test=False)
    assert url.startswith("https://relais.test/sign-in/open/") and f'href="{url}"' in html
    assert open_links.parse_open_token(url.rsplit("/", 1)[1], open_links.open_key(settings)) == ana
    assert browser_client(app).get(url.removeprefix("https://relais.test")).status_code == 200
    # a test copy goes to someone else: its link signs no one in
    test_url, _html = sent(test=True)
    assert browser_client(app).get(test_url.removeprefix("https://relais.test")).status_code == 404


def test_employees_can_sign_out(app, db, tenant):
    _employee(db, tenant.org_id, "ivy@acme.example")
    make_user(db, tenant.org_id, Role.employee, email="ivy@acme.example")
    client = signed_in_client(app, "ivy@acme.example", PASSWORD)
    page = client.get("/me")
    r = client.post("/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and client.get("/me", follow_redirects=False).status_code == 303


def test_guessing_sign_in_link_tokens_is_rate_limited():
    """Wrong tokens on both link routes fill the client's public-token bucket (service.rate_limits)."""
    import asyncio

    from service.rate_limits import PUBLIC_TOKENS, RateLimits

    async def not_found(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limits = RateLimits(not_found, clock=lambda: 0.0)  # a stopped clock: nothing drains during the test

    async def get(path: str) -> int:
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "path": path, "method": "GET", "headers": [], "client": ("192.0.2.44", 1)}
        await limits(scope, receive, send)
        return sent[0]["status"]

    async def walk() -> list[int]:
        paths = [
            f"/sign-in/link/guess{i}" if i % 2 else f"/sign-in/open/guess{i}"
            for i in range(int(PUBLIC_TOKENS.burst) + 1)
        ]
        return [await get(p) for p in paths]

    statuses = asyncio.run(walk())
    assert statuses[:-1] == [404] * int(PUBLIC_TOKENS.burst) and statuses[-1] == 429
