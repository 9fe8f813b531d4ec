"""Pricing's file I/O, at the edge: the bundled data (litellm's price map, the overrides, the stack
profiles) read into the pure core's types. The core modules never read a file or the clock."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Iterable

import orjson
import yaml

from pricing.catalog import PriceCatalog, PricingError
from pricing.profiles import StackProfile, profiles_from_doc

DATA = Path(__file__).with_name("data")
DEFAULT_OVERRIDES = DATA / "overrides.yaml"
DEFAULT_PROFILES = DATA / "profiles.yaml"


def litellm_price_map_path() -> Path:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise PricingError("litellm is not installed; its price map is the catalog's base")
    return Path(list(spec.submodule_search_locations)[0]) / "model_prices_and_context_window_backup.json"


def litellm_version() -> str:
    try:
        return importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - litellm is a pinned dependency
        return "unknown"


def load_catalog(overrides: Iterable[Path | str] = (DEFAULT_OVERRIDES,), *, base: Path | None = None) -> PriceCatalog:
    """litellm's bundled price map (read from the installed package's JSON: importing litellm costs
    seconds), with the override files on top, in order."""
    docs = [(Path(p).name, yaml.safe_load(Path(p).read_text()) or {}) for p in overrides]
    raw = orjson.loads((base or litellm_price_map_path()).read_bytes())
    return PriceCatalog.from_documents(raw, docs, source=f"litellm-{litellm_version()}")


def load_profiles(path: Path | str = DEFAULT_PROFILES) -> dict[str, StackProfile]:
    return profiles_from_doc(yaml.safe_load(Path(path).read_text()) or {})
