"""What ``switchyard check-config`` and ``price`` work out offline: the deployments a config builds
(no network), the policies it loads, and the warnings about money lost by design."""

from __future__ import annotations

import logging
from typing import Any

from router.config import Config


def self_hosted_losses(cfg: Config) -> list[str]:
    """Self-hosted models a plan charges less for than their GPU-hours cost at the stack profile's
    throughput: every such request loses money (the Stack view shows it as a negative margin)."""
    from pricing import Usage
    from pricing.loaders import load_profiles
    from pricing.attribution import self_hosted_cost

    catalog, registry = offline_registry(cfg)
    profile = load_profiles()[cfg.billing.profile]
    out = []
    for dep in registry.deployments:
        if not dep.self_hosted or dep.mode != "chat":
            continue
        price = dep.price(catalog)
        cls = dep.model_class or profile.model_class(
            dep.price_key or dep.upstream_model, price.output * 1e6 if price is not None else None
        )
        for kind, usage in (("input", Usage(1_000_000, 0)), ("output", Usage(0, 1_000_000))):
            cost = self_hosted_cost(usage, profile, cls)
            api = None
            if price is not None:
                api = (price.input if kind == "input" else price.output) * 1e6
            for name, plan in cfg.billing.plans.items():
                charge = plan.charge(dep.model_name, usage, api)
                if charge is not None and charge < cost:
                    out.append(
                        f"model '{dep.model_name}' is self-hosted ({cls} class): plan '{name}' charges "
                        f"${charge:.4f} per million {kind} tokens, below their GPU cost of ${cost:.4f} at "
                        f"profile '{profile.name}' throughput; such requests lose money"
                    )
    return out


def offline_registry(cfg: Config) -> tuple[Any, Any]:
    """The config's price catalog and its deployments as the server would build them, reading no
    secret: every os.environ/ reference (parse_config already checked each is set) stands for a
    placeholder URL, so deployments whose api_base is such a reference build as they will."""
    from router.registry import Registry
    from router.services import load_catalog
    from router.tokens import Tokenizer

    catalog = load_catalog(cfg)
    return catalog, Registry.build(
        cfg, catalog, Tokenizer(), lambda ref: "https://env-reference.invalid/v1" if ref else None
    )


def fixed_price_losses(cfg: Config, store: Any) -> list[str]:
    """Aliases a plan sells at a fixed price that can route to a model whose list price per token
    is above it: every request that model answers costs more than it earns (for the tokens whose
    rate is above; both rates above: whatever the request)."""
    catalog, registry = offline_registry(cfg)
    reach: dict[str, list[str]] = {alias: list(models) for alias, models in cfg.aliases.items()}
    for x in store.loaded:
        for alias in x.policy.bind.aliases:
            if alias != "*":
                reach.setdefault(alias, [])
                reach[alias] += [m for m in x.policy.models if m not in reach[alias]]
    out = []
    for plan_name, plan in cfg.billing.plans.items():
        for alias, fixed in plan.fixed.items():
            for model in reach.get(alias, []):
                deps = [d for d in registry.candidates(model, "chat") if not d.self_hosted]
                price = deps[0].price(catalog) if deps else None
                if price is None:
                    continue
                above = [
                    f"{kind} ${have * 1e6:g} > ${sold:g}"
                    for kind, have, sold in (
                        ("input", price.input, fixed.input_per_mtok),
                        ("output", price.output, fixed.output_per_mtok),
                    )
                    if have * 1e6 > sold
                ]
                if above:
                    out.append(
                        f"plan '{plan_name}' sells '{alias}' at a fixed ${fixed.input_per_mtok:g} / "
                        f"${fixed.output_per_mtok:g} per million input / output tokens, and '{alias}' can "
                        f"route to '{model}', which costs more per million tokens ({', '.join(above)}): "
                        f"requests it answers lose money (a policy with a margin objective weighs this price when it routes)"
                    )
    return out


def load_policies(cfg: Config) -> tuple[Any, list[str]]:
    """Load the config's policy files as the server would at start-up (schema, predictor and verifier
    files, candidates that are no model or alias of the config): the store, and what it would refuse."""
    from router.policy_store import PolicyStore

    logging.getLogger("switchyard.policies").setLevel(logging.ERROR)  # the problems are printed instead
    _, registry = offline_registry(cfg)
    store = PolicyStore(cfg.policies, registry)
    ok, problems = store.reload()
    return store, ([] if ok else problems)
