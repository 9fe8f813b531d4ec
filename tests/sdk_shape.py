"""An answer checked against an official SDK's own types: it parses (no required field missing, no
value of the wrong type) and carries no field the SDK does not know, at any depth."""

from __future__ import annotations

from typing import Any

import pydantic


def unknown_fields(obj: Any, path: str = "$") -> list[str]:
    """Where a parsed SDK object holds fields its type does not declare."""
    out: list[str] = []
    if isinstance(obj, pydantic.BaseModel):
        out += [f"{path}.{k}" for k in (obj.model_extra or {})]
        for name in type(obj).model_fields:
            out += unknown_fields(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            out += unknown_fields(x, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += unknown_fields(v, f"{path}.{k}")
    return out


def assert_sdk_shape(model: type[pydantic.BaseModel] | Any, data: Any) -> Any:
    """``data`` parsed as ``model`` (a class or a type adapter's type), with no unknown field."""
    parsed = pydantic.TypeAdapter(model).validate_python(data)
    extra = unknown_fields(parsed)
    assert not extra, f"fields the SDK's {getattr(model, '__name__', model)} does not know: {extra}"
    return parsed
