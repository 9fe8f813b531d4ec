"""Routing policy files: the schema users write in YAML, validated with pydantic.

``switchyard policies schema`` prints the JSON Schema for editor completion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bind(_M):
    aliases: list[str] = Field(min_length=1, description="model names clients send; '*' = any concrete model (constraints only)")
    tenants: list[str] = Field(default_factory=list, description="only these tenants (default: every tenant)")


class CheapestAbove(_M):
    type: Literal["cheapest_above"]
    target: float = Field(ge=0, le=1, description="predicted quality the answer must reach")


class BestUnder(_M):
    type: Literal["best_under"]
    max_cost_usd: float = Field(gt=0, description="expected cost cap per request")


class Utility(_M):
    type: Literal["utility"]
    lambda_: float = Field(alias="lambda", ge=0, description="quality points given up per USD saved")


class Gain(_M):
    type: Literal["gain"]
    strong: str = Field(description="the model called when its predicted quality gain is large enough")
    weak: str = Field(description="the model called otherwise")
    min_gain: float = Field(ge=-1, le=1, description="call the strong model when its predicted quality exceeds the "
                                                     "weak one's by at least this")


class Margin(_M):
    type: Literal["margin"]
    min_quality: float = Field(ge=0, le=1, description="predicted quality a candidate must reach")
    min_margin: float = Field(default=0.0, description="when no candidate reaches min_quality: the best quality among "
                                                       "those whose expected margin (USD) is at least this")


class Check(_M):
    type: Literal["agreement", "logprob", "rule", "verifier", "judge"]
    with_: list[str] = Field(default_factory=list, alias="with",
                             description="agreement: models that must agree; verifier: models whose answers it compares; "
                                         "judge: models asked whether the answer is right (every one must say yes)")
    min_mean_logprob: float = Field(default=-0.5, description="logprob: mean token logprob at least this")
    min_chars: int = Field(default=1, ge=0, description="rule: answer at least this long")
    json_: bool = Field(default=False, alias="json", description="rule: answer must parse as JSON")
    not_contains: list[str] = Field(default_factory=list, description="rule: phrases that fail the check")
    verifier: str | None = Field(default=None, description="verifier: a trained verifier (.json), relative to the policy file")
    min_confidence: float = Field(default=0.5, ge=0, le=1, description="verifier: accept when P(answer is good) is at least this")
    prompt: str | None = Field(default=None, description="judge: the question put to the judges, with {conversation} and "
                                                         "{answer} in it (default: policies.checks.JUDGE_PROMPT)")

    @model_validator(mode="after")
    def _needs(self) -> "Check":
        if self.type == "verifier" and not self.verifier:
            raise ValueError("a verifier check names its trained verifier file (verifier: FILE.json)")
        if self.type == "agreement" and not self.with_:
            raise ValueError("an agreement check names the models that must agree (with: [...])")
        if self.type == "judge" and not self.with_:
            raise ValueError("a judge check names the models that judge the answer (with: [...])")
        if self.prompt is not None and ("{conversation}" not in self.prompt or "{answer}" not in self.prompt):
            raise ValueError("a judge prompt holds {conversation} and {answer}")
        return self


class CascadeSpec(_M):
    steps: list[str] = Field(min_length=2, description="cheapest first; the last step is never checked")
    check: Check

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys([*self.steps, *self.check.with_]))


class Cascade(CascadeSpec):
    type: Literal["cascade"]


class Arm(_M):
    model: str
    weight: float = Field(gt=0)


class Split(_M):
    type: Literal["split"]
    arms: list[Arm] = Field(min_length=1)
    assign_by: Literal["user", "key", "tenant", "request"] = Field(
        default="user", description="what keeps its arm: the request's user field (else its API key), the API key, "
                                    "the tenant, or nothing (each request drawn anew)")


class Fixed(_M):
    type: Literal["fixed"]
    model: str


Objective = Annotated[Union[CheapestAbove, BestUnder, Utility, Gain, Margin, Cascade, Split, Fixed],
                      Field(discriminator="type")]
CATEGORIES = ("json", "code", "choice", "math", "general")


def objective_models(obj: CheapestAbove | BestUnder | Utility | Gain | Margin | Cascade | Split | Fixed) -> list[str]:
    """The models an objective names itself (none for those that choose among the candidates)."""
    if isinstance(obj, Cascade):
        return list(obj.steps) + list(obj.check.with_)
    if isinstance(obj, Split):
        return [a.model for a in obj.arms]
    if isinstance(obj, Fixed):
        return [obj.model]
    if isinstance(obj, Gain):
        return [obj.weak, obj.strong]
    return []


class Constraints(_M):
    capabilities: list[Literal["tools", "json_schema", "vision"]] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list, description="allowed regions (data residency); empty: any")
    no_third_party: bool = Field(default=False, description="only self-hosted deployments")
    providers_allow: list[str] = Field(default_factory=list)
    providers_deny: list[str] = Field(default_factory=list)
    max_ttft_ms: float | None = Field(default=None, gt=0, description="live time-to-first-token ceiling")
    max_latency_ms: float | None = Field(
        default=None, gt=0, description="ceiling on the expected time to the last token: live TTFT plus the expected "
                                        "output (max_tokens, else its history) at the live output rate")
    cache_affinity: bool = Field(default=True, description="price a conversation's cached prefix at the cache rate on the "
                                                            "deployment that holds it, and send it there when chosen")


class Bandit(_M):
    enabled: bool = True
    exploration: float = Field(default=0.05, ge=0, le=1, description="share of decisions that sample (Thompson); 1: every one")
    prior_strength: float = Field(default=20.0, gt=0, description="pseudo-observations behind the prior")
    optimism: float = Field(default=0.0, ge=0, le=5, description="decisions that do not sample use the posterior mean "
                            "plus this many posterior standard deviations (Bayes-UCB): a model tried rarely, or unluckily "
                            "early, is tried again instead of being written off")


class Quality(_M):
    priors: dict[str, float] = Field(default_factory=dict, description="model -> quality in [0, 1]")
    by_category: dict[str, dict[str, float]] = Field(default_factory=dict, description="category -> model -> quality")
    predictor: str | None = Field(default=None, description="a trained predictor (.npz), relative to the policy file")
    bandit: Bandit = Bandit()


class Policy(_M):
    name: str = Field(min_length=1)
    description: str = ""
    bind: Bind
    candidates: list[str] = Field(default_factory=list, description="model names or names of cascades below; default: the objective's models")
    cascades: dict[str, CascadeSpec] = Field(
        default_factory=dict, description="named cascades: a candidate that answers with its first step and escalates when the check fails")
    objective: Objective
    categories: dict[Literal["json", "code", "choice", "math", "general"], Objective] = Field(
        default_factory=dict, description="task category (read from the prompt) -> the objective for its prompts; "
                                          "other categories use objective")
    constraints: Constraints = Constraints()
    quality: Quality = Quality()
    max_attempts: int = Field(default=3, ge=1, le=10, description="deployments tried per request, fallbacks included")
    deadline_s: float | None = Field(
        default=None, gt=0, description="seconds a request may take until its answer starts (a stream: its first chunk), "
                                        "fallbacks and cascade steps included; each attempt's timeout is cut to what is left")
    default_output_tokens: int = Field(default=256, ge=1, description="expected output when max_tokens is absent and no history")

    @model_validator(mode="after")
    def _pool(self) -> "Policy":
        obj = self.objective
        objectives = [obj, *self.categories.values()]
        named = list(dict.fromkeys(m for o in objectives for m in objective_models(o)))
        if not self.candidates and (not named or any(not objective_models(o) for o in objectives)):
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
                if objective_models(o):
                    raise ValueError(f"a {o.type} objective takes no named cascades; list them as candidates of a "
                                     "cheapest_above, best_under, utility or margin objective")
        return self

    def objective_for(self, category: str) -> CheapestAbove | BestUnder | Utility | Gain | Margin | Cascade | Split | Fixed:
        return next((obj for name, obj in self.categories.items() if name == category), self.objective)

    @property
    def models(self) -> list[str]:
        """Every concrete model the policy may call: its candidates, with each cascade's steps and voters."""
        out: list[str] = []
        for name in self.pool:
            out += self.cascades[name].models if name in self.cascades else [name]
        for o in (self.objective, *self.categories.values()):
            out += objective_models(o)
        return list(dict.fromkeys(out))

    @property
    def pool(self) -> list[str]:
        if self.candidates:
            return list(self.candidates)
        return list(dict.fromkeys(m for o in (self.objective, *self.categories.values()) for m in objective_models(o)))


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


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PolicyError(str(p), [f"cannot read: {exc.strerror}"]) from None
    return parse_policy(text, str(p))


def json_schema() -> dict:
    return Policy.model_json_schema(by_alias=True)
