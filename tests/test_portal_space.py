"""The employee's own space: my signature (both versions, the copy button's content, install guides that say
when IT installs it), corrections IT reviews, and my data (exactly mine in the export; choices that persist and
take effect)."""

import json
import re

from sqlmodel import Session, select

from newsletter.models import Delivery, DeliveryState, Issue, NewsletterPreference
from portal.models import CorrectionState, ProfileCorrection
from portal.visibility import choices_of
from service.clicks.models import Click, OptOutChange, TrackingOptOut, Verdict
from service.db import utcnow
from service.directory.models import Employee
from service.links import Channel, mint
from service.models import Role
from signatures.deploy.models import SignatureState
from tests.conftest import make_tenant
from tests.deploy_support import seed
from tests.page_support import csrf_of, make_user, signed_in_client

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def _id(db, email) -> int:
    with Session(db) as s:
        return s.exec(select(Employee.id).where(Employee.email == email)).one()


def _employee_client(app, db, tenant, email="p1@acme.example"):
    make_user(db, tenant.org_id, Role.employee, email=email)
    return signed_in_client(app, email)


def test_my_signature_shows_both_versions_and_copies_the_rich_html(app, db, tenant):
    seed(db, tenant)
    client = _employee_client(app, db, tenant)
    page = client.get("/me/signature")
    assert page.status_code == 200
    assert 'src="/me/signature/preview/new"' in page.text and 'src="/me/signature/preview/reply"' in page.text
    copies = re.findall(r'data-copy-html="([^"]*)"', page.text)
    assert len(copies) == 2 and all("P1" in c and "&lt;" in c for c in copies)  # escaped HTML, carrying my name
    assert "<script" not in page.text.split("</head>")[1]  # behaviour lives in /static/app.js
    for client_name in ("Outlook for Windows", "Outlook for Mac", "Outlook on the web and the new Outlook",
                        "Outlook for iOS and Android", "Gmail on the web", "Gmail on Android and iOS",
                        "Apple Mail on macOS", "Apple Mail on iPhone and iPad"):  # fmt: skip
        assert client_name in page.text
    assert "installed for you" not in page.text
    frame = client.get("/me/signature/preview/new")
    assert frame.status_code == 200 and "sandbox" in frame.headers["content-security-policy"] and "P1" in frame.text
    reply = client.get("/me/signature/preview/reply")
    assert reply.status_code == 200 and reply.text != frame.text
    assert client.get("/me/signature/preview/other").status_code == 404


def test_the_guide_says_first_when_it_installs_the_signature(app, db, tenant):
    seed(db, tenant)
    me = _id(db, "p1@acme.example")
    with Session(db) as s:
        s.add(SignatureState(org_id=tenant.org_id, provider="google", address="p1@acme.example", employee_id=me,
                             content_hash="x" * 64))  # fmt: skip
        s.add(SignatureState(org_id=tenant.org_id, provider="file", address="p1@acme.example", employee_id=me,
                             content_hash="x" * 64))  # an export writes no mailbox  # fmt: skip
        s.commit()
    client = _employee_client(app, db, tenant)
    page = client.get("/me/signature").text
    assert "Your signature is installed for you in Gmail: nothing to do there." in page
    assert page.index("Gmail on the web") < page.index("Outlook for Windows")  # the installed client first
    assert "installed for you in Gmail" in client.get("/me").text
    assert "Outlook" not in page.split("installed for you in")[1].split(":")[0]


def test_without_a_template_the_page_says_why(app, db, tenant):
    with Session(db) as s:
        s.add(Employee(org_id=tenant.org_id, email="solo@acme.example", source_id="solo"))
        s.commit()
    client = _employee_client(app, db, tenant, email="solo@acme.example")
    page = client.get("/me/signature")
    assert page.status_code == 200 and "not ready yet" in page.text and "No template applies" in page.text
    assert "No template applies" in client.get("/me/signature/preview/new").text


def _propose(client, **values):
    page = client.get("/me/signature")
    return client.post("/me/signature/corrections", data={"csrf": csrf_of(page.text), **values},
                       follow_redirects=False)  # fmt: skip


