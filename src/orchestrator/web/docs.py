"""The API's documentation at /schema: Swagger UI, its files served by this process, never a CDN's."""

from __future__ import annotations

from litestar import Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from openapi_ui_bundles import swagger_ui

from orchestrator.web.page_headers import page_headers

PATH = "/schema"
STATIC = f"{PATH}/static"
# Litestar's page puts the schema and Swagger UI's start in an inline script, after an inline
# <style>: both are the app's own, never request input. "Try it out" calls this API only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def docs_router() -> Router:
    """OpenAPIConfig adds its pages (/schema, /schema/swagger, /schema/openapi.json) to this one;
    public, like the schema itself."""
    return Router(
        PATH,
        route_handlers=[create_static_files_router(path="/static", directories=[swagger_ui.static_path])],
        after_request=page_headers(CONTENT_SECURITY_POLICY),
        include_in_schema=False,
    )


def swagger_ui_plugin() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        path="/swagger",
        js_url=f"{STATIC}/swagger-ui-bundle.js",
        css_url=f"{STATIC}/swagger-ui.css",
        standalone_preset_js_url=f"{STATIC}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{STATIC}/favicon-32x32.png'>",
    )
