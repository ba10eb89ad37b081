"""The console: server-rendered pages for supervisors at ``/`` (see docs/console.md).

``console_router(services)`` gives the pages, ``console_static_routers()`` the assets
they use (and the OpenAPI viewer's, from the ``swagger-ui-bundle-v2`` package),
``template_config()`` the Jinja templates, ``CONSOLE_EXCLUDE`` the paths the API's
bearer-token middleware leaves to the console's sessions.
"""

from __future__ import annotations

from pathlib import Path

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from server.console.pages import CONSOLE_EXCLUDE, console_router

__all__ = [
    "CONSOLE_EXCLUDE",
    "console_router",
    "console_static_routers",
    "schema_viewer",
    "template_config",
]

_HERE = Path(__file__).parent
SWAGGER_UI = "/console/vendor/swagger-ui"


def _swagger_dir() -> Path:
    import swagger_ui_bundle  # type: ignore[import-untyped]

    return Path(swagger_ui_bundle.swagger_ui_path)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=_HERE / "templates", engine=JinjaTemplateEngine)


def console_static_routers() -> list[Router]:
    """The console's own CSS, script and icon, and the Swagger UI files of /schema."""
    return [
        create_static_files_router(
            path="/console/static",
            directories=[_HERE / "static"],
            name="console-static",
            include_in_schema=False,
        ),
        create_static_files_router(
            path=SWAGGER_UI,
            directories=[_swagger_dir()],
            name="swagger-ui",
            include_in_schema=False,
        ),
    ]


def schema_viewer() -> SwaggerRenderPlugin:
    """The /schema page: Swagger UI from our own server (no CDN, no external icon)."""
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        css_url=f"{SWAGGER_UI}/swagger-ui.css",
        standalone_preset_js_url=f"{SWAGGER_UI}/swagger-ui-standalone-preset.js",
        favicon="<link rel='icon' type='image/svg+xml' href='/console/static/favicon.svg'>",
    )
