"""Routing policy files: the schema users write in YAML, validated with pydantic.

``switchyard policies schema`` prints the JSON Schema for editor completion.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policies.checks import CHECKS, CheckKind
from policies.objectives import OBJECTIVES, Cascade, CascadeSpec, ObjectiveKind


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bind(_M):
    aliases: list[str] = Field(
        min_length=1, description="model names clients send; '*' = any concrete model (constraints only)"
    )
    tenants: list[str] = Field(default_factory=list, description="only these tenants (default: every tenant)")


CATEGORIES = ("json", "code", "choice", "math", "general")
Objective = ObjectiveKind  # what a policy's objective field holds: one of the registered objectives


class Constraints(_M):
    capabilities: list[Literal["tools", "json_schema", "vision"]] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list, description="allowed regions (data residency); empty: any")
    no_third_party: bool = Field(default=False, description="only self-hosted deployments")
    providers_allow: list[str] = Field(default_factory=list)
    providers_deny: list[str] = Field(default_factory=list)
    max_ttft_ms: float | None = Field(default=None, gt=0, description="live time-to-first-token ceiling")
    max_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="ceiling on the expected time to the last token: live TTFT plus the expected "
        "output (max_tokens, else its history) at the live output rate",
    )
    cache_affinity: bool = Field(
        default=True,
        description="price a conversation's cached prefix at the cache rate on the "
        "deployment that holds it, and send it there when chosen",
    )


class Bandit(_M):
    enabled: bool = True
    exploration: float = Field(
        default=0.05, ge=0, le=1, description="share of decisions that sample (Thompson); 1: every one"
    )
    prior_strength: float = Field(default=20.0, gt=0, description="pseudo-observations behind the prior")
    optimism: float = Field(
        default=0.0,
        ge=0,
        le=5,
        description="decisions that do not sample use the posterior mean "
        "plus this many posterior standard deviations (Bayes-UCB): a model tried rarely, or unluckily "
        "early, is tried again instead of being written off",
    )


class Quality(_M):
    priors: dict[str, float] = Field(default_factory=dict, description="model -> quality in [0, 1]")
    by_category: dict[str, dict[str, float]] = Field(default_factory=dict, description="category -> model -> quality")
    predictor: str | None = Field(default=None, description="a trained predictor (.npz), relative to the policy file")
    bandit: Bandit = Bandit()


@OBJECTIVES.holds
@CHECKS.holds
class Policy(_M):
    name: str = Field(min_length=1)
    description: str = ""
    bind: Bind
    candidates: list[str] = Field(
        default_factory=list, description="model names or names of cascades below; default: the objective's models"
    )
    cascades: dict[str, CascadeSpec] = Field(
        default_factory=dict,
        description="named cascades: a candidate that answers with its first step and escalates when the check fails",
    )
    objective: Annotated[ObjectiveKind, OBJECTIVES.field]
    categories: dict[
        Literal["json", "code", "choice", "math", "general"], Annotated[ObjectiveKind, OBJECTIVES.field]
    ] = Field(
        default_factory=dict,
        description="task category (read from the prompt) -> the objective for its prompts; "
        "other categories use objective",
    )
    constraints: Constraints = Constraints()
    quality: Quality = Quality()
    max_attempts: int = Field(default=3, ge=1, le=10, description="deployments tried per request, fallbacks included")
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        description="seconds a request may take until its answer starts (a stream: its first chunk), "
        "fallbacks and cascade steps included; each attempt's timeout is cut to what is left",
    )
    default_output_tokens: int = Field(
        default=256, ge=1, description="expected output when max_tokens is absent and no history"
    )

    @model_validator(mode="after")
    def _pool(self) -> "Policy":
        obj = self.objective
        objectives = [obj, *self.categories.values()]
        named = list(dict.fromkeys(m for o in objectives for m in o.models))
        if not self.candidates and (not named or any(not o.models for o in objectives)):
            raise ValueError("list the candidate models (candidates:) for this objective")
        if named and self.candidates:
            missing = [m for m in named if m not in self.candidates]
            if missing:
                raise ValueError(f"objective names models outside candidates: {', '.join(missing)}")
        for name, spec in self.cascades.items():
            nested = [m for m in spec.models if m in self.cascades]
            if nested:
                raise ValueError(f"cascade '{name}' names cascades ({', '.join(nested)}); its steps are models")
        if self.cascades:
            for o in objectives:
                if not o.chooses:
                    choosers = ", ".join(n for n, k in OBJECTIVES.items() if k.chooses)
                    raise ValueError(
                        f"a {o.type} objective takes no named cascades; list them as candidates of an "
                        f"objective that chooses among candidates ({choosers})"
                    )
        return self

    def objective_for(self, category: str) -> ObjectiveKind:
        by_category = cast(dict[str, ObjectiveKind], self.categories)  # (its keys are the category names)
        return by_category.get(category, self.objective)

    def untrained_categories(self, learned: list[str] | None) -> list[str]:
        """The task categories this policy routes by predicted quality that a predictor which learned
        only from ``learned`` categories never saw (None or empty: it learned from every prompt)."""
        if not learned:
            return []
        return [c for c in CATEGORIES if c not in learned and self.objective_for(c).reads_quality]

    @property
    def models(self) -> list[str]:
        """Every concrete model the policy may call: its candidates, with each cascade's steps and voters."""
        out: list[str] = []
        for name in self.pool:
            out += self.cascades[name].models if name in self.cascades else [name]
        for o in (self.objective, *self.categories.values()):
            out += o.models
        return list(dict.fromkeys(out))

    @property
    def pool(self) -> list[str]:
        if self.candidates:
            return list(self.candidates)
        return list(dict.fromkeys(m for o in (self.objective, *self.categories.values()) for m in o.models))


class PolicyError(ValueError):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, ["a policy file is a YAML mapping"])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("function-", "tagged-union")))
            problems.append(f"{loc or '(top level)'}: {e['msg'].removeprefix('Value error, ')}")
        raise PolicyError(source, problems) from None


def checks_of(policy: Policy) -> list[CheckKind]:
    """Every cascade check the policy holds."""
    own = [o.check for o in (policy.objective, *policy.categories.values()) if isinstance(o, Cascade)]
    return own + [spec.check for spec in policy.cascades.values()]


def json_schema() -> dict[str, Any]:
    return Policy.model_json_schema(by_alias=True)
