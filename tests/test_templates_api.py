"""Templates through the API: create from a layout, version on edit, refuse bad templates with line
and reason, preview any version for any employee, assignments by department and group."""

from sqlmodel import Session

from service.directory.sync import DirectoryPerson, Listing, apply_listing
from service.models import Role

PEOPLE = [
    DirectoryPerson(source_id="1", email="ada@acme.example", first_name="Ada", last_name="Lovelace",
                    title="Engineer", department="R&D <Ops>", phone="+33 1 00 00 00 01"),
    DirectoryPerson(source_id="2", email="sean@acme.example", first_name="Seán", last_name="O'Neil",
                    department="Sales", groups=("leaders",)),
]  # fmt: skip


def _seed_people(db, tenant) -> dict[str, int]:
    with Session(db) as s:
        apply_listing(s, org_id=tenant.org_id, source="csv", listing=Listing(people=PEOPLE), dry_run=False)
        s.commit()
    from sqlmodel import select

    from service.directory.models import Employee

    with Session(db) as s:
        return {e.email: e.id for e in s.exec(select(Employee)).all()}


def _create(client, tenant, **body):
    return client.post("/api/templates", json=body, headers=tenant.headers(Role.it))


def test_create_from_layout_preview_and_current_signature(client, tenant, db):
    ids = _seed_people(db, tenant)
    layouts = client.get("/api/layouts", headers=tenant.headers(Role.comms)).json()
    assert {"classic", "compact"} <= {layout["name"] for layout in layouts}

    created = _create(client, tenant, name="Corporate", layout="classic")
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    assert (
        client.put(
            "/api/assignments", json={"template_id": tid, "kind": "default"}, headers=tenant.headers(Role.it)
        ).status_code
        == 200
    )

    preview = client.get(
        f"/api/templates/{tid}/preview",
        params={"employee_id": ids["ada@acme.example"]},
        headers=tenant.headers(Role.comms),
    ).json()
    html = preview["html"]
    assert "Ada Lovelace" in html and "R&amp;D &lt;Ops&gt;" in html
    assert "<style" not in html and "class=" not in html
    assert "Ada Lovelace" in preview["text"] and "<td" not in preview["text"]
    assert len(preview["content_hash"]) == 64

    current = client.get(f"/api/employees/{ids['ada@acme.example']}/signature", headers=tenant.headers(Role.it)).json()
    assert current["content_hash"] == preview["content_hash"] and current["version"] == 1

    reply = client.get(
        f"/api/employees/{ids['ada@acme.example']}/signature",
        params={"kind": "reply"},
        headers=tenant.headers(Role.it),
    ).json()
    assert reply["html"] != html and "Ada Lovelace" in reply["html"]

    as_html = client.get(
        f"/api/employees/{ids['sean@acme.example']}/signature",
        params={"format": "html"},
        headers=tenant.headers(Role.it),
    )
    assert as_html.headers["content-type"].startswith("text/html") and "O&#39;Neil" in as_html.text


def test_editing_creates_versions_and_old_ones_stay_renderable(client, tenant, db):
    ids = _seed_people(db, tenant)
    tid = _create(client, tenant, name="Plain", new_source="<p>{{ employee.full_name }}</p>").json()["id"]
    r = client.put(
        f"/api/templates/{tid}",
        json={"new_source": "<p><b>{{ employee.full_name }}</b> v2</p>"},
        headers=tenant.headers(Role.it),
    )
    assert r.status_code == 200 and r.json()["current_version"] == 2
    versions = client.get(f"/api/templates/{tid}/versions", headers=tenant.headers(Role.it)).json()
    assert [v["version"] for v in versions] == [1, 2]
    old = client.get(
        f"/api/templates/{tid}/preview",
        params={"employee_id": ids["ada@acme.example"], "version": 1, "format": "html"},
        headers=tenant.headers(Role.it),
    ).text
    new = client.get(
        f"/api/templates/{tid}/preview",
        params={"employee_id": ids["ada@acme.example"], "format": "html"},
        headers=tenant.headers(Role.it),
    ).text
    assert "v2" not in old and "v2" in new
    missing = client.get(
        f"/api/templates/{tid}/preview",
        params={"employee_id": ids["ada@acme.example"], "version": 9},
        headers=tenant.headers(Role.it),
    )
    assert missing.status_code == 404 and "latest is 2" in missing.json()["error"]["message"]


