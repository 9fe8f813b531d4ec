"""``switchyard import-litellm FILE``: a LiteLLM proxy config as Switchyard's own, with what it does
not carry said in comments. The input is read the way ``serve`` reads it (the LiteLLM settings
Switchyard honours already mapped), so the output means exactly what serving the input means."""

from __future__ import annotations

from typing import Any

import yaml

from router.config import ROUTER_ONLY_PARAMS, Config, ignored_litellm_settings


def native_config(cfg: Config) -> str:
    """``cfg`` (loaded from a LiteLLM proxy file) as a native config file's text."""
    out: dict[str, Any] = {"model_list": []}
    for d in cfg.model_list:
        entry = d.model_dump(exclude_defaults=True, exclude_none=True)
        params = entry["litellm_params"]
        for key in ROUTER_ONLY_PARAMS:
            params.pop(key, None)
        out["model_list"].append(entry)
    aliases = {
        a: [t] if isinstance(t, str) else list(t)
        for a, t in ((cfg.router_settings or {}).get("model_group_alias") or {}).items()
    }
    aliases.update(cfg.aliases)
    if aliases:
        out["aliases"] = aliases
    for name in ("fallbacks", "context_window_fallbacks"):
        if getattr(cfg, name):
            out[name] = getattr(cfg, name)
    for section in ("server", "storage", "pricing", "billing", "limits", "policies", "auth"):
        dumped = getattr(cfg, section).model_dump(exclude_defaults=True, exclude_none=True)
        if dumped:
            out[section] = dumped
    if cfg.master_key:  # LiteLLM's master key: the admin key, and a key that may call every model
        auth = out.setdefault("auth", {})
        auth.setdefault("admin_key", cfg.master_key)
        auth.setdefault("keys", []).append({"id": "master-key", "tenant": "default", "key": cfg.master_key})
    lines = [
        "# Switchyard configuration, imported from a LiteLLM proxy config (switchyard import-litellm).",
        "# LiteLLM's fallbacks, context_window_fallbacks, num_retries, timeout, allowed_fails, cooldown_time,",
        "# routing_strategy, model_group_alias, master_key, wildcard deployments, access_groups and the deployments'",
        "# rpm, tpm, max_parallel_requests and order are carried over as Switchyard's own settings below.",
    ]
    ignored = ignored_litellm_settings(cfg)
    if ignored:
        lines.append("# Not carried over (Switchyard has no equivalent yet):")
        lines += [f"#   {name}" for name in ignored]
    return "\n".join(lines) + "\n" + yaml.safe_dump(out, sort_keys=False, default_flow_style=None, width=110)
