"""Newsletter end to end: article fetch, per-recipient MIME received by a real SMTP server, links that
resolve to the right employee/article/network, 550 refusals, SMTP down then up, SIGKILL and resume."""

import email
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from sqlmodel import Session, select

from newsletter.articles import FetchFailed, fetch_page, x_length
from newsletter.audience import ensure_preferences
from newsletter.mailer import MemoryMailer, PermanentFailure, SmtpMailer, TransientFailure
from newsletter.models import Delivery, DeliveryState, Issue, IssueStatus, NewsletterPreference
from newsletter.previews import TEST_TOKEN, send_test
from newsletter.sending import send_issue
from service.clicks.optout import opted_out
from service.directory.models import Employee
from service.errors import Invalid
from service.links import Channel, link_key, resolve
from service.models import Role
from tests.newsletter_support import ScriptedSink, Sink, free_port, start_login_sink, start_pages, start_sink

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def page_server():
    server, base = start_pages()
    yield server, base
    server.shutdown()


@pytest.fixture(scope="module")
def pages(page_server):
    return page_server[1]


@pytest.fixture
def nl_settings(settings):
    return settings.model_copy(
        update={
            "fetch_allow_private": True,
            "smtp_port": free_port(),
            "smtp_from": "Comms <comms@acme.example>",
            "newsletter_lease_s": 1.0,
        }
    )


def add_people(engine, org_id: int, n: int, department: str = "Ventes") -> list[int]:
    with Session(engine) as s:
        emps = [
            Employee(
                org_id=org_id,
                email=f"p{i}@acme.example",
                first_name=f"Prénom{i}",
                last_name="Test",
                department=department if i % 2 == 0 else "R&D",
                source_id=f"p{i}",
            )
            for i in range(n)
        ]
        s.add_all(emps)
        s.commit()
        return [e.id for e in emps]


