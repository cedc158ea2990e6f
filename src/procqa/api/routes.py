"""The JSON API: search, procedures, health, readiness and reloads; each route thin."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.routing import APIRoute

from procqa.api.dependencies import (
    PROCEDURE_ID,
    SearcherDep,
    ServiceDep,
    example,
    require_admin,
    search_from_body,
    search_from_query,
    served_searcher,
)
from procqa.api.pages import page, prefers_html
from procqa.api.schemas import (
    EXAMPLE_REF,
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
from procqa.documents import Passage
from procqa.ranking import Searcher
from procqa.serving import INDEX_ERRORS

UNAVAILABLE = "No index is being served: build one with `procqa index`."
MANIFEST_OMIT = frozenset({"files", "intent_texts", "intent_labels"})


def answer(searcher: Searcher, request: SearchRequest) -> SearchResponse:
    """Run a checked search and time it."""
    started = time.perf_counter()
    found = searcher.answer(request.query, k=request.k, code=request.code, section=request.section)
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    verdict = found.verdict
    results = [
        PassagePublic.from_hit(hit, rank, confidence)
        for rank, (hit, confidence) in enumerate(zip(found.hits, verdict.confidences, strict=True), 1)
    ]
    return SearchResponse(
        query=request.query, took_ms=took_ms, covered=verdict.covered, reason=verdict.reason, results=results
    )


def _section(passage: Passage) -> SectionPublic:
    return SectionPublic(
        name=passage.heading,
        kind=passage.section_kind,
        text=passage.text,
        source=passage.source,
        lines=(passage.line_start, passage.line_end),
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


def _json(response: SearchResponse) -> Response:
    """The response serialised once, by pydantic (0.02 ms for ten passages): returned as a
    model, FastAPI would dump it to a dict, validate that again in its thread pool and encode
    it (0.66 ms), for the same JSON."""
    return Response(response.model_dump_json(), media_type="application/json")


@router.get("/search", response_model=SearchResponse, responses={**ok_response("search"), **SEARCH_ERRORS})
def search_get(searcher: SearcherDep, request: Annotated[SearchRequest, Depends(search_from_query)]) -> Response:
    """Answer a question with the best matching passages."""
    return _json(answer(searcher, request))


@router.post(
    "/search",
    response_model=SearchResponse,
    responses={**ok_response("search"), **SEARCH_ERRORS, **error_responses(e413="The body is over 64 KiB.")},
)
def search_post(searcher: SearcherDep, request: Annotated[SearchRequest, Depends(search_from_body)]) -> Response:
    """Answer a question sent as JSON with the best matching passages."""
    return _json(answer(searcher, request))


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
    procedure_id: Annotated[str, Path(pattern=PROCEDURE_ID, openapi_examples=example(EXAMPLE_REF["id"]))],
) -> Response | ProcedurePublic:
    """Show one procedure with the text of all its sections; a browser gets it as a page."""
    if prefers_html(request.headers.get("accept", "")):
        # the page fetches this same address as JSON, so it also shows 404 and 503 readably
        return page("procedure.html", vary=True)
    response.headers["Vary"] = "Accept"
    searcher = served_searcher(service)
    info = searcher.procedure(procedure_id)
    sections = [_section(searcher.features.passages[i]) for i in info.passage_ids]
    return ProcedurePublic(
        id=info.id, title=info.title, code=info.code, code_system=info.code_system, sections=sections
    )


@router.get("/health", responses=ok_response("health"))
async def health() -> HealthPublic:
    """Report that the process is alive."""
    return HealthPublic()


@router.get("/ready", responses={**ok_response("ready"), **error_responses(e503=UNAVAILABLE)})
def ready(service: ServiceDep) -> ReadyPublic:
    """Report the index version being served, or 503 while there is none."""
    status = service.status()
    if not status.ready or status.version is None:
        service.searcher()  # raises IndexMissingError, saying why
    manifest = {key: value for key, value in status.manifest.items() if key not in MANIFEST_OMIT}
    return ReadyPublic(
        version=status.version or "",
        procedures=status.procedures,
        passages=status.passages,
        sections=list(status.sections),
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
    previous = service.version
    try:
        version = service.reload()
    except INDEX_ERRORS as error:  # the service keeps it as its last error
        if previous is None:
            raise
        raise HTTPException(409, f"reload refused, still serving {previous}: {error}") from error
    return ReloadPublic(version=version, previous=previous, changed=version != previous)