def test_corrections_are_proposed_reviewed_by_it_and_audited(app, db, tenant):
    seed(db, tenant)
    me = _id(db, "p1@acme.example")
    employee = _employee_client(app, db, tenant)
    bad = _propose(employee, title="Head of Sales", phone="call me maybe")
    assert bad.status_code == 422 and "A phone number has digits" in bad.text
    with Session(db) as s:
        assert s.exec(select(ProfileCorrection)).all() == []  # nothing recorded from a refused form
    ok = _propose(employee, title="  Head   of Sales ", phone="+33 1 23 45 67 89", first_name="P1")
    assert ok.status_code == 303 and "toast=proposed" in ok.headers["location"]
    with Session(db) as s:
        rows = s.exec(select(ProfileCorrection).order_by(ProfileCorrection.field)).all()
        assert [(r.field, r.new_value, r.proposed_by) for r in rows] == [
            ("phone", "+33 1 23 45 67 89", "p1@acme.example"),
            ("title", "Head of Sales", "p1@acme.example"),  # first_name is unchanged: not proposed
        ]
        phone, title = rows
    # the employee cannot review, not even their own
    assert employee.get("/app/directory/corrections").status_code == 403
    page = employee.get("/me/signature")
    assert employee.post(f"/app/directory/corrections/{title.id}/accept",
                         data={"csrf": csrf_of(page.text)}).status_code == 403  # fmt: skip
    make_user(db, tenant.org_id, Role.it)
    it = signed_in_client(app, "it@acme.example")
    review = it.get("/app/directory/corrections")
    assert review.status_code == 200 and "Head of Sales" in review.text and "+33 1 23 45 67 89" in review.text
    assert 'href="/app/directory/corrections"' in it.get("/app/directory").text
    csrf = csrf_of(review.text)
    assert it.post(f"/app/directory/corrections/{title.id}/accept").status_code == 403  # no CSRF token
    accepted = it.post(f"/app/directory/corrections/{title.id}/accept", data={"csrf": csrf}, follow_redirects=False)
    assert accepted.status_code == 303
    no_reason = it.post(f"/app/directory/corrections/{phone.id}/decline", data={"csrf": csrf, "reason": " "})
    assert no_reason.status_code == 422 and "Say why" in no_reason.text
    it.post(f"/app/directory/corrections/{phone.id}/decline",
            data={"csrf": csrf, "reason": "This is the switchboard's number."})  # fmt: skip
    again = it.post(f"/app/directory/corrections/{title.id}/accept", data={"csrf": csrf})
    assert again.status_code == 404  # already reviewed
    with Session(db) as s:
        emp = s.get(Employee, me)
        assert emp.title == "Head of Sales" and emp.phone != "+33 1 23 45 67 89"
        title, phone = s.get(ProfileCorrection, title.id), s.get(ProfileCorrection, phone.id)
        assert (title.state, title.reviewed_by) == (CorrectionState.accepted, "it@acme.example")
        assert title.reviewed_at is not None and phone.state is CorrectionState.declined
    mine = employee.get("/me/signature").text
    assert "This is the switchboard&#39;s number." in mine and "Head of Sales" in mine
    assert "Head of Sales" in employee.get("/me/signature/preview/new").text  # the signature follows


def test_another_organisations_correction_is_not_found(app, db, tenant):
    seed(db, tenant)
    other = make_tenant(db, slug="globex")
    with Session(db) as s:
        emp = Employee(org_id=other.org_id, email="eve@globex.example", source_id="eve")
        s.add(emp)
        s.flush()
        row = ProfileCorrection(org_id=other.org_id, employee_id=emp.id, field="title", new_value="CEO",
                                proposed_by="eve@globex.example")  # fmt: skip
        s.add(row)
        s.commit()
        row_id = row.id
    make_user(db, tenant.org_id, Role.it)
    it = signed_in_client(app, "it@acme.example")
    csrf = csrf_of(it.get("/app/directory/corrections").text)
    assert "CEO" not in it.get("/app/directory/corrections").text
    for action in ("accept", "decline"):
        r = it.post(f"/app/directory/corrections/{row_id}/{action}", data={"csrf": csrf, "reason": "no"})
        assert r.status_code == 404, action
    with Session(db) as s:
        assert s.get(ProfileCorrection, row_id).state is CorrectionState.pending


