"""Pages for people, /docs and /metrics: outside the OpenAPI document, which describes the JSON API."""

from __future__ import annotations

from importlib import resources
from pathlib import Path as FilePath

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from procqa.api.metrics import Metrics

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
