"""`relais deploy --dry-run` shows what will change: the mailboxes and aliases, HTML diffs with --diff, a filter
that matches nothing said so; the folder export removes the files of people who left. A subprocess on a freshly
seeded data directory, as a user runs it."""

from sqlmodel import Session, select

from service.directory.models import Employee
from signatures.deploy.models import Deployment
from signatures.export import safe_name
from tests.cli_support import Cli, one_sentence


def test_dry_run_lists_changes_writes_diffs_and_the_export_follows_leavers(tmp_path):
    cli = Cli(tmp_path / "data")
    cli.seed_demo()
    engine = cli.engine()
    with Session(engine) as s:
        active = s.exec(select(Employee).where(Employee.active == True).order_by(Employee.email)).all()  # noqa: E712
        with_alias = next(e for e in active if e.aliases)
        org_id = active[0].org_id

    diffs = tmp_path / "diffs"
    dry = cli.run("deploy", "--provider", "file", "--dry-run", "--diff", str(diffs))
    assert dry.returncode == 0, dry.stderr
    assert f"{len(active)} added" in dry.stdout and "Would change:" in dry.stdout
    for emp in active:
        assert f"added    {emp.email}" in dry.stdout
    assert f"alias {with_alias.aliases[0]}: added" in dry.stdout
    assert len(list(diffs.glob("*.diff.html"))) == len(active)

    applied = cli.run("deploy", "--provider", "file")
    assert applied.returncode == 0, applied.stderr
    folder = cli.settings.data_dir / "export" / f"org-{org_id}"
    assert (folder / f"{safe_name(active[0].email)}.html").exists()

    changed, leaver = active[0], active[1]
    with Session(engine) as s:
        row = s.get(Employee, changed.id)
        row.title = "Directrice des opérations"
        s.add(row)
        gone = s.get(Employee, leaver.id)
        gone.active = False
        s.add(gone)
        s.commit()

    diffs2 = tmp_path / "diffs2"
    again = cli.run("deploy", "--provider", "file", "--dry-run", "--diff", str(diffs2))
    assert again.returncode == 0, again.stderr
    assert f"changed  {changed.email}" in again.stdout
    assert "1 changed" in again.stdout and f"{len(active) - 2} unchanged" in again.stdout
    assert f"Would remove the files of 1 address(es) no active employee has: {safe_name(leaver.email)}" in (
        " ".join(again.stdout.split())
    )
    assert [p.name for p in diffs2.glob("*.diff.html")] == [f"{safe_name(changed.email)}.diff.html"]
    assert "Directrice" in (diffs2 / f"{safe_name(changed.email)}.diff.html").read_text()
    assert (folder / f"{safe_name(leaver.email)}.html").exists(), "a dry run removes nothing"

    final = cli.run("deploy", "--provider", "file")
    assert final.returncode == 0, final.stderr
    assert "Removed the files of 1 address(es)" in " ".join(final.stdout.split())
    assert not any(folder.glob(f"{safe_name(leaver.email)}*"))
    assert "Directrice des opérations" in (folder / f"{safe_name(changed.email)}.html").read_text()

    with Session(engine) as s:
        before = len(s.exec(select(Deployment)).all())
    nobody = cli.run("deploy", "--provider", "file", "--dry-run", "--department", "Nowhere")
    assert nobody.returncode == 1
    assert "No active employee matches the filter (departments: Nowhere)" in one_sentence(nobody)
    assert cli.run("deploy", "--provider", "file", "--diff", str(diffs)).returncode == 2
    with Session(engine) as s:
        assert len(s.exec(select(Deployment)).all()) == before
    engine.dispose()
