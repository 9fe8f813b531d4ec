"""Policies loaded from files, matched to requests, and reloaded live.

A reload (a changed file seen by the watcher, or ``POST /admin/policies/reload``) parses and
checks every file first and swaps the whole set only if all are valid: an invalid file is
rejected with its errors and the previous policies stay. Feedback (bandit) state survives
reloads, keyed by policy name.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from policies.decide import PolicyRouter
from policies.loaders import load_assets
from policies.predictor import QualityPredictor
from policies.quality import BanditState, QualityModel
from policies.schema import Policy, PolicyError, parse_policy
from policies.verifier import Verifier
from router.config_sections import PoliciesConfig
from router.registry import Registry

log = logging.getLogger("switchyard.policies")


@dataclass
class Loaded:
    policy: Policy
    router: PolicyRouter
    source: str


def policy_sources(cfg: PoliciesConfig) -> list[tuple[str, str, Path | None]]:
    """(source name, text, path) for every policy file the config names."""
    out: list[tuple[str, str, Path | None]] = []
    if cfg.builtin:
        for entry in sorted(resources.files("router.defaults").joinpath("policies").iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".yaml"):
                out.append((f"builtin:{entry.name}", entry.read_text(), None))
    paths = [Path(f) for f in cfg.files]
    for d in cfg.dirs:
        paths += sorted(Path(d).glob("*.yaml"))
    for p in paths:
        try:
            out.append((str(p), p.read_text(encoding="utf-8"), p))
        except OSError as exc:
            raise PolicyError(str(p), [f"cannot read: {exc.strerror}"]) from None
        except UnicodeDecodeError as exc:
            raise PolicyError(str(p), [f"not UTF-8 text (byte {exc.start})"]) from None
    return out


class PolicyStore:
    def __init__(self, cfg: PoliciesConfig, registry: Registry):
        self.cfg = cfg
        self.registry = registry
        self.bandits: dict[str, BanditState] = {}
        self.loaded: list[Loaded] = []
        self._mtimes: dict[str, float] = {}
        self.version = 0

    def build(self, policy: Policy, path: Path | None) -> PolicyRouter:
        problems = [
            f"candidate '{m}' is not a model_name in the config"
            for m in policy.models
            if m not in self.registry.aliases and not self.registry.candidates(m, "chat")
        ]
        predictor: QualityPredictor | None = None
        verifiers: dict[str, Verifier] = {}
        try:
            predictor, verifiers = load_assets(policy, path.parent if path is not None else None)
        except PolicyError as exc:
            problems += exc.problems
        if problems:
            raise PolicyError(policy.name, problems)
        defaults = {}
        for name in policy.models:
            deps = self.registry.candidates(name, "chat")
            q = next((d.quality for d in deps if d.quality is not None), None)
            if q is not None:
                defaults[name] = q
        for name, spec in policy.cascades.items():  # a cascade is at least as good as its last step, a priori
            if spec.steps[-1] in defaults:
                defaults[name] = defaults[spec.steps[-1]]
        bandit = self.bandits.setdefault(policy.name, BanditState())
        return PolicyRouter(policy, QualityModel(policy.quality, defaults, predictor, bandit), verifiers)

    def reload(self) -> tuple[bool, list[str]]:
        """Load every file; swap in the new set only if all are valid. Returns (ok, problems)."""
        try:
            sources = policy_sources(self.cfg)
            loaded = []
            names: set[str] = set()
            for source, text, path in sources:
                policy = parse_policy(text, source)
                if policy.name in names:
                    raise PolicyError(source, [f"another file already defines policy '{policy.name}'"])
                names.add(policy.name)
                loaded.append(Loaded(policy, self.build(policy, path), source))
        except PolicyError as exc:
            problems = [f"{exc.source}: {p}" for p in exc.problems]
            log.warning("policy reload rejected, previous policies kept: %s", "; ".join(problems))
            return False, problems
        self.loaded = loaded
        self.version += 1
        self._mtimes = self._current_mtimes()
        log.info("policies loaded: %s", ", ".join(x.policy.name for x in loaded) or "(none)")
        for warning in self.predictor_gaps():
            log.warning("%s", warning)
        return True, []

    def predictor_gaps(self) -> list[str]:
        """Policies that route prompts of a task category by a predictor that never learned from it
        (trained with ``policies train --category``): there its predictions are extrapolations."""
        out = []
        for x in self.loaded:
            pred = x.router.quality.predictor
            learned = list(pred.meta.get("categories") or []) if pred is not None else []
            gaps = x.policy.untrained_categories(learned)
            if gaps:
                out.append(
                    f"policy '{x.policy.name}' routes {', '.join(gaps)} prompts by predicted quality, but its "
                    f"predictor learned only from {', '.join(learned)} prompts: its predictions there are "
                    "guesses (train it on every category, or give those categories an objective that does "
                    "not read it, as `categories:` allows)"
                )
        return out

    def match(self, requested: str, tenant: str | None, concrete: bool) -> PolicyRouter | None:
        for x in self.loaded:
            b = x.policy.bind
            if b.tenants and tenant not in b.tenants:
                continue
            if requested in b.aliases or (concrete and "*" in b.aliases):
                return x.router
        return None

    def aliases(self) -> list[str]:
        return [a for x in self.loaded for a in x.policy.bind.aliases if a != "*"]

    def _current_mtimes(self) -> dict[str, float]:
        out = {}
        paths = [Path(f) for f in self.cfg.files]
        for d in self.cfg.dirs:
            paths += list(Path(d).glob("*.yaml"))
        for p in paths:
            try:
                out[str(p)] = p.stat().st_mtime
            except OSError:
                out[str(p)] = -1.0
        return out

    async def watch(self) -> None:
        """Poll the policy files; reload when one changes (or appears, or disappears)."""
        if self.cfg.watch_interval <= 0:
            return
        while True:
            await asyncio.sleep(self.cfg.watch_interval)
            if self._current_mtimes() != self._mtimes:
                ok, _ = self.reload()
                if not ok:  # do not retry the same broken files every tick
                    self._mtimes = self._current_mtimes()
