"""The HTTP service: search, procedures, health and an admin reload over one `Service`,
plus the pages people read (search at /, procedures, /docs) and /metrics.

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
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, nullcontext
from importlib import resources
from pathlib import Path as FilePath
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
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
from procqa.metrics import UNMATCHED, IndexFacts, Metrics, json_logs
from procqa.reload import watching
from procqa.schemas import (
    ErrorDetail,
    ErrorPublic,
    HealthPublic,
    PassagePublic,
    ProcedurePublic,
    ProcedureRef,
    ProceduresPublic,
    ReadyPublic,
    ReloadPublic,
    SearchRequest,
    SearchResponse,
    SectionPublic,
    error_responses,
    ok_response,
)
from procqa.search import Searcher
from procqa.service import Service
from procqa.settings import Settings

logger = logging.getLogger(__name__)
access_log = logging.getLogger("procqa.access")

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
STATIC = FilePath(str(resources.files("procqa") / "static"))
# The pages load only their own scripts and styles, and talk only to this service.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
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


Q_EXAMPLE = "How long is recovery after a knee replacement?"


def _examples(value: Any) -> dict[str, Any]:
    return {"example": {"summary": f"e.g. {value}", "value": value}}


def search_from_query(
    settings: SettingsDep,
    q: Annotated[str, Query(description="The question.", openapi_examples=_examples(Q_EXAMPLE))],
    k: Annotated[
        int,
        Query(
            description="How many passages to return, 1 to PROCQA_MAX_K (default 100).", openapi_examples=_examples(3)
        ),
    ] = 10,
    code: Annotated[
        str | None, Query(description="Only this procedure code.", openapi_examples=_examples("27447"))
    ] = None,
    section: Annotated[
        str | None, Query(description="Only this section.", openapi_examples=_examples("Recovery"))
    ] = None,
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
SEARCH_ERRORS = error_responses(
    e422="The query, `k` or a filter is not acceptable; the message names the valid values.",
    e503=UNAVAILABLE,
)


@router.get("/search", responses={**ok_response("search"), **SEARCH_ERRORS})
def search_get(searcher: SearcherDep, request: Annotated[SearchRequest, Depends(search_from_query)]) -> SearchResponse:
    """Answer a question with the best matching passages."""
    return answer(searcher, request)


@router.post(
    "/search", responses={**ok_response("search"), **SEARCH_ERRORS, **error_responses(e413="The body is over 64 KiB.")}
)
def search_post(searcher: SearcherDep, request: Annotated[SearchRequest, Depends(search_from_body)]) -> SearchResponse:
    """Answer a question sent as JSON with the best matching passages."""
    return answer(searcher, request)


@router.get("/procedures", responses={**ok_response("procedures"), **error_responses(e503=UNAVAILABLE)})
def list_procedures(searcher: SearcherDep) -> ProceduresPublic:
    """List the indexed procedures with their ids, codes and titles."""
    data = [ProcedureRef.model_validate(p, from_attributes=True) for p in searcher.procedures]
    return ProceduresPublic(data=data, count=len(data))


@router.get(
    "/procedures/{procedure_id}",
    response_model=ProcedurePublic,
    responses={
        **ok_response("procedure", **{"text/html": {"example": "<!doctype html>…"}}),
        **error_responses(e404="No procedure has this id.", e422="Not a well-formed procedure id.", e503=UNAVAILABLE),
    },
)
def get_procedure(
    request: Request,
    response: Response,
    service: ServiceDep,
    procedure_id: Annotated[str, Path(pattern=PROCEDURE_ID, openapi_examples=_examples("cpt-22849"))],
) -> Response | ProcedurePublic:
    """Show one procedure with the text of all its sections; a browser gets it as a page."""
    if prefers_html(request.headers.get("accept", "")):
        # the page fetches this same address as JSON, so it also shows 404 and 503 readably
        return page("procedure.html", vary=True)
    response.headers["Vary"] = "Accept"
    searcher = served_searcher(service)
    info = searcher.procedure(procedure_id)
    sections = [_section(searcher.passages[i]) for i in info.passage_ids]
    return ProcedurePublic(
        id=info.id, title=info.title, code=info.code, code_system=info.code_system, sections=sections
    )


@router.get("/health", responses=ok_response("health"))
def health() -> HealthPublic:
    """Report that the process is alive."""
    return HealthPublic()


@router.get("/ready", responses={**ok_response("ready"), **error_responses(e503=UNAVAILABLE)})
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
    responses={
        **ok_response("reload"),
        **error_responses(
            e401="The bearer token is missing or wrong.",
            e404="Admin routes are disabled (no PROCQA_ADMIN_TOKEN).",
            e409="The new version was refused; the old one is still served.",
            e503="No version could be loaded and none is served.",
        ),
    },
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


# Pages for people, /docs and /metrics: outside the OpenAPI document, which describes the JSON API.


def _quality(accept: str, media: str) -> float:
    """The q the Accept header gives `media`, from its most specific matching range."""
    best, specificity = 0.0, -1
    family = media.split("/")[0] + "/*"
    for part in accept.lower().split(","):
        name, *params = (piece.strip() for piece in part.split(";"))
        rank = {media: 2, family: 1, "*/*": 0}.get(name, -1)
        if rank <= specificity:
            continue
        q = next((value for key, _, value in (p.partition("=") for p in params) if key.strip() == "q"), "1")
        try:
            best, specificity = float(q), rank
        except ValueError:
            continue
    return best


def prefers_html(accept: str) -> bool:
    """Whether a client (a browser navigating) ranks text/html above JSON; `*/*` gets JSON."""
    return _quality(accept, "text/html") > _quality(accept, "application/json")


def page(name: str, *, vary: bool = False) -> FileResponse:
    headers = {**PAGE_HEADERS, "Vary": "Accept"} if vary else PAGE_HEADERS
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=headers)


pages = APIRouter(include_in_schema=False)


@pages.get("/")
def search_page() -> FileResponse:
    """The search page."""
    return page("index.html")


@pages.get("/docs")
def docs_page(request: Request) -> HTMLResponse:
    """Swagger UI on this service's OpenAPI document, from vendored assets only."""
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title="procqa API",
        swagger_js_url=f"{root}/static/swagger/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/swagger/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/favicon.svg",
        swagger_ui_parameters={"validatorUrl": None},
    )


