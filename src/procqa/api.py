"""The HTTP service: search, procedures, health and an admin reload over one `Service`.

Only this module speaks HTTP. It turns procqa errors into statuses, and every error into
one JSON shape, `{"error": {"code": ..., "message": ..., "field": ...}}`, so that no input
can make it answer 500.
"""

from __future__ import annotations

import inspect
import logging
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from procqa import __version__
from procqa.documents import Passage
from procqa.embedding import Embedder, SentenceTransformerEmbedder
from procqa.errors import (
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    NotFoundError,
    ProcqaError,
    QueryError,
)
from procqa.search import Searcher
from procqa.service import Service
from procqa.settings import Settings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
PROCEDURE_ID = r"^[a-z0-9][a-z0-9._-]{0,99}$"
ALLOWED_CONTROLS = frozenset("\t\n")
INDEX_ERRORS = (IndexMissingError, IndexMismatchError, IndexCorruptError)
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


class SearchRequest(BaseModel):
    """A question, how many passages to return, and optional filters."""

    query: str = Field(
        description="The question: at most PROCQA_MAX_QUERY_CHARS (default 1000) characters, not only spaces.",
        examples=["How long is recovery after spinal fixation device reinsertion?"],
    )
    k: int = Field(10, description="How many passages to return, 1 to PROCQA_MAX_K (default 100).")
    code: str | None = Field(None, description="Only passages of the procedure with this code.", examples=["22849"])
    section: str | None = Field(None, description="Only passages of this section.", examples=["Recovery"])


class ProcedureRef(BaseModel):
    id: str = Field(examples=["cpt-22849"])
    title: str = Field(examples=["Reinsertion of spinal fixation device"])
    code: str | None = Field(examples=["22849"])
    code_system: str | None = Field(examples=["CPT"])


class PassagePublic(BaseModel):
    """One ranked passage, its best answering unit, and where it comes from."""

    rank: int
    score: float
    procedure: ProcedureRef
    section: str = Field(examples=["Recovery"])
    text: str
    answer: str
    answer_start: int = Field(description="Offset of `answer` in `text`.")
    answer_end: int
    source: str = Field(examples=["corpus/cpt-22849-reinsertion-of-spinal-fixation-device.txt"])
    lines: tuple[int, int] = Field(description="First and last line of the section in `source`.")


class SearchResponse(BaseModel):
    query: str
    took_ms: float
    results: list[PassagePublic]


class SectionPublic(BaseModel):
    name: str
    text: str
    source: str
    lines: tuple[int, int]


class ProcedurePublic(ProcedureRef):
    sections: list[SectionPublic]


class ProceduresPublic(BaseModel):
    data: list[ProcedureRef]
    count: int


class HealthPublic(BaseModel):
    status: str = "ok"


class ReadyPublic(BaseModel):
    status: str = "ready"
    version: str
    procedures: int
    passages: int
    sections: list[str]
    manifest: dict[str, Any] = Field(description="The served version's manifest, less checksums and intent texts.")


class ReloadPublic(BaseModel):
    version: str
    previous: str | None
    changed: bool


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_query"])
    message: str = Field(examples=["query must contain at least one non-space character"])
    field: str | None = Field(None, examples=["q"])


class ErrorPublic(BaseModel):
    error: ErrorDetail


def _errors(**described: str) -> dict[int | str, dict[str, Any]]:
    return {int(status[1:]): {"model": ErrorPublic, "description": text} for status, text in described.items()}


