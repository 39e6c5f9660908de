"""The CLI answers mistakes with a sentence (exit 2 for usage errors, 1 for failures; a traceback only with
--debug), and `relais render` writes what gets deployed. Each walked as a user does: a subprocess on a freshly
seeded data directory."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from service.app import create_app
from service.directory.models import Employee
from signatures.deploy.models import Deployment
from tests.cli_support import Cli, one_sentence


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("fresh") / "data")
    cli.key = cli.seed_demo()
    return cli


USAGE = [
    (["render", "--all", "--out", "x", "--kind", "forward"], "'forward' is not one of 'new', 'reply'"),
    (["keys", "create", "bot", "--role", "superuser"], "'superuser' is not one of 'admin', 'comms', 'it'"),
    (["deploy", "--provider", "gmail"], "'gmail' is not one of 'google', 'microsoft', 'file'"),
    (["connection", "test", "exchange"], "'exchange' is not one of 'google', 'microsoft'"),
]
FAILURES = [
    (["connection", "test", "microsoft"], "No microsoft connection yet: PUT /api/connections/microsoft first."),
    (["directory", "sync", "google", "--dry-run"], "No google connection yet: PUT /api/connections/google first."),
    (["newsletter", "status", "99"], "There is no newsletter issue 99."),
    (["render", "--email", "nobody@x.fr", "--out", "unused"], "--email matched nobody"),
]


@pytest.mark.parametrize(("args", "says"), USAGE, ids=[" ".join(a[:2]) for a, _ in USAGE])
def test_usage_mistakes_exit_2_with_a_sentence(cli, args, says):
    proc = cli.run(*args)
    assert proc.returncode == 2
    assert says in one_sentence(proc)


@pytest.mark.parametrize(("args", "says"), FAILURES, ids=[" ".join(a[:2]) for a, _ in FAILURES])
def test_failures_exit_1_with_the_message_alone(cli, args, says):
    proc = cli.run(*args)
    assert proc.returncode == 1
    message = one_sentence(proc)
    assert says in message
    assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr


def test_an_unknown_provider_creates_no_deployment(cli):
    engine = cli.engine()
    with Session(engine) as s:
        before = s.exec(select(func.count()).select_from(Deployment)).one()
    assert cli.run("deploy", "--provider", "gmail", "--dry-run").returncode == 2
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Deployment)).one() == before
    engine.dispose()


def test_an_empty_database_says_where_an_organisation_comes_from(tmp_path):
    empty = Cli(tmp_path / "empty")
    proc = empty.run("keys", "create", "bot")
    assert proc.returncode == 1
    assert "There is no organisation in this database yet" in one_sentence(proc)


def test_debug_shows_the_traceback(cli):
    proc = cli.run("--debug", "newsletter", "status", "99")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "NotFound" in proc.stderr


def test_render_writes_what_gets_deployed_banner_included(cli, tmp_path):
    engine = cli.engine()
    with Session(engine) as s:
        emp = s.exec(select(Employee).where(Employee.active == True).order_by(Employee.id)).first()  # noqa: E712
    out = tmp_path / "out"
    proc = cli.run("render", "--email", emp.email.upper(), "--email", "nobody@x.fr", "--out", str(out))
    assert proc.returncode == 1 and "nobody@x.fr: no active employee has this email" in one_sentence(proc)
    exported = (out / f"{emp.email}.html").read_text()
    assert "/c/" in exported, "the campaign banner's tracked link"

    app = create_app(settings=cli.settings, engine=engine)
    with TestClient(app) as client:
        api = client.get(
            f"/api/employees/{emp.id}/signature", headers={"Authorization": f"Bearer {cli.key}"}
        ).json()  # fmt: skip
    assert exported == api["html"]
    assert (out / f"{emp.email}.txt").read_text() == api["text"]
    engine.dispose()
