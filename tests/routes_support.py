"""Walking the app's routes, for the tests that check every route (roles, tenancy)."""

import re
from collections.abc import Iterable, Iterator

from fastapi.routing import APIRoute


def api_routes(routes: Iterable) -> Iterator[APIRoute]:
    """Every APIRoute, descending into included routers (FastAPI >= 0.160 keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


# Pages anyone may open: the start page (it redirects), sign-in, password reset, the brand stylesheet.
# The charter's acceptance page opens with a signed link from a newsletter as well as with a session
# (tests/test_advocacy_charter.py walks both and a stranger's refusal).
PUBLIC_PAGES = re.compile(r"^/(|sign-in(/.*)?|password/.*|brand\.css|me/charter/accept)$")


def is_page(route: APIRoute) -> bool:
    """An HTML page (guarded by a PageGuard and walked by tests/test_pages.py) rather than an API route."""
    portal = route.path == "/me" or route.path.startswith("/me/")
    return route.path.startswith("/app/") or portal or bool(PUBLIC_PAGES.match(route.path)) or route.path == "/sign-out"
