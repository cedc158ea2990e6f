"""ASGI middleware: a limit on request bodies, and metrics and access logs per route."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from procqa.api.errors import CODE_OF_STATUS, error_response
from procqa.api.metrics import UNMATCHED, Metrics

access_log = logging.getLogger("procqa.access")
MAX_BODY_BYTES = 64 * 1024
VERSION_HEADER = b"x-procqa-index-version"


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


def answered_by(scope: Scope) -> str | None:
    """The index version a request was answered from: the one its searcher served, else (a
    request that needed none) the one served now."""
    version = scope.get("state", {}).get("index_version")
    if version is None:
        service = getattr(getattr(scope.get("app"), "state", None), "service", None)
        version = getattr(service, "version", None)
    return str(version) if version else None


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
        scope.setdefault("state", {})  # shared with the request, whose searcher records its version there
        status = 500  # what the server answers when the app raises before it starts a response

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if version := answered_by(scope):
                    message = {**message, "headers": [*message.get("headers", []), (VERSION_HEADER, version.encode())]}
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
