"""Directory files as people export them from Excel — Windows-1252 with `;` and CRLF ("CSV"), UTF-8 with a BOM
("CSV UTF-8"), French column names — imported through the CLI (a subprocess, fresh data directory) and the API,
down to the escaped signature."""

import pytest
from sqlmodel import Session, select

from service.directory.models import Employee
from service.models import Role
from tests.cli_support import Cli, one_sentence

FRENCH_HEADER = "E-mail;Prénom;Nom;Fonction;Service;Site;Téléphone;Portable"
FRENCH_ROWS = [
    "zoe.darcy@acme.example;Zoé;D'Arcy;Chargée d'études;R&D <Ops>;Lyon;+33 4 72 00 00 00;",
    'francois@acme.example;François;Lefèvre;"Ingénieur; qualité";Qualité;Paris;;+33 6 12 00 00 00',
]


def excel_csv(header: str, rows: list[str]) -> bytes:
    """What Excel (French locale) writes for "CSV (séparateur : point-virgule)": cp1252, `;`, CRLF."""
    return "\r\n".join([header, *rows, ""]).encode("cp1252")


def excel_csv_utf8(header: str, rows: list[str]) -> bytes:
    """Excel's "CSV UTF-8": a byte order mark, then UTF-8, `;` and CRLF."""
    return "\r\n".join([header, *rows, ""]).encode("utf-8-sig")


RTL_ROWS = ["noor@acme.example;نور;الهدى;مهندسة;R&D <Ops>;Paris;;", "dana@acme.example;דנה;כהן;;Ventes;Lyon;;"]


@pytest.fixture
def cli(tmp_path) -> Cli:
    cli = Cli(tmp_path / "fresh")
    cli.seed_demo()
    return cli


def _csv_people(cli: Cli) -> dict[str, Employee]:
    engine = cli.engine()
    with Session(engine) as s:
        people = {e.email: e for e in s.exec(select(Employee).where(Employee.source == "csv")).all()}
    engine.dispose()
    return people


