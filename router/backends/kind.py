"""What a backend kind is: the config's ``litellm_params.backend`` names one (``auto``: the first kind
that serves the deployment's provider, else ``litellm``). A kind checks a deployment's settings and
builds its ``Backend``. Built-in kinds are registered in ``router.registry``; a new backend is one
module (its ``Backend`` and its kind) plus its registration line there."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:
    from pricing import PriceCatalog
    from router.backends.base import Backend
    from router.config import Config, LiteLLMParams
    from router.tokens import Tokenizer


@dataclass
class BuildContext:
    """One deployment as its backend kind sees it."""

    index: int  # in model_list (for messages)
    provider: str  # before the model's first '/' ('openai' when it has none)
    upstream: str  # the model's name after it
    params: "LiteLLMParams"
    extra: dict[str, Any]  # litellm_params keys the gateway does not read itself (provider parameters)
    cfg: "Config"
    catalog: "PriceCatalog"
    tokenizer: "Tokenizer"
    resolve: Callable[[str | None], str | None]  # an os.environ/VAR reference to its value
    base_model: str | None
    tls: Callable[[], ssl.SSLContext | None]  # the deployment's TLS settings (ssl_verify, ssl_certificate, ssl_key)

    def ref_or_literal(self, value: str | None) -> str | None:
        from router.config_sections import ENV_REF

        return self.resolve(value) if value and ENV_REF.match(value) else value

    def listed_price_key(self) -> str | None:
        """The catalog's entry for the deployment's model (or its base_model)."""
        return self.catalog.key_for(self.params.model, self.base_model)


@dataclass
class Built:
    """A deployment's backend, the catalog entry that prices it, and facts the backend itself knows
    about its model (keys of ``ModelInfo``: mode, region, self_hosted, capabilities, max_input_tokens,
    quality, reasoning_allowance), used where the config's model_info leaves them unset."""

    backend: "Backend"
    price_key: str | None
    facts: dict[str, Any] = field(default_factory=dict)


class BackendKind:
    name: ClassVar[str]

    def serves(self, provider: str) -> bool:
        """Whether ``backend: auto`` picks this kind for ``provider``."""
        return False

    def problems(self, provider: str, params: "LiteLLMParams") -> list[tuple[str, str]]:
        """Settings this kind cannot work with, as (litellm_params field, message)."""
        return []

    def build(self, ctx: BuildContext) -> Built:
        raise NotImplementedError


class Backends:
    """The registered backend kinds, in registration order; ``fallback`` serves what none claims."""

    def __init__(self, fallback: str) -> None:
        self.fallback = fallback
        self.kinds: dict[str, BackendKind] = {}

    def register(self, kind: BackendKind) -> BackendKind:
        self.kinds[kind.name] = kind
        return kind

    def unregister(self, name: str) -> None:
        self.kinds.pop(name, None)

    def choose(self, backend: str, provider: str) -> BackendKind:
        if backend != "auto":
            if backend not in self.kinds:
                raise KeyError(backend)
            return self.kinds[backend]
        return next((k for k in self.kinds.values() if k.serves(provider)), self.kinds[self.fallback])

    @property
    def names(self) -> list[str]:
        return ["auto", *self.kinds]


BACKENDS = Backends(fallback="litellm")
