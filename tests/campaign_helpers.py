"""Shared helpers for campaign and click tests: employees, banner images, campaigns through the API."""

import io
from datetime import UTC, datetime, timedelta

from PIL import Image
from sqlmodel import Session

from service.directory.models import Employee, EmployeeGroup
from service.models import Role


def png(width=600, height=150, color="#1F3A5F", fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, fmt)
    return buf.getvalue()


def add_employees(engine, org_id, specs) -> list[int]:
    """specs: [(email, department, office, [groups])]"""
    ids = []
    with Session(engine) as s:
        for email, dept, office, groups in specs:
            e = Employee(
                org_id=org_id,
                email=email,
                first_name=email.split("@")[0].title(),
                last_name="Test",
                department=dept,
                office=office,
                source_id=email,
            )
            s.add(e)
            s.flush()
            for g in groups:
                s.add(EmployeeGroup(org_id=org_id, employee_id=e.id, group_key=g))
            ids.append(e.id)
        s.commit()
    return ids


def upload(client, tenant, data: bytes, name="banner.png"):
    return client.post("/api/banners", files={"file": (name, data, "image/png")}, headers=tenant.headers(Role.comms))


def make_campaign(client, tenant, name, *, color="#1F3A5F", state="scheduled", days=(-1, 30), **extra):
    banner = upload(client, tenant, png(color=color)).json()
    now = datetime.now(UTC)
    body = {
        "name": name,
        "destination_url": f"https://acme.example/{name}",
        "banner_id": banner["id"],
        "alt": f"{name} banner",
        "state": state,
        "starts_at": (now + timedelta(days=days[0])).isoformat(),
        "ends_at": (now + timedelta(days=days[1])).isoformat() if days[1] is not None else None,
        **extra,
    }
    r = client.post("/api/campaigns", json=body, headers=tenant.headers(Role.comms))
    assert r.status_code == 201, r.text
    return r.json()


def use_default_template(client, tenant):
    r = client.put(
        "/api/brand", json={"company_name": "Acme", "website": "https://acme.example"}, headers=tenant.headers()
    )
    assert r.status_code == 200, r.text
    t = client.post("/api/templates", json={"name": "Classic", "layout": "classic"}, headers=tenant.headers(Role.it))
    assert t.status_code == 201, t.text
    a = client.put(
        "/api/assignments", json={"template_id": t.json()["id"], "kind": "default"}, headers=tenant.headers(Role.it)
    )
    assert a.status_code == 200, a.text
