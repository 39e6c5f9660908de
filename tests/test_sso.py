"""Single sign-on end to end: a browser-like client walks the real authorization-code + PKCE flow through the
fake Entra ID and the fake Google, and every way it can go wrong ends on a page with a sentence, never a session."""

import logging
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlmodel import Session, select

from service.accounts.models import User, WebSession
from service.accounts.service import create_user
from service.db import utcnow
from service.models import Role
from service.sso.models import SsoAttempt, SsoConfig, SsoIdentity
from tests.page_support import PASSWORD, make_user
from tests.sso_support import (
    BASE,
    OTHER_TENANT_ID,
    TENANT_ID,
    browser,
    configure,
    entra_config,
    google_config,
    provider_http,
    sign_in_via_sso,
    start,
    walk,
)

pytest_plugins = ["tests.sso_fixtures"]  # entra, google, sso_app, org


def _user(db, email: str) -> User | None:
    with Session(db) as s:
        return s.exec(select(User).where(User.email == email)).first()


def _sessions(db) -> int:
    with Session(db) as s:
        return len(s.exec(select(WebSession)).all())


def _callback_url(client, http, email: str, next_: str = "") -> str:
    """Start a sign-in and stop where the provider sends the browser back (code and state in the URL)."""
    url = walk(client, http, start(client, email, next_), stop_at_callback=True)
    assert isinstance(url, str), url
    return url


# ---------------------------------------------------------------- full flows


