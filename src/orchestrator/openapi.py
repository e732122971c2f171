"""The OpenAPI document states exactly what the API accepts, so that a client generated from it,
or a fuzzer, sends nothing the API refuses and finds every rule it enforces.

Litestar's schema generator drops much of a Pydantic model (bounds such as `gt`, `extra="forbid"`,
model-level rules), so the request bodies are described by Pydantic's own JSON Schema instead.
On top of that, rules of the API that no model states field by field:
- every string a request carries is plain text (orchestrator.plain_text), free-form JSON included;
- POST /tasks takes one shape per job type: `type` names it, `payload` follows its schema, and
  `timeout_s` is at most the type's;
- a query or header parameter is absent or a value, never null (Litestar writes `str | None`
  as "string or null", and clients then send the text "null");
- every error answer is a Problem as application/problem+json, the framework's default 400 of
  routes with parameters too (the API never sends the shape it documents);
- each operation's id is its handler's name (`create_lead`, `submit_task`), a method name in a
  generated client.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Reference, Schema
from pydantic.json_schema import models_json_schema

from jobs.workflow_execute import MAX_DEPTH
from orchestrator.callbacks.targets import url_pattern
from orchestrator.leads.schemas import RECIPIENT_MARK, LeadPatch, LeadWrite, recipient_pattern
from orchestrator.plain_text import NO_CONTROLS
from orchestrator.schedules.schemas import ScheduleCreate, SchedulePatch
from orchestrator.tasks.schemas import CALLBACK_MARK, JOB_TYPE_MARK, TaskBatch, TaskCreate
from orchestrator.tasks.workflows import LEAD, NESTED

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler
    from litestar.openapi.spec import OpenAPI
    from pydantic import BaseModel

    from orchestrator.job import Registry

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    LeadWrite,
    LeadPatch,
    TaskCreate,
    TaskBatch,
    ScheduleCreate,
    SchedulePatch,
)
COMPONENTS = "#/components/schemas/"
PLAIN_JSON = "PlainJSON"
# Any JSON value whose strings and keys are plain text: lead attributes, payloads.
PLAIN_JSON_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value; no string or key holds a control character",
    "anyOf": [
        {"type": "string", "pattern": NO_CONTROLS},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": COMPONENTS + PLAIN_JSON}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_CONTROLS},
            "additionalProperties": {"$ref": COMPONENTS + PLAIN_JSON},
        },
    ],
}
# Formats whose every valid value is plain text already.
_PLAIN_FORMATS = {"uuid", "date-time", "date", "email"}


def exact_request_schemas(openapi: OpenAPI, registry: Registry) -> None:
    """Replace the request bodies' component schemas with exact ones (in place, once per process)."""
    _no_null_parameters(openapi)
    _problems_only(openapi)
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    schemas: dict[str, Any] = openapi.components.schemas
    _, found = models_json_schema(
        [(model, "validation") for model in REQUEST_MODELS], ref_template=COMPONENTS + "{model}"
    )
    definitions = found["$defs"]
    payload_schemas = {}
    for name in sorted(registry):
        prefix = f"{name}."
        payload_schema = registry[name].payload.model_json_schema(
            ref_template=COMPONENTS + prefix + "{model}"
        )
        for nested, definition in payload_schema.pop("$defs", {}).items():
            definitions[prefix + nested] = definition
        payload_schemas[name] = payload_schema
    for model, required in ((TaskCreate, True), (ScheduleCreate, True), (SchedulePatch, False)):
        _one_of_by_type(definitions, model.__name__, registry, payload_schemas, payload_required=required)
    if NESTED in registry:
        _nested_workflows(definitions, registry, payload_schemas[NESTED])
    marks = {
        JOB_TYPE_MARK: {"type": "string", "enum": sorted(registry)},
        RECIPIENT_MARK: _recipients(registry.settings.email_allowed_domains if registry.settings else []),
        CALLBACK_MARK: _callback_urls(registry.settings.callback_allowed_hosts if registry.settings else []),
    }
    for name, definition in definitions.items():
        schemas[name] = _exact(definition, marks)
    schemas[PLAIN_JSON] = PLAIN_JSON_SCHEMA


