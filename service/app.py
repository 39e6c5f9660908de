"""The FastAPI application: wiring only. Features live in their own packages."""

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from service.db import make_engine
from service.errors import AppError
from service.settings import Settings, get_settings

log = logging.getLogger("relais")

API_DESCRIPTION = """
Branded email signatures, banner campaigns, shareable newsletters and per-employee click tracking.

Authenticate with an API key: `Authorization: Bearer rls_...`. Roles: **admin** (everything),
**comms** (content, campaigns, newsletters, analytics), **it** (directory, templates, deployments).
"""


def _routers():
    # Imported here so that importing service.app stays cheap for tools that only need settings.
    from newsletter.routes import public as newsletter_public
    from newsletter.routes import router as newsletter_router
    from service.addin.routes import router as addin_router
    from service.addin.routes import well_known as addin_well_known
    from service.assets import router as assets_router
    from service.clicks.routes import router as clicks_router
    from service.connections.routes import router as connections_router
    from service.routes import router as core_router
    from signatures.campaigns.routes import router as campaigns_router
    from signatures.deploy.routes import router as deploy_router
    from signatures.routes import router as signatures_router

    return [
        core_router,
        assets_router,
        clicks_router,
        signatures_router,
        connections_router,
        deploy_router,
        campaigns_router,
        newsletter_router,
        newsletter_public,
        addin_router,
        addin_well_known,
    ]


def queue_deployment(deployment_id: int) -> None:
    """Hand a deployment to the job queue (a `relais worker` runs it)."""
    from signatures.deploy.jobs import run_deployment

    run_deployment(deployment_id)


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, enqueue: Callable[[int], None] | None = None
) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Relais", version="0.1.0", description=API_DESCRIPTION)
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.effective_database_url)
    app.state.enqueue = enqueue or queue_deployment

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

    @app.get("/health", tags=["health"], summary="Liveness and database check")
    def health() -> dict:
        with app.state.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok"}

    for router in _routers():
        app.include_router(router)
    from service.clicks.routes import TrackingPaths

    app.add_middleware(TrackingPaths)  # clicks skip the walk over every API route
    return app
