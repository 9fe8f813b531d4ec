"""A registry of kinds (objectives, checks): pydantic models, each registered under the value of its
``type: Literal[...]`` field, that policy files choose between by ``type``.

``registry.field`` is the annotation of a field holding one of them: a union tagged by ``type`` over
what is registered when the model holding it is built. Models holding one are declared with
``registry.holds`` and rebuilt when a kind is registered or removed (a toy kind in a test, a plugin)."""

from __future__ import annotations

from typing import Any, Generic, Iterator, TypeVar

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import core_schema

K = TypeVar("K", bound=BaseModel)
M = TypeVar("M", bound=type[BaseModel])


def type_name(kind: type[BaseModel]) -> str:
    f = kind.model_fields.get("type")
    args: tuple[Any, ...] = tuple(getattr(f.annotation, "__args__", ())) if f is not None else ()
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{kind.__name__} declares no type: Literal['its-name']")
    return args[0]


class Registry(Generic[K]):
    def __init__(self, what: str) -> None:
        self.what = what
        self._kinds: dict[str, type[K]] = {}
        self._holders: list[type[BaseModel]] = []  # in the order they are rebuilt (inner models first)
        registry = self

        class Field:
            @classmethod
            def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
                return core_schema.tagged_union_schema(
                    {n: handler.generate_schema(k) for n, k in registry._kinds.items()}, discriminator="type"
                )

        self.field: Any = Field

    def register(self, kind: type[K]) -> type[K]:
        self._kinds[type_name(kind)] = kind
        self._rebuild()
        return kind

    def unregister(self, name: str) -> None:
        self._kinds.pop(name, None)
        self._rebuild()

    def holds(self, model: M) -> M:
        """Class decorator for a model with a ``field`` of this registry."""
        self._holders.append(model)
        return model

    def _rebuild(self) -> None:
        for m in self._holders:
            m.model_rebuild(force=True)

    def __getitem__(self, name: str) -> type[K]:
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def items(self) -> list[tuple[str, type[K]]]:
        return list(self._kinds.items())