@pages.get("/metrics")
def metrics_text(request: Request) -> Response:
    """Prometheus metrics of this app."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=metrics.content_type)


def route_template(scope: Scope, routes: Iterable[BaseRoute]) -> str:
    """The template of the route a request is for (`/procedures/{procedure_id}`), never its raw path;
    a full match wins over a partial one (a known path with another method)."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", UNMATCHED)
        if match is Match.PARTIAL and partial is None:
            partial = route
    return getattr(partial, "path", UNMATCHED)


def leaf_routes(app: FastAPI) -> list[BaseRoute]:
    """The app's routes that have a template: those of its routers, then its own and its mounts."""
    return [*router.routes, *pages.routes, *(r for r in app.routes if isinstance(r, Route | Mount))]


class RequestMetrics:
    """Count and time every HTTP request by route template and status, and log it when asked."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Callable[[], list[BaseRoute]], log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes()  # built at startup, when every route is in place
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # matched before the app runs: routing rewrites the scope (a mount moves `root_path`)
        route = route_template(scope, self.routes)
        status = 500  # what the server answers when the app raises before it starts a response

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.observe(scope["method"], route, status, seconds)
            if self.log:
                ms = round(seconds * 1000, 2)
                extra = {"method": scope["method"], "route": route, "status": status, "ms": ms}
                access_log.info("%s %s %d %.2fms", scope["method"], route, status, ms, extra=extra)


def index_facts(app: FastAPI) -> IndexFacts | None:
    """What /metrics reports about the served index; None while there is none."""
    service: Service | None = getattr(app.state, "service", None)
    if service is None or not service.ready:
        return None
    searcher = service.searcher()
    return IndexFacts(
        version=searcher.data.version,
        model=str(searcher.data.manifest.get("model", "")),
        procedures=len(searcher.procedures),
        passages=len(searcher.passages),
    )


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
    embedder = embedder or SentenceTransformerEmbedder.from_settings(settings)
    try:
        return Service.open(settings, embedder)
    except INDEX_ERRORS as error:
        logger.warning("serving no index: %s", error)
        return Service(settings, embedder, last_error=str(error))


def create_app(settings: Settings, *, embedder: Embedder | None = None) -> FastAPI:
    """The procqa HTTP app; the index is opened when the app starts, not here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with json_logs() if settings.log_json else nullcontext():
            app.state.service = open_service(settings, embedder)
            with watching(app.state.service):  # polls CURRENT and reloads on SIGHUP under `procqa serve`
                yield

    app = FastAPI(
        title="procqa",
        version=__version__,
        summary="Semantic search and question answering over medical procedure documents.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics(version=__version__, index=lambda: index_facts(app))
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
    # added last, so it is outermost and sees every answer, 413s and CORS preflights included
    app.add_middleware(
        RequestMetrics, metrics=app.state.metrics, routes=lambda: leaf_routes(app), log=settings.log_json
    )
    app.include_router(router)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
