"""Engine and sessions. SQLite gets WAL and foreign keys; PostgreSQL is used as is."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol, TypeVar, cast

from sqlalchemy import Table, event, inspect
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import Mapped
from sqlmodel import Session, SQLModel, create_engine

Row = TypeVar("Row", bound=SQLModel)


class _Keyed(Protocol):
    @property
    def id(self) -> int | None: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """A stored time as UTC-aware (SQLite can hand back naive values)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def make_engine(url: str, *, busy_timeout: float = 30.0, **kwargs) -> Engine:
    """An engine for `url`. `busy_timeout` is how long a SQLite writer waits for the lock (seconds)."""
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": busy_timeout}
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work for jobs and the CLI: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_existing(session: Session, model: type[Row], key: object) -> Row:
    """A row the caller knows exists (a job's own deployment, a row it just wrote). Missing means it was deleted
    under us: say so, rather than fail later on an attribute of None."""
    row = session.get(model, key)
    if row is None:
        raise LookupError(f"{model.__name__} {key} does not exist (deleted while in use?)")
    return row


def row_id(row: _Keyed) -> int:
    """The primary key of a row that has been flushed (SQLModel ids are None until then)."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: add and flush it first")
    return row.id


def key_column(model: type[SQLModel]) -> Mapped[int]:
    """`model.id` for a query: a stored row's primary key is never NULL, so what is read is typed `int` (the
    model declares `int | None` only because a new row has no id before its flush)."""
    return cast(Mapped[int], getattr(model, "id"))  # noqa: B009 - SQLModel (the type) declares no id


def table_of(model: type[SQLModel]) -> Table:
    """The model's Core table, for statements built below the ORM (SQLModel's `__table__` is untyped)."""
    return cast(Table, inspect(model).local_table)


def rowcount(result: Result) -> int:
    """Rows an UPDATE or DELETE matched: `Session.execute` is typed to return a Result, but a DML statement's
    result is a CursorResult, the one that carries the count."""
    return cast(CursorResult, result).rowcount
