"""The social-media charter: comms write a sanitized Markdown draft with a live preview, employees comment on
its passages in threads that comms answer and resolve, publishing a major version closes the share gate until
each employee accepts it (a minor one only informs), newsletter share buttons lead to a one-time acceptance page
first, acceptances export as CSV and their rate shows per department above the minimum group size."""

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlmodel import Session, select

from advocacy.charter.gate import sharing_unlocked
from advocacy.charter.markdown import passages
from advocacy.charter.models import CharterAcceptance, Surface
from newsletter.composition import issue_specs, load_context
from newsletter.models import Article, Issue, IssueArticle
from service.directory.models import Employee
from service.links import Channel, employee_url, link_key, resolve
from service.models import Role
from tests.conftest import make_tenant
from tests.page_support import browser_client, csrf_of, make_user, signed_in_client

BODY = """# Notre charte

Parlez de votre travail librement <script>alert('x')</script> et [lisez le guide](https://acme.example/guide).

Un lien piégé : [cliquez](javascript:alert(1)) et <a href="javascript:alert(2)">un autre</a>.

## Ce que nous demandons

- restez courtois
- pas de chiffres non publiés
"""


# a real tag, not escaped text; the layout's own scripts come from /static
UNSAFE = re.compile(r"<script(?![^>]*src=\"/static/)|<a\s[^>]*href=\"javascript", re.I)


def _employee(db, org_id, email, name, department="Ventes", **kw) -> int:
    with Session(db) as s:
        e = Employee(org_id=org_id, email=email, display_name=name, department=department, source_id=email, **kw)
        s.add(e)
        s.commit()
        return e.id


@pytest.fixture
def people(app, db, tenant):
    """Comms (signed in), two employees with portal accounts."""
    ana = _employee(db, tenant.org_id, "ana@acme.example", "Ana Lima")
    bob = _employee(db, tenant.org_id, "bob@acme.example", "Bob Martin")
    make_user(db, tenant.org_id, Role.comms)
    make_user(db, tenant.org_id, Role.employee, email="ana@acme.example")
    make_user(db, tenant.org_id, Role.employee, email="bob@acme.example")
    return {"ana": ana, "bob": bob, "comms": signed_in_client(app, "comms@acme.example"),
            "ana_client": signed_in_client(app, "ana@acme.example"),
            "bob_client": signed_in_client(app, "bob@acme.example")}  # fmt: skip


def _post(client, url, page_url, data, **kw):
    page = client.get(page_url)
    return client.post(url, data={"csrf": csrf_of(page.text), **data}, follow_redirects=False, **kw)


def _save_draft(comms, body=BODY, title="Charte des réseaux sociaux"):
    r = _post(comms, "/app/charter", "/app/charter", {"title": title, "body": body})
    assert r.status_code == 303, r.text
    return r


def _publish(comms, bump="major", changelog="Première version."):
    r = _post(comms, "/app/charter/publish", "/app/charter", {"bump": bump, "changelog": changelog})
    assert r.status_code == 303, r.text


def _start_draft(comms):
    r = _post(comms, "/app/charter/draft", "/app/charter", {})
    assert r.status_code == 303, r.text


# ---------------------------------------------------------------- writing, previewing, sanitizing


def test_passages_have_stable_ids_and_unsafe_markup_is_removed():
    first = passages(BODY)
    html = "".join(p.html for p in first)
    assert not UNSAFE.search(html) and "&lt;script&gt;" in html  # shown as text, never run
    assert '<a href="https://acme.example/guide" rel="noopener noreferrer">lisez le guide</a>' in html
    assert [p.heading for p in first] == [True, False, False, True, False]
    # adding a passage before the others leaves their ids as they were; rewording one changes only its id
    moved = passages("Un préambule.\n\n" + BODY)
    assert [p.id for p in moved[1:]] == [p.id for p in first]
    reworded = passages(BODY.replace("restez courtois", "restez aimable"))
    assert [p.id for p in reworded][:4] == [p.id for p in first][:4] and reworded[4].id != first[4].id
    twice = passages("Pareil.\n\nPareil.")
    assert twice[0].id != twice[1].id and twice[1].id == twice[0].id + "-2"