def make_issue(client, tenant, pages, n_articles=2, audience=None) -> int:
    h = tenant.headers(Role.comms)
    ids = []
    for i in range(n_articles):
        r = client.post(
            "/api/newsletter/articles", json={"url": f"{pages}/article/{i}", "hashtags": ["RH", "#emploi"]}, headers=h
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = client.post(
        "/api/newsletter/issues",
        json={
            "subject": "La lettre de mars — été",
            "preheader": "Trois sujets",
            "intro": "Bonjour à tous.\n\nBonne lecture.",
            "audience": audience or {"everyone": True},
            "article_ids": ids,
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


# ---------------------------------------------------------------- articles


def test_fetch_reads_open_graph_and_follows_redirects(pages):
    meta = fetch_page(f"{pages}/redirect/3", allow_private=True)
    assert meta.title == "Employee advocacy : redirected"
    assert meta.description == "Ce que les ambassadeurs changent."
    assert meta.image_url == f"{pages}/img/cover.png" and meta.site_name == "Le Blog RH" and meta.language == "fr"


def test_fetch_connects_to_the_checked_address_and_keeps_the_host_name(page_server):
    server, base = page_server
    port = server.server_address[1]
    meta = fetch_page(f"http://localhost:{port}/redirect/1", allow_private=True)
    assert meta.title == "Employee advocacy : redirected"
    # Both hops went to the address resolved and checked for `localhost`, named as the site expects.
    assert server.hosts[-2:] == [f"localhost:{port}", f"localhost:{port}"]
    assert base.startswith("http://127.0.0.1:")


def test_fetch_refuses_private_addresses_too_many_redirects_big_pages_and_other_schemes(pages):
    with pytest.raises(FetchFailed, match="private or local"):
        fetch_page(f"{pages}/article/1")
    with pytest.raises(FetchFailed, match="redirects"):
        fetch_page(f"{pages}/redirect/6", allow_private=True)
    with pytest.raises(FetchFailed, match="2 MB"):
        fetch_page(f"{pages}/big", allow_private=True)
    with pytest.raises(Invalid):
        fetch_page("file:///etc/passwd", allow_private=True)
    with pytest.raises(FetchFailed):
        fetch_page(f"{pages}/missing", allow_private=True)


def test_articles_api_fetch_edit_and_x_budget(db, tenant, nl_settings, pages):
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        h = tenant.headers(Role.comms)
        a = client.post(
            "/api/newsletter/articles", json={"url": f"{pages}/article/7", "hashtags": ["RH"]}, headers=h
        ).json()
        assert a["title"] == "Employee advocacy : 7" and a["text_x"] and a["x_length"] <= 280
        r = client.patch(f"/api/newsletter/articles/{a['id']}", json={"text_x": "x" * 260}, headers=h)
        assert r.status_code == 422 and "link counts as 23" in r.json()["error"]["message"]
        r = client.patch(
            f"/api/newsletter/articles/{a['id']}", json={"text_x": "Lisez ceci", "title": "Nouveau"}, headers=h
        )
        assert r.json()["title"] == "Nouveau" and r.json()["x_length"] == x_length("Lisez ceci", ["RH"])
        manual = client.post(
            "/api/newsletter/articles",
            json={"url": "https://acme.example/n", "fetch": False, "title": "Saisi à la main"},
            headers=h,
        )
        assert manual.status_code == 201 and manual.json()["fetched_at"] is None
        assert (
            client.post(
                "/api/newsletter/articles", json={"url": f"{pages}/article/1"}, headers=tenant.headers(Role.it)
            ).status_code
            == 403
        )


# ---------------------------------------------------------------- sending through a real SMTP server


def test_send_end_to_end_mime_links_refusal_and_leavers(db, tenant, nl_settings, pages):
    from fastapi.testclient import TestClient

    from service.app import create_app

    people = add_people(db, tenant.org_id, 6)
    sink = Sink(reject={"p3@acme.example"})
    controller = start_sink(nl_settings.smtp_port, sink)
    try:
        with TestClient(create_app(settings=nl_settings, engine=db)) as client:
            issue_id = make_issue(client, tenant, pages)
            h = tenant.headers(Role.comms)
            assert client.post(f"/api/newsletter/issues/{issue_id}/schedule", json={}, headers=h).status_code == 200
            # after scheduling: one person leaves, one joins -> the audience at send time is used
            with Session(db) as s:
                s.get(Employee, people[5]).active = False
                s.add(Employee(org_id=tenant.org_id, email="new@acme.example", first_name="Nouvelle", source_id="new"))
                s.commit()
            rep = send_issue(db, issue_id, SmtpMailer(nl_settings), nl_settings)
            assert (rep.status, rep.total, rep.sent, rep.failed) == ("sent", 6, 5, 1)
            assert "550" in rep.errors[0]["error"] and rep.errors[0]["email"] == "p3@acme.example"
            prog = client.get(f"/api/newsletter/issues/{issue_id}/progress", headers=h).json()
            assert prog["sent"] == 5 and prog["failed"] == 1
            # a second run sends nothing more
            assert send_issue(db, issue_id, SmtpMailer(nl_settings), nl_settings).sent == 5
    finally:
        controller.stop()
    ids = sink.ids()
    assert len(ids) == 5 and set(ids.values()) == {1}
    got = {m["To"].addresses[0].addr_spec: m for m in sink.messages}
    assert set(got) == {"p0@acme.example", "p1@acme.example", "p2@acme.example", "p4@acme.example", "new@acme.example"}
    with Session(db) as s:
        for addr, msg in got.items():
            emp = s.exec(select(Employee).where(Employee.email == addr)).one()
            assert msg["Message-ID"] == f"<issue-{issue_id}.emp-{emp.id}@relais.test>"
            assert str(msg["Subject"]) == "La lettre de mars — été"
            pref = s.exec(select(NewsletterPreference).where(NewsletterPreference.employee_id == emp.id)).one()
            assert msg["List-Unsubscribe"] == f"<https://relais.test/u/{pref.token}>"
            assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert msg.get_content_type() == "multipart/alternative"
            text = msg.get_body(("plain",)).get_content()
            html = msg.get_body(("html",)).get_content()
            assert "Bonjour Prénom" in text or "Bonjour Nouvelle" in text
            assert 'width="600"' in html and "<style" not in html
            hrefs = re.findall(r'href="(https://relais\.test/c/[^"]+)"', html)
            assert hrefs and all(h in text for h in set(hrefs))
            seen = set()
            key = link_key(nl_settings)
            for href in set(hrefs):
                link = resolve(s, href.rsplit("/", 1)[1], key=key, base_url="https://relais.test")
                assert link.employee_id == emp.id
                if link.channel is Channel.share_intent:
                    seen.add(link.network)
                    dest = link.destination
                    if link.network == "email":
                        share_url = re.search(r"(https%3A%2F%2Frelais\.test%2Fs%2F[\w-]+)", dest).group(1)
                        share_url = share_url.replace("%3A", ":").replace("%2F", "/")
                    else:
                        q = parse_qs(urlsplit(dest).query)
                        share_url = (q.get("url") or q.get("u"))[0]
                    if link.network == "x":
                        assert q["hashtags"] == ["RH,emploi"] and dest.startswith("https://twitter.com/intent/tweet")
                    share = resolve(s, share_url.rsplit("/", 1)[1], key=key, base_url="https://relais.test")
                    assert share.channel is Channel.share and share_url.startswith("https://relais.test/s/")
                    assert (share.employee_id, share.article_id, share.network) == (
                        emp.id,
                        link.article_id,
                        link.network,
                    )
                    assert "utm_medium=" in share.destination and "utm_campaign=employee-advocacy" in share.destination
                else:
                    assert link.channel is Channel.newsletter and link.issue_id == issue_id
            assert seen == {"linkedin", "x", "facebook", "email"}
        assert s.get(Issue, issue_id).status is IssueStatus.sent


def test_smtp_down_then_up_waits_and_finishes(db, tenant, nl_settings, pages):
    from fastapi.testclient import TestClient

    from service.app import create_app

    add_people(db, tenant.org_id, 4)
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        issue_id = make_issue(client, tenant, pages, n_articles=1)
    sink = Sink()
    started: list = []

    def on_progress(rep):
        if rep.waiting_for_smtp and not started:  # the server is down and the job waits: bring it up
            started.append(start_sink(nl_settings.smtp_port, sink))

    try:
        rep = send_issue(db, issue_id, SmtpMailer(nl_settings), nl_settings, on_progress=on_progress, backoff_base=0.05)
    finally:
        for c in started:
            c.stop()
    assert started and rep.sent == 4 and len(sink.ids()) == 4 and set(sink.ids().values()) == {1}


def test_test_send_and_preview_and_unsubscribe(db, tenant, nl_settings, pages):
    from fastapi.testclient import TestClient

    from service.app import create_app

    people = add_people(db, tenant.org_id, 2)
    mailer = MemoryMailer()
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        issue_id = make_issue(client, tenant, pages, n_articles=1)
        h = tenant.headers(Role.comms)
        r = client.get(f"/api/newsletter/issues/{issue_id}/preview?employee_id={people[1]}", headers=h)
        assert r.status_code == 200 and "Prénom1" in r.text and "relais.test/c/" in r.text
        send_test(db, issue_id, "boss@acme.example", mailer, nl_settings, employee_id=people[0])
        assert len(mailer.outbox) == 1 and mailer.outbox[0].recipient == "boss@acme.example"
        assert b"Subject: =?utf-8?" in mailer.outbox[0].data
        with Session(db) as s:
            assert s.exec(select(Delivery)).all() == []
            # the test copy carries a test identity: no preferences row was made for the employee
            assert s.exec(select(NewsletterPreference)).all() == []
            token = ensure_preferences(s, org_id=tenant.org_id, employee_ids=[people[0]])[people[0]]
            s.commit()
        copy = mailer.outbox[0].data.decode()
        assert TEST_TOKEN in copy and token not in copy
        assert client.get(f"/u/{TEST_TOKEN}").status_code == 404
        parts = [p.get_payload(decode=True) for p in email.message_from_bytes(mailer.outbox[0].data).walk()]
        body = b"".join(p for p in parts if p).decode()
        link_tokens = set(re.findall(r"relais\.test/c/([A-Za-z0-9_-]+)", body))
        assert link_tokens
        with Session(db) as s:
            for t in link_tokens:  # the issue's own links: none carries the employee
                assert resolve(s, t, key=link_key(nl_settings)).employee_id is None
        page = client.get(f"/u/{token}", headers={"Accept-Language": "fr-FR,fr;q=0.8"})
        assert page.status_code == 200 and "p0@acme.example" in page.text
        english = client.get(f"/u/{token}", headers={"Accept-Language": "en-GB"})  # the employee has no locale
        assert "Stop crediting my clicks to me" in english.text and '<html lang="en">' in english.text
        one_click = client.post(
            f"/u/{token}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
        # The same page lets the employee stop (and resume) having clicks attributed to them.
        assert "Ne plus m'attribuer mes clics" in page.text or "Ne plus m&#39;attribuer" in page.text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        untrack = client.post(
            f"/u/{token}", data={"action": "untrack", "csrf": csrf}, headers={"Accept-Language": "fr"}
        )
        assert untrack.status_code == 200 and "ne vous sont plus attribués" in untrack.text
        with Session(db) as s:
            assert opted_out(s, employee_id=people[0])
            assert (
                s.exec(
                    select(NewsletterPreference.subscribed).where(NewsletterPreference.employee_id == people[0])
                ).one()
                is False
            )  # still unsubscribed
        client.post(f"/u/{token}", data={"action": "track", "csrf": csrf})
        with Session(db) as s:
            assert not opted_out(s, employee_id=people[0])
        assert client.get("/u/" + "x" * 22).status_code == 404
        rep = send_issue(db, issue_id, mailer, nl_settings)
        assert rep.total == 1 and {m.recipient for m in mailer.outbox[1:]} == {"p1@acme.example"}


def test_transient_4xx_is_retried_and_550_recorded(db, tenant, nl_settings, pages):
    from fastapi.testclient import TestClient

    from service.app import create_app

    add_people(db, tenant.org_id, 3)
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        issue_id = make_issue(client, tenant, pages, n_articles=1)

    class GreylistTwice(dict):
        tries = 0

        def get(self, key, default=None):
            if key == "p1@acme.example":
                self.tries += 1
                return 451 if self.tries <= 2 else None
            return super().get(key, default)

    mailer = MemoryMailer(refuse=GreylistTwice({"p2@acme.example": 550}))
    heal = None
    rep = send_issue(db, issue_id, mailer, nl_settings, on_progress=heal, backoff_base=0.01)
    assert rep.sent == 2 and rep.failed == 1 and mailer.refuse.tries == 3
    assert sorted(m.recipient for m in mailer.outbox) == ["p0@acme.example", "p1@acme.example"]


# ---------------------------------------------------------------- each kind of SMTP failure, through a real server


def _issue_for(db, tenant, pages, nl_settings, n: int) -> int:
    from fastapi.testclient import TestClient

    from service.app import create_app

    add_people(db, tenant.org_id, n)
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        return make_issue(client, tenant, pages, n_articles=1)


def _states(db, issue_id: int) -> dict[str, tuple[DeliveryState, str | None]]:
    with Session(db) as s:
        rows = s.exec(select(Delivery).where(Delivery.issue_id == issue_id)).all()
        return {d.email: (d.state, d.last_error) for d in rows}


def test_replies_to_the_end_of_data_550_fails_451_retries_and_silence_is_never_resent(db, tenant, nl_settings, pages):
    issue_id = _issue_for(db, tenant, pages, nl_settings, 4)
    sink = ScriptedSink(
        {
            "p1@acme.example": ["550 5.7.1 message refused"],  # permanent: recorded, not retried
            "p2@acme.example": ["451 4.3.0 try later"],  # transient: retried, then accepted
            "p3@acme.example": ["drop"],  # no answer to the dot: may be delivered, so never sent again
        }
    )
    controller = start_sink(nl_settings.smtp_port, sink)
    try:
        rep = send_issue(db, issue_id, SmtpMailer(nl_settings), nl_settings, backoff_base=0.01)
    finally:
        controller.stop()
    assert sink.dots == {"p0@acme.example": 1, "p1@acme.example": 1, "p2@acme.example": 2, "p3@acme.example": 1}
    assert sorted(m["To"].addresses[0].addr_spec for m in sink.messages) == ["p0@acme.example", "p2@acme.example"]
    states = _states(db, issue_id)
    assert states["p0@acme.example"][0] is DeliveryState.sent and states["p2@acme.example"][0] is DeliveryState.sent
    assert states["p1@acme.example"][0] is DeliveryState.failed and "550" in states["p1@acme.example"][1]
    assert states["p3@acme.example"][0] is DeliveryState.accepting
    assert states["p3@acme.example"][1].startswith("unconfirmed: --- no reply to the end of data")
    assert (rep.status, rep.sent, rep.unconfirmed, rep.failed) == ("sent", 2, 1, 1)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_a_refused_smtp_login_stops_the_send_instead_of_waiting(db, tenant, nl_settings, pages):
    issue_id = _issue_for(db, tenant, pages, nl_settings, 2)
    settings = nl_settings.model_copy(update={"smtp_username": "relais", "smtp_password": SecretStr("wrong")})
    controller = start_login_sink(nl_settings.smtp_port)
    try:
        with pytest.raises(PermanentFailure, match="SMTP authentication failed") as caught:
            send_issue(db, issue_id, SmtpMailer(settings), settings, backoff_base=0.01)
    finally:
        controller.stop()
    assert caught.value.code == 535 and not isinstance(caught.value, TransientFailure)
    assert {state for state, _error in _states(db, issue_id).values()} <= {DeliveryState.pending, DeliveryState.sending}


def test_a_test_send_the_smtp_server_cannot_take_is_a_503_with_a_sentence(db, tenant, nl_settings, pages):
    from fastapi.testclient import TestClient

    from service.app import create_app

    issue_id = _issue_for(db, tenant, pages, nl_settings, 1)
    h = tenant.headers(Role.comms)
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        down = client.post(f"/api/newsletter/issues/{issue_id}/test", json={"address": "boss@acme.example"}, headers=h)
        assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
        assert "could not be sent" in down.json()["error"]["message"], down.json()
        sink = ScriptedSink({"boss@acme.example": ["550 5.1.1 no such mailbox"]})
        controller = start_sink(nl_settings.smtp_port, sink)
        try:
            refused = client.post(
                f"/api/newsletter/issues/{issue_id}/test", json={"address": "boss@acme.example"}, headers=h
            )
            sent = client.post(
                f"/api/newsletter/issues/{issue_id}/test", json={"address": "boss@acme.example"}, headers=h
            )
        finally:
            controller.stop()
    assert refused.status_code == 503 and "550 5.1.1 no such mailbox" in refused.json()["error"]["message"]
    assert sent.status_code == 200 and len(sink.messages) == 1


# ---------------------------------------------------------------- SIGKILL mid-send, then restart


def test_sigkill_mid_send_and_restart_neither_skips_nor_repeats(db, tenant, nl_settings, pages, tmp_path):
    from fastapi.testclient import TestClient

    from service.app import create_app

    n = 40
    add_people(db, tenant.org_id, n)
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        issue_id = make_issue(client, tenant, pages, n_articles=3)
    sink = Sink()
    controller = start_sink(nl_settings.smtp_port, sink)
    env = {**os.environ, "RELAIS_DATABASE_URL": db.url.render_as_string(hide_password=False),
           "RELAIS_DATA_DIR": str(tmp_path / "cli"), "RELAIS_SMTP_PORT": str(nl_settings.smtp_port),
           "RELAIS_SMTP_HOST": "127.0.0.1", "RELAIS_PUBLIC_BASE_URL": "https://relais.test",
           "RELAIS_NEWSLETTER_LEASE_S": "1", "RELAIS_NEWSLETTER_RATE_PER_S": "25", "RELAIS_SEED_DEMO": "false",
           "RELAIS_SECRET_KEY": "test-secret-key"}  # fmt: skip
    cmd = [sys.executable, str(ROOT / "main.py"), "newsletter", "send", str(issue_id)]
    try:
        kills = 0
        for threshold in (8, 20):  # kill twice, at different points
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            while len(sink.ids()) < threshold and proc.poll() is None:
                time.sleep(0.01)
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            with Session(db) as s:
                assert s.get(Issue, issue_id).status is IssueStatus.sending
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        controller.stop()
    ids = sink.ids()
    with Session(db) as s:
        emps = s.exec(select(Employee.id).where(Employee.org_id == tenant.org_id)).all()
        states = s.exec(select(Delivery.state)).all()
    expected = {f"<issue-{issue_id}.emp-{e}@relais.test>" for e in emps}
    assert kills == 2
    assert set(ids) == expected, f"missing: {expected - set(ids)}"
    assert [k for k, v in ids.items() if v > 1] == []
    assert all(st in (DeliveryState.sent, DeliveryState.accepting) for st in states) and len(states) == n


def test_newsletter_cli_help_is_true():
    out = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "newsletter", "send", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert out.returncode == 0 and "--test" in out.stdout


def test_concurrent_sender_waits_for_the_lease(db, tenant, nl_settings, pages):
    from fastapi.testclient import TestClient

    from service.app import create_app

    add_people(db, tenant.org_id, 2)
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        issue_id = make_issue(client, tenant, pages, n_articles=1)
    with Session(db) as s:
        from service.db import utcnow

        issue = s.get(Issue, issue_id)
        issue.runner, issue.heartbeat_at = "someone-else", utcnow()
        s.commit()
    with pytest.raises(Invalid, match="another worker"):
        send_issue(db, issue_id, MemoryMailer(), nl_settings, wait_for_lease=False)
    mailer = MemoryMailer()
    rep = send_issue(db, issue_id, mailer, nl_settings)  # waits until the silent runner's lease expires
    assert rep.sent == 2 and len(mailer.outbox) == 2
    assert threading.active_count() >= 1


def test_audiences_match_any_criterion_then_exclusions_win(db, tenant, nl_settings, pages):
    from fastapi.testclient import TestClient

    from service.app import create_app

    add_people(db, tenant.org_id, 6)  # p0, p2, p4 in Ventes; p1, p3, p5 in R&D
    h = tenant.headers(Role.comms)
    with TestClient(create_app(settings=nl_settings, engine=db)) as client:
        audience = {"departments": ["Ventes"], "emails": ["P5@acme.example"], "exclude_emails": ["p2@acme.example"]}
        issue_id = make_issue(client, tenant, pages, n_articles=1, audience=audience)
        shown = client.get(f"/api/newsletter/issues/{issue_id}", headers=h).json()["audience"]
        assert shown["match"] == "any" and shown["exclude_emails"] == ["p2@acme.example"]
        refused = client.post(
            "/api/newsletter/issues", json={"subject": "Vide", "audience": {"everyone": False}}, headers=h
        )
        assert refused.status_code == 422 and "Choose an audience" in refused.json()["error"]["message"]
    mailer = MemoryMailer()
    assert send_issue(db, issue_id, mailer, nl_settings).sent == 3
    assert sorted(m.recipient for m in mailer.outbox) == ["p0@acme.example", "p4@acme.example", "p5@acme.example"]
    # An issue saved before audiences said how they match reads as "any": Ventes OR the R&D employee p1.
    with Session(db) as s:
        issue = s.get(Issue, issue_id)
        from newsletter.audience import audience_of, audience_query

        issue.audience = {"departments": ["Ventes"], "offices": ["Nowhere"], "emails": ["p1@acme.example"]}
        emails = [e.email for e in s.exec(audience_query(tenant.org_id, audience_of(issue))).all()]
        assert sorted(emails) == ["p0@acme.example", "p1@acme.example", "p2@acme.example", "p4@acme.example"]
