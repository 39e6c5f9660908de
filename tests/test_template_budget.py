"""User templates run on a budget (time, loop iterations, output and value sizes) wherever they render:
lint, preview, export, deployment and the add-in all go through signatures.rendering.render. Running out is
a 422 that names the limit; hostile sources are 4xx, never a 500 or a stuck worker."""

import pytest
from sqlmodel import Session

from service.directory.sync import DirectoryPerson, Listing, apply_listing
from service.models import Role
from signatures.budget import MAX_ITERATIONS, BudgetExceeded
from signatures.context import build_context
from signatures.lint import SAMPLE_BRAND, SAMPLE_EMPLOYEE
from signatures.rendering import TemplateCompileError, compile_template, render

HOSTILE = {
    # source -> the limit it must run into
    "<p>{{ (10**5000)|string }}</p>": "number_size",
    "<p>{{ 99**99**99 }}</p>": "number_size",
    "<p>{% for i in 'x'*90000 %}{% for j in 'x'*90000 %}{% endfor %}{% endfor %}</p>": "loop_iterations",
    "<p>{{ 'x' * 1000000000 }}</p>": "value_size",
    "<p>{{ (['x'*50000]*100000)|join }}</p>": "value_size",
    "<p>{{ '%999999999d'|format(1) }}</p>": "argument_size",
    "<p>{{ '%999999999d' % 1 }}</p>": "argument_size",
    "<p>{{ '{:999999999}'.format(1) }}</p>": "argument_size",
    "<p>{{ 'x'.ljust(999999999) }}</p>": "argument_size",
    "<p>{{ 'x'|center(999999999) }}</p>": "argument_size",
    "<p>{% set a = 'a' * 1000 %}{{ a.replace('a', a).replace('a', a) }}</p>": "value_size",
    "<p>{% for i in 'x'*9000 %}{{ 'x' * 90000 }}{% endfor %}</p>": "output_size",
    "<p>{% macro m(n) %}{% if n > 0 %}{{ m(n-1) }}{{ m(n-1) }}{% endif %}{% endmacro %}{{ m(40) }}</p>": "time",
}


def _context():
    return build_context(employee=SAMPLE_EMPLOYEE, brand=SAMPLE_BRAND, banner=None)


@pytest.mark.parametrize("source", HOSTILE)
def test_render_refuses_and_names_the_limit(source):
    with pytest.raises(BudgetExceeded) as caught:
        render(compile_template(source), _context())
    assert caught.value.limit == HOSTILE[source]
    assert f"'{HOSTILE[source]}'" in caught.value.message and caught.value.status_code == 422


@pytest.mark.parametrize("source", HOSTILE)
def test_lint_api_answers_422_naming_the_limit(client, tenant, source):
    r = client.post("/api/templates/lint", json={"source": source}, headers=tenant.headers(Role.it))
    if r.status_code == 200:  # lint reports a template's errors as issues
        assert r.json()["ok"] is False and f"'{HOSTILE[source]}'" in r.text
    else:
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "template_limit" and error["details"]["limit"] == HOSTILE[source]
    saved = client.post(
        "/api/templates", json={"name": "Hostile", "new_source": source}, headers=tenant.headers(Role.it)
    )
    assert saved.status_code == 422 and f"'{HOSTILE[source]}'" in saved.text


@pytest.mark.parametrize(
    "source, reason",
    [
        ("<p>a\x00b</p>", "NUL"),  # refused before the route (service.request_limits); compile says U+0000
        ("<p>one</p>\n<p>two\x1b[31m</p>", "U+001B"),
        ("<p>{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}</p>", "nests too deeply"),
        ("<p>" + "x" * 200_000 + "</p>", "100,000"),
    ],
)
def test_hostile_sources_are_4xx(client, tenant, source, reason):
    with pytest.raises(TemplateCompileError):
        compile_template(source)
    for path in ("/api/templates/lint", "/api/templates"):
        body = {"source": source} if path.endswith("lint") else {"name": "Hostile", "new_source": source}
        r = client.post(path, json=body, headers=tenant.headers(Role.it))
        assert 400 <= r.status_code < 500 or (path.endswith("lint") and r.json()["ok"] is False), r.text
        assert reason in r.text.replace("100000", "100,000")
    if "U+001B" in reason:
        assert r.json()["error"]["details"]["errors"][0]["line"] == 2


def test_a_loop_that_is_fine_stays_fine():
    ok = "<p>{% for l in brand.social_links %}{{ loop.index }}/{{ loop.length }} {{ l.url }}{% endfor %}</p>"
    html = render(compile_template(ok), _context()).html
    assert "1/" in html
    under = "<p>{% for i in 'x' * N %}.{% endfor %}</p>".replace("N", str(MAX_ITERATIONS - 10))
    assert render(compile_template(under), _context()).html.count(".") == MAX_ITERATIONS - 10


def test_a_saved_template_that_runs_out_for_one_employee_is_422_in_preview(client, tenant, db):
    """Saved (the sample employee is small), then previewed for someone whose data makes it run out."""
    source = "<p>{% for c in (employee.department or '') * 80 %}{{ c }}{% endfor %}</p>"
    created = client.post(
        "/api/templates", json={"name": "Data-dependent", "new_source": source}, headers=tenant.headers(Role.it)
    )
    assert created.status_code == 201, created.text
    long_department = "D" * 150  # 150 × 80 = 12,000 iterations
    person = DirectoryPerson(source_id="1", email="big@acme.example", department=long_department)
    with Session(db) as s:
        apply_listing(s, org_id=tenant.org_id, source="csv", dry_run=False, listing=Listing(people=[person]))
        s.commit()
    employees = client.get("/api/employees", headers=tenant.headers(Role.it)).json()["items"]
    r = client.get(
        f"/api/templates/{created.json()['id']}/preview",
        params={"employee_id": employees[0]["id"]},
        headers=tenant.headers(Role.it),
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["limit"] == "loop_iterations"
