"""Bad input is a 4xx in the one error shape, never a 500: unknown routes, wrong methods, malformed JSON,
numbers too large for the database, null in fields that must have a value, NUL characters. The OpenAPI
document describes the error responses and the content types that routes really send."""

import pytest

from service.models import Role

BIG = 2**63


def _shape(r, status):
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) <= {"code", "message", "details"} and error["code"] and error["message"].endswith(".")
    return error


def test_unknown_route_and_method(client, tenant):
    assert _shape(client.get("/api/nope", headers=tenant.headers()), 404)["code"] == "not_found"
    assert _shape(client.get("/nope"), 404)["code"] == "not_found"
    assert _shape(client.delete("/health"), 405)["code"] == "method_not_allowed"


def test_malformed_json(client, tenant):
    headers = {**tenant.headers(), "content-type": "application/json"}
    error = _shape(client.post("/api/templates/lint", content=b'{"source": ', headers=headers), 422)
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize(
    "method, url, body",
    [
        ("GET", f"/api/newsletter/articles?offset={BIG}", None),
        ("GET", f"/api/employees?offset={BIG}", None),
        ("GET", f"/api/analytics/clicks?campaign_id={BIG}", None),
        ("GET", f"/api/deployments/1/items?offset={BIG}", None),
        ("POST", "/api/newsletter/issues", {"subject": "x", "article_ids": [BIG]}),
        ("PUT", "/api/assignments", {"template_id": BIG, "kind": "default"}),
    ],
)
def test_numbers_too_large_for_the_database(client, tenant, method, url, body):
    r = client.request(method, url, json=body, headers=tenant.headers())
    assert r.status_code in (404, 422), r.text
    _shape(r, r.status_code)


def test_null_where_a_value_is_required(client, tenant):
    from tests.campaign_helpers import png, upload

    banner = upload(client, tenant, png()).json()["id"]
    campaign = client.post(
        "/api/campaigns",
        json={"name": "c", "destination_url": "https://acme.example/", "starts_at": "2026-01-01T00:00:00Z",
              "banner_id": banner, "alt": "x"},
        headers=tenant.headers(Role.comms),
    )  # fmt: skip
    assert campaign.status_code == 201, campaign.text
    cid = campaign.json()["id"]
    for field in ("name", "destination_url", "starts_at", "weight", "state", "utm"):
        r = client.patch(f"/api/campaigns/{cid}", json={field: None}, headers=tenant.headers(Role.comms))
        assert field in _shape(r, 422)["message"]
    assert client.patch(f"/api/campaigns/{cid}", json={"ends_at": None}, headers=tenant.headers()).status_code == 200
    r = client.put("/api/campaign-settings", json={"rotation_period": None}, headers=tenant.headers(Role.comms))
    assert "rotation_period" in _shape(r, 422)["message"]
    r = client.put("/api/campaign-settings", json={"default_campaign_id": None}, headers=tenant.headers())
    assert r.status_code == 200
    issue = client.post("/api/newsletter/issues", json={"subject": "Hello"}, headers=tenant.headers(Role.comms))
    assert issue.status_code == 201, issue.text
    r = client.patch(f"/api/newsletter/issues/{issue.json()['id']}", json={"subject": None}, headers=tenant.headers())
    assert "subject" in _shape(r, 422)["message"]


@pytest.mark.parametrize(
    "method, url, kwargs",
    [
        ("POST", "/api/templates", {"json": {"name": "a\x00b", "new_source": "<p>x</p>"}}),
        ("GET", "/api/employees?q=a%00b", {}),
        ("POST", "/api/newsletter/issues", {"json": {"subject": "x\u0000"}}),
    ],
)
def test_nul_characters_are_refused(client, tenant, method, url, kwargs):
    r = client.request(method, url, headers=tenant.headers(), **kwargs)
    assert "NUL" in _shape(r, 422)["message"]


def test_openapi_documents_the_error_shape_and_statuses(client):
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    lint = doc["paths"]["/api/templates/lint"]["post"]["responses"]
    for status in ("400", "401", "403", "413", "422", "429"):
        assert lint[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    signature = doc["paths"]["/api/employees/{employee_id}/signature"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/html", "text/plain"} <= set(signature)
    assert (
        "text/html" in doc["paths"]["/api/newsletter/issues/{issue_id}/preview"]["get"]["responses"]["200"]["content"]
    )