def test_comms_write_a_draft_with_a_live_preview_and_employees_cannot(people):
    comms, ana = people["comms"], people["ana_client"]
    assert "No draft" in comms.get("/app/charter").text
    _save_draft(comms)
    page = comms.get("/app/charter")
    assert page.status_code == 200 and "Charte des réseaux sociaux" in page.text
    assert not UNSAFE.search(page.text.split("<textarea", 1)[0] + page.text.split("</textarea>", 1)[1])
    assert 'hx-post="/app/charter/preview"' in page.text
    csrf = csrf_of(page.text)
    preview = comms.post("/app/charter/preview", data={"body": "**gras** <script>x()</script> [a](javascript:y)"},
                         headers={"HX-Request": "true", "X-CSRF-Token": csrf})  # fmt: skip
    assert preview.status_code == 200 and "<strong>gras</strong>" in preview.text
    assert not UNSAFE.search(preview.text) and "Hello" not in preview.text
    # without the CSRF token: refused
    assert comms.post("/app/charter/preview", data={"body": "x"}).status_code == 403
    assert comms.post("/app/charter", data={"title": "T", "body": "x"}).status_code == 403
    # a title is required: the form says so, nothing saved
    bad = _post(comms, "/app/charter", "/app/charter", {"title": "  ", "body": "Autre texte"})
    assert bad.status_code == 422 and "Give the charter a title." in bad.text
    assert "Parlez de votre travail" in comms.get("/app/charter").text
    # employees read the portal, never the editor
    assert ana.get("/app/charter").status_code == 403
    assert _post(ana, "/app/charter", "/me/charter", {"title": "X", "body": "Y"}).status_code == 403
    assert _post(ana, "/app/charter/publish", "/me/charter", {"changelog": "x"}).status_code == 403


def test_french_pages(people):
    comms = people["comms"]
    _save_draft(comms)
    fr = {"Accept-Language": "fr-FR,fr;q=0.9"}
    assert "Charte des réseaux sociaux" in comms.get("/app/charter", headers=fr).text
    assert "Brouillon" in comms.get("/app/charter", headers=fr).text
    assert "Commenter ce passage" in people["ana_client"].get("/me/charter", headers=fr).text


# ---------------------------------------------------------------- comments


def test_threads_replies_resolution_and_who_sees_names(people, db, app, tenant):
    comms, ana, bob = people["comms"], people["ana_client"], people["bob_client"]
    _save_draft(comms)
    passage = passages(BODY)[1].id
    r = _post(ana, "/me/charter/comments", "/me/charter", {"passage": passage, "body": "Et les <b>photos</b> ?"})
    assert r.status_code == 303
    thread_id = int(re.search(r"#thread-(\d+)", r.headers["location"]).group(1))
    r = _post(bob, "/me/charter/comments", "/me/charter", {"parent_id": thread_id, "body": "Moi aussi, je me demande"})
    assert r.status_code == 303 and r.headers["location"].endswith(f"#thread-{thread_id}")
    r = _post(comms, "/app/charter/comments", "/app/charter", {"parent_id": thread_id, "body": "Oui, sans badge."})
    assert r.status_code == 303
    # comms see names; colleagues see pseudonyms; the comment is plain text (escaped, never HTML)
    page = comms.get("/app/charter").text
    assert "Ana Lima" in page and "Bob Martin" in page and "Et les &lt;b&gt;photos&lt;/b&gt; ?" in page
    seen_by_bob = bob.get("/me/charter").text
    assert "Ana Lima" not in seen_by_bob and "Colleague 1" in seen_by_bob and "You" in seen_by_bob
    assert "Communications team" in seen_by_bob and "Oui, sans badge." in seen_by_bob
    # empty comments and unknown passages are refused with a sentence
    empty = _post(ana, "/me/charter/comments", "/me/charter", {"passage": passage, "body": "   "})
    assert empty.status_code == 422 and "Write your comment" in empty.text
    gone = _post(ana, "/me/charter/comments", "/me/charter", {"passage": "p-0000000000", "body": "?"})
    assert gone.status_code == 422 and "not in the draft any more" in gone.text
    # comms resolve the thread, then reopen it; employees cannot resolve
    assert _post(ana, f"/app/charter/comments/{thread_id}/resolve", "/me/charter", {}).status_code == 403
    r = _post(comms, f"/app/charter/comments/{thread_id}/resolve", "/app/charter", {"action": "resolve"})
    assert r.status_code == 303 and "Resolved" in comms.get("/app/charter").text
    _post(comms, f"/app/charter/comments/{thread_id}/resolve", "/app/charter", {"action": "reopen"})
    assert "Mark as resolved" in comms.get("/app/charter").text
    # rewording the passage keeps the thread, shown with the words it was about
    _save_draft(comms, BODY.replace("librement", "en toute liberté"))
    assert "On an earlier wording" in comms.get("/app/charter").text
    # without CSRF: refused
    assert ana.post("/me/charter/comments", data={"passage": passage, "body": "x"}).status_code == 403


