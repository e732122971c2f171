"""SAQ's web UI at /saq, for admin keys only: its retry and abort endpoints are plain POSTs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import saq
from litestar.di import Provide
from litestar.static_files import create_static_files_router
from litestar_saq.config import SAQConfig, TaskQueues
from litestar_saq.controllers import build_controller

from orchestrator.auth.middleware import admin_only

if TYPE_CHECKING:
    from litestar.datastructures import State
    from litestar.types import ControllerRouterHandler

PATH = "/saq"


def _task_queues(state: State) -> TaskQueues:
    return TaskQueues(queues={state.queue.name: state.queue})


def saq_ui_controller() -> ControllerRouterHandler:
    """The UI's pages and its JSON API; mount it behind the API key middleware."""
    return build_controller(PATH, [admin_only])


def saq_ui_static() -> ControllerRouterHandler:
    """SAQ's own JS and CSS: public files of the saq package, served without a key."""
    return create_static_files_router(
        path=f"{PATH}/static",
        directories=[Path(saq.__file__).parent / "web" / "static"],
        include_in_schema=False,
    )


saq_ui_dependencies = {"task_queues": Provide(_task_queues, sync_to_thread=False)}
# The controller's annotations are strings naming SAQ's types; Litestar resolves them here.
saq_ui_signature_namespace = SAQConfig().signature_namespace
