"""SAQ's web UI at /saq, for admin keys only: its retry and abort endpoints are plain POSTs."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import saq
from litestar import Router
from litestar.di import Provide
from litestar.static_files import create_static_files_router
from litestar_saq.config import SAQConfig, TaskQueues
from litestar_saq.controllers import build_controller

from orchestrator.auth.middleware import admin_only
from orchestrator.web.page_headers import page_headers

if TYPE_CHECKING:
    from litestar.datastructures import State
    from litestar.types import ControllerRouterHandler

PATH = "/saq"
# The page's one inline script (litestar_saq's template): allowed by its hash, so that no other
# inline script runs. Its other scripts, its stylesheet and its API calls are /saq's own; pico.css
# draws its icons from data: URIs.
ROOT_PATH_SCRIPT = f'const root_path = "{PATH}";'
ROOT_PATH_SCRIPT_HASH = base64.b64encode(hashlib.sha256(ROOT_PATH_SCRIPT.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self' 'sha256-{ROOT_PATH_SCRIPT_HASH}'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _task_queues(state: State) -> TaskQueues:
    return TaskQueues(queues={state.queue.name: state.queue})


def saq_ui_controller() -> ControllerRouterHandler:
    """The UI's pages and its JSON API; mount it behind the API key middleware."""
    return Router(
        path="/",
        route_handlers=[build_controller(PATH, [admin_only])],
        after_request=page_headers(CONTENT_SECURITY_POLICY),
    )


def saq_ui_static() -> ControllerRouterHandler:
    """SAQ's own JS and CSS: public files of the saq package, served without a key."""
    return create_static_files_router(
        path=f"{PATH}/static",
        directories=[Path(saq.__file__).parent / "web" / "static"],
        after_request=page_headers(CONTENT_SECURITY_POLICY),
        include_in_schema=False,
    )


saq_ui_dependencies = {"task_queues": Provide(_task_queues, sync_to_thread=False)}
# The controller's annotations are strings naming SAQ's types; Litestar resolves them here.
saq_ui_signature_namespace = SAQConfig().signature_namespace