def test_my_data_export_holds_exactly_my_data(app, db, tenant):
    seed(db, tenant)
    me, other = _id(db, "p1@acme.example"), _id(db, "p2@acme.example")
    with Session(db) as s:
        issue = Issue(org_id=tenant.org_id, subject="Lettre de mars")
        s.add(issue)
        s.flush()
        for emp, address in ((me, "p1@acme.example"), (other, "p2@acme.example")):
            link = mint(s, org_id=tenant.org_id, channel=Channel.signature_field, employee_id=emp,
                        destination="https://acme.example/")  # fmt: skip
            s.add(Delivery(org_id=tenant.org_id, issue_id=issue.id, employee_id=emp, email=address,
                           state=DeliveryState.sent, sent_at=utcnow()))  # fmt: skip
            for verdict in (Verdict.human, Verdict.human, Verdict.scanner):
                s.add(Click(org_id=tenant.org_id, link_id=link.id, employee_id=emp, channel=Channel.signature_field,
                            verdict=verdict))  # fmt: skip
        s.add(Click(org_id=tenant.org_id, link_id=link.id, employee_id=other, channel=Channel.newsletter,
                    verdict=Verdict.human))  # fmt: skip
        s.commit()
    client = _employee_client(app, db, tenant)
    page = client.get("/me/data")
    assert page.status_code == 200 and "Lettre de mars" in page.text
    r = client.get("/me/data/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert "attachment" in r.headers["content-disposition"]
    data = r.json()
    assert data["profile"]["email"] == "p1@acme.example" and data["account"]["role"] == "employee"
    clicks = {(c["channel"], c["verdict"]): c["clicks"] for c in data["clicks"]["by_channel_and_verdict"]}
    assert clicks == {("signature_field", "human"): 2, ("signature_field", "scanner"): 1}
    assert data["tracked_links"] == {"signature_field": 1}
    assert [d["issue"] for d in data["newsletter_deliveries"]] == ["Lettre de mars"]
    assert data["choices"] == {"clicks_attributed_to_me": True, "tracking_opt_out_set_by": None,
                               "newsletter_subscribed": True, "rank_visible": False, "leader_name_visible": False,
                               "public_ambassador": False}  # fmt: skip
    assert "p2@acme.example" not in r.text and "P2" not in r.text  # nothing of anyone else
    assert "password" not in r.text  # no hash, no secret
    json.loads(r.text)


def test_my_choices_persist_and_take_effect(app, db, tenant):
    seed(db, tenant)
    me = _id(db, "p1@acme.example")
    client = _employee_client(app, db, tenant)
    page = client.get("/me/data")
    # untick attribution and the newsletter, say yes to the rank, choose French
    r = client.post("/me/data", data={"csrf": csrf_of(page.text), "rank_visible": "on", "language": "fr"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    with Session(db) as s:
        assert s.exec(select(TrackingOptOut.set_by).where(TrackingOptOut.employee_id == me)).one() == "employee"
        assert [(c.opt_out, c.actor) for c in s.exec(select(OptOutChange)).all()] == [(True, "employee")]
        pref = s.exec(select(NewsletterPreference).where(NewsletterPreference.employee_id == me)).one()
        assert pref.subscribed is False
        choices = choices_of(s, me)
        assert choices.rank_visible and not choices.public_ambassador and not choices.leader_name_visible
    french = client.get("/me/data")
    assert '<html lang="fr">' in french.text and "Mes données" in french.text
    # the tracker honours the opt-out: a click on my link is counted for nobody
    with Session(db, expire_on_commit=False) as s:
        link = mint(s, org_id=tenant.org_id, channel=Channel.signature_field, employee_id=me,
                    destination="https://acme.example/x")  # fmt: skip
        s.commit()
    assert client.get(f"/c/{link.token}", headers={"user-agent": CHROME}, follow_redirects=False).status_code == 302
    with Session(db) as s:
        assert [c.employee_id for c in s.exec(select(Click)).all()] == [None]
    # saving again without touching them changes nothing, and ticking them back undoes both
    client.post("/me/data", data={"csrf": csrf_of(french.text), "rank_visible": "on", "language": "fr"})
    with Session(db) as s:
        assert len(s.exec(select(OptOutChange)).all()) == 1
    client.post("/me/data", data={"csrf": csrf_of(french.text), "attributed": "on", "newsletter": "on"})
    with Session(db) as s:
        assert s.exec(select(TrackingOptOut).where(TrackingOptOut.employee_id == me)).first() is None
        assert s.exec(select(NewsletterPreference.subscribed).where(NewsletterPreference.employee_id == me)).one()
        assert not choices_of(s, me).rank_visible
    assert client.post("/me/data", data={"attributed": "on"}).status_code == 403  # no CSRF token


def test_the_overview_greets_and_links_every_section(app, db, tenant):
    seed(db, tenant)
    client = _employee_client(app, db, tenant)
    page = client.get("/me")
    assert page.status_code == 200 and "Hello P1" in page.text and "Your signature is ready" in page.text
    for href in ("/me/signature", "/me/share", "/me/figures", "/me/charter", "/me/contests", "/me/data"):
        assert f'href="{href}"' in page.text
    assert 'href="/me/data">p1@acme.example' in page.text.replace("\n", "")  # the account link of an employee
