"""The one logging setup of `relais serve`, `relais worker` and every CLI command.

Naming, one rule for the whole code base (tests/test_logs.py checks it):

- A module's logger is `logging.getLogger(__name__)`, never a hand-written name.
- The message is an event name, not a sentence: `package.area.event`, three dotted lower_snake parts.
  `package` is the top package of the module that logs (`service`, `signatures`, `newsletter`), `area` the
  subsystem (`deploy`, `clicks`, `directory`, `send`...), `event` what happened (`finished`, `rollup_done`,
  `mailbox_failed`). Which provider or target it concerns is a field (`provider=google`), not a name part.
- The facts go in `extra=` as fields; a field naming a row is `<row>_id` (`deployment_id`, `issue_id`).

Each record is rendered with its fields (everything in `extra=`): `key=value` text for people by default,
one JSON object a line with `RELAIS_LOG_FORMAT=json`. A field whose name says secret, token, password,
authorization, api key, credential or cookie is printed as `[redacted]`, nested ones too. Uvicorn's and
Huey's loggers go through the same handler; uvicorn's access log stays off (it would hold every visitor's
IP address: tracked links are public).
"""

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.settings import Settings

REDACTED = "[redacted]"
# Field names whose values are redacted (also checked against every extra= key in the code by tests/test_logs.py).
SECRET_FIELD_NAMES = re.compile(r"secret|token|passw|authori[sz]ation|api_?key|private_?key|credential|cookie", re.I)
# Attributes every LogRecord has, plus what formatters and uvicorn add: whatever else is there came in `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn repeats its message with ANSI colours
}
_CORE = ("ts", "level", "logger", "event", "exc")  # JSON keys a field may not take over
# Libraries whose INFO lines would drown the events: one line per HTTP request, per migration step.
_QUIETER = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "alembic": logging.WARNING}
_OURS = "_relais_handler"


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of `record` (what was passed in `extra=`), secrets redacted."""
    return {k: _redact(k, v) for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


def _redact(name: str, value: Any) -> Any:
    if SECRET_FIELD_NAMES.search(name):
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact(str(k), v) for k, v in value.items()}
    return value


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        text, is_container = value, False
    elif value is None or isinstance(value, bool | int | float | dict | list | tuple):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        is_container = isinstance(value, dict | list | tuple)
    else:
        text, is_container = str(value), False
    plain = all(c.isprintable() and not c.isspace() and (is_container or c not in '"=') for c in text)
    return text if text and plain else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-12-01T15:46:11.123Z INFO signatures.deploy.finished deployment_id=7 status=done ... logger=...`,
    the traceback (if any) on the lines below."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = {**fields(record), "logger": record.name}
        line = " ".join(
            [_timestamp(record), record.levelname, record.getMessage()]
            + [f"{k}={_text_value(v)}" for k, v in pairs.items()]
        )
        trace = _traceback(self, record)
        return f"{line}\n{trace}" if trace else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, event, the fields, and `exc` (the traceback) if any."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in fields(record).items():
            out[f"field_{key}" if key in _CORE else key] = value
        trace = _traceback(self, record)
        if trace:
            out["exc"] = trace
        return json.dumps(out, ensure_ascii=False, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"log format must be text or json, not {log_format!r}")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (test runners and CLI runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def configure_logging(settings: "Settings | None" = None, *, stream: IO[str] | None = None) -> logging.Handler:
    """Install the one handler on the root logger (replacing the one a previous call installed, so calling it
    again is harmless) and route uvicorn's loggers through it. Returns the handler."""
    if settings is None:
        from service.settings import get_settings

        settings = get_settings()
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    setattr(handler, _OURS, True)
    handler.setFormatter(make_formatter(settings.log_format))
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name, level in _QUIETER.items():  # RELAIS_LOG_LEVEL=DEBUG lets them speak
        logging.getLogger(name).setLevel(max(level, root.level) if root.level > logging.DEBUG else logging.NOTSET)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False  # and with no handler of its own, uvicorn doesn't even build the line
    return handler