def test_another_organisations_ids_are_404(people, db, app):
    comms = people["comms"]
    other = make_tenant(db, slug="globex")
    _employee(db, other.org_id, "eve@globex.example", "Eve")
    make_user(db, other.org_id, Role.comms, email="comms@globex.example")
    make_user(db, other.org_id, Role.employee, email="eve@globex.example")
    globex, eve = signed_in_client(app, "comms@globex.example"), signed_in_client(app, "eve@globex.example")
    _save_draft(globex, "Texte de Globex.")
    r = _post(eve, "/me/charter/comments", "/me/charter", {"passage": passages("Texte de Globex.")[0].id, "body": "?"})
    thread_id = int(re.search(r"#thread-(\d+)", r.headers["location"]).group(1))
    _save_draft(comms)
    reply = _post(comms, "/app/charter/comments", "/app/charter", {"parent_id": thread_id, "body": "x"})
    assert reply.status_code == 404
    assert _post(comms, f"/app/charter/comments/{thread_id}/resolve", "/app/charter", {}).status_code == 404
    assert _post(people["ana_client"], "/me/charter/comments", "/me/charter",
                 {"parent_id": thread_id, "body": "x"}).status_code == 404  # fmt: skip
    assert "Texte de Globex" not in comms.get("/app/charter").text


# ---------------------------------------------------------------- publishing and the gate