def _nested_workflows(definitions: dict[str, Any], registry: Registry, workflow: dict[str, Any]) -> None:
    """A workflow's steps as its submit-time check takes them. A step that runs a workflow has a
    workflow's payload, whose steps are steps again, MAX_DEPTH levels down at most, and whose
    `lead_id` may be the outer one's `${lead_id}`. Any other step's payload is checked when it
    runs (its references to earlier steps are filled then): any object."""
    prefix = f"{NESTED}."
    step = definitions.get(prefix + "Step")
    if step is None:
        return
    others = copy.deepcopy(step)
    others["properties"]["type"] = {"enum": sorted(name for name in registry if name != NESTED)}
    definitions[prefix + "Step.other"] = others
    level_name = prefix + "Step"
    for level in range(1, MAX_DEPTH):
        inner_step = f"{prefix}Step{level + 1}"
        nested = copy.deepcopy(workflow)
        nested["title"] = f"{prefix}Nested{level + 1}"
        nested["properties"]["steps"]["anyOf"][0]["items"] = {"$ref": COMPONENTS + inner_step}
        nested["properties"]["lead_id"]["anyOf"].append({"const": LEAD})
        definitions[nested["title"]] = nested
        runs_workflow = {
            "type": "object",
            "additionalProperties": False,
            "properties": {"type": {"const": NESTED}, "payload": {"$ref": COMPONENTS + nested["title"]}},
            "required": ["type", "payload"],
        }
        definitions[level_name] = {
            "title": level_name,
            "oneOf": [{"$ref": COMPONENTS + prefix + "Step.other"}, runs_workflow],
        }
        level_name = inner_step
    definitions[level_name] = {"title": level_name, "$ref": COMPONENTS + prefix + "Step.other"}


def _one_of_by_type(
    definitions: dict[str, Any],
    title: str,
    registry: Registry,
    payload_schemas: dict[str, Any],
    *,
    payload_required: bool,
) -> None:
    """Replace the model `title` (one with a `type` and a `payload`) with one alternative per job
    type, whose payload is that type's. Where `type` is optional (a patch), one more alternative
    has neither: a payload always comes with the type that decides its schema."""
    base = definitions[title]
    alternatives = {}
    for name in sorted(registry):
        alternative = copy.deepcopy(base)
        alternative["title"] = f"{title}.{name}"
        alternative["properties"]["type"] = {"const": name, "description": registry[name].description}
        alternative["properties"]["payload"] = copy.deepcopy(payload_schemas[name])
        if "timeout_s" in alternative["properties"]:
            _at_most(alternative["properties"]["timeout_s"], registry[name].timeout_s)
        required = [*alternative.get("required", [])]
        if "type" not in required:
            required.append("type")
        if payload_required and not _takes_empty(registry[name].payload) and "payload" not in required:
            required.append("payload")
        alternative["required"] = required
        definitions[alternative["title"]] = alternative
        alternatives[name] = COMPONENTS + alternative["title"]
    one_of: list[dict[str, Any]] = [{"$ref": ref} for ref in alternatives.values()]
    if "type" not in base.get("required", []):
        untyped = copy.deepcopy(base)
        untyped["title"] = f"{title}.untyped"
        for name in ("type", "payload"):
            untyped["properties"].pop(name)
        definitions[untyped["title"]] = untyped
        one_of.append({"$ref": COMPONENTS + untyped["title"]})
        definitions[title] = {
            "title": title,
            "description": base.get("description", ""),
            "oneOf": one_of,
        }
        return
    definitions[title] = {
        "title": title,
        "description": "One job type's: `type` decides the schema of `payload`",
        "oneOf": one_of,
        "discriminator": {"propertyName": "type", "mapping": alternatives},
    }


# Keys whose value maps names to schemas, holds a list of schemas, or is one schema.
_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "dependentSchemas"}
_SCHEMA_LISTS = {"anyOf", "oneOf", "allOf", "prefixItems"}
_SCHEMAS = {"items", "additionalProperties", "not", "propertyNames", "contains", "if", "then", "else"}