UNAVAILABLE = "No index is being served: build one with `procqa index`."
MANIFEST_OMIT = frozenset({"files", "intent_texts", "intent_labels"})


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorPublic(error=ErrorDetail(code=code, message=message, field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, by declared and by streamed size."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # FastAPI re-raises an HTTPException met while reading the body, so the
                # exception handlers answer it in the common shape.
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body is larger than the limit of {self.limit} bytes"

    def _too_large(self) -> JSONResponse:
        return error_response(413, CODE_OF_STATUS[413], self._message())


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


def app_service(request: Request) -> Service:
    return request.app.state.service


SettingsDep = Annotated[Settings, Depends(app_settings)]
ServiceDep = Annotated[Service, Depends(app_service)]


def served_searcher(service: ServiceDep) -> Searcher:
    """The searcher being served, or IndexMissingError saying why there is none."""
    if not service.ready:
        raise IndexMissingError(
            f"no index is being served ({service.last_error}); build one with `procqa index`, "
            "then restart the service or POST /admin/reload"
        )
    return service.searcher()


SearcherDep = Annotated[Searcher, Depends(served_searcher)]


def _invalid(loc: tuple[str, str], message: str) -> NoReturn:
    raise RequestValidationError([{"type": "value_error", "loc": loc, "msg": message, "input": None}])


def _k_message(settings: Settings) -> str:
    return f"k must be an integer from 1 to {settings.max_k}"


def _forbidden(query: str) -> str | None:
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
    if problem := _forbidden(query):
        _invalid((where, query_field), problem)
    if not 1 <= request.k <= settings.max_k:
        _invalid((where, "k"), _k_message(settings))
    return request


def search_from_query(
    settings: SettingsDep,
    q: Annotated[str, Query(description="The question.", examples=["How long is recovery after a knee replacement?"])],
    k: Annotated[int, Query(description="How many passages to return, 1 to PROCQA_MAX_K (default 100).")] = 10,
    code: Annotated[str | None, Query(description="Only this procedure code.", examples=["27447"])] = None,
    section: Annotated[str | None, Query(description="Only this section.", examples=["Recovery"])] = None,
) -> SearchRequest:
    request = SearchRequest(query=q, k=k, code=code, section=section)
    return checked(request, settings, where="query", query_field="q")


def search_from_body(
    settings: SettingsDep, body: Annotated[SearchRequest, Body(openapi_examples=SEARCH_EXAMPLES)]
) -> SearchRequest:
    return checked(body, settings, where="body", query_field="query")


bearer = HTTPBearer(auto_error=False, description="The PROCQA_ADMIN_TOKEN setting.")


def require_admin(
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


def answer(searcher: Searcher, request: SearchRequest) -> SearchResponse:
    """Run a checked search and time it."""
    started = time.perf_counter()
    hits = searcher.search(request.query, k=request.k, code=request.code, section=request.section)
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    results = [PassagePublic.model_validate(Service.hit_record(hit, rank)) for rank, hit in enumerate(hits, 1)]
    return SearchResponse(query=request.query, took_ms=took_ms, results=results)


def _section(passage: Passage) -> SectionPublic:
    return SectionPublic(
        name=passage.section, text=passage.text, source=passage.source, lines=(passage.line_start, passage.line_end)
    )


class DocstringRoute(APIRoute):
    """A route whose OpenAPI summary is its one-line docstring rather than its function name."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["summary"] = kwargs.get("summary") or inspect.getdoc(endpoint)
        super().__init__(path, endpoint, **kwargs)


router = APIRouter(route_class=DocstringRoute)
SEARCH_ERRORS = _errors(
    e422="The query, `k` or a filter is not acceptable; the message names the valid values.",
    e503=UNAVAILABLE,
)


@router.get("/search", responses=SEARCH_ERRORS)
def search_get(searcher: SearcherDep, request: Annotated[SearchRequest, Depends(search_from_query)]) -> SearchResponse:
    """Answer a question with the best matching passages."""
    return answer(searcher, request)


@router.post("/search", responses={**SEARCH_ERRORS, **_errors(e413="The body is over 64 KiB.")})
def search_post(searcher: SearcherDep, request: Annotated[SearchRequest, Depends(search_from_body)]) -> SearchResponse:
    """Answer a question sent as JSON with the best matching passages."""
    return answer(searcher, request)


@router.get("/procedures", responses=_errors(e503=UNAVAILABLE))
def list_procedures(searcher: SearcherDep) -> ProceduresPublic:
    """List the indexed procedures with their ids, codes and titles."""
    data = [ProcedureRef.model_validate(p, from_attributes=True) for p in searcher.procedures]
    return ProceduresPublic(data=data, count=len(data))


@router.get(
    "/procedures/{procedure_id}",
    responses=_errors(e404="No procedure has this id.", e422="Not a well-formed procedure id.", e503=UNAVAILABLE),
)
def get_procedure(
    searcher: SearcherDep, procedure_id: Annotated[str, Path(pattern=PROCEDURE_ID, examples=["cpt-22849"])]
) -> ProcedurePublic:
    """Show one procedure with the text of all its sections, in document order."""
    info = searcher.procedure(procedure_id)
    sections = [_section(searcher.passages[i]) for i in info.passage_ids]
    return ProcedurePublic(
        id=info.id, title=info.title, code=info.code, code_system=info.code_system, sections=sections
    )


@router.get("/health")
def health() -> HealthPublic:
    """Report that the process is alive."""
    return HealthPublic()


@router.get("/ready", responses=_errors(e503=UNAVAILABLE))
def ready(searcher: SearcherDep) -> ReadyPublic:
    """Report the index version being served, or 503 while there is none."""
    manifest = {key: value for key, value in searcher.data.manifest.items() if key not in MANIFEST_OMIT}
    return ReadyPublic(
        version=searcher.data.version,
        procedures=len(searcher.procedures),
        passages=len(searcher.passages),
        sections=list(searcher.sections),
        manifest=manifest,
    )


@router.post(
    "/admin/reload",
    dependencies=[Depends(require_admin)],
    responses=_errors(
        e401="The bearer token is missing or wrong.",
        e404="Admin routes are disabled (no PROCQA_ADMIN_TOKEN).",
        e409="The new version was refused; the old one is still served.",
        e503="No version could be loaded and none is served.",
    ),
)
def reload(service: ServiceDep) -> ReloadPublic:
    """Serve the index version CURRENT names, keeping the old one if it cannot be loaded."""
    previous = service.searcher().data.version if service.ready else None
    try:
        version = service.reload()
    except INDEX_ERRORS as error:
        service.last_error = str(error)
        if previous is None:
            raise
        raise HTTPException(409, f"reload refused, still serving {previous}: {error}") from error
    return ReloadPublic(version=version, previous=previous, changed=version != previous)


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
        message = _k_message(request.app.state.settings)
    code = "invalid_query" if field in SEARCH_FIELDS else "invalid_request"
    return error_response(422, code, message, field)


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = CODE_OF_STATUS.get(error.status_code, "http_error")
    return error_response(error.status_code, code, str(error.detail), headers=error.headers)


def open_service(settings: Settings, embedder: Embedder | None) -> Service:
    """The service on the configured index, or one serving nothing that remembers why."""
    embedder = embedder or SentenceTransformerEmbedder(settings.model_path)
    try:
        return Service.open(settings, embedder)
    except INDEX_ERRORS as error:
        logger.warning("serving no index: %s", error)
        return Service(settings, embedder, last_error=str(error))


def create_app(settings: Settings, *, embedder: Embedder | None = None) -> FastAPI:
    """The procqa HTTP app; the index is opened when the app starts, not here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = open_service(settings, embedder)
        yield

    app = FastAPI(
        title="procqa",
        version=__version__,
        summary="Semantic search and question answering over medical procedure documents.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_exception_handler(ProcqaError, on_procqa_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.include_router(router)
    return app
