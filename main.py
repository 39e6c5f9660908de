"""The `relais` command line: serve, migrate, directory import, render, keys."""

import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlmodel import Session, select
from typer._click.exceptions import ClickException, UsageError  # typer vendors click: its classes, not click's

from service.connections.models import Provider
from service.db import make_engine, session_scope
from service.logs import configure_logging
from service.models import Role
from service.settings import get_settings
from signatures.deploy.registry import MAILBOX_TARGETS
from signatures.models import SignatureKind


class RelaisCli(typer.Typer):
    """Mistakes and failures end in one sentence on stderr, not a traceback (unless `relais --debug ...`).

    Exit status: 2 for usage errors (click's own, e.g. an unknown --kind), 1 for failures."""

    def __call__(self, *args, **kwargs):
        try:
            status = super().__call__(*args, standalone_mode=False, **kwargs)
        except UsageError as exc:
            sys.exit(report_usage(exc))
        except ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("Aborted.")
            sys.exit(1)
        except Exception as exc:
            if _debug():
                raise
            sys.exit(report_error(exc))
        sys.exit(status if isinstance(status, int) else 0)


def report_usage(exc: UsageError) -> int:
    """A usage mistake: the sentence and where to read more, no box to parse."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # `relais directory` alone: show its help
        typer.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        return 2
    command = exc.ctx.command_path.replace("main.py", "relais") if exc.ctx else "relais"
    message = exc.format_message().replace("Value error, ", "")  # typer's coercion wording
    err_console.print(f"[red]Error: {message}[/red]", highlight=False)
    err_console.print(f"Try '{command} --help' for help.", highlight=False)
    return exc.exit_code


def _debug() -> bool:
    return _state["debug"] or "--debug" in sys.argv[1:2]


def report_error(exc: Exception) -> int:
    """Print what went wrong as a sentence; return the exit status."""
    from service.errors import AppError

    if isinstance(exc, AppError):
        err_console.print(f"[red]{exc.message}[/red]", highlight=False)
        for err in (exc.details or {}).get("errors", []) if isinstance(exc.details, dict) else []:
            if "line" in err:
                err_console.print(f"  line {err['line']}: {err['reason']}", highlight=False)
            elif "message" in err:
                err_console.print(f"  {err.get('kind', '')} {err['message']}".rstrip(), highlight=False)
        return 1
    err_console.print(f"[red]Error: {exc}[/red]" if str(exc) else f"[red]Error: {type(exc).__name__}[/red]")
    err_console.print("Run again with `relais --debug ...` to see the traceback.", highlight=False)
    return 1


_state = {"debug": False}
DeployProvider = StrEnum("DeployProvider", {name: name for name in MAILBOX_TARGETS})
cli = RelaisCli(
    help="Relais: branded email signatures, campaigns, newsletters and click tracking.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
directory_cli = typer.Typer(help="Employee directory.", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys.", no_args_is_help=True)
connection_cli = typer.Typer(help="Provider connections (Google Workspace, Microsoft 365).", no_args_is_help=True)
cli.add_typer(directory_cli, name="directory")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(connection_cli, name="connection")
newsletter_cli = typer.Typer(help="Internal newsletter: send an issue, follow its progress.", no_args_is_help=True)
cli.add_typer(newsletter_cli, name="newsletter")
secrets_cli = typer.Typer(help="The secret key that encrypts stored credentials and signs links.", no_args_is_help=True)
cli.add_typer(secrets_cli, name="secrets")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # a sentence stays one line, whatever the width


@cli.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the traceback when a command fails.")):
    _state["debug"] = debug
    configure_logging(get_settings())


def _engine():
    settings = get_settings()
    settings.ensure_data_dir()
    return make_engine(settings.effective_database_url)


def _org_id(session: Session, slug: str | None) -> int:
    from service.models import Organisation

    every = session.exec(select(Organisation)).all()
    if not every:
        from service.errors import NotFound

        raise NotFound(
            "There is no organisation in this database yet: `make run` (relais serve with the demo) creates one."
        )
    orgs = [o for o in every if o.slug == slug] if slug else every
    if len(orgs) != 1:
        names = ", ".join(o.slug for o in every)
        raise typer.BadParameter(f"choose an organisation with --org (have: {names})", param_hint="--org")
    return orgs[0].id


def _check_key(engine) -> None:
    """Stop, with what to do, when the secret key is not the one the database was set up with."""
    from service.key_check import SecretKeyMismatch, check_secret_key

    try:
        check_secret_key(engine, get_settings())
    except SecretKeyMismatch as exc:
        console.print(f"[red]Relais will not start:[/red] {exc}")
        raise typer.Exit(1) from None


def _prepare(engine, seed: bool) -> str | None:
    from service.demo import seed_demo
    from service.migrate import upgrade

    upgrade(engine)
    _check_key(engine)
    if not seed:
        return None
    with session_scope(engine) as session:
        return seed_demo(session, get_settings())


@cli.command()
def config():
    """Print every RELAIS_* setting with its default and meaning (Markdown)."""
    from service.config_docs import settings_markdown

    typer.echo(settings_markdown(), nl=False)


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
    with_worker: bool = typer.Option(True, "--with-worker/--no-worker", help="Start a job worker beside the web."),
):
    """Migrate, seed the demo organisation on first run when asked (RELAIS_SEED_DEMO=true, as `make run`
    does), and serve the API (with a job worker).

    Stopping it (Ctrl-C, SIGTERM) stops the worker too; the worker also stops by itself if this process dies."""
    import signal

    import uvicorn

    from service.lifeline import spawn_child, stop_child

    settings = get_settings()
    engine = _engine()
    new_key = _prepare(engine, seed=settings.seed_demo)
    from service.demo import DEMO_KEY_FILE

    key_file = settings.data_dir / DEMO_KEY_FILE
    base = f"http://{host}:{port}"
    console.print(f"\n[bold]Relais[/bold] on {base}  ·  API docs {base}/docs")
    if new_key:  # printed once, when it is created (kept, 0600, in the data folder)
        console.print(f"Demo organisation seeded. Admin API key: [bold]{new_key}[/bold]  (saved in {key_file})")
    logins = settings.data_dir / "demo-logins"
    if logins.exists():
        console.print(f"Sign in at {base}/sign-in with a demo login from [bold]{logins}[/bold] (ROLE EMAIL PASSWORD;"
                      " the employee one opens the employee space, /me)")  # fmt: skip
    console.print(f"Try: curl -H 'Authorization: Bearer <key>' {base}/api/employees\n")
    worker = spawn_child([sys.executable, __file__, "worker"]) if with_worker else None
    # uvicorn re-raises the signal that stopped it once it has shut down; without a handler of ours SIGTERM would
    # then kill this process before the `finally` below stops the worker.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        # No access log: it would write every visitor's IP address (tracked links are public).
        uvicorn.run(
            "service.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_config=None,  # uvicorn's loggers go through service/logs.py's handler, at RELAIS_LOG_LEVEL
            proxy_headers=True,
            access_log=False,
        )
    finally:
        if worker:
            stop_child(worker)


@cli.command()
def worker(
    threads: int = typer.Option(2, help="Jobs run at once by this worker."),
    parent_pid: int | None = typer.Option(None, hidden=True, help="Stop when this process (relais serve) is gone."),
):
    """Run a job consumer: deployments, scheduled re-deployments, directory syncs, newsletter sends."""
    from huey.consumer import Consumer

    if parent_pid is not None:
        from service.lifeline import tie_to_parent

        tie_to_parent(parent_pid)

    from service.features import load_tasks
    from service.jobs import get_huey

    _prepare(_engine(), seed=False)
    load_tasks()
    console.print(f"Worker started ({'Redis' if get_settings().redis_url else 'SQLite'} queue).")
    Consumer(get_huey(), workers=threads, worker_type="thread", periodic=True, check_worker_health=True).run()


@cli.command()
def deploy(
    provider: DeployProvider = typer.Option(
        ..., help="The target: google, microsoft or file (see docs/deployments.md)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
    diff: Path | None = typer.Option(
        None, "--diff", file_okay=False, help="With --dry-run: write an HTML diff per changed mailbox into DIR."
    ),
    department: list[str] = typer.Option([], help="Only this department (repeatable)."),
    office: list[str] = typer.Option([], help="Only this office (repeatable)."),
    group: list[str] = typer.Option([], help="Only members of this group (repeatable)."),
    email: list[str] = typer.Option([], help="Only this mailbox (repeatable)."),
    force: bool = typer.Option(False, help="Rewrite every mailbox, even those already up to date."),
    queue: bool = typer.Option(False, "--queue", help="Hand it to the workers instead of running it here."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Deploy signatures: only mailboxes whose signature changed are written; --dry-run lists them."""
    from signatures.deploy import engine as deploy_engine
    from signatures.deploy.models import Deployment
    from signatures.deploy.planning import select_employees

    if diff and not dry_run:
        raise typer.BadParameter("--diff shows what a dry run would change: add --dry-run", param_hint="--diff")
    engine = _engine()
    _prepare(engine, seed=False)
    chosen = (("departments", department), ("offices", office), ("groups", group), ("emails", email))
    target_filter = {k: v for k, v in chosen if v}
    with session_scope(engine) as session:
        org_id = _org_id(session, org)
        if target_filter and not select_employees(session, org_id=org_id, target_filter=target_filter):
            named = "; ".join(f"{k}: {', '.join(v)}" for k, v in target_filter.items())
            err_console.print(f"[red]No active employee matches the filter ({named}); nothing to deploy.[/red]")
            raise typer.Exit(1)
        if force:
            target_filter["force"] = True
        dep = deploy_engine.create_deployment(
            session,
            org_id=org_id,
            provider=provider.value,
            dry_run=dry_run,
            target_filter=target_filter,
            created_by="cli",
        )
        dep_id = dep.id
    if queue:
        from signatures.deploy.jobs import run_deployment

        run_deployment(dep_id)
        console.print(f"Deployment #{dep_id} queued; follow it with GET /api/deployments/{dep_id}.")
        return
    from signatures.deploy.jobs import run

    with Progress(
        TextColumn("deploying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
    ) as progress:
        task = progress.add_task("deploy", total=None, counts="")
        run(
            dep_id,
            db=engine,
            on_progress=lambda p: progress.update(
                task, completed=p.done, total=p.total, counts=" ".join(f"{k}={v}" for k, v in sorted(p.counts.items()))
            ),
        )
    with Session(engine) as session:
        dep = session.get(Deployment, dep_id)
        _print_deployment(session, dep, diff)
        if dep.status.value == "failed":
            raise typer.Exit(1)


def _print_deployment(session: Session, dep, diff_dir: Path | None) -> None:
    """The outcome, then every mailbox that changes (with its aliases) and every problem; diffs if asked."""
    from signatures.deploy.diffs import mailbox_diff
    from signatures.deploy.models import DeploymentItem
    from signatures.export import safe_name, write_atomic

    console.print(
        f"Deployment #{dep.id} {dep.status.value}: "
        + (", ".join(f"{v} {k}" for k, v in sorted(dep.counts.items())) or "no mailbox")
        + f"; {dep.writes} write(s)."
    )
    if dep.message:
        console.print(f"[yellow]{dep.message}[/yellow]", highlight=False)
    changing = ("added", "changed") if dep.dry_run else ("applied",)
    items = session.exec(select(DeploymentItem).where(DeploymentItem.deployment_id == dep.id)
                         .order_by(DeploymentItem.mailbox)).all()  # fmt: skip
    changed = [i for i in items if i.outcome in changing]
    if changed:
        console.print("Would change:" if dep.dry_run else "Written:")
    for item in changed:
        aliases = [a for a in item.addresses if a["address"].lower() != item.mailbox.lower()]
        shown = "".join(f"\n      alias {a['address']}: {a.get('outcome') or a['action']}" for a in aliases)
        console.print(f"  {item.outcome:<8} {item.mailbox}{shown}", highlight=False)
    for item in items:
        if item.outcome in ("failed", "skipped", "deferred", "unconfirmed"):
            console.print(f"  {item.outcome:<8} {item.mailbox}: {item.reason}", highlight=False)
    if diff_dir is not None and changed:
        diff_dir.mkdir(parents=True, exist_ok=True)
        for item in changed:
            write_atomic(
                diff_dir / f"{safe_name(item.mailbox)}.diff.html",
                mailbox_diff(session, dep, item, base_url=get_settings().public_base_url),
            )
        console.print(f"Wrote {len(changed)} HTML diff(s) to {diff_dir}.")


@connection_cli.command("test")
def connection_test(
    provider: Provider = typer.Argument(..., help="google or microsoft (see docs/deployments.md)."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Obtain a real token and make one read call; say what is missing."""
    from service.connections.providers import connection_module
    from service.connections.service import get_connection

    engine = _engine()
    _prepare(engine, seed=False)
    with Session(engine) as session:
        row = get_connection(session, org_id=_org_id(session, org), provider=provider)
        result = connection_module(row.provider).test_connection(row, get_settings())
    for check in result["checks"]:
        mark = "[green]ok[/green]  " if check["ok"] else "[red]FAIL[/red]"
        console.print(f"{mark} {check['name']}: {check['message']}")
    if not result["ok"]:
        raise typer.Exit(1)


@directory_cli.command("sync")
def directory_sync(
    provider: Provider = typer.Argument(..., help="google or microsoft"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would change; change nothing."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Sync employees from Google Workspace or Microsoft 365 (people who left are deactivated)."""
    from service.directory.runs import record
    from service.directory.sources import make_directory
    from service.directory.sync import sync_directory

    engine = _engine()
    _prepare(engine, seed=False)
    with session_scope(engine) as session:
        org_id = _org_id(session, org)
        directory = make_directory(session, org_id=org_id, provider=provider, settings=get_settings())
        report = sync_directory(session, org_id=org_id, directory=directory, dry_run=dry_run)
        record(session, org_id=org_id, report=report, trigger="cli", requested_by=None)
    _print_report(report, dry_run)


def _print_report(report, dry_run: bool) -> None:
    verb = "would be" if dry_run else "were"
    console.print(
        f"{report.created} {verb} created, {report.updated} {verb} updated, "
        f"{report.deactivated} {verb} deactivated, {report.unchanged} unchanged, "
        f"{len(report.skipped)} skipped."
    )
    for change in report.changes[:50]:
        console.print(f"  {change.action:<11} {change.email} {', '.join(change.fields)}")
    for skipped in report.skipped[:50]:
        console.print(f"  skipped     {skipped['ref']}: {skipped['reason']}")


@directory_cli.command("import")
def directory_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV with a header row (docs/directory.md)."),
    apply: bool = typer.Option(False, "--apply", help="Make the changes (without it: a dry run that changes nothing)."),
    delimiter: str | None = typer.Option(None, help="',', ';' or 'tab' (default: detected from the header)."),
    encoding: str | None = typer.Option(None, help="e.g. utf-8, cp1252 (default: detected)."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Import employees from CSV: shows who would be created / updated / deactivated; --apply makes it so."""
    from service.directory.runs import record
    from service.directory.sources.csv_file import CsvDirectory, check_options
    from service.directory.sync import sync_directory
    from service.errors import Invalid

    try:
        delimiter, encoding = check_options(delimiter, encoding)
    except Invalid as exc:
        raise typer.BadParameter(exc.message) from None
    engine = _engine()
    _prepare(engine, seed=False)
    directory = CsvDirectory(file.read_bytes(), delimiter=delimiter, encoding=encoding)
    with session_scope(engine) as session:
        org_id = _org_id(session, org)
        report = sync_directory(session, org_id=org_id, directory=directory, dry_run=not apply)
        record(session, org_id=org_id, report=report, trigger="cli", requested_by=None)
    _print_report(report, not apply)
    if not apply:
        console.print("Dry run: nothing was changed. Run again with --apply to make these changes.")


@cli.command()
def render(
    out: Path = typer.Option(..., "--out", help="Folder to write <email>.html and <email>.txt into."),
    all_: bool = typer.Option(False, "--all", help="Every active employee."),
    email: list[str] = typer.Option([], "--email", help="Only these employees (repeatable)."),
    kind: SignatureKind = typer.Option(SignatureKind.new, help="new (new mail) or reply (replies and forwards)."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Write signatures to files (one .html and one .txt per employee), exactly as a deployment would now."""
    from signatures.export import export_signatures

    if not all_ and not email:
        raise typer.BadParameter("give --all or at least one --email")
    engine = _engine()
    _prepare(engine, seed=False)
    with session_scope(engine) as session:
        org_id = _org_id(session, org)
        with Progress(
            TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
        ) as progress:
            task = progress.add_task("render", total=None)
            result = export_signatures(
                session,
                org_id=org_id,
                out=out,
                kind=kind,
                emails=email or None,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                settings=get_settings(),
            )
    if email and not result.written and not result.failed:
        err_console.print(f"[red]--email matched nobody: no active employee is {', '.join(email)}.[/red]")
        raise typer.Exit(1)
    console.print(
        f"Wrote {result.written} signature(s) to {out}" + (f"; {len(result.failed)} failed:" if result.failed else ".")
    )
    for failed_email, reason in result.failed:
        console.print(f"  [red]{failed_email}[/red]: {reason}")
    for missing in result.unmatched:
        err_console.print(f"  [red]{missing}[/red]: no active employee has this email")
    if result.failed or result.unmatched:
        raise typer.Exit(1)


@keys_cli.command("create")
def keys_create(
    name: str = typer.Argument(..., help="Who or what the key is for."),
    role: Role = typer.Option(Role.admin, help="admin, comms or it."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Create an API key and print it once."""
    from service.auth import create_api_key
    from service.models import STAFF_ROLES

    if role not in STAFF_ROLES:
        raise typer.BadParameter("choose admin, comms or it (employees sign in to the portal)", param_hint="--role")

    engine = _engine()
    _prepare(engine, seed=False)
    with session_scope(engine) as session:
        _row, key = create_api_key(session, org_id=_org_id(session, org), name=name, role=role)
    console.print(key)


@newsletter_cli.command("send")
def newsletter_send(
    issue: int = typer.Argument(..., help="Issue id."),
    test: str | None = typer.Option(None, "--test", help="Send one test copy to this address instead."),
    employee: int | None = typer.Option(None, "--as-employee", help="With --test: render it for this employee."),
):
    """Send an issue now (or resume an interrupted send): every recipient exactly once."""
    from newsletter.mailer import SmtpMailer
    from newsletter.previews import send_test
    from newsletter.sending import send_issue
    from service.errors import AppError

    settings = get_settings()
    engine = _engine()
    _prepare(engine, seed=False)
    try:
        if test:
            msg_id = send_test(engine, issue, test, SmtpMailer(settings), settings, employee_id=employee)
            console.print(f"Test copy sent to {test} ({msg_id}).")
            return
        with Progress(
            TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"), console=console
        ) as bar:
            task = bar.add_task("", total=None)

            def show(rep) -> None:
                done = rep.sent + rep.unconfirmed + rep.failed + rep.skipped
                note = "waiting for the SMTP server" if rep.waiting_for_smtp else f"{rep.failed} failed"
                bar.update(task, completed=done, total=rep.total, description=note)

            rep = send_issue(engine, issue, SmtpMailer(settings), settings, on_progress=show)
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"Issue {issue}: {rep.status}; {rep.sent} sent, {rep.unconfirmed} unconfirmed, "
        f"{rep.failed} failed, {rep.skipped} skipped of {rep.total}."
    )
    for err in rep.errors[:20]:
        console.print(f"  [red]{err['email']}[/red]: {err['error']}")


@newsletter_cli.command("status")
def newsletter_status(issue: int = typer.Argument(..., help="Issue id.")):
    """Progress of an issue's send."""
    import json

    from newsletter.progress import progress

    with session_scope(_engine()) as session:
        console.print_json(json.dumps(progress(session, issue_id=issue).as_dict()))


# ---------------------------------------------------------------- mail-flow signatures: the SMTP relay

relay_cli = typer.Typer(
    help="Mail-flow signatures (docs/mail-flow.md). Without a command: run the SMTP relay that signs each "
    "message and answers only after the next hop accepted it. `setup`: print the provider wiring.",
    invoke_without_command=True,
)
cli.add_typer(relay_cli, name="relay")


@relay_cli.callback()
def relay(
    ctx: typer.Context,
    listen: str | None = typer.Option(None, help="HOST:PORT to listen on (default RELAIS_RELAY_LISTEN)."),
    next_hop: str | None = typer.Option(None, help="HOST:PORT to hand mail to (default RELAIS_RELAY_NEXT_HOP)."),
    org: str | None = typer.Option(None, help="Organisation slug (default RELAIS_RELAY_ORG, or the only one)."),
):
    """Run the signing relay: each message is signed and accepted by the next hop before we answer."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    from signatures.relay.run import build_handler, relay_config, serve, status_reporter

    settings = get_settings()
    try:
        config = relay_config(settings, listen=listen, next_hop=next_hop)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    engine = _engine()
    _prepare(engine, seed=False)
    with Session(engine) as session:
        org_id = _org_id(session, org or settings.relay_org or None)
    handler = build_handler(settings, config, engine=engine, org_id=org_id)
    try:
        asyncio.run(serve(config, handler, report=status_reporter(engine, org_id=org_id, config=config)))
    except (ValueError, OSError) as exc:  # a bad TLS setup or a busy port: say it, no traceback
        console.print(f"[red]The relay could not start: {exc}[/red]")
        raise typer.Exit(1) from None


class RelaySetupProvider(StrEnum):
    microsoft = "microsoft"
    google = "google"


@relay_cli.command("setup")
def relay_setup(
    provider: RelaySetupProvider = typer.Argument(..., help="microsoft or google"),
    relay_host: str | None = typer.Option(None, help="The relay's public FQDN (default RELAIS_RELAY_HOSTNAME)."),
    group: str | None = typer.Option(None, help="Sign only for members of this group (pilot), by address."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Print the provider-side wiring: Exchange Online PowerShell, or the Google Admin console steps."""
    from signatures.relay.setup import setup_for

    settings = get_settings()
    engine = _engine()
    _prepare(engine, seed=False)
    with Session(engine) as session:
        org_id = None if settings.relay_domains else _org_id(session, org or settings.relay_org or None)
        text = setup_for(session, settings, org_id=org_id, provider=provider.value, relay_host=relay_host, group=group)
    typer.echo(text)


@secrets_cli.command("rotate")
def secrets_rotate(
    new_key: str = typer.Option(
        "",
        "--new-key",
        envvar="RELAIS_NEW_SECRET_KEY",
        hide_input=True,
        help="The new passphrase, when the instance uses RELAIS_SECRET_KEY (set it there afterwards).",
    ),
):
    """Re-encrypt the stored secrets with a new key; links already sent keep working. Stop the service first.

    With a key file (RELAIS_SECRET_KEY unset) a new key file is written in place of the old one. With
    RELAIS_SECRET_KEY, give the new passphrase (--new-key or RELAIS_NEW_SECRET_KEY), then set RELAIS_SECRET_KEY
    to it before starting the service again."""
    import os

    from cryptography.fernet import Fernet

    from service.crypto import KEY_FILE, key_from_passphrase
    from service.key_check import rotate_secret_key

    settings = get_settings()
    engine = _engine()
    _prepare(engine, seed=False)  # migrated, and the current key is the database's
    if settings.secret_key is not None:
        if not new_key or new_key == settings.secret_key.get_secret_value():
            raise typer.BadParameter("give a new passphrase with --new-key (or RELAIS_NEW_SECRET_KEY)")
        count = rotate_secret_key(engine, settings, key_from_passphrase(new_key))
        console.print(f"Re-encrypted {count} secret(s). Now set RELAIS_SECRET_KEY to the new passphrase, then start.")
        return
    path = settings.data_dir / KEY_FILE
    staged = path.with_name(KEY_FILE + ".new")
    key = Fernet.generate_key()
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    count = rotate_secret_key(engine, settings, key)  # if this fails, the old key file is still in force
    os.replace(staged, path)
    console.print(f"Re-encrypted {count} secret(s); the new key is in {path} (back it up with the database).")


# ---------------------------------------------------------------- page logins (service.accounts)

users_cli = typer.Typer(help="People who sign in to the web pages.", no_args_is_help=True)
cli.add_typer(users_cli, name="users")


def _ask_password() -> str:
    return typer.prompt("Password (12 characters or more)", hide_input=True, confirmation_prompt=True)


@users_cli.command("create")
def users_create(
    email: str = typer.Argument(..., help="The address they sign in with."),
    role: str = typer.Option(..., help="admin, comms, it or employee (the portal only)."),
    name: str = typer.Option("", help="Their name, as the pages show it."),
    org: str | None = typer.Option(None, help="Organisation slug (when there are several)."),
):
    """Create a page login; asks for the password (or reads RELAIS_NEW_PASSWORD)."""
    import os

    from service.accounts.service import create_user
    from service.errors import AppError
    from service.models import Role

    if role not in {r.value for r in Role}:
        raise typer.BadParameter("choose admin, comms, it or employee", param_hint="--role")
    password = os.environ.get("RELAIS_NEW_PASSWORD") or _ask_password()
    engine = _engine()
    _prepare(engine, seed=False)
    try:
        with session_scope(engine) as session:
            user = create_user(session, org_id=_org_id(session, org), email=email, role=Role(role), name=name,
                               password=password)  # fmt: skip
            created = user.email
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]Created {created} ({role}).[/green] Sign in at {get_settings().public_base_url}/sign-in")


@users_cli.command("set-password")
def users_set_password(email: str = typer.Argument(..., help="The user's email.")):
    """Set a user's password (ends their sessions); asks for it (or reads RELAIS_NEW_PASSWORD)."""
    import os

    from service.accounts.service import set_password, user_by_email
    from service.errors import AppError

    password = os.environ.get("RELAIS_NEW_PASSWORD") or _ask_password()
    engine = _engine()
    _prepare(engine, seed=False)
    try:
        with session_scope(engine) as session:
            user = user_by_email(session, email)
            if user is None:
                console.print(f"[red]No user {email}.[/red]")
                raise typer.Exit(1)
            ended = set_password(session, user, password)
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]Password set for {email}[/green]; {ended} session(s) ended.")


if __name__ == "__main__":
    cli()
