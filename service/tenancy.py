"""Tenant scoping in one place: every row an API caller names by id is fetched through `get_owned`, which
answers 404 for another organisation's row exactly as for a missing one (no existence oracle)."""

from typing import TypeVar

from sqlmodel import Session, SQLModel

from service.errors import NotFound
from service.sentences import N_

Row = TypeVar("Row", bound=SQLModel)

MAX_ID = 2**63 - 1  # ids beyond a signed 64-bit integer can't exist; asking for one is a plain 404


def get_owned(session: Session, model: type[Row], row_id: int, *, org_id: int, label: str | None = None) -> Row:
    """The row `row_id` of `model` if it belongs to `org_id`, else NotFound naming what was asked for."""
    row = session.get(model, row_id) if 0 < row_id <= MAX_ID else None
    if row is None or getattr(row, "org_id") != org_id:  # noqa: B009 - every tenant table has org_id
        raise NotFound(
            N_("No %(label)s %(id)s in this organisation.", label=label or model.__name__.lower(), id=row_id)
        )
    return row
