"""Walking the app's routes, for the tests that check every route (roles, tenancy)."""

from collections.abc import Iterable, Iterator

from fastapi.routing import APIRoute


def api_routes(routes: Iterable) -> Iterator[APIRoute]:
    """Every APIRoute, descending into included routers (FastAPI >= 0.160 keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)
