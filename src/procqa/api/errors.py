"""The one error shape, `{"error": {"code", "message", "field"}}`, for every error the API answers."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from procqa.api.schemas import ErrorDetail, ErrorPublic
from procqa.errors import (
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    NotFoundError,
    ProcqaError,
    QueryError,
)
from procqa.settings import Settings

# Looked up along the error's MRO, so a subclass maps like its nearest listed base.
STATUS_OF_ERROR: dict[type[ProcqaError], tuple[int, str]] = {
    QueryError: (422, "invalid_query"),
    NotFoundError: (404, "not_found"),
    IndexMissingError: (503, "index_unavailable"),
    IndexMismatchError: (503, "index_unavailable"),
    IndexCorruptError: (503, "index_unavailable"),
}
CODE_OF_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "reload_refused",
    413: "body_too_large",
    503: "index_unavailable",
}
SEARCH_FIELDS = frozenset({"q", "query", "k", "code", "section"})


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorPublic(error=ErrorDetail(code=code, message=message, field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def k_message(settings: Settings) -> str:
    return f"k must be an integer from 1 to {settings.max_k}"


async def on_procqa_error(request: Request, error: Exception) -> JSONResponse:
    status, code = next((STATUS_OF_ERROR[t] for t in type(error).__mro__ if t in STATUS_OF_ERROR), (500, "internal"))
    return error_response(status, code, str(error))


async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    where, *inside = first["loc"] or ("request",)
    names = [part for part in inside if isinstance(part, str)]
    field = names[-1] if names else str(where)
    message = str(first["msg"])
    if (ctx := first.get("ctx")) and "error" in ctx and first["type"] != "value_error":
        message = f"{message} ({ctx['error']})"
    if field == "k":
        message = k_message(request.app.state.settings)
    code = "invalid_query" if field in SEARCH_FIELDS else "invalid_request"
    return error_response(422, code, message, field)


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = CODE_OF_STATUS.get(error.status_code, "http_error")
    return error_response(error.status_code, code, str(error.detail), headers=error.headers)
