"""The first-run demo: a newcomer sees a branded organisation with ~50 employees and signatures."""

from sqlmodel import Session, select

from service.demo import DEMO_KEY_FILE, seed_demo
from service.directory.models import Employee
from service.models import Organisation
from signatures.models import SignatureKind
from signatures.service import org_brand, render_employee


def test_demo_seeds_once_and_every_employee_renders(db, settings):
    with Session(db) as session:
        key = seed_demo(session, settings)
        session.commit()
        assert key and key.startswith("rls_")
        assert seed_demo(session, settings) is None  # second run: nothing to do
        key_file = settings.data_dir / DEMO_KEY_FILE
        assert key_file.read_text().strip() == key and (key_file.stat().st_mode & 0o777) == 0o600

        employees = session.exec(select(Employee)).all()
        assert 45 <= len(employees) <= 60
        assert len({e.department for e in employees}) >= 4 and len({e.office for e in employees}) == 2
        for emp in employees:
            for kind in SignatureKind:
                _v, rendered = render_employee(session, employee=emp, kind=kind)
                assert emp.email in rendered.html or kind is SignatureKind.reply
                assert "<style" not in rendered.html


def test_demo_logo_is_served_as_an_immutable_asset(client, db, settings):
    with Session(db) as session:
        seed_demo(session, settings)
        session.commit()
        brand = org_brand(session, session.exec(select(Organisation)).one().id)
    path = brand.logo_url.removeprefix(settings.public_base_url)
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "immutable" in r.headers["cache-control"]
    assert client.get("/assets/../../etc/passwd").status_code == 404
    assert client.get("/assets/" + "0" * 32 + ".png").status_code == 404


def test_demo_shows_figures_at_once(client, db, settings):
    with Session(db) as session:
        key = seed_demo(session, settings)
        session.commit()
    h = {"Authorization": f"Bearer {key}"}
    campaigns = client.get("/api/campaigns", headers=h).json()
    assert [(c["name"], c["state"]) for c in campaigns] == [("Salon 2027", "active")]
    board = client.get("/api/analytics/leaderboard", headers=h)
    assert board.status_code == 200, board.text
    figures = client.get("/api/analytics/clicks", params={"group_by": "channel"}, headers=h)
    assert figures.status_code == 200, figures.text
    by_channel = {r["channel"]: r for r in figures.json()}
    assert set(by_channel) == {"signature_banner", "share"}  # the signatures' and recognition's demo clicks
    banner = by_channel["signature_banner"]
    assert banner["impressions"] > 0
    assert 0 < banner["human"] < banner["raw"] == banner["human"] + banner["scanner"] + banner["crawler"]
    leaders = board.json()
    assert leaders[0]["rank"] == 1 and leaders[0]["human"] >= leaders[-1]["human"] > 0


def test_demo_newsletter_previews(client, db, settings):
    with Session(db) as session:
        key = seed_demo(session, settings)
        session.commit()
        employee = session.exec(select(Employee)).first()
    h = {"Authorization": f"Bearer {key}"}
    (issue,) = client.get("/api/newsletter/issues", headers=h).json()
    preview = client.get(
        f"/api/newsletter/issues/{issue['id']}/preview", params={"employee_id": employee.id}, headers=h
    )
    assert preview.status_code == 200, preview.text
    assert "Lyon ouvre ses portes" in preview.text and "linkedin" in preview.text.lower()
