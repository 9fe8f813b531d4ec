"""The API surfaces apps speak, each adapted in and out of the gateway's chat requests (see base)."""

from router.surfaces.base import Encoder, Surface
from router.surfaces.completions import Completions
from router.surfaces.messages import Messages
from router.surfaces.responses import Responses

# path (under /v1 and at the root) -> surface
SURFACES: dict[str, type[Surface]] = {"completions": Completions, "messages": Messages, "responses": Responses}

__all__ = ["SURFACES", "Completions", "Encoder", "Messages", "Responses", "Surface"]
