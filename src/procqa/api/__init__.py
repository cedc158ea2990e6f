"""The HTTP API: app factory, dependencies, routes, pages, middleware, errors, schemas.
The top layer: it may import everything below it; nothing imports it but the CLI."""

from procqa.api.app import create_app
from procqa.api.middleware import MAX_BODY_BYTES
from procqa.api.pages import STATIC, prefers_html

__all__ = ["MAX_BODY_BYTES", "STATIC", "create_app", "prefers_html"]
