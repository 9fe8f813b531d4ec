"""Validation against OpenAI's published response schemas (vendored in tests/data/openai-schemas)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def validator(schemas: dict[str, Any], name: str) -> Draft202012Validator:
    registry = Registry().with_resource(
        "urn:openai", Resource.from_contents(schemas, default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{name}"}, registry=registry)


def assert_valid(schemas: dict[str, Any], name: str, instance: Any) -> None:
    errors = sorted(validator(schemas, name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
