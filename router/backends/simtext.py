"""Deterministic content for the simulated providers: prose, tool arguments, JSON instances.

Everything is drawn from one ``random.Random`` so a given seed gives the same answer.
"""

from __future__ import annotations

import math
import random
from typing import Any

WORDS = (
    "the a routing model token price cost quality request gateway cheap fast answer provider "
    "budget cache latency stream policy tenant margin chip cloud serve plan user data result "
    "value system simple clear good better best small large open weight context window output "
    "input reason check verify choose pick send return balance measure meter report track "
    "every each many few more less often rarely always never quickly slowly carefully well "
    "and or but so because while when if then also still just only even about across through "
    "with without from into over under between after before during is are was were be been "
    "can could should would will may might must does did has have had this that these those"
).split()


def prose(rng: random.Random, n_words: int) -> str:
    out: list[str] = []
    sentence_left = rng.randint(6, 14)
    cap = True
    for i in range(n_words):
        w = rng.choice(WORDS)
        out.append(w.capitalize() if cap else w)
        cap = False
        sentence_left -= 1
        if sentence_left == 0 or i == n_words - 1:
            out[-1] += "."
            sentence_left = rng.randint(6, 14)
            cap = True
    return " ".join(out)


MAX_DEPTH = 6  # deeper than this, ``instance`` answers a word
MAX_VALUES = 10_000  # the most values one generated instance may hold


class SchemaError(ValueError):
    """A JSON Schema the simulated provider refuses (malformed, or too large to instantiate)."""


def _number(schema: dict[str, Any], key: str, integer: bool = False) -> None:
    v = schema.get(key)
    if v is not None and (
        isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int))
    ):
        raise SchemaError(f"'{key}' must be {'an integer' if integer else 'a number'}")
    if integer and v is not None and v < 0:
        raise SchemaError(f"'{key}' must not be negative")


def resolve(schema: Any, root: Any) -> Any:
    """``schema`` with a local ``$ref`` ("#/$defs/Name", "#/definitions/Name", any "#/" pointer into
    ``root``) followed, as pydantic's nested models write them; SchemaError for any other reference."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError("'$ref' must be a local reference such as '#/$defs/Name'")
        target = root
        for part in (p for p in ref[1:].split("/") if p):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise SchemaError(f"'$ref' {ref[:100]!r} points at nothing in the schema")
            target = target[part]
        seen += 1
        if seen > 32:
            raise SchemaError("'$ref' chain is circular")
        schema = target
    return schema


def _checked_fields(schema: dict[str, Any]) -> tuple[Any, Any]:
    """(properties, required) of an object schema, after checking the fields ``instance`` reads."""
    for key in ("minimum", "maximum"):
        _number(schema, key)
    for key in ("minItems", "maxItems"):
        _number(schema, key, integer=True)
    props = schema.get("properties")
    if props is not None and not isinstance(props, dict):
        raise SchemaError("'properties' must be an object")
    required = schema.get("required")
    if required is not None and (not isinstance(required, list) or not all(isinstance(r, str) for r in required)):
        raise SchemaError("'required' must be a list of property names")
    if "items" in schema and not isinstance(schema["items"], (dict, bool)):
        raise SchemaError("'items' must be a schema")
    return props, required


def _size(schema: Any, depth: int, budget: int, root: Any = None) -> int:
    """How many values ``instance`` makes for ``schema`` at most (stops counting past ``budget``);
    SchemaError for the shapes it cannot read."""
    root = schema if root is None else root
    schema = resolve(schema, root)
    if not isinstance(schema, dict) or depth > MAX_DEPTH or "const" in schema:
        return 1
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise SchemaError("'enum' must be a list")
    if schema.get("enum"):
        return 1
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema and not isinstance(schema[key], list):
            raise SchemaError(f"'{key}' must be a list")
        if isinstance(schema.get(key), list) and schema[key]:
            return _size(schema[key][0], depth + 1, budget, root)
    props, required = _checked_fields(schema)
    total = 1
    if props:
        wanted = set(required) if required is not None else set(props)
        for k, v in props.items():
            if k in wanted:
                total += _size(v, depth + 1, budget - total, root)
                if total > budget:
                    return total
    typ = schema.get("type")
    if typ == "array" or (isinstance(typ, list) and "array" in typ):
        lo = int(schema.get("minItems", 1))
        hi = max(lo, min(int(schema.get("maxItems", 3)), lo + 2))
        if hi > budget:
            return hi
        total += hi * _size(schema.get("items") or {}, depth + 1, budget // max(hi, 1) + 1, root)
    return total


def check_schema(schema: Any) -> None:
    """SchemaError unless ``instance`` can read ``schema`` and answer with at most MAX_VALUES values:
    checked before any generation, so a tiny request cannot ask for an exponential answer."""
    if schema is not None and not isinstance(schema, dict):
        raise SchemaError("the schema must be an object")
    n = _size(schema or {}, 0, MAX_VALUES)
    if n > MAX_VALUES:
        raise SchemaError(f"an instance of this schema would hold more than {MAX_VALUES:,} values")


def instance(schema: Any, rng: random.Random, depth: int = 0, root: Any = None) -> Any:
    """A value that satisfies a (simple) JSON Schema: types, enums, consts, required, items, local
    ``$ref``s into ``$defs`` (nested pydantic models)."""
    root = schema if root is None else root
    schema = resolve(schema, root)
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return rng.choice(WORDS)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance(schema[key][0], rng, depth + 1, root)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ is None:
        typ = "object" if "properties" in schema else "string"
    if typ == "object":
        props = schema.get("properties") or {}
        required = set(schema.get("required") or props.keys())
        return {k: instance(v, rng, depth + 1, root) for k, v in props.items() if k in required}
    if typ == "array":
        lo = int(schema.get("minItems", 1))
        hi = max(lo, min(int(schema.get("maxItems", 3)), lo + 2))
        return [instance(schema.get("items") or {}, rng, depth + 1, root) for _ in range(rng.randint(lo, hi))]
    if typ == "integer":
        lo, hi = int(schema.get("minimum", 0)), int(schema.get("maximum", 100))
        return rng.randint(lo, max(lo, hi))
    if typ == "number":
        low, high = float(schema.get("minimum", 0)), float(schema.get("maximum", 100))
        return round(rng.uniform(low, max(low, high)), 2)
    if typ == "boolean":
        return rng.random() < 0.5
    if typ == "null":
        return None
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))


def logprob_entries(tokens: list[str], rng: random.Random, top: int) -> list[dict[str, Any]]:
    entries = []
    for tok in tokens:
        lp = -abs(rng.gauss(0, 0.6))
        alts = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}]
        for _ in range(max(0, top - 1)):
            alt = rng.choice(WORDS)
            alts.append({"token": alt, "logprob": lp - abs(rng.gauss(2, 1)), "bytes": list(alt.encode())})
        entries.append({"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": alts[:top]})
    return entries


def embedding(text_seed: int, dims: int) -> list[float]:
    rng = random.Random(text_seed)
    vec = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]
