"""`relais render --all --out DIR`: one .html and one .txt per active employee."""

from sqlmodel import select
from typer.testing import CliRunner

import main
from service.db import session_scope
from service.demo import seed_demo
from service.directory.models import Employee
from service.settings import get_settings


def test_render_all_writes_one_pair_per_active_employee(tmp_path, db, settings, monkeypatch):
    with session_scope(db) as s:
        seed_demo(s, settings)
        employees = s.exec(select(Employee)).all()
        someone = employees[0]
        someone.active = False
        active = len(employees) - 1
    monkeypatch.setenv("RELAIS_DATABASE_URL", db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RELAIS_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        out = tmp_path / "out"
        result = CliRunner().invoke(main.cli, ["render", "--all", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"Wrote {active} signature(s)" in result.output
        html = sorted(out.glob("*.html"))
        assert len(html) == active and len(list(out.glob("*.txt"))) == active
        assert not (out / f"{someone.email}.html").exists()
        sample = html[0].read_text()
        assert "<table" in sample and "<style" not in sample
        replies = tmp_path / "replies"
        result = CliRunner().invoke(main.cli, ["render", "--all", "--kind", "reply", "--out", str(replies)])
        assert result.exit_code == 0, result.output
        assert (replies / html[0].name).read_text() != sample  # the shipped layouts have a shorter reply
        wrong = CliRunner().invoke(main.cli, ["render", "--all", "--kind", "forward", "--out", str(replies)])
        assert wrong.exit_code == 2  # a usage error (tests/test_cli_mistakes.py checks its sentence)
        missing = CliRunner().invoke(main.cli, ["render", "--out", str(out)])
        assert missing.exit_code != 0 and "--all" in missing.output
    finally:
        get_settings.cache_clear()
