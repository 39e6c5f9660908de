"""ASGI entry point for uvicorn: `uvicorn service.asgi:app`."""

import contextlib
import gc

from sqlalchemy.exc import SQLAlchemyError

from service.app import create_app
from service.key_check import check_secret_key
from service.logs import configure_logging
from service.settings import get_settings

configure_logging()  # also when uvicorn is started by hand or spawns worker processes (they don't inherit it)
app = create_app()
# SecretKeyMismatch stops the server, saying what to do. Not migrated yet: `relais serve`/`migrate` check.
with contextlib.suppress(SQLAlchemyError):
    check_secret_key(app.state.engine, get_settings())

# Move the startup heap (~150,000 long-lived objects: FastAPI, pydantic, SQLAlchemy, the routes) out of the
# garbage collector's sight. Under load the objects of requests waiting for their click's commit survive young
# collections, so full collections come every couple of seconds; walking that heap took 115-270 ms with the
# GIL held, and every request in flight waited (it was the redirect benchmark's p99). Frozen objects live as
# long as the app anyway.
gc.collect()
gc.freeze()
