"""What a config's schema cannot check: names that must refer to each other, environment variables
that must be set, what each deployment's backend kind says of its settings, tag rules, keys, plans
and stack profiles. ``router.config.parse_config`` runs them and reports each with its file line."""

from __future__ import annotations

from typing import Any, Mapping

from pricing.loaders import load_profiles
from router.config import Config, DeploymentConfig
from router.config_sections import ENV_REF, SECRET_HELP


def _backend_problems(provider: str, d: DeploymentConfig) -> list[tuple[str, str]]:
    """What the deployment's backend kind says of its settings (an unknown kind: that)."""
    from router.registry import BACKENDS  # the registered kinds (importing it registers the built-in ones)

    try:
        kind = BACKENDS.choose(d.litellm_params.backend, provider)
    except KeyError:
        return [("backend", f"'{d.litellm_params.backend}' is not a backend kind: one of {', '.join(BACKENDS.names)}")]
    return kind.problems(provider, d.litellm_params)


Issue = tuple[tuple[Any, ...], str]  # (where in the config, what is wrong)


def _unset(ref: Any, env: Mapping[str, str]) -> str | None:
    """What is wrong with an ``os.environ/VAR`` reference whose variable is not set (None: nothing)."""
    m = ENV_REF.match(ref) if isinstance(ref, str) and ref else None
    return f"environment variable {m.group(1)} is not set" if m is not None and m.group(1) not in env else None


def _name_problems(cfg: Config, env: Mapping[str, str]) -> list[Issue]:
    """Fallbacks and aliases name models (or aliases) of this config."""
    out: list[Issue] = []
    wild = tuple(d.model_name[:-1] for d in cfg.model_list if d.model_name.endswith("*"))
    exact = {d.model_name for d in cfg.model_list}

    def known(name: str) -> bool:  # a model name, or a name a wildcard deployment serves
        return name in exact or any(name.startswith(w) and len(name) > len(w) for w in wild)

    aliases = dict(cfg.aliases)
    for alias, target in ((cfg.router_settings or {}).get("model_group_alias") or {}).items():
        aliases.setdefault(alias, [target] if isinstance(target, str) else list(target))
    for field_name in ("fallbacks", "context_window_fallbacks"):
        for model, others in getattr(cfg, field_name).items():
            out += [
                ((field_name, model, *([i - 1] if i else [])), f"'{t}' is not a model_name or alias of this config")
                for i, t in enumerate([model, *others])
                if not known(t) and t not in aliases
            ]
    for alias, targets in cfg.aliases.items():
        if known(alias):
            out.append((("aliases", alias), f"alias '{alias}' has the same name as a model in model_list"))
        out += [
            (("aliases", alias, i), f"'{t}' is not a model_name in model_list")
            for i, t in enumerate(targets)
            if not known(t)
        ]
        if not targets:
            out.append((("aliases", alias), "an alias needs at least one model"))
    return out


def _secret_problems(cfg: Config, env: Mapping[str, str]) -> list[Issue]:
    """Every ``os.environ/VAR`` reference names a variable that is set."""
    out: list[Issue] = []
    master = (cfg.general_settings or {}).get("master_key")
    if master is not None and (not isinstance(master, str) or not ENV_REF.match(master)):
        out.append(
            (
                ("general_settings", "master_key"),
                SECRET_HELP + " (for LiteLLM's example: export "
                "LITELLM_MASTER_KEY=sk-1234 and write master_key: os.environ/LITELLM_MASTER_KEY)",
            )
        )
    refs: list[tuple[tuple[Any, ...], Any]] = [(("general_settings", "master_key"), master)]
    refs += [
        (("model_list", i, "litellm_params", f), getattr(d.litellm_params, f))
        for i, d in enumerate(cfg.model_list)
        for f in ("api_key", "api_base")
    ]
    refs += [
        (("alerts", "webhooks", i, f), getattr(h, f))
        for i, h in enumerate(cfg.alerts.webhooks)
        for f in ("url", "secret")
    ]
    refs += [(("auth", "keys", i, "key"), k.key) for i, k in enumerate(cfg.auth.keys)]
    refs += [(("storage", name), getattr(cfg.storage, name)) for name in ("database_url", "redis_url")]
    refs.append((("auth", "admin_key"), cfg.auth.admin_key))
    return out + [(where, msg) for where, ref in refs if (msg := _unset(ref, env)) is not None]


