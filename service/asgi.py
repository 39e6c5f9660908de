"""ASGI entry point for uvicorn: `uvicorn service.asgi:app`."""

import gc

from service.app import create_app
from service.logs import configure_logging

configure_logging()  # also when uvicorn is started by hand or spawns worker processes (they don't inherit it)
app = create_app()

# Move the startup heap (~150,000 long-lived objects: FastAPI, pydantic, SQLAlchemy, the routes) out of the
# garbage collector's sight. Under load the objects of requests waiting for their click's commit survive young
# collections, so full collections come every couple of seconds; walking that heap took 115-270 ms with the
# GIL held, and every request in flight waited (it was the redirect benchmark's p99). Frozen objects live as
# long as the app anyway.
gc.collect()
gc.freeze()
