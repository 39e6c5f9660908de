"""The `relais` command line: serve, migrate, directory import, render, keys."""

import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlmodel import Session, select

from service.db import make_engine, session_scope
from service.settings import get_settings

cli = typer.Typer(help="Relais: branded email signatures, campaigns, newsletters and click tracking.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
directory_cli = typer.Typer(help="Employee directory.", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys.", no_args_is_help=True)
cli.add_typer(directory_cli, name="directory")
cli.add_typer(keys_cli, name="keys")
console = Console()


def _engine():
    settings = get_settings()
    settings.ensure_data_dir()
    return make_engine(settings.effective_database_url)


def _org_id(session: Session, slug: str | None) -> int:
    from service.models import Organisation

    orgs = session.exec(select(Organisation)).all()
    if slug:
        orgs = [o for o in orgs if o.slug == slug]
    if len(orgs) != 1:
        names = ", ".join(o.slug for o in session.exec(select(Organisation)).all()) or "none yet"
        raise typer.BadParameter(f"choose an organisation with --org (have: {names})")
    return orgs[0].id


def _prepare(engine, seed: bool) -> str | None:
    from service.demo import seed_demo
    from service.migrate import upgrade

    upgrade(engine)
    if not seed:
        return None
    with session_scope(engine) as session:
        return seed_demo(session, get_settings())


@cli.command()
def migrate():
    """Apply database migrations."""
    _prepare(_engine(), seed=False)
    console.print("[green]Database is up to date.[/green]")


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Web worker processes."),
):
    """Migrate, seed the demo organisation on first run, and serve the API."""
    import uvicorn

    settings = get_settings()
    engine = _engine()
    new_key = _prepare(engine, seed=settings.seed_demo)
    from service.demo import DEMO_KEY_FILE

    key_file = settings.data_dir / DEMO_KEY_FILE
    base = f"http://{host}:{port}"
    console.print(f"\n[bold]Relais[/bold] on {base}  ·  API docs {base}/docs")
    if new_key:
        console.print(f"Demo organisation seeded. Admin API key: [bold]{new_key}[/bold]")
    elif key_file.exists():
        console.print(f"Demo admin API key: [bold]{key_file.read_text().strip()}[/bold]  ({key_file})")
    console.print(f"Try: curl -H 'Authorization: Bearer <key>' {base}/api/employees\n")
    uvicorn.run("service.asgi:app", host=host, port=port, workers=workers, log_level="info",
                proxy_headers=True)


@directory_cli.command("import")
def directory_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="UTF-8 CSV with a header row."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would change; change nothing."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Import employees from CSV: created / updated / deactivated, all rows checked first."""
    from service.errors import AppError
    from signatures.csv_import import CsvDirectory
    from signatures.directory import sync_directory

    engine = _engine()
    _prepare(engine, seed=False)
    try:
        with session_scope(engine) as session:
            report = sync_directory(session, org_id=_org_id(session, org), directory=CsvDirectory(file.read_bytes()),
                                    dry_run=dry_run)
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        for err in (exc.details or {}).get("errors", []):
            console.print(f"  line {err['line']}: {err['reason']}")
        raise typer.Exit(1) from None
    verb = "would be" if dry_run else "were"
    console.print(f"{report.created} {verb} created, {report.updated} {verb} updated, "
                  f"{report.deactivated} {verb} deactivated, {report.unchanged} unchanged.")
    for change in report.changes[:50]:
        console.print(f"  {change.action:<11} {change.email} {', '.join(change.fields)}")


@cli.command()
def render(
    out: Path = typer.Option(..., "--out", help="Folder to write <email>.html and <email>.txt into."),
    all_: bool = typer.Option(False, "--all", help="Every active employee."),
    email: list[str] = typer.Option([], "--email", help="Only these employees (repeatable)."),
    variant: str = typer.Option("new", help="new or reply."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Write signatures to files: one .html and one .txt per employee."""
    from signatures.export import export_signatures
    from signatures.models import Variant

    if not all_ and not email:
        raise typer.BadParameter("give --all or at least one --email")
    engine = _engine()
    _prepare(engine, seed=False)
    with session_scope(engine) as session:
        org_id = _org_id(session, org)
        with Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console) as progress:
            task = progress.add_task("render", total=None)
            result = export_signatures(
                session, org_id=org_id, out=out, variant=Variant(variant), emails=email or None,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    console.print(f"Wrote {result.written} signature(s) to {out}" +
                  (f"; {len(result.failed)} failed:" if result.failed else "."))
    for failed_email, reason in result.failed:
        console.print(f"  [red]{failed_email}[/red]: {reason}")
    if result.failed:
        raise typer.Exit(1)


@keys_cli.command("create")
def keys_create(
    name: str = typer.Argument(..., help="Who or what the key is for."),
    role: str = typer.Option("admin", help="admin, comms or it."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Create an API key and print it once."""
    from service.auth import create_api_key
    from service.models import Role

    engine = _engine()
    _prepare(engine, seed=False)
    with session_scope(engine) as session:
        _row, key = create_api_key(session, org_id=_org_id(session, org), name=name, role=Role(role))
    console.print(key)


if __name__ == "__main__":
    logging.basicConfig(level=get_settings().log_level)
    cli()
