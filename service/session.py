"""The request's database session: one per request, committed before the response is sent.

Routes take `session: DbSession`. Its scope is the route function ("function"), so FastAPI runs the commit
as soon as the route returns and before the response goes out: a 2xx means the change is saved, and a commit
that fails becomes an error response. Jobs the route deferred (service.jobs.defer) go out after that commit.
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from service.db import session_scope
from service.jobs import RUNNER


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.engine) as session:
        session.info[RUNNER] = request.app.state.run_task
        yield session


DbSession = Annotated[Session, Depends(get_session, scope="function")]
