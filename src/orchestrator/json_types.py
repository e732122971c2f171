"""Numbers and booleans as JSON has them, as the OpenAPI document states.

Litestar validates request bodies with `strict=False`, which overrides Pydantic's StrictInt and
friends: "5" would become 5 and `true` a 1, although the schema says number. These refuse any
other JSON type before Pydantic coerces it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("give an integer")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("give a number")
    return value


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("give true or false")
    return value


# Bounds go before these in an Annotated (Annotated[int, Field(ge=1), AS_INTEGER]): after them,
# Pydantic cannot carry them into the JSON schema.
AS_INTEGER = BeforeValidator(_integer)
AS_NUMBER = BeforeValidator(_number)
JSONInt = Annotated[int, AS_INTEGER]
JSONNumber = Annotated[float, AS_NUMBER]
JSONBool = Annotated[bool, BeforeValidator(_boolean)]


def present(name: str, json_type: str = "string") -> dict[str, Any]:
    """A JSON Schema clause for a model rule such as "an email or a phone": `name` is sent, and
    not as null. Combine with anyOf / oneOf in the model's `json_schema_extra`."""
    return {"required": [name], "properties": {name: {"type": json_type}}}
