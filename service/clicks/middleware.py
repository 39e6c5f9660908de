"""The tracking fast path: /c/, /s/ and /i/ requests reach their handlers without walking the API's routes."""

from starlette.requests import Request

from service.clicks.routes import banner_image, follow_link, follow_share

HANDLERS = {"/c/": follow_link, "/s/": follow_share, "/i/": banner_image}


class TrackingPaths:
    """ASGI middleware sending /c/, /s/ and /i/ straight to their handlers.

    Every click pays for routing otherwise: the router walks all the API's routes before reaching these.
    The same handlers stay registered as routes in service.clicks.routes (for tests and any app without it).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            handler = HANDLERS.get(path[:3])
            if handler is not None and "/" not in path[3:] and scope["method"] in ("GET", "HEAD"):
                scope["path_params"] = {"token": path[3:]}
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