def test_entra_sign_in_creates_the_user_with_their_groups_role_and_a_session(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        first = start(client, "alice@acme.example", next_="/app/campaigns")
        assert first.status_code == 303
        authorize = urlsplit(first.headers["location"])
        q = parse_qs(authorize.query)
        assert authorize.path == f"/{TENANT_ID}/oauth2/v2.0/authorize"
        assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43
        assert q["nonce"] and q["state"] and q["login_hint"] == ["alice@acme.example"]
        assert q["redirect_uri"] == [BASE + "/sign-in/sso/callback"] and q["scope"] == ["openid email profile"]
        page = walk(client, http, first)
        assert page.status_code == 200 and str(page.url).endswith("/app/campaigns")  # a safe `next` is honoured
        assert "alice@acme.example" in page.text
        assert client.get("/app/dashboard").status_code == 200  # the session works like a password one
    alice = _user(db, "alice@acme.example")
    assert alice is not None and alice.role == Role.comms and alice.password_hash is None
    assert alice.name == "Alice Martin" and alice.org_id == org.org_id
    with Session(db) as s:
        link = s.exec(select(SsoIdentity)).one()
        assert link.user_id == alice.id and link.granted_role == "comms"
        assert link.issuer == f"{entra.fake.authority_host}/{TENANT_ID}/v2.0"
        assert s.exec(select(SsoAttempt)).one().used_at is not None


def test_google_sign_in_keeps_the_role_an_administrator_gave(sso_app, org, google, db):
    make_user(db, org.org_id, Role.it, email="carol@acme.example")
    configure(sso_app, org, google_config(google))
    google.fake.sign_in_as("carol@acme.example")
    with browser(sso_app) as client, provider_http_plain() as http:
        first = start(client, "carol@acme.example")
        q = parse_qs(urlsplit(first.headers["location"]).query)
        assert q["hd"] == ["acme.example"] and q["code_challenge_method"] == ["S256"]
        page = walk(client, http, first)
        assert page.status_code == 200 and str(page.url).endswith("/app/deployments")  # IT's home
    carol = _user(db, "carol@acme.example")
    assert carol is not None and carol.role == Role.it and carol.password_hash is not None  # her password stays


def test_google_unknown_person_gets_the_default_role(sso_app, org, google, db):
    configure(sso_app, org, google_config(google, default_role="comms"))
    google.fake.sign_in_as("carol@acme.example")
    with browser(sso_app) as client, provider_http_plain() as http:
        assert sign_in_via_sso(client, http, "carol@acme.example").status_code == 200
    assert _user(db, "carol@acme.example").role == Role.comms


def provider_http_plain():
    import httpx

    return httpx.Client(trust_env=False, timeout=10)


def test_a_second_sign_in_finds_the_user_by_their_subject_and_re_reads_groups(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        assert sign_in_via_sso(client, http, "alice@acme.example").status_code == 200
    entra.fake.add_group_members(entra.it_group, ["alice@acme.example"])
    with Session(db) as s:  # IT listed first now: the first mapping that matches wins
        row = s.exec(select(SsoConfig)).one()
        row.group_roles = list(reversed(row.group_roles))
        s.add(row)
        s.commit()
    with browser(sso_app) as client, provider_http(entra) as http:
        assert sign_in_via_sso(client, http, "alice@acme.example").status_code == 200
    assert _user(db, "alice@acme.example").role == Role.it
    with Session(db) as s:
        assert len(s.exec(select(SsoIdentity)).all()) == 1


def test_leaving_the_group_takes_the_role_it_gave_away(sso_app, org, entra, db):
    make_user(db, org.org_id, Role.admin, email="admin@acme.example")
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        assert sign_in_via_sso(client, http, "alice@acme.example").status_code == 200
    entra.fake._groups[entra.comms_group]["members"].clear()  # an Entra admin removes her from the group
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "alice@acme.example")
    assert page.status_code == 403 and "no role for you yet" in page.text
    assert "admin@acme.example" in page.text  # whom to ask
    assert _sessions(db) == 1  # the first sign-in's only


def test_a_role_set_by_an_administrator_outlives_group_changes(sso_app, org, entra, db):
    make_user(db, org.org_id, Role.admin, email="admin@acme.example")
    bob_id = make_user(db, org.org_id, Role.comms, email="bob@acme.example")  # in no group
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("bob@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "bob@acme.example")
    assert page.status_code == 200
    with Session(db) as s:
        bob = s.get(User, bob_id)
        assert bob.role == Role.comms
        assert s.exec(select(SsoIdentity)).one().granted_role is None


def _employee(db, org_id: int, email: str, active: bool = True) -> int:
    from service.directory.models import Employee

    with Session(db) as s:
        row = Employee(org_id=org_id, email=email, display_name="Bob Durand", source_id=email, active=active)
        s.add(row)
        s.commit()
        return row.id


def test_a_person_of_the_directory_without_a_staff_role_gets_the_employee_portal(sso_app, org, entra, db):
    employee_id = _employee(db, org.org_id, "bob@acme.example")
    configure(sso_app, org, entra_config(entra))  # bob is in no group; the default is "deny"
    entra.fake.sign_in_as("bob@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "bob@acme.example")
    assert page.status_code == 200 and urlsplit(str(page.url)).path == "/me"
    bob = _user(db, "bob@acme.example")
    assert bob.role == Role.employee and bob.employee_id == employee_id


def test_someone_who_left_the_directory_keeps_no_portal(sso_app, org, entra, db):
    from service.directory.models import Employee

    employee_id = _employee(db, org.org_id, "bob@acme.example")
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("bob@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        assert sign_in_via_sso(client, http, "bob@acme.example").status_code == 200
    with Session(db) as s:
        s.get(Employee, employee_id).active = False
        s.commit()
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "bob@acme.example")
    assert page.status_code == 403 and "no role for you yet" in page.text


def test_the_default_role_comes_before_the_portal(sso_app, org, entra, db):
    _employee(db, org.org_id, "bob@acme.example")
    configure(sso_app, org, entra_config(entra, default_role="comms"))
    entra.fake.sign_in_as("bob@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        assert sign_in_via_sso(client, http, "bob@acme.example").status_code == 200
    assert _user(db, "bob@acme.example").role == Role.comms


def test_the_sign_in_page_offers_the_provider_of_the_typed_domain(sso_app, org, entra):
    configure(sso_app, org, entra_config(entra, allow_passwords=False))
    with browser(sso_app) as client:
        page = client.get("/sign-in")
        assert "Continue with single sign-on" in page.text and 'hx-get="/sign-in/realm"' in page.text
        known = client.get("/sign-in/realm", params={"email": "someone@ACME.example"})
        assert "Continue with Microsoft" in known.text and "signs in with Microsoft" in known.text
        unknown = client.get("/sign-in/realm", params={"email": "someone@elsewhere.example"})
        assert "Continue with single sign-on" in unknown.text
        french = client.get("/sign-in/realm", params={"email": "x@acme.example"}, headers={"accept-language": "fr"})
        assert "Continuer avec Microsoft" in french.text


def test_an_address_without_sso_is_told_to_use_its_password(sso_app, org, entra):
    configure(sso_app, org, entra_config(entra))
    with browser(sso_app) as client:
        r = start(client, "someone@elsewhere.example")
        assert r.status_code == 422 and "No single sign-on is set up for this email address" in r.text
        r = start(client, "not an address")
        assert r.status_code == 422 and "Enter your work email address." in r.text


def test_starting_needs_the_forms_token(sso_app, org, entra):
    configure(sso_app, org, entra_config(entra))
    with browser(sso_app) as client:
        client.get("/sign-in")
        r = client.post("/sign-in/sso", data={"email": "alice@acme.example", "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 400 and "expired" in r.text


def test_passwords_off_leaves_administrators_theirs(sso_app, org, entra, db):
    from tests.page_support import sign_in

    make_user(db, org.org_id, Role.comms, email="bob@acme.example")
    make_user(db, org.org_id, Role.admin, email="admin@acme.example")
    configure(sso_app, org, entra_config(entra, allow_passwords=False))
    with browser(sso_app) as client:
        r = sign_in(client, "bob@acme.example")
        assert r.status_code == 403 and "Continue with single sign-on" in r.text
    with browser(sso_app) as client:
        assert sign_in(client, "admin@acme.example").status_code == 303  # break-glass


# ---------------------------------------------------------------- what the callback refuses


def test_a_tampered_state_is_refused(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        url = _callback_url(client, http, "alice@acme.example")
        q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        q["state"] = q["state"][:-2] + ("AA" if not q["state"].endswith("AA") else "BB")
        r = client.get("/sign-in/sso/callback?" + urlencode(q))
    assert r.status_code == 400 and "did not start in this browser" in r.text
    assert _user(db, "alice@acme.example") is None and _sessions(db) == 0


def test_a_callback_in_another_browser_is_refused(sso_app, org, entra, db):
    """Login CSRF: a victim's browser handed an attacker's callback link has no state cookie for it."""
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as attacker, provider_http(entra) as http:
        url = _callback_url(attacker, http, "alice@acme.example")
    with browser(sso_app) as victim:
        r = victim.get(url)
    assert r.status_code == 400 and _sessions(db) == 0


def test_a_replayed_callback_and_a_replayed_code_are_refused(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        url = _callback_url(client, http, "alice@acme.example")
        assert client.get(url, follow_redirects=False).status_code == 303
        again = client.get(url, follow_redirects=False)  # the same state: its attempt is used up
        assert again.status_code == 400
        old_code = parse_qs(urlsplit(url).query)["code"][0]
    with browser(sso_app) as client, provider_http(entra) as http:
        fresh = _callback_url(client, http, "alice@acme.example")  # a new attempt, sent back with the spent code
        state = parse_qs(urlsplit(fresh).query)["state"][0]
        replay = client.get("/sign-in/sso/callback?" + urlencode({"code": old_code, "state": state}))
    assert replay.status_code == 401 and "did not confirm this sign-in" in replay.text
    assert _sessions(db) == 1  # only the first sign-in
    assert entra.fake.request_count(path_contains="/oauth2/v2.0/token", status=400) == 1


def test_a_wrong_code_verifier_is_refused_by_the_provider(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        url = _callback_url(client, http, "alice@acme.example")
        with Session(db) as s:  # as if the verifier of another sign-in were sent
            attempt = s.exec(select(SsoAttempt)).one()
            attempt.code_verifier = "x" * 64
            s.add(attempt)
            s.commit()
        r = client.get(url)
    assert r.status_code == 401 and _sessions(db) == 0
    assert entra.fake.request_count(path_contains="/token", status=400) == 1


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"nonce": "not-the-one-we-sent"}, "nonce"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200, "nbf": int(time.time()) - 7200}, "exp"),
        ({"iss": f"https://login.microsoftonline.com/{OTHER_TENANT_ID}/v2.0"}, "iss"),
        ({"aud": "00000000-0000-0000-0000-000000000000"}, "aud"),
        ({"iat": int(time.time()) + 3600}, "issued in the future"),
    ],
)
def test_an_id_token_that_fails_a_check_signs_no_one_in(sso_app, org, entra, db, caplog, claims, reason):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    entra.fake.id_token_overrides = claims
    with caplog.at_level(logging.WARNING, logger="service.sso"), browser(sso_app) as c, provider_http(entra) as http:
        page = sign_in_via_sso(c, http, "alice@acme.example")
    assert page.status_code == 401 and "did not pass the checks" in page.text
    assert _user(db, "alice@acme.example") is None and _sessions(db) == 0
    refused = [r for r in caplog.records if r.msg == "service.sso.refused"]
    assert refused and reason in refused[0].reason


def test_a_token_of_another_tenant_is_refused(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    entra.fake.id_token_overrides = {"tid": OTHER_TENANT_ID}
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "alice@acme.example")
    assert page.status_code == 401 and "another organisation's directory" in page.text
    assert _sessions(db) == 0


def test_another_organisations_domain_is_refused(sso_app, org, entra, db):
    """Eve is in Acme's tenant but her address is Beta's: she cannot sign in as Beta's user through Acme."""
    from tests.conftest import make_tenant

    beta = make_tenant(db, slug="beta")
    with Session(db) as s:
        create_user(s, org_id=beta.org_id, email="eve@beta.example", role=Role.admin)
        s.commit()
    configure(sso_app, org, entra_config(entra, default_role="comms"))
    with pytest.raises(AssertionError):  # and Acme cannot claim Beta's domain either
        configure(sso_app, org, entra_config(entra, domains=["acme.example", "beta.example"]))
    entra.fake.sign_in_as("eve@beta.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "alice@acme.example")  # starts on Acme's domain, returns as Eve
    assert page.status_code == 401 and "not in one of your organisation's domains" in page.text
    assert _sessions(db) == 0


def test_google_refuses_other_domains_and_consumer_accounts(sso_app, org, google, db):
    configure(sso_app, org, google_config(google, default_role="comms"))
    for account in ("frank@beta.example", "dan@gmail.com"):
        google.fake.sign_in_as(account)
        with browser(sso_app) as client, provider_http_plain() as http:
            # Relais asks for hd=acme.example: Google's chooser refuses other accounts and says so to the callback
            page = sign_in_via_sso(client, http, "carol@acme.example")
        assert page.status_code == 401 and "did not sign you in" in page.text, account
        assert _sessions(db) == 0
    google.fake.sign_in_as("carol@acme.example")
    google.fake.id_token_overrides = {"hd": "beta.example"}
    with browser(sso_app) as client, provider_http_plain() as http:
        page = sign_in_via_sso(client, http, "carol@acme.example")
    assert page.status_code == 401 and "not one of your organisation's Google Workspace accounts" in page.text


def test_an_unverified_google_address_is_refused(sso_app, org, google, db):
    configure(sso_app, org, google_config(google, default_role="comms"))
    google.fake.sign_in_as("carol@acme.example")
    google.fake.id_token_overrides = {"email_verified": False}
    with browser(sso_app) as client, provider_http_plain() as http:
        page = sign_in_via_sso(client, http, "carol@acme.example")
    assert page.status_code == 401 and "not verified" in page.text and _sessions(db) == 0


def test_an_unmapped_person_is_told_whom_to_ask(sso_app, org, entra, db):
    make_user(db, org.org_id, Role.admin, email="admin@acme.example")
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("bob@acme.example")  # in no group, unknown to Relais, default "deny"
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "bob@acme.example")
    assert page.status_code == 403
    assert "Ask an administrator to add you on the Users page" in page.text and "admin@acme.example" in page.text
    assert _user(db, "bob@acme.example") is None and _sessions(db) == 0


def test_a_disabled_user_is_refused(sso_app, org, entra, db):
    alice_id = make_user(db, org.org_id, Role.comms, email="alice@acme.example")
    with Session(db) as s:
        s.get(User, alice_id).disabled_at = utcnow()
        s.commit()
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "alice@acme.example")
    assert page.status_code == 403 and "Your Relais account is disabled" in page.text and _sessions(db) == 0


def test_the_providers_refusal_is_a_sentence(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    entra.fake.authorize_error = ("access_denied", 50105, "Your administrator has configured the application to "
                                  "block users unless they are specifically granted access.")  # fmt: skip
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "alice@acme.example")
    assert page.status_code == 401 and "assign you to the Relais application" in page.text
    assert "AADSTS" not in page.text  # the provider's own text is not echoed: anyone can put words in a link


def test_an_unreachable_provider_is_a_page_with_a_sentence(db, settings, org, entra):
    from service.app import create_app
    from tests.live_server import free_port

    nobody = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app(settings=settings.model_copy(update={"ms_authority_host": nobody}), engine=db)
    configure(app, org, entra_config(entra))
    with browser(app) as client:
        page = start(client, "alice@acme.example")
    assert page.status_code == 503 and "Microsoft could not be reached." in page.text


@pytest.mark.parametrize("where", ["openid-configuration", "/oauth2/v2.0/token", "/discovery/v2.0/keys"])
def test_a_provider_answering_5xx_is_a_page_with_a_sentence(sso_app, org, entra, db, where):
    from service.sso import oidc

    oidc._cache.clear()  # discovery and keys are cached per URL for an hour; this test wants the calls
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    entra.fake.inject(503, service="authority", path_contains=where, times=None)
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "alice@acme.example")
    assert (
        page.status_code == 503 and "Microsoft" in page.text and "<h1>Single sign-on is unavailable</h1>" in page.text
    )
    assert _sessions(db) == 0


def test_a_wrong_client_secret_says_what_to_fix(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra, client_secret="Wrong8Q~" + "w" * 32))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        page = sign_in_via_sso(client, http, "alice@acme.example")
    assert page.status_code == 401 and "did not accept this site's client secret" in page.text


def test_an_attempt_left_too_long_is_refused(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("alice@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        url = _callback_url(client, http, "alice@acme.example")
        with Session(db) as s:
            attempt = s.exec(select(SsoAttempt)).one()
            attempt.created_at = utcnow().replace(year=2020)
            s.add(attempt)
            s.commit()
        assert client.get(url).status_code == 400
    assert _sessions(db) == 0


def test_the_secret_never_shows_in_responses_or_logs(sso_app, org, entra, db, caplog):
    with caplog.at_level(logging.DEBUG):
        public = configure(sso_app, org, entra_config(entra))
        entra.fake.sign_in_as("alice@acme.example")
        texts = [str(public)]
        with browser(sso_app) as client, provider_http(entra) as http:
            texts.append(sign_in_via_sso(client, http, "alice@acme.example").text)
        make_user(db, org.org_id, Role.admin, email="admin@acme.example")
        from tests.page_support import sign_in

        with browser(sso_app) as admin:
            assert sign_in(admin, "admin@acme.example", PASSWORD).status_code == 303
            texts.append(admin.get("/app/admin/sso").text)
            texts.append(admin.get("/sign-in/realm", params={"email": "a@acme.example"}).text)
        with browser(sso_app) as api:
            texts.append(api.get("/api/sso", headers=org.headers()).text)
    assert public["client_secret_set"] is True and "client_secret" not in public
    everything = "\n".join(texts) + caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert entra.secret not in everything
    with Session(db) as s:
        stored = s.exec(select(SsoConfig)).one().client_secret_encrypted
    assert stored and entra.secret not in stored


def test_french_problem_page(sso_app, org, entra, db):
    configure(sso_app, org, entra_config(entra))
    entra.fake.sign_in_as("bob@acme.example")
    with browser(sso_app) as client, provider_http(entra) as http:
        client.headers["accept-language"] = "fr"
        page = sign_in_via_sso(client, http, "bob@acme.example")
    assert page.status_code == 403 and "Retour à la page de connexion" in page.text
    assert "Relais ne vous a encore donné aucun rôle" in page.text and "Back to the sign-in page" not in page.text
