"""Log lines carry their fields: a real deployment's id and outcome reach the rendered line (text and JSON),
secrets are redacted, `relais` CLI / worker / serve all log through the one setup, and the naming rule of
service/logs.py holds across the code."""

import ast
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlmodel import Session, select

from service.logs import REDACTED, configure_logging, fields
from service.settings import Settings
from signatures.deploy.models import Deployment
from signatures.deploy.targets.base import ConfigurationError
from signatures.deploy.targets.files import FileTarget
from tests.deploy_support import ScriptedTarget, new_deployment, run, seed
from tests.newsletter_support import free_port

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "signatures", "newsletter")
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.asgi", "uvicorn.access")


@pytest.fixture
def logged():
    """Install the real setup writing into a buffer; give back `lines(format)`; restore logging afterwards."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    watched = [logging.getLogger(n) for n in (*UVICORN, "httpx", "httpcore", "alembic")]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in watched]
    buffer = io.StringIO()

    def install(log_format: str) -> io.StringIO:
        buffer.seek(0)
        buffer.truncate()
        configure_logging(Settings(log_format=log_format, log_level="INFO"), stream=buffer)
        return buffer

    yield install
    root.handlers[:] = saved_root[1]
    root.setLevel(saved_root[0])
    for lg, level, handlers, propagate in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


def line_of(text: str, event: str) -> str:
    found = [line for line in text.splitlines() if f" {event} " in f"{line} "]
    assert len(found) == 1, f"expected one {event} line in:\n{text}"
    return found[0]


def test_a_deployment_s_id_status_and_counts_reach_the_text_line(db, tenant, tmp_path, logged):
    seed(db, tenant)
    out = logged("text")
    dep = run(db, new_deployment(db, tenant), FileTarget(tmp_path / "out"))
    assert dep.status == "done" and dep.counts == {"applied": 6}

    finished = line_of(out.getvalue(), "signatures.deploy.finished")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO signatures\.deploy\.finished ", finished)
    assert f" deployment_id={dep.id} " in finished
    assert " status=done " in finished and ' counts={"applied":6} ' in finished
    assert finished.endswith(" logger=signatures.deploy.engine")
    created = line_of(out.getvalue(), "signatures.deploy.created")
    assert f"deployment_id={dep.id} provider=file dry_run=false" in created


def test_a_stopped_deployment_logs_why_and_what_was_not_attempted(db, tenant, tmp_path, logged):
    seed(db, tenant, count=8)
    target = ScriptedTarget(tmp_path / "out")
    target.concurrency = 1
    target.faults = {
        f"p{i}@acme.example": [ConfigurationError("Domain-wide delegation is not granted")] for i in range(8)
    }
    out = logged("text")
    dep = run(db, new_deployment(db, tenant), target)
    assert dep.status == "failed"

    stopped = line_of(out.getvalue(), "signatures.deploy.stopped")
    assert f'deployment_id={dep.id} reason="Domain-wide delegation is not granted"' in stopped  # quoted: spaces
    finished = line_of(out.getvalue(), "signatures.deploy.finished")
    assert f"deployment_id={dep.id} status=failed counts=" in finished
    counts = json.loads(finished.split(" counts=")[1].split(" ")[0])
    assert counts == dep.counts and counts["not_attempted"] >= 1


def test_json_lines_parse_and_carry_the_fields_and_the_traceback(db, tenant, tmp_path, logged):
    seed(db, tenant, count=3)
    target = ScriptedTarget(tmp_path / "out", faults={"p1@acme.example": [RuntimeError("library bug")]})
    out = logged("json")
    dep = run(db, new_deployment(db, tenant), target)
    assert dep.counts == {"applied": 2, "failed": 1}

    records = [json.loads(line) for line in out.getvalue().splitlines()]  # every line is one JSON object
    by_event = {r["event"]: r for r in records}
    finished = by_event["signatures.deploy.finished"]
    assert finished["deployment_id"] == dep.id and finished["status"] == "done"
    assert finished["counts"] == {"applied": 2, "failed": 1}
    assert finished["level"] == "INFO" and finished["logger"] == "signatures.deploy.engine"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", finished["ts"])
    crashed = by_event["signatures.deploy.mailbox_crashed"]
    assert crashed["mailbox"] == "p1@acme.example" and crashed["level"] == "ERROR"
    assert crashed["exc"].startswith("Traceback") and "RuntimeError: library bug" in crashed["exc"]


def test_text_traceback_follows_its_line_and_values_stay_on_one_line(logged):
    out = logged("text")
    log = logging.getLogger("tests.logs")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("tests.logs.failed", extra={"note": 'two\nlines and "quotes"', "empty": "", "n": None})
    first, *rest = out.getvalue().splitlines()
    assert ' note="two\\nlines and \\"quotes\\"" empty="" n=null ' in first + " "
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


def test_fields_named_like_secrets_are_redacted_in_both_formats(logged):
    secrets = {
        "api_token": "rls_live_abcdef",
        "smtp_password": "hunter2-pw",
        "Authorization": "Bearer rls_xyz",
        "client_secret": "cs-123",
        "api_key": "ak-456",
        "config": {"refresh_token": "rt-789", "admin_subject": "admin@acme.example"},
    }
    for log_format in ("text", "json"):
        out = logged(log_format)
        logging.getLogger("tests.logs").warning("tests.logs.secrets", extra=secrets)
        text = out.getvalue()
        for leaked in ("rls_live_abcdef", "hunter2-pw", "rls_xyz", "cs-123", "ak-456", "rt-789"):
            assert leaked not in text, (log_format, text)
        assert "admin@acme.example" in text and text.count(REDACTED) == 6
    record = json.loads(text)
    assert record["config"] == {"refresh_token": REDACTED, "admin_subject": "admin@acme.example"}


def test_fields_are_what_extra_added_and_do_not_take_over_the_core_keys(logged):
    out = logged("json")
    logging.getLogger("tests.logs").info("tests.logs.clash", extra={"event": "mine", "ts": 1, "retries": 2})
    record = json.loads(out.getvalue())
    assert record["event"] == "tests.logs.clash" and record["field_event"] == "mine" and record["field_ts"] == 1
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "x.y.z", (), None)
    assert fields(plain) == {}


def test_the_setup_owns_the_root_handler_and_routes_uvicorn_through_it(logged):
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler(io.StringIO()))  # uvicorn's own config
    logging.getLogger("uvicorn.access").propagate = True
    logged("text")
    out = logged("json")  # a second call replaces the first handler instead of doubling every line
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_relais_handler", False)]
    assert len(ours) == 1
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        assert logging.getLogger(name).handlers == [] and logging.getLogger(name).propagate
    access = logging.getLogger("uvicorn.access")
    assert access.handlers == [] and not access.propagate and not access.hasHandlers()
    logging.getLogger("uvicorn.error").info("Uvicorn running on %s", "http://127.0.0.1:1")
    logging.getLogger("uvicorn.access").info('127.0.0.1:5 - "GET /c/abc HTTP/1.1" 302')
    logging.getLogger("httpx").info('HTTP Request: GET https://graph.microsoft.com/ "HTTP/1.1 200 OK"')
    (line,) = out.getvalue().splitlines()  # the access line and the HTTP chatter are not there
    record = json.loads(line)
    assert record["logger"] == "uvicorn.error" and record["event"] == "Uvicorn running on http://127.0.0.1:1"


# ------------------------------------------------------------------ the real processes


def _env(db, tmp_path, **extra) -> dict[str, str]:
    return dict(
        os.environ,
        RELAIS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        RELAIS_DATA_DIR=str(tmp_path / "data"),
        RELAIS_SEED_DEMO="false",
        RELAIS_LOG_FORMAT="json",
        **extra,
    )


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _wait_for(path: Path, needle: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while needle not in path.read_text():
        assert proc.poll() is None, f"exited {proc.returncode}:\n{path.read_text()}"
        assert time.monotonic() < deadline, f"no {needle!r} in:\n{path.read_text()}"
        time.sleep(0.2)


@pytest.mark.timeout(120)
def test_the_cli_logs_a_deployment_s_outcome_as_json(db, tenant, tmp_path):
    seed(db, tenant, count=3)
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "deploy", "--provider", "file"],
        cwd=ROOT,
        env=_env(db, tmp_path),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with Session(db) as s:
        dep = s.exec(select(Deployment)).one()
    records = _json_lines(done.stderr)  # stderr holds log lines only, each one JSON object
    (finished,) = [r for r in records if r["event"] == "signatures.deploy.finished"]
    assert finished["deployment_id"] == dep.id and finished["status"] == "done"
    assert finished["counts"] == {"applied": 3}
    assert f"Deployment #{dep.id} done" in done.stdout  # the CLI's own summary stays on stdout


@pytest.mark.timeout(150)
def test_the_worker_logs_through_the_setup(db, tenant, tmp_path):
    seed(db, tenant, count=2)
    dep_id = new_deployment(db, tenant)  # pending: the worker picks it up when it starts
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "worker"],
            cwd=ROOT,
            env=_env(db, tmp_path),
            stdout=stdout,
            stderr=stderr,
        )
    try:
        _wait_for(err, '"event": "signatures.deploy.finished"', worker)
    finally:
        worker.kill()
        worker.wait()
    records = _json_lines(err.read_text())
    (finished,) = [r for r in records if r["event"] == "signatures.deploy.finished"]
    assert finished["deployment_id"] == dep_id and finished["counts"] == {"applied": 2}
    assert any(r["logger"] == "huey.consumer" and r["event"].startswith("Huey consumer started") for r in records)


@pytest.mark.timeout(150)
def test_serve_logs_uvicorn_through_the_setup_and_writes_no_access_log(db, tmp_path):
    port = free_port()
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    cmd = [sys.executable, str(ROOT / "main.py"), "serve", "--no-worker", "--port", str(port)]
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(cmd, cwd=ROOT, env=_env(db, tmp_path), stdout=stdout, stderr=stderr)
    try:
        _wait_for(err, "Uvicorn running on", server)
        for _ in range(2):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as resp:
                assert resp.status == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    text = err.read_text()
    records = _json_lines(text)  # every stderr line is ours, uvicorn's included
    said = {r["event"] for r in records if r["logger"] == "uvicorn.error"}
    assert f"Uvicorn running on http://127.0.0.1:{port} (Press CTRL+C to quit)" in said and "Shutting down" in said
    assert "/health" not in text + out.read_text() and "GET" not in text  # no access log line, anywhere


@pytest.mark.timeout(150)
def test_uvicorn_started_by_hand_writes_no_access_log_either(db, tmp_path):
    port = free_port()
    err = tmp_path / "uvicorn.out"  # uvicorn's own access handler writes to stdout: both go here
    cmd = [sys.executable, "-m", "uvicorn", "service.asgi:app", "--port", str(port)]  # access log on by default
    with err.open("w") as output:
        server = subprocess.Popen(cmd, cwd=ROOT, env=_env(db, tmp_path), stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for(err, "Application startup complete", server)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as resp:
            assert resp.status == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    text = err.read_text()
    assert "Shutting down" in text and "/health" not in text


# ------------------------------------------------------------------ the naming rule, checked on the code


def _log_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("log", "logger")
            and node.func.attr in ("debug", "info", "warning", "error", "exception", "critical")
        ):
            yield node


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield package, path, ast.parse(path.read_text(), str(path))


def test_loggers_are_named_after_their_module():
    modules = 0
    for _package, path, tree in _sources():
        for node in tree.body:  # a module's logger; service/logs.py configures others by name, inside functions
            if isinstance(node, ast.Assign) and "getLogger" in ast.unparse(node.value):
                modules += 1
                assert ast.unparse(node.value) == "logging.getLogger(__name__)", f"{path}:{node.lineno}"
    assert modules >= 15


def test_events_are_package_area_event_and_no_field_is_a_secret():
    from service.logs import SECRET_FIELD_NAMES

    seen = 0
    for package, path, tree in _sources():
        for call in _log_calls(tree):
            seen += 1
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            event = call.args[0]
            assert isinstance(event, ast.Constant) and isinstance(event.value, str), f"{where}: not a literal event"
            assert re.fullmatch(rf"{package}\.[a-z][a-z_]*\.[a-z][a-z_]*", event.value), f"{where}: {event.value}"
            for kw in call.keywords:
                if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
                    for key in kw.value.keys:
                        assert isinstance(key, ast.Constant) and not SECRET_FIELD_NAMES.search(key.value), where
    assert seen >= 30  # the walk found the code's log calls (36 when written)