def _deployment_problems(cfg: Config, env: Mapping[str, str]) -> list[Issue]:
    """What each deployment's backend kind says of its settings; Azure's api_version."""
    out: list[Issue] = []
    for i, d in enumerate(cfg.model_list):
        provider = d.litellm_params.model.split("/", 1)[0] if "/" in d.litellm_params.model else "openai"
        out += [
            (("model_list", i, "litellm_params", field_name), msg) for field_name, msg in _backend_problems(provider, d)
        ]
        if provider == "azure" and not d.litellm_params.api_version:
            out.append((("model_list", i, "litellm_params", "api_version"), "azure deployments need an api_version"))
    return out


def _limit_problems(cfg: Config, env: Mapping[str, str]) -> list[Issue]:
    """A tag rule names key=value of a declared attribution tag."""
    out: list[Issue] = []
    for section in ("budgets", "rate_limits"):
        for i, rule in enumerate(getattr(cfg.limits, section)):
            if rule.scope != "tag":
                continue
            tag, sep, value = rule.id.partition("=")
            if not sep or not value:
                out.append(
                    (("limits", section, i, "id"), "a tag rule's id is key=value (or key=*), e.g. feature=search")
                )
            elif tag not in cfg.attribution.tags:
                out.append(
                    (
                        ("limits", section, i, "id"),
                        f"'{tag}' is not one of attribution.tags ({', '.join(cfg.attribution.tags) or 'none'})",
                    )
                )
    return out


def _key_problems(cfg: Config, env: Mapping[str, str]) -> list[Issue]:
    """Key ids are unique, each key gives a hash or a key, and belongs to a listed tenant."""
    out: list[Issue] = []
    seen: dict[str, int] = {}
    tenant_ids = {t.id for t in cfg.auth.tenants}
    for i, k in enumerate(cfg.auth.keys):
        if k.id in seen:
            out.append((("auth", "keys", i, "id"), f"key id '{k.id}' is also used by auth.keys[{seen[k.id]}]"))
        seen.setdefault(k.id, i)
        if (k.hash is None) == (k.key is None):
            out.append((("auth", "keys", i), "give exactly one of 'hash' or 'key'"))
        if tenant_ids and k.tenant not in tenant_ids:
            out.append((("auth", "keys", i, "tenant"), f"tenant '{k.tenant}' is not listed in auth.tenants"))
    return out


def _billing_problems(cfg: Config, env: Mapping[str, str]) -> list[Issue]:
    """Plans named exist; the stack profile exists and has each deployment's model class."""
    out: list[Issue] = []
    plans = cfg.billing.plans
    if cfg.billing.default_plan not in plans:
        out.append((("billing", "default_plan"), f"plan '{cfg.billing.default_plan}' is not in billing.plans"))
    out += [
        (("auth", "tenants", i, "plan"), f"plan '{t.plan}' is not in billing.plans")
        for i, t in enumerate(cfg.auth.tenants)
        if t.plan is not None and t.plan not in plans
    ]
    profiles = load_profiles()
    if cfg.billing.profile not in profiles:
        return out + [
            (
                ("billing", "profile"),
                f"unknown stack profile '{cfg.billing.profile}'; known: {', '.join(sorted(profiles))}",
            )
        ]
    classes = profiles[cfg.billing.profile].throughput
    return out + [
        (
            ("model_list", i, "model_info", "model_class"),
            f"'{d.model_info.model_class}' is not a class of profile '{cfg.billing.profile}' ({', '.join(classes)})",
        )
        for i, d in enumerate(cfg.model_list)
        if d.model_info.model_class is not None and d.model_info.model_class not in classes
    ]


SEMANTIC_CHECKS = (
    _name_problems,
    _secret_problems,
    _deployment_problems,
    _limit_problems,
    _key_problems,
    _billing_problems,
)


def semantic_problems(cfg: Config, env: Mapping[str, str]) -> list[Issue]:
    """Everything wrong with a config that its schema cannot say: each check's problems, in order."""
    return [p for check in SEMANTIC_CHECKS for p in check(cfg, env)]
