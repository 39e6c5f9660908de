"""The one error shape everywhere, and an OpenAPI document that describes the real responses.

`install(app)` adds what service.app's own handlers (AppError, validation) leave out:

- the framework's own refusals — an unknown route (404), a wrong method (405), a body that can't be parsed
  (400) — answer `{"error": {"code", "message", "details"}}` like every other refusal;
- a number too large for the database (ids, offsets ≥ 2^63) or a value the database can't store (a NUL
  character on PostgreSQL) is a 422 naming the problem, never a 500;
- the OpenAPI document lists the error statuses each operation can answer, with that shape as their body
  (FastAPI's default 422 schema, `{"detail": [...]}`, is not what the API sends).
"""

import inspect
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

MAX_DB_INT = 2**63 - 1

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         406: "not_acceptable", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
         422: "invalid", 429: "too_many_requests"}  # fmt: skip
MESSAGES = {
    404: "There is nothing at this address; check the path (the API lives under /api, its documentation at /docs).",
    405: "This address does not take this method; see /docs for the methods it accepts.",
    400: "The request body could not be read: send JSON (Content-Type: application/json) or the form the "
    "route documents.",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every refusal: a code, a sentence saying what to fix, and details when there are some."""

    error: ErrorDetail


def error_response(status: int, message: str, details: Any = None, headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": CODES.get(status, "error"), "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else None
    generic = detail in (None, "Not Found", "Method Not Allowed", "There was an error parsing the body")
    message = MESSAGES.get(exc.status_code) if generic else detail
    return error_response(exc.status_code, message or str(detail), headers=getattr(exc, "headers", None))


def _too_large_number(_request: Request, _exc: Exception) -> JSONResponse:
    return error_response(
        422, f"A number in the request is too large: ids, offsets and limits are at most {MAX_DB_INT:,}."
    )


def _database_refused(request: Request, exc: Exception) -> JSONResponse:
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, OverflowError) or "out of range" in str(orig):
        return _too_large_number(request, exc)
    if "NUL" in str(orig) or "\\x00" in str(orig) or "0x00" in str(orig):
        return error_response(422, "A text value contains a NUL character (\\u0000); remove it.")
    return error_response(422, "A value in the request can't be stored (wrong type or out of range); fix it.")


def _statement_error(request: Request, exc: StatementError) -> JSONResponse:
    orig = getattr(exc, "orig", None)
    if isinstance(orig, (OverflowError, ValueError)) or isinstance(exc, DataError):
        return _database_refused(request, exc)
    raise exc


# ---------------------------------------------------------------- the OpenAPI document

_TEXT = {"schema": {"type": "string"}}
# `responses=` for routes that also answer HTML or plain text (a `format` parameter), and for CSV downloads
HTML_OR_TEXT: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": _TEXT, "text/plain": _TEXT}}}
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": _TEXT}, "description": "A CSV file (UTF-8, a header row)."}
}

WRITE_METHODS = frozenset(("post", "put", "patch", "delete"))
_ERROR_TEXT = {
    400: "The body could not be read.", 401: "No API key, or an unknown or revoked one.",
    403: "The key's role may not do this.", 404: "Nothing with this id in your organisation (or no such route).",
    409: "Conflicts with the current state.", 413: "The body is over this route's size limit.",
    422: "Invalid input: the message names each field to fix.", 429: "Too many requests: retry after Retry-After.",
}  # fmt: skip


def _document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorDetail, ErrorBody):
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.get("ErrorBody", {}).pop("$defs", None)
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, path_item in schema.get("paths", {}).items():
        for method, op in path_item.items():
            if method not in ("get", "post", "put", "patch", "delete", "head", "options"):
                continue
            statuses = {400, 404, 422, 429}
            if op.get("security") or path.startswith("/addin/"):  # the add-in checks its Entra token itself
                statuses |= {401, 403}
            if method in WRITE_METHODS:
                statuses |= {409, 413}
            responses = op.setdefault("responses", {})
            for status in sorted(statuses):
                responses[str(status)] = {
                    "description": responses.get(str(status), {}).get("description") or _ERROR_TEXT[status],
                    "content": {"application/json": {"schema": ref}},
                }
    for name in ("HTTPValidationError", "ValidationError"):
        if not _referenced(schema, name):
            components.pop(name, None)
    return schema


def _referenced(schema: dict[str, Any], name: str) -> bool:
    import json

    return f'"#/components/schemas/{name}"' in json.dumps(schema.get("paths", {}))


def install(app: FastAPI) -> None:
    field_errors = app.exception_handlers.get(RequestValidationError)

    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            error = next(e for e in exc.errors() if e.get("type") == "json_invalid")
            where = error.get("ctx", {}).get("error", "")
            return error_response(422, f"The body is not valid JSON ({where}); fix its syntax.")
        assert field_errors is not None  # installed only when there is one
        answer = field_errors(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    # Starlette types every handler as taking `Exception`, so a handler for a subclass does not match its stubs
    # (the ignores below); it calls each with the exception class it was registered for.
    if field_errors is not None:
        app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(OverflowError, _too_large_number)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, _database_refused)  # type: ignore[arg-type]
    app.add_exception_handler(StatementError, _statement_error)  # type: ignore[arg-type]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes,
                tags=app.openapi_tags, servers=app.servers,
            )  # fmt: skip
            app.openapi_schema = _document_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
