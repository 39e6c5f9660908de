"""The API documentation pages (/docs, /redoc), with Swagger UI and ReDoc served from the app's own vendored
copies (scripts/vendor-assets.sh): they open with no internet, and nothing loads from another host."""

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

VENDOR = "/static/vendor"
ICON = "/addin/icon-32.png"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui():
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Relais API",
        swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=ICON,
    )


@router.get("/redoc")
def redoc():
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="Relais API",
        redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
        redoc_favicon_url=ICON,
        with_google_fonts=False,
    )