def _recipients(domains: list[str]) -> dict[str, Any]:
    if not domains:
        return {
            "not": {},
            "description": "Off: EMAIL_ALLOWED_DOMAINS is empty, so a task mails its lead only",
        }
    return {"type": "string", "maxLength": 254, "pattern": recipient_pattern(domains)}


def _callback_urls(hosts: list[str]) -> dict[str, Any]:
    if not hosts:
        return {"not": {}, "description": "Off: CALLBACK_ALLOWED_HOSTS is empty"}
    return {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": url_pattern(hosts)}


def _exact(schema: Any, marks: dict[str, dict[str, Any]]) -> Any:
    """`schema` with every string patterned as plain text, every free-form value as PlainJSON,
    and every field of a format of our own (`marks`) as this service's settings make it: a job
    type is an enum of its types, a free recipient an address at a domain it allows."""
    if not isinstance(schema, dict):
        return schema
    if (mark := marks.get(schema.get("format", ""))) is not None:
        return {k: v for k, v in schema.items() if k not in ("format", "type")} | mark
    if not set(schema) - {"description", "title", "default"}:  # `{}`: any value at all
        return {"$ref": COMPONENTS + PLAIN_JSON} | schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS:
            out[key] = {name: _exact(item, marks) for name, item in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [_exact(item, marks) for item in value]
        elif key in _SCHEMAS:
            out[key] = _exact(value, marks)
        else:
            out[key] = value
    if out.get("type") == "string" and "pattern" not in out and out.get("format") not in _PLAIN_FORMATS:
        out["pattern"] = NO_CONTROLS
    if out.get("type") == "object" and out.get("additionalProperties", True) is True:
        out["additionalProperties"] = {"$ref": COMPONENTS + PLAIN_JSON}
        out["propertyNames"] = {"pattern": NO_CONTROLS}
    return out


def _at_most(schema: dict[str, Any], maximum: float) -> None:
    """A task's timeout is at most its type's: the bound on each number branch of `schema`."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "number":
            branch["maximum"] = min(branch.get("maximum", maximum), maximum)


def operation_id(route_handler: HTTPRouteHandler, http_method: Any, path_components: Any) -> str:
    """The handler's name: Litestar refuses two operations with one id, so they stay unique."""
    return route_handler.handler_name


def _problems_only(openapi: OpenAPI) -> None:
    """Every error response as the Problem the API sends: Litestar documents a 400 of its own
    shape (`status_code`, `detail`, `extra`) for routes with parameters, which generated
    clients cannot read and the API never sends."""
    for path_item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            for code, response in ((operation.responses or {}) if operation is not None else {}).items():
                if int(code) < 400 or not isinstance(response, OpenAPIResponse):
                    continue
                content = response.content or {}
                if set(content) != {"application/problem+json"}:
                    problem = OpenAPIMediaType(schema=Reference(ref=COMPONENTS + "Problem"))
                    response.content = {"application/problem+json": problem}


def _no_null_parameters(openapi: OpenAPI) -> None:
    for path_item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            for parameter in (operation.parameters or []) if operation is not None else []:
                schema = getattr(parameter, "schema", None)
                if isinstance(schema, Schema) and schema.one_of:
                    values = [
                        s for s in schema.one_of if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)
                    ]
                    # Only plain strings: for any other type (an enum, a uuid) Litestar reads
                    # the text "null" as absent, so "null" is an accepted value there.
                    plain = values[0] if len(values) == 1 else None
                    if (
                        isinstance(plain, Schema)
                        and plain.type == OpenAPIType.STRING
                        and plain.format is None
                    ):
                        schema.one_of = None
                        for name, value in vars(plain).items():  # its type and any bounds
                            if value is not None and getattr(schema, name) is None:
                                setattr(schema, name, value)


def _takes_empty(payload: type[BaseModel]) -> bool:
    """Whether a task of this type may leave out `payload` (it defaults to {})."""
    try:
        payload.model_validate({})
    except Exception:
        return False
    return True
