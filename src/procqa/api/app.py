"""The app factory: `create_app(settings)` builds the app; the index is opened when it starts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from procqa import __version__
from procqa.api.errors import on_http_error, on_procqa_error, on_validation_error
from procqa.api.metrics import IndexFacts, Metrics, json_logs
from procqa.api.middleware import MAX_BODY_BYTES, BodyLimit, RequestMetrics
from procqa.api.pages import STATIC, pages
from procqa.api.routes import router
from procqa.embedding import Embedder, make_embedder
from procqa.errors import ProcqaError
from procqa.ranking import RankingConfig
from procqa.serving import INDEX_ERRORS, Service
from procqa.serving.reload import watching
from procqa.settings import Settings

logger = logging.getLogger(__name__)


def leaf_routes(app: FastAPI) -> list[BaseRoute]:
    """The app's routes that have a template: those of its routers, then its own and its mounts."""
    return [*router.routes, *pages.routes, *(r for r in app.routes if isinstance(r, Route | Mount))]


def index_facts(app: FastAPI) -> IndexFacts | None:
    """What /metrics reports about the served index; None while there is none."""
    service: Service | None = getattr(app.state, "service", None)
    status = service.status() if service is not None else None
    if status is None or not status.ready:
        return None
    return IndexFacts(
        version=status.version or "",
        model=str(status.manifest.get("model", "")),
        procedures=status.procedures,
        passages=status.passages,
    )


def open_service(settings: Settings, embedder: Embedder | None, config: RankingConfig | None = None) -> Service:
    """The service on the configured index, or one serving nothing that remembers why."""
    embedder = embedder or make_embedder(settings)
    try:
        return Service.open(settings, embedder, config=config)
    except INDEX_ERRORS as error:
        logger.warning("serving no index: %s", error)
        return Service.serving_nothing(settings, embedder, str(error))


def create_app(settings: Settings, *, embedder: Embedder | None = None, config: RankingConfig | None = None) -> FastAPI:
    """The procqa HTTP app; the index is opened when the app starts, not here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with json_logs() if settings.log_json else nullcontext():
            app.state.service = open_service(settings, embedder, config)
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
