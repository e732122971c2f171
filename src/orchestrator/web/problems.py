"""The one place that turns every error into RFC 9457 problem+json, and the OpenAPI entries of
those answers."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException
from litestar.status_codes import (
    HTTP_412_PRECONDITION_FAILED,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from pydantic import BaseModel, ConfigDict
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm.exc import StaleDataError

from orchestrator.db import server_away, sqlstate, transient
from orchestrator.errors import DomainError

if TYPE_CHECKING:
    from litestar import Request, Response

logger = logging.getLogger(__name__)


class Problem(BaseModel):
    """The body of every error answer (RFC 9457); some carry more, e.g. `errors` on a 422."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


def problems(*codes: int, public: bool = False) -> dict[int, ResponseSpec]:
    """The error answers of an operation for its OpenAPI entry: 503 when the database is away
    or cannot finish the request, and unless the route is public 401 (no valid key), 403 (scope
    too small), 429 (rate)."""
    always = (HTTP_503_SERVICE_UNAVAILABLE,) if public else (401, 403, 429, HTTP_503_SERVICE_UNAVAILABLE)
    return {
        code: ResponseSpec(
            data_container=Problem,
            media_type="application/problem+json",
            description=HTTPStatus(code).phrase,
            generate_examples=False,
        )
        for code in (*codes, *always)
    }


def _problem(status: int, title: str, detail: str, /, **extra: Any) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status, title=title, detail=detail, extra=extra or None, type_="about:blank"
    )


def from_domain_error(exc: DomainError) -> ProblemDetailsException:
    return _problem(int(exc.status_code), exc.title, exc.detail, **exc.extra)


def from_validation_error(exc: ValidationException) -> ProblemDetailsException:
    """Litestar answers 400 for every validation error; a well-formed request with bad values is 422."""
    errors = [
        # A rule of the whole body (a model validator) names no field: "field" is left out
        # rather than naming a field the body does not have.
        ({"field": field} if (field := _field_name(item)) else {})
        | {"message": item.get("message", ""), "in": item.get("source") or "body"}
        for item in (exc.extra if isinstance(exc.extra, list) else [])
        if isinstance(item, dict)
    ]
    if not errors:
        return _problem(400, "Bad Request", str(exc.detail))
    fields = ", ".join(f"{e.get('field', e['in'])}: {e['message']}" for e in errors)
    return _problem(
        HTTP_422_UNPROCESSABLE_ENTITY, "Unprocessable Content", f"Invalid {fields}", errors=errors
    )


def _field_name(item: dict[str, Any]) -> str:
    key = str(item.get("key") or "")
    if item.get("source") == "header":  # Litestar names the handler argument; clients know the header
        return "-".join(part.capitalize() for part in key.split("_"))
    return key


def from_stale_data(_: StaleDataError) -> ProblemDetailsException:
    # Another writer committed between our read and our versioned UPDATE.
    return _problem(
        HTTP_412_PRECONDITION_FAILED, "Precondition Failed", "The resource changed; read it again"
    )


def from_dbapi_error(exc: sa_exc.DBAPIError) -> ProblemDetailsException:
    """A driver error: 503 when the server is away (e.g. 'the database system is shutting
    down') or the statement met something that passes (a deadlock, a serialization failure, a
    statement timeout, the server out of connections): its transaction was rolled back and the
    same request may pass a moment later. Anything else is a 500 like any other bug."""
    if server_away(exc):
        return from_database_unavailable(exc)
    if transient(exc):
        logger.warning("database could not finish a request (SQLSTATE %s): %s", sqlstate(exc), exc.orig)
        return _retry_later("The database could not finish this request now; retry it")
    logger.error("database error", exc_info=exc)
    return _unexpected()


def from_database_unavailable(exc: Exception) -> ProblemDetailsException:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return _retry_later("The database is unavailable")


def _retry_later(detail: str) -> ProblemDetailsException:
    problem = _problem(HTTP_503_SERVICE_UNAVAILABLE, "Service Unavailable", detail)
    problem.headers = {"Retry-After": "1"}
    return problem


def from_recursion_error(exc: RecursionError) -> ProblemDetailsException:
    # The JSON decoder gives up on bodies nested about a thousand levels deep: the client's fault.
    if "while deserializing" in str(exc):
        detail = "The JSON body is nested too deeply (the limit is about 1,000 levels)"
        return _problem(400, "Bad Request", detail)
    logger.error("unhandled recursion error", exc_info=exc)
    return _unexpected()


def from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    if exc.status_code == HTTP_500_INTERNAL_SERVER_ERROR:
        # Raised by the framework on a misconfiguration: its message is about our internals.
        logger.error("internal error: %s", exc.detail)
        return _unexpected()
    problem = _problem(exc.status_code, _reason(exc.status_code), str(exc.detail), **_mapping(exc.extra))
    problem.headers = exc.headers  # e.g. WWW-Authenticate on 401, Allow on 405
    return problem


def _reason(status: int) -> str:
    return HTTPStatus(status).phrase


def _mapping(extra: Any) -> dict[str, Any]:
    return extra if isinstance(extra, dict) else {}


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Unexpected errors: log them whole, tell the client nothing about our internals."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _unexpected().to_response(request)


def _unexpected() -> ProblemDetailsException:
    """A 500 that tells the client nothing about our internals (the log has them)."""
    return _problem(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error", "An unexpected error occurred")


def problem_details_config(max_body_bytes: int) -> ProblemDetailsConfig:
    def from_http_error(exc: HTTPException) -> ProblemDetailsException:
        if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
            detail = f"The request body is larger than the limit of {max_body_bytes} bytes"
            return _problem(exc.status_code, _reason(exc.status_code), detail, limit_bytes=max_body_bytes)
        return from_http_exception(exc)

    return ProblemDetailsConfig(
        enable_for_all_http_exceptions=False,
        exception_to_problem_detail_map={
            DomainError: from_domain_error,
            ValidationException: from_validation_error,
            StaleDataError: from_stale_data,
            sa_exc.OperationalError: from_database_unavailable,
            sa_exc.DBAPIError: from_dbapi_error,
            sa_exc.InterfaceError: from_database_unavailable,
            sa_exc.TimeoutError: from_database_unavailable,
            # A new connection to a stopped server fails below SQLAlchemy: refused over TCP
            # (ConnectionError), no socket file over a Unix socket (FileNotFoundError), or a
            # name that does not resolve; the API does no other I/O that raises a bare OSError.
            OSError: from_database_unavailable,
            HTTPException: from_http_error,
            RecursionError: from_recursion_error,
        },
    )