def test_cli_imports_an_excel_french_file_dry_run_first(cli, tmp_path):
    path = tmp_path / "annuaire.csv"
    path.write_bytes(excel_csv(FRENCH_HEADER, FRENCH_ROWS))
    dry = cli.run("directory", "import", str(path))
    assert dry.returncode == 0, dry.stderr
    assert "2 would be created" in dry.stdout and "--apply" in dry.stdout
    assert "zoe.darcy@acme.example" in dry.stdout
    assert _csv_people(cli) == {}

    applied = cli.run("directory", "import", str(path), "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "2 were created" in applied.stdout
    people = _csv_people(cli)
    zoe, francois = people["zoe.darcy@acme.example"], people["francois@acme.example"]
    assert (zoe.first_name, zoe.last_name, zoe.title) == ("Zoé", "D'Arcy", "Chargée d'études")
    assert (zoe.department, zoe.office, zoe.phone, zoe.mobile) == ("R&D <Ops>", "Lyon", "+33 4 72 00 00 00", None)
    assert francois.title == "Ingénieur; qualité" and francois.mobile == "+33 6 12 00 00 00"

    out = tmp_path / "out"
    rendered = cli.run("render", "--email", "zoe.darcy@acme.example", "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    html = (out / "zoe.darcy@acme.example.html").read_text()
    assert "Zoé D&#39;Arcy" in html and "Chargée d&#39;études" in html
    assert "R&amp;D &lt;Ops&gt;" in html and "<Ops>" not in html
    text = (out / "zoe.darcy@acme.example.txt").read_text()
    assert "Zoé D'Arcy" in text and "R&D <Ops>" in text


def test_cli_imports_utf8_with_bom_and_right_to_left_names(cli, tmp_path):
    path = tmp_path / "annuaire-utf8.csv"
    path.write_bytes(excel_csv_utf8(FRENCH_HEADER, RTL_ROWS))
    applied = cli.run("directory", "import", str(path), "--apply")
    assert applied.returncode == 0, applied.stderr
    people = _csv_people(cli)
    assert people["noor@acme.example"].first_name == "نور" and people["dana@acme.example"].last_name == "כהן"
    out = tmp_path / "out"
    assert cli.run("render", "--email", "noor@acme.example", "--out", str(out)).returncode == 0
    html = (out / "noor@acme.example.html").read_text()
    assert "نور الهدى" in html and "مهندسة" in html and "R&amp;D &lt;Ops&gt;" in html


def test_cli_overrides_and_errors_name_lines(cli, tmp_path):
    tab = tmp_path / "people.tsv"
    tab.write_bytes(b"email\tfirst_name\tdepartment\r\nada@acme.example\tAda\tR&D, Paris\r\n")
    forced = cli.run("directory", "import", str(tab), "--delimiter", "tab", "--apply")
    assert forced.returncode == 0, forced.stderr
    assert _csv_people(cli)["ada@acme.example"].department == "R&D, Paris"

    cp1252 = tmp_path / "cp1252.csv"
    cp1252.write_bytes(excel_csv(FRENCH_HEADER, FRENCH_ROWS))
    wrong = cli.run("directory", "import", str(cp1252), "--encoding", "utf-8")
    assert wrong.returncode == 1
    assert "Line 1 is not valid utf-8" in one_sentence(wrong)

    bad = tmp_path / "bad.csv"
    bad.write_bytes(excel_csv(FRENCH_HEADER, [FRENCH_ROWS[0], "pas-une-adresse;Jean;Dupont;;;;;", FRENCH_ROWS[0]]))
    refused = cli.run("directory", "import", str(bad), "--apply")
    assert refused.returncode == 1
    message = one_sentence(refused)
    assert "2 row(s) have problems; nothing was imported" in message
    assert "line 3: 'email' is not an email address" in message
    assert "line 4: zoe.darcy@acme.example already appears on line 2" in message

    no_email = tmp_path / "no-email.csv"
    no_email.write_bytes(excel_csv("Prénom;Nom", ["Jean;Dupont"]))
    header = cli.run("directory", "import", str(no_email))
    assert header.returncode == 1 and "Line 1 (the header) has no email column" in one_sentence(header)

    usage = cli.run("directory", "import", str(bad), "--delimiter", "|")
    assert usage.returncode == 2 and "Unknown delimiter" in one_sentence(usage)


# ---------------------------------------------------------------- the same files through the API


def _upload(client, tenant, data: bytes, **params):
    return client.post(
        "/api/directory/import",
        params=params,
        files={"file": ("annuaire.csv", data, "text/csv")},
        headers=tenant.headers(Role.it),
    )


def _employees(db):
    with Session(db) as s:
        return {e.email: e for e in s.exec(select(Employee)).all()}


def test_api_imports_excel_files_dry_run_unless_asked(client, tenant, db):
    data = excel_csv(FRENCH_HEADER, FRENCH_ROWS)
    dry = _upload(client, tenant, data)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["created"] == 2
    assert _employees(db) == {}
    applied = _upload(client, tenant, data, dry_run="false")
    assert applied.status_code == 200 and applied.json()["created"] == 2
    zoe = _employees(db)["zoe.darcy@acme.example"]
    assert (zoe.first_name, zoe.department, zoe.title) == ("Zoé", "R&D <Ops>", "Chargée d'études")

    utf8 = _upload(client, tenant, excel_csv_utf8(FRENCH_HEADER, RTL_ROWS), dry_run="false")
    assert utf8.status_code == 200, utf8.text
    assert _employees(db)["noor@acme.example"].first_name == "نور"


def test_api_escapes_imported_names_into_the_signature(client, tenant, db):
    assert _upload(client, tenant, excel_csv(FRENCH_HEADER, FRENCH_ROWS), dry_run="false").status_code == 200
    it = tenant.headers(Role.it)
    template = client.post("/api/templates", json={"name": "Corporate", "layout": "classic"}, headers=it)
    assert template.status_code == 201, template.text
    body = {"template_id": template.json()["id"], "kind": "default"}
    assert client.put("/api/assignments", json=body, headers=it).status_code == 200
    zoe = _employees(db)["zoe.darcy@acme.example"]
    html = client.get(f"/api/employees/{zoe.id}/signature?format=html", headers=tenant.headers(Role.it)).text
    assert "Zoé D&#39;Arcy" in html and "R&amp;D &lt;Ops&gt;" in html and "<Ops>" not in html


def test_api_overrides_and_line_errors(client, tenant, db):
    data = excel_csv(FRENCH_HEADER, FRENCH_ROWS)
    forced = _upload(client, tenant, data, encoding="utf-8")
    assert forced.status_code == 422
    assert forced.json()["error"]["message"].startswith("Line 1 is not valid utf-8")
    as_comma = _upload(client, tenant, data, delimiter=",")
    assert as_comma.status_code == 422 and "no email column" in as_comma.json()["error"]["message"]
    assert _upload(client, tenant, data, delimiter="|").status_code == 422
    assert "Unknown encoding" in _upload(client, tenant, data, encoding="klingon").json()["error"]["message"]
    latin1 = _upload(client, tenant, data, encoding="latin-1", delimiter=";", dry_run="false")
    assert latin1.status_code == 200 and _employees(db)["francois@acme.example"].last_name == "Lefèvre"
    twice = _upload(client, tenant, excel_csv("email;Nom;last_name", ["a@acme.example;A;B"]))
    assert twice.status_code == 422 and "names a column twice" in twice.json()["error"]["message"]
