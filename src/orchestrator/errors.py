"""Domain errors: what services, jobs and the runner raise. No web framework here: the HTTP
answer each one becomes is decided in `orchestrator.web.problems`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

__all__ = ["Conflict", "DomainError", "NotFound", "PermanentError", "PreconditionFailed", "Unprocessable"]


class PermanentError(Exception):
    """Another attempt cannot help (bad input, a 4xx from a remote): a job that raises it is
    FAILED at once, without retrying."""


class DomainError(Exception):
    """A rule of the service was broken; the message is safe to show to the client."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR
    title = "Error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError, PermanentError):
    status_code = HTTPStatus.NOT_FOUND
    title = "Not Found"


class Conflict(DomainError):
    status_code = HTTPStatus.CONFLICT
    title = "Conflict"


class RefusedChange(Conflict, PermanentError):
    """A change the stored state refuses: sent again as it is, it is refused again (no retry)."""


class Unprocessable(DomainError, PermanentError):
    """A well-formed request whose values break a rule; `field` names the culprit."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    title = "Unprocessable Content"


class PreconditionFailed(DomainError):
    status_code = HTTPStatus.PRECONDITION_FAILED
    title = "Precondition Failed"
