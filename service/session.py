"""The request's database session: one per request, committed at the request boundary."""

from collections.abc import Iterator

from fastapi import Request
from sqlmodel import Session

from service.db import session_scope


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.engine) as session:
        yield session
