"""Roles and employees' own choices: `it` reads no per-employee figures; an opt-out an employee set
themselves is theirs to undo (comms can't), and every change to an opt-out is audited."""

import re
import secrets

from sqlmodel import Session, select

from newsletter.models import NewsletterPreference
from service.clicks.models import OptOutChange
from service.clicks.optout import opted_out
from service.models import Role
from tests.campaign_helpers import add_employees


def test_it_cannot_read_per_employee_newsletter_figures(client, tenant):
    for url in ("/api/newsletter/leaderboard", "/api/newsletter/ambassador?month=2026-03"):
        assert client.get(url, headers=tenant.headers(Role.it)).status_code == 403, url
        assert client.get(url, headers=tenant.headers(Role.comms)).status_code == 200, url


def _preferences_token(db, org_id, employee_id) -> str:
    token = secrets.token_urlsafe(16)
    with Session(db) as s:
        s.add(NewsletterPreference(org_id=org_id, employee_id=employee_id, token=token))
        s.commit()
    return token


def _post(client, token, action):
    page = client.get(f"/u/{token}")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    return client.post(f"/u/{token}", data={"action": action, "csrf": csrf})


def _audit(db, employee_id):
    with Session(db) as s:
        rows = s.exec(select(OptOutChange).where(OptOutChange.employee_id == employee_id).order_by(OptOutChange.id))
        return [(r.opt_out, r.actor) for r in rows]


def test_only_the_employee_can_undo_their_own_opt_out(client, tenant, db):
    (emp,) = add_employees(db, tenant.org_id, [("ann@acme.example", "Sales", "Paris", [])])
    token = _preferences_token(db, tenant.org_id, emp)
    assert _post(client, token, "untrack").status_code == 200
    comms = tenant.headers(Role.comms)
    refused = client.delete(f"/api/tracking/opt-outs/{emp}", headers=comms)
    assert refused.status_code == 403 and "only they can undo it" in refused.json()["error"]["message"]
    assert client.delete(f"/api/tracking/opt-outs/{emp}", headers=tenant.headers(Role.admin)).status_code == 403
    with Session(db) as s:
        assert opted_out(s, employee_id=emp)
    # comms setting it again changes nothing, and does not take the choice over
    assert client.put(f"/api/tracking/opt-outs/{emp}", headers=comms).status_code == 200
    assert client.delete(f"/api/tracking/opt-outs/{emp}", headers=comms).status_code == 403
    assert _post(client, token, "track").status_code == 200
    with Session(db) as s:
        assert not opted_out(s, employee_id=emp)
    assert _audit(db, emp) == [(True, "employee"), (False, "employee")]


def test_comms_can_undo_what_comms_set_and_every_change_is_audited(client, tenant, db):
    (emp,) = add_employees(db, tenant.org_id, [("bob@acme.example", "Sales", "Paris", [])])
    comms = tenant.headers(Role.comms)
    assert client.put(f"/api/tracking/opt-outs/{emp}", headers=comms).status_code == 200
    assert client.delete(f"/api/tracking/opt-outs/{emp}", headers=comms).status_code == 204
    assert _audit(db, emp) == [(True, "comms"), (False, "comms")]
    with Session(db) as s:
        details = s.exec(select(OptOutChange.actor_detail).where(OptOutChange.employee_id == emp)).all()
    assert all("comms key" in d for d in details)
    # an employee confirming an opt-out comms set makes it theirs
    token = _preferences_token(db, tenant.org_id, emp)
    assert client.put(f"/api/tracking/opt-outs/{emp}", headers=comms).status_code == 200
    assert _post(client, token, "untrack").status_code == 200
    assert client.delete(f"/api/tracking/opt-outs/{emp}", headers=comms).status_code == 403
    listed = client.get("/api/tracking/opt-outs", headers=comms).json()
    assert [(o["employee_id"], o["set_by"]) for o in listed] == [(emp, "employee")]
    assert _audit(db, emp)[-2:] == [(True, "comms"), (True, "employee")]