def test_major_closes_the_gate_until_accepted_minor_keeps_it_open(people, db, tenant):
    comms, ana = people["comms"], people["ana_client"]
    org, ana_id = tenant.org_id, people["ana"]
    with Session(db) as s:
        assert sharing_unlocked(s, org, ana_id)  # no charter published: open
    _save_draft(comms)
    no_changelog = _post(comms, "/app/charter/publish", "/app/charter", {"bump": "major", "changelog": " "})
    assert no_changelog.status_code == 422 and "Say what changed" in no_changelog.text
    _publish(comms)
    with Session(db) as s:
        assert not sharing_unlocked(s, org, ana_id)
    page = ana.get("/me/charter").text
    assert "Version 1.0 asks for your acceptance" in page and "Première version." in page
    assert "asks for your acceptance" in ana.get("/me").text  # the portal overview's notice
    r = _post(ana, "/me/charter/accept", "/me/charter", {"next": "/me/charter"})
    assert r.status_code == 303 and r.headers["location"] == "/me/charter?toast=accepted"
    with Session(db) as s:
        assert sharing_unlocked(s, org, ana_id)
        assert s.exec(select(CharterAcceptance)).one().surface is Surface.portal
    # a minor version informs: the gate stays open, the page says what changed
    _start_draft(comms)
    _save_draft(comms, BODY + "\nUne précision.\n")
    _publish(comms, "minor", "Une précision sur les photos.")
    with Session(db) as s:
        assert sharing_unlocked(s, org, ana_id)
    page = ana.get("/me/charter").text
    assert "updated to version 1.1" in page and "Une précision sur les photos." in page
    # a major one asks again
    _start_draft(comms)
    _publish(comms, "major", "Nouvelle règle.")
    with Session(db) as s:
        assert not sharing_unlocked(s, org, ana_id)
    assert "Version 2.0 asks for your acceptance" in ana.get("/me/charter").text
    # the share center's way in (signed in): back to a same-site page only
    page = ana.get("/me/charter/accept?next=/me/share")
    assert page.status_code == 200 and "unlock your share buttons" in page.text
    r = ana.post("/me/charter/accept", data={"csrf": csrf_of(page.text), "next": "//evil.example/x"},
                 follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/me/charter?toast=accepted"
    with Session(db) as s:
        assert sharing_unlocked(s, org, ana_id)
    r = ana.post("/me/charter/accept", data={"csrf": csrf_of(page.text), "next": "/me/share"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me/share"
    assert "2.0" in comms.get("/app/charter").text and "1.1" in comms.get("/app/charter").text


def _share_intent_path(db, settings, org_id, employee_id, network="linkedin") -> str:
    with Session(db) as s:
        a = Article(org_id=org_id, url="https://acme.example/news/entrepot", title="Notre entrepôt", text_x="Lyon")
        issue = Issue(org_id=org_id, subject="La lettre")
        s.add_all([a, issue])
        s.flush()
        s.add(IssueArticle(issue_id=issue.id, article_id=a.id, position=0))
        s.flush()
        ctx = load_context(s, org_id=org_id, issue_id=issue.id, settings=settings)
        intent = dict(issue_specs(s, ctx)[0].intents)[network]
        url = employee_url(intent, employee_id, settings.public_base_url, link_key(settings))
        s.commit()
    return urlsplit(url).path


def test_a_newsletter_share_button_leads_to_the_acceptance_page_then_to_the_network(people, db, app, tenant,
                                                                                    settings):  # fmt: skip
    comms, ana_id = people["comms"], people["ana"]
    path = _share_intent_path(db, settings, tenant.org_id, ana_id)
    reader = browser_client(app)  # the newsletter reader is not signed in
    with reader:
        open_gate = reader.get(path, follow_redirects=False)
        assert open_gate.status_code == 302 and open_gate.headers["location"].startswith("https://www.linkedin.com/")
        _save_draft(comms)
        _publish(comms)
        detour = reader.get(path, follow_redirects=False)
        assert detour.status_code == 303
        target = urlsplit(detour.headers["location"])
        query = parse_qs(target.query)
        assert target.path == "/me/charter/accept" and query["next"] == [path]
        page = reader.get(detour.headers["location"])
        assert page.status_code == 200 and "Notre charte" in page.text and "continue to share" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        form_csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        signed = query["t"][0]
        # tampering: another next, a forged signature, a foreign site, a cross-site post
        for bad_next, bad_t in ((path + "x", signed), ("//evil.example/c/x", signed), (path, signed[:-2] + "00")):
            r = reader.post("/me/charter/accept", data={"csrf": form_csrf, "next": bad_next, "t": bad_t},
                            follow_redirects=False)  # fmt: skip
            assert r.status_code in (403, 404), (bad_next, r.status_code)
        r = reader.post("/me/charter/accept", data={"csrf": form_csrf, "next": path, "t": signed},
                        headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 403
        assert reader.get(f"/me/charter/accept?next={path}&t=1.1.abc").status_code == 404
        with Session(db) as s:
            assert s.exec(select(CharterAcceptance)).first() is None
        accepted = reader.post("/me/charter/accept", data={"csrf": form_csrf, "next": path, "t": signed},
                               follow_redirects=False)  # fmt: skip
        # a page that goes on by itself (a form's redirect may not leave the site: CSP form-action)
        assert accepted.status_code == 200 and f'href="{path}" data-continue' in accepted.text
        onward = reader.get(path, follow_redirects=False)
        assert onward.status_code == 302
        network = onward.headers["location"]
        assert network.startswith("https://www.linkedin.com/")
        share_url = unquote(parse_qs(urlsplit(network).query)["url"][0])
        assert share_url.startswith("https://relais.test/s/")
        with Session(db) as s:
            share = resolve(s, share_url.rsplit("/", 1)[1], key=link_key(settings), base_url=settings.public_base_url)
            assert share.channel is Channel.share and share.employee_id == ana_id
            row = s.exec(select(CharterAcceptance)).one()
            assert (row.employee_id, row.surface, row.major) == (ana_id, Surface.newsletter, 1)
        # one time only: the next press goes straight on
        assert reader.get(path, follow_redirects=False).status_code == 302


def test_acceptances_export_as_safe_csv_and_rates_by_department_respect_the_minimum(people, db, app, tenant):
    comms = people["comms"]
    org = tenant.org_id
    ventes = [_employee(db, org, f"v{i}@acme.example", f"Vendeur {i}") for i in range(3)]  # with Ana, Bob: 5
    rd = [_employee(db, org, f"r{i}@acme.example", '=HYPERLINK("http://x")', department="R&D") for i in range(2)]
    _save_draft(comms)
    _publish(comms)
    from advocacy.charter import service as charter

    with Session(db) as s:
        for e in [people["ana"], *ventes[:2], rd[0]]:
            charter.accept(s, org_id=org, employee_id=e, surface=Surface.portal)
        s.commit()
    page = comms.get("/app/charter").text
    assert "Acceptance of version 1.0" in page
    assert re.search(r"<td>Ventes</td><td class=\"num\">5</td><td class=\"num\">3</td><td class=\"num\">60.0%</td>",
                     page), page  # fmt: skip
    assert "<td>R&amp;D</td>" not in page and "1 group smaller than 5 people" in page
    assert "4 of 7 active employees" in page
    csv = comms.get("/app/charter/acceptances.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().split("\r\n")
    assert lines[0] == "email,name,department,version,accepted_at,surface" and len(lines) == 5
    assert any(line.startswith('r0@acme.example,"\'=HYPERLINK(""http://x"")",R&D,1.0,') for line in lines), lines
    assert people["ana_client"].get("/app/charter/acceptances.csv").status_code == 403


def test_a_stranger_reaches_the_acceptance_page_only_through_sign_in(client):
    page = client.get("/me/charter/accept?next=/me/share", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/sign-in?next=")
    refused = client.post("/me/charter/accept", data={"next": "/me/share", "csrf": "x"}, follow_redirects=False)
    assert refused.status_code == 403
