"""SAQ's web UI at /saq, behind a token: its retry and abort endpoints are plain POSTs."""

from __future__ import annotations

import base64
import binascii
import hmac
from pathlib import Path
from typing import TYPE_CHECKING, Any

import saq
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException
from litestar.static_files import create_static_files_router
from litestar_saq.config import SAQConfig, TaskQueues
from litestar_saq.controllers import build_controller

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.datastructures import State
    from litestar.handlers import BaseRouteHandler
    from litestar.types import ControllerRouterHandler

PATH = "/saq"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="orchestrator SAQ"'}


def presented_secret(authorization: str | None) -> str | None:
    """The secret in `Bearer <token>` or `Basic base64(any-user:<token>)`."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def token_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    token = connection.app.state.settings.saq_ui_token
    if token is None:
        raise NotAuthorizedException(
            "The SAQ UI is disabled: set SAQ_UI_TOKEN to enable it", headers=CHALLENGE
        )
    secret = presented_secret(connection.headers.get("authorization"))
    if secret is None or not hmac.compare_digest(secret.encode(), token.get_secret_value().encode()):
        raise NotAuthorizedException("Missing or wrong SAQ UI credentials", headers=CHALLENGE)


def _task_queues(state: State) -> TaskQueues:
    return TaskQueues(queues={state.queue.name: state.queue})


def saq_ui_handlers() -> list[ControllerRouterHandler]:
    static = create_static_files_router(
        path=f"{PATH}/static",
        directories=[Path(saq.__file__).parent / "web" / "static"],
        include_in_schema=False,
    )
    return [static, build_controller(PATH, [token_guard])]


saq_ui_dependencies = {"task_queues": Provide(_task_queues, sync_to_thread=False)}
# The controller's annotations are strings naming SAQ's types; Litestar resolves them here.
saq_ui_signature_namespace = SAQConfig().signature_namespace
