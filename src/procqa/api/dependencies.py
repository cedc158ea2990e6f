"""What routes receive: settings, the service, the searcher served, checked requests, admin rights.

Each dependency is `async def`: none waits on anything, and FastAPI runs a plain `def` one in
its thread pool, a hop per dependency per request (/health answered in 2.0 ms over HTTP, not
2.7-3.7)."""

from __future__ import annotations

import secrets
import unicodedata
from typing import Annotated, Any, NoReturn

from fastapi import Body, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from procqa.api.errors import k_message
from procqa.api.schemas import SearchRequest
from procqa.ranking import Searcher
from procqa.serving import Service
from procqa.settings import Settings

ALLOWED_CONTROLS = frozenset("\t\n")
PROCEDURE_ID = r"^[a-z0-9][a-z0-9._-]{0,99}$"
SEARCH_EXAMPLES: dict[str, Any] = {
    "question": {
        "summary": "A question about one procedure",
        "value": {"query": "How long is recovery after spinal fixation device reinsertion?", "k": 3},
    },
    "filtered": {
        "summary": "Within one procedure code and section",
        "value": {"query": "When can I drive again?", "k": 5, "code": "27447", "section": "Recovery"},
    },
}


async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def app_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


SettingsDep = Annotated[Settings, Depends(app_settings)]
ServiceDep = Annotated[Service, Depends(app_service)]


def served_searcher(service: ServiceDep) -> Searcher:
    """The searcher being served, or IndexMissingError saying why there is none."""
    return service.searcher()


async def request_searcher(service: ServiceDep, request: Request) -> Searcher:
    """The searcher being served, kept by the request whatever reloads meanwhile: its version
    answers the request (the X-Procqa-Index-Version header)."""
    searcher = served_searcher(service)
    request.state.index_version = searcher.version
    return searcher


SearcherDep = Annotated[Searcher, Depends(request_searcher)]


def _invalid(loc: tuple[str, str], message: str) -> NoReturn:
    raise RequestValidationError([{"type": "value_error", "loc": loc, "msg": message, "input": None}])


def forbidden(query: str) -> str | None:
    for char in query:
        kind = unicodedata.category(char)
        if kind == "Cc" and char not in ALLOWED_CONTROLS:
            return f"query contains the control character U+{ord(char):04X}; of those only tab and newline are allowed"
        if kind == "Cs":
            return f"query contains the unpaired surrogate U+{ord(char):04X}"
    return None


def checked(request: SearchRequest, settings: Settings, *, where: str, query_field: str) -> SearchRequest:
    """The request unchanged, or RequestValidationError for the first limit it breaks."""
    query = request.query
    if not query.strip():
        _invalid((where, query_field), "query must contain at least one non-space character")
    if len(query) > settings.max_query_chars:
        _invalid((where, query_field), f"query is {len(query)} characters; the limit is {settings.max_query_chars}")
    if problem := forbidden(query):
        _invalid((where, query_field), problem)
    if not 1 <= request.k <= settings.max_k:
        _invalid((where, "k"), k_message(settings))
    return request


Q_EXAMPLE = "How long is recovery after a knee replacement?"


def example(value: Any) -> dict[str, Any]:
    return {"example": {"summary": f"e.g. {value}", "value": value}}


async def search_from_query(
    settings: SettingsDep,
    q: Annotated[str, Query(description="The question.", openapi_examples=example(Q_EXAMPLE))],
    k: Annotated[
        int,
        Query(description="How many passages to return, 1 to PROCQA_MAX_K (default 100).", openapi_examples=example(3)),
    ] = 10,
    code: Annotated[
        str | None, Query(description="Only this procedure code.", openapi_examples=example("27447"))
    ] = None,
    section: Annotated[
        str | None,
        Query(
            description="Only this section: a heading as written or its kind, in any case.",
            openapi_examples=example("Recovery"),
        ),
    ] = None,
) -> SearchRequest:
    request = SearchRequest(query=q, k=k, code=code, section=section)
    return checked(request, settings, where="query", query_field="q")


async def search_from_body(
    settings: SettingsDep, body: Annotated[SearchRequest, Body(openapi_examples=SEARCH_EXAMPLES)]
) -> SearchRequest:
    return checked(body, settings, where="body", query_field="query")


bearer = HTTPBearer(auto_error=False, description="The PROCQA_ADMIN_TOKEN setting.")


async def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Pass a request bearing the admin token; admin routes do not exist without one."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token:
        raise HTTPException(404, "admin routes are disabled: set PROCQA_ADMIN_TOKEN to enable them")
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401, "a valid `Authorization: Bearer <token>` header is required", headers={"WWW-Authenticate": "Bearer"}
        )
