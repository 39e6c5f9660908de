"""The FastAPI application: wiring only. Which features exist is read from service.features."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from service import api_errors, features, pages
from service.db import make_engine
from service.errors import AppError, Unavailable
from service.jobs import TaskRunner, enqueue
from service.settings import Settings, get_settings

log = logging.getLogger(__name__)

API_DESCRIPTION = """
Branded email signatures, banner campaigns, shareable newsletters and per-employee click tracking.

Authenticate with an API key: `Authorization: Bearer rls_...`. Roles: **admin** (everything),
**comms** (content, campaigns, newsletters, analytics), **it** (directory, templates, deployments).
"""


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, run_task: TaskRunner | None = None
) -> FastAPI:
    """The app for `settings`. `run_task(task, *args)` hands over the jobs that routes defer until their commit
    (default: put them on the Huey queue; tests run them inline)."""
    settings = settings or get_settings()
    app = FastAPI(title="Relais", version="0.1.0", description=API_DESCRIPTION, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.effective_database_url)
    app.state.run_task = run_task or enqueue

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The same error shape as every other refusal, with one sentence naming each field to fix.
        problems = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "problem": e["msg"]}
            for e in exc.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return JSONResponse(
            {"error": {"code": "invalid", "message": f"Fix the request: {message}.", "details": problems}},
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    async def _database_unavailable(_request: Request, exc: OperationalError) -> JSONResponse:
        # A commit (or query) the database refused: locked, unreachable, a lock timeout. Nothing was saved.
        log.warning("service.db.unavailable", extra={"error": str(exc.orig)[:200]})
        error = Unavailable("The database is busy or unreachable, so nothing was saved. Try again in a moment.")
        return JSONResponse(error.to_dict(), status_code=error.status_code, headers={"Retry-After": "1"})

    api_errors.install(app)  # the framework's own refusals in the same shape; errors in the OpenAPI document

    @app.get("/health", tags=["health"], summary="Liveness and database check")
    def health() -> dict:
        with app.state.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok"}

    pages.install(app)  # /static, and the page guard's redirects and error pages
    for router in features.routers():
        app.include_router(router)
    for middleware in features.middleware():
        app.add_middleware(middleware)
    return app
