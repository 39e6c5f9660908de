"""Page sign-in: local accounts, server-side sessions, CSRF, throttling, timeouts, roles, password reset by a
real SMTP sink, demo logins and the `relais users` commands."""

import os
import re
import stat
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from service.accounts.models import PasswordReset, User, WebSession
from service.accounts.passwords import verify_password
from service.accounts.sessions import COOKIE, SIGN_IN
from service.app import create_app
from service.db import utcnow
from service.models import STAFF_ROLES, Role
from tests.newsletter_support import Sink, free_port, start_sink
from tests.page_support import PASSWORD, browser_client, csrf_of, make_user, sign_in, signed_in_client


@pytest.fixture
def users(db, tenant):
    return {role: make_user(db, tenant.org_id, role) for role in STAFF_ROLES}


def test_a_signed_out_visitor_is_sent_to_the_sign_in_page(client):
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/sign-in"
    page = client.get("/app/dashboard?x=1", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/sign-in?next=/app/dashboard%3Fx%3D1"
    htmx = client.get("/app/dashboard", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.headers["hx-redirect"].startswith("/sign-in")
    signin = client.get("/sign-in")
    assert signin.status_code == 200 and 'type="password"' in signin.text
    csp = signin.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


def test_sign_in_sets_a_strict_cookie_and_sign_out_revokes_the_session(app, db, users):
    client = browser_client(app)
    r = sign_in(client, "comms@acme.example")
    assert r.status_code == 303 and r.headers["location"] == "/app/dashboard"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" in cookie  # the app is served under https (public_base_url)
    token = client.cookies.get(COOKIE)
    with Session(db) as s:
        assert token not in {w.id for w in s.exec(select(WebSession)).all()}  # only a hash is stored
    page = client.get("/app/dashboard")
    assert page.status_code == 200 and "comms@acme.example" in page.text
    out = client.post("/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    replay = browser_client(app, cookies={COOKIE: token})
    assert replay.get("/app/dashboard", follow_redirects=False).status_code == 303


def test_wrong_passwords_are_refused_then_throttled(app, users):
    client = browser_client(app)
    r = sign_in(client, "comms@acme.example", "not the password at all")
    assert r.status_code == 401 and "do not match" in r.text and COOKIE not in r.headers.get("set-cookie", "")
    unknown = sign_in(client, "nobody@acme.example", "whatever it is here")
    assert unknown.status_code == 401 and "do not match" in unknown.text  # same answer: no account enumeration
    for _ in range(SIGN_IN.per_email - 1):
        sign_in(client, "comms@acme.example", "still the wrong one")
    blocked = sign_in(client, "comms@acme.example")  # even the right password waits now
    assert blocked.status_code == 429 and "Wait 15 minutes" in blocked.text
    assert sign_in(browser_client(app), "it@acme.example").status_code == 303  # another account is not blocked


def test_sign_in_form_needs_its_token_and_next_stays_on_this_site(app, users):
    client = browser_client(app)
    client.get("/sign-in")
    forged = client.post("/sign-in", data={"email": "comms@acme.example", "password": PASSWORD, "csrf": "x"})
    assert forged.status_code == 400 and "expired" in forged.text
    for target in ("//evil.example/x", "/\\evil.example", "https://evil.example/"):
        page = client.get("/sign-in")
        r = client.post(
            "/sign-in",
            data={"email": "comms@acme.example", "password": PASSWORD, "csrf": csrf_of(page.text), "next": target},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/app/dashboard", target
        client.cookies.clear()
    page = client.get("/sign-in")
    r = client.post(
        "/sign-in",
        data={
            "email": "comms@acme.example",
            "password": PASSWORD,
            "csrf": csrf_of(page.text),
            "next": "/app/campaigns",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/app/campaigns"


def test_every_form_and_htmx_request_needs_the_session_token(app, users):
    client = signed_in_client(app, "admin@acme.example")
    token = csrf_of(client.get("/app/account").text)
    assert client.post("/app/account", data={"language": "fr"}).status_code == 403
    assert client.post("/app/account", data={"language": "fr", "csrf": "wrong"}).status_code == 403
    ok = client.post("/app/account", data={"language": "fr", "csrf": token}, follow_redirects=False)
    assert ok.status_code == 303
    assert client.post("/app/campaigns-live", data={"everyone": "on"}).status_code == 403
    live = client.post("/app/campaigns-live", data={"everyone": "on"}, headers={"X-CSRF-Token": token})
    assert live.status_code == 200


def test_idle_and_absolute_timeouts_end_a_session(app, db, users, settings):
    client = signed_in_client(app, "it@acme.example")
    assert client.get("/app/deployments").status_code == 200
    with Session(db) as s:
        web = s.exec(select(WebSession)).one()
        web.last_seen_at = utcnow() - timedelta(minutes=settings.session_idle_minutes + 1)
        s.add(web)
        s.commit()
    assert client.get("/app/deployments", follow_redirects=False).status_code == 303
    client = signed_in_client(app, "it@acme.example")
    with Session(db) as s:
        web = s.exec(select(WebSession).order_by(WebSession.created_at.desc())).first()
        web.created_at = utcnow() - timedelta(hours=settings.session_absolute_hours, minutes=1)
        s.add(web)
        s.commit()  # active a second ago, but signed in too long ago
    assert client.get("/app/deployments", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("email", "allowed", "refused"),
    [
        (
            "comms@acme.example",
            ["/app/dashboard", "/app/campaigns", "/app/newsletter", "/app/analytics"],
            ["/app/deployments", "/app/directory", "/app/templates", "/app/connections", "/app/admin/users"],
        ),
        (
            "it@acme.example",
            ["/app/deployments", "/app/directory", "/app/templates", "/app/connections"],
            ["/app/dashboard", "/app/campaigns", "/app/newsletter", "/app/analytics", "/app/admin/keys"],
        ),
    ],
)
def test_each_role_sees_its_pages_only(app, users, email, allowed, refused):
    client = signed_in_client(app, email)
    for path in allowed:
        assert client.get(path).status_code == 200, path
    for path in refused:
        r = client.get(path)
        assert r.status_code == 403 and "Not for your role" in r.text, path


def test_api_keys_keep_working_and_a_page_session_is_not_an_api_key(app, tenant, users):
    client = signed_in_client(app, "admin@acme.example")
    assert client.get("/api/organisation").status_code == 401
    assert client.get("/api/organisation", headers=tenant.headers(Role.admin)).status_code == 200


def _reset_link(message) -> str:
    body = message.get_body(("plain",)).get_content()
    return re.search(r"https://relais\.test(/password/reset/\S+)", body).group(1)


def test_password_reset_by_an_emailed_single_use_link(db, settings, users):
    port = free_port()
    sink = Sink()
    controller = start_sink(port, sink)
    try:
        app = create_app(settings=settings.model_copy(update={"smtp_port": port}), engine=db)
        client = signed_in_client(app, "comms@acme.example")  # a session that the reset must end
        anon = browser_client(app)
        page = anon.get("/password/forgot")
        r = anon.post("/password/forgot", data={"email": "COMMS@acme.example", "csrf": csrf_of(page.text)})
        assert r.status_code == 200 and "we sent it a link" in r.text
        assert len(sink.messages) == 1 and sink.messages[0]["To"] == "comms@acme.example"
        link = _reset_link(sink.messages[0])
        with Session(db) as s:
            assert link.rsplit("/", 1)[1] not in {p.id for p in s.exec(select(PasswordReset)).all()}
        form = anon.get(link)
        assert form.status_code == 200
        short = anon.post(link, data={"password": "short", "password_again": "short", "csrf": csrf_of(form.text)})
        assert short.status_code == 422 and "at least 12" in short.text
        new = "a brand new passphrase"
        done = anon.post(
            link, data={"password": new, "password_again": new, "csrf": csrf_of(form.text)}, follow_redirects=False
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/sign-in")
        assert anon.get(link).status_code == 404  # single use
        assert client.get("/app/dashboard", follow_redirects=False).status_code == 303  # sessions ended
        assert sign_in(browser_client(app), "comms@acme.example").status_code == 401
        assert sign_in(browser_client(app), "comms@acme.example", new).status_code == 303
        page = anon.get("/password/forgot")
        anon.post("/password/forgot", data={"email": "stranger@acme.example", "csrf": csrf_of(page.text)})
        assert len(sink.messages) == 1  # nobody to write to: nothing sent, the same page shown
    finally:
        controller.stop()


def test_an_expired_reset_link_and_a_mail_server_that_is_down(db, settings, users):
    app = create_app(settings=settings.model_copy(update={"smtp_port": free_port()}), engine=db)  # nothing listens
    anon = browser_client(app)
    page = anon.get("/password/forgot")
    r = anon.post("/password/forgot", data={"email": "it@acme.example", "csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "we sent it a link" in r.text  # no 500, and no hint whether the account exists
    with Session(db) as s:
        row = s.exec(select(PasswordReset)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
        s.commit()
    assert anon.get("/password/reset/not-a-token").status_code == 404


def test_the_demo_seeds_one_login_per_role_in_an_owner_only_file(db, settings):
    from service.accounts.demo import DEMO_LOGINS_FILE
    from service.demo import seed_demo

    with Session(db) as s:
        seed_demo(s, settings)
        s.commit()
    path = settings.data_dir / DEMO_LOGINS_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = [line.split() for line in path.read_text().splitlines()]
    assert sorted(role for role, _e, _p in lines) == ["admin", "comms", "employee", "it"]
    app = create_app(settings=settings, engine=db)
    for role, email_, password in lines:
        r = sign_in(browser_client(app), email_, password)
        assert r.status_code == 303, role
        if role == "employee":  # a directory employee: their space
            assert r.headers["location"] == "/me"


def test_relais_users_create_and_set_password(db, settings, tenant, monkeypatch):
    import main
    from service.settings import get_settings

    monkeypatch.setenv("RELAIS_DATABASE_URL", db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RELAIS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RELAIS_NEW_PASSWORD", "the first passphrase")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        created = runner.invoke(main.cli, ["users", "create", "Ops@Acme.example", "--role", "it"])
        assert created.exit_code == 0, created.output
        twice = runner.invoke(main.cli, ["users", "create", "ops@acme.example", "--role", "it"])
        assert twice.exit_code == 1 and "already exists" in twice.output
        bad_role = runner.invoke(main.cli, ["users", "create", "x@acme.example", "--role", "boss"])
        assert bad_role.exit_code != 0
        monkeypatch.setenv("RELAIS_NEW_PASSWORD", "short")
        weak = runner.invoke(main.cli, ["users", "set-password", "ops@acme.example"])
        assert weak.exit_code == 1 and "12 characters" in weak.output
        monkeypatch.setenv("RELAIS_NEW_PASSWORD", "the second passphrase")
        changed = runner.invoke(main.cli, ["users", "set-password", "ops@acme.example"])
        assert changed.exit_code == 0, changed.output
        missing = runner.invoke(main.cli, ["users", "set-password", "ghost@acme.example"])
        assert missing.exit_code == 1
    finally:
        get_settings.cache_clear()
    with Session(db) as s:
        user = s.exec(select(User).where(User.email == "ops@acme.example")).one()
        assert user.role is Role.it and verify_password(user.password_hash, "the second passphrase")
        assert user.password_hash.startswith("$argon2id$")