def test_bad_templates_are_refused_with_line_and_reason(client, tenant):
    broken = "<table>\n<tr><td>{{ employee.full_name }</td></tr>\n</table>"
    r = _create(client, tenant, name="Broken", new_source=broken)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["details"]["errors"][0]["line"] == 2 and "line 2" in err["message"]
    assert err["details"]["errors"][0]["kind"] == "new" and "new-mail template" in err["message"]

    r = _create(client, tenant, name="Styled", new_source='<p class="x"><img src="http://x.example/a.svg"></p>')
    assert r.status_code == 422
    rules = {e["rule"] for e in r.json()["error"]["details"]["errors"]}
    assert rules, r.json()
    assert client.get("/api/templates", headers=tenant.headers(Role.it)).json() == []

    sandbox = _create(client, tenant, name="Escape", new_source="<p>{{ ''.__class__.__mro__ }}</p>")
    assert sandbox.status_code == 422

    lint = client.post("/api/templates/lint", json={"source": "<p>{% if %}</p>"}, headers=tenant.headers(Role.it))
    assert lint.status_code == 200 and lint.json()["ok"] is False


def test_assignment_precedence_group_then_department_then_default(client, tenant, db):
    ids = _seed_people(db, tenant)
    default = _create(client, tenant, name="Default", new_source="<p>default {{ employee.email }}</p>").json()["id"]
    sales = _create(client, tenant, name="Sales", new_source="<p>sales {{ employee.email }}</p>").json()["id"]
    leaders = _create(client, tenant, name="Leaders", new_source="<p>leaders {{ employee.email }}</p>").json()["id"]

    def who(email):
        return client.get(
            f"/api/employees/{ids[email]}/signature", params={"format": "text"}, headers=tenant.headers(Role.it)
        )

    assert who("ada@acme.example").status_code == 404  # no default yet: a clear message, not a 500
    for body in (
        {"template_id": default, "kind": "default"},
        {"template_id": sales, "kind": "department", "value": "Sales"},
        {"template_id": leaders, "kind": "group", "value": "leaders"},
    ):
        assert client.put("/api/assignments", json=body, headers=tenant.headers(Role.it)).status_code == 200
    assert who("ada@acme.example").text.startswith("default")
    assert who("sean@acme.example").text.startswith("leaders")
    group_row = next(
        a for a in client.get("/api/assignments", headers=tenant.headers(Role.it)).json() if a["kind"] == "group"
    )
    assert client.delete(f"/api/assignments/{group_row['id']}", headers=tenant.headers(Role.it)).status_code == 204
    assert who("sean@acme.example").text.startswith("sales")
    bad = client.put(
        "/api/assignments", json={"template_id": sales, "kind": "department"}, headers=tenant.headers(Role.it)
    )
    assert bad.status_code == 422 and "needs a 'value'" in bad.json()["error"]["message"]


def test_brand_disclaimer_is_sanitized(client, tenant):
    body = client.get("/api/brand", headers=tenant.headers(Role.comms)).json()
    body["disclaimer_html"] = '<p onclick="x()">Hi <script>alert(1)</script><a href="javascript:x">l</a></p>'
    saved = client.put("/api/brand", json=body, headers=tenant.headers(Role.comms)).json()
    assert "script" not in saved["disclaimer_html"] and "onclick" not in saved["disclaimer_html"]
    assert "javascript" not in saved["disclaimer_html"] and "Hi" in saved["disclaimer_html"]
    bad = dict(body, primary_color="red")
    assert client.put("/api/brand", json=bad, headers=tenant.headers(Role.comms)).status_code == 422
    assert client.put("/api/brand", json=body, headers=tenant.headers(Role.it)).status_code == 403


def test_invalid_requests_name_each_field_to_fix(client, tenant):
    body = client.get("/api/brand", headers=tenant.headers(Role.comms)).json()
    r = client.put(
        "/api/brand", json=dict(body, primary_color="red", logo_width="wide"), headers=tenant.headers(Role.comms)
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid" and error["message"].startswith("Fix the request:")
    fields = {d["field"] for d in error["details"]}
    assert fields == {"primary_color", "logo_width"}
    assert "#RRGGBB" in error["message"]
