"""One recorded prompt through a policy, as a live request would go: the policy sees the prompt,
its token count and prices; its choice (or cascade) is then graded by the row's recorded scores
and costs. ``policies.evaluate`` runs a dataset through it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from policies.checks import Answer, CheckKind, VerifierCheck
from policies.draws import SeededDraws
from policies.decide import CandidateInfo, Decision, PolicyRouter, RequestFeatures
from policies.features import categorize
from policies.predictor import QualityPredictor
from policies.quality import BanditState, QualityModel
from policies.objectives import Cascade
from policies.outcomes import Dataset, cost, score, tokens
from policies.schema import Policy, checks_of
from policies.verifier import Verifier
from pricing import ModelPrice


class Replay:
    """Replays rows through a policy, as the gateway would decide for each prompt."""

    def __init__(
        self,
        policy: Policy,
        ds: Dataset,
        prices: dict[str, ModelPrice],
        predictor: QualityPredictor | None,
        history_rows: list[dict[str, Any]],
        responses: dict[str, dict[str, str]] | None = None,
        verifiers: dict[str, Verifier] | None = None,
        sold_at: tuple[float, float] | None = None,
        bandit: BanditState | None = None,
        seed: int | None = None,
    ):
        """``bandit``: learn online from feedback into this state (the policy's bandit settings,
        switched on); without it, decisions use the priors and predictor alone."""
        self.sold_at = sold_at
        self.seed = seed
        self.last: Decision | None = None  # the latest decision (what online feedback credits)
        for check in checks_of(policy):  # checks that need what outcome data does not record
            if check.offline_needs:
                raise ValueError(
                    f"a {check.type} check cannot be replayed offline: the data holds no {check.offline_needs}"
                )
        if not any(m in ds.models for m in policy.pool) and not policy.cascades:
            policy = policy.model_copy(update={"candidates": list(ds.models)})  # none of its models: the dataset's
        self.policy = policy
        self.ds = ds
        self.prices = prices
        self.responses = responses or {}
        quality = QualityModel(
            policy.quality.model_copy(
                update={"bandit": policy.quality.bandit.model_copy(update={"enabled": bandit is not None})}
            ),
            {},
            predictor,
            bandit,
        )
        self.router = PolicyRouter(policy, quality, verifiers)
        self.models = [m for m in policy.models if m in ds.models]
        self.cascades = {
            n: spec
            for n, spec in self.router.cascade_specs.items()
            if all(m in ds.models for m in policy.cascades[n].models)
        }
        # History (the train split), per task category as the gateway sees it: expected output tokens
        # per model, and mean cost per prompt (used without token prices, and for named cascades,
        # whose cost depends on how often they escalate)
        acc: dict[tuple[str, str], list[int]] = defaultdict(list)
        spent: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in history_rows:
            key = categorize(r["prompt"])
            for m in ds.models:
                acc[(key, m)].append(tokens(r, m)[1])
                spent[(key, m)].append(cost(r, m, prices))
            for n, spec in self.cascades.items():
                spent[(key, n)].append(self.run_cascade(r, spec)[2])
        self.expected_out = {k: float(np.mean(v)) for k, v in acc.items() if v}
        self.expected_cost = {k: float(np.mean(v)) for k, v in spent.items() if v}
        self.priced_by_tokens = all(prices[m].input or prices[m].output for m in ds.models)

    def category(self, row: dict[str, Any]) -> str:
        return categorize(row["prompt"])

    def choose(self, row: dict[str, Any]) -> tuple[str, float, float, list[str]]:
        """(answering model, quality, cost, models called) for one row."""
        key = categorize(row["prompt"])
        infos = [
            CandidateInfo(
                name=m,
                provider="dataset",
                price=self.prices[m],
                expected_output=self.expected_out.get((key, m)),
                expected_cost_usd=None if self.priced_by_tokens else self.expected_cost.get((key, m)),
            )
            for m in self.models
        ]
        infos += [
            CandidateInfo(name=n, provider="dataset", price=None, expected_cost_usd=self.expected_cost.get((key, n)))
            for n in self.cascades
        ]
        prompt_tokens = max(tokens(row, m)[0] for m in self.models)
        f = RequestFeatures(prompt=row["prompt"], prompt_tokens=prompt_tokens, category=key, sold_at=self.sold_at)
        d = self.last = self.router.decide(
            f, infos, SeededDraws(str(row["id"]) if self.seed is None else f"{self.seed}\x1f{row['id']}")
        )
        if d.cascade is None:
            m = d.order[0]
            return m, score(row, m), cost(row, m, self.prices), [m]
        return self.run_cascade(row, d.cascade)

    def run_cascade(self, row: dict[str, Any], spec: dict[str, Any]) -> tuple[str, float, float, list[str]]:
        """(answering model, quality, cost, models called) of a cascade on one row, its checks reading
        only the recorded answer texts."""
        check: CheckKind = spec["check"]
        called: list[str] = []
        total = 0.0
        answers = self.responses.get(str(row["id"]), {})
        voters = [v for v in check.models if v in self.ds.models]
        for i, m in enumerate(spec["steps"]):
            called.append(m)
            total += cost(row, m, self.prices)
            if i == len(spec["steps"]) - 1:
                return m, score(row, m), total, called
            if check.asks == "same":  # the checking models answer the request, once
                for v in voters:
                    if v not in called:
                        called.append(v)
                        total += cost(row, v, self.prices)
            votes = [Answer(answers.get(v)) for v in voters]
            # without the answer's text (e.g. RouteLLM's MMLU rows), checks that can fall back on the
            # model's predicted quality do
            if check.replay(
                Answer(answers.get(m)),
                votes,
                len(voters),
                self.router.verifiers,
                lambda: self.router.quality.prior([m], row["prompt"], categorize(row["prompt"]))[m],
            ):
                return m, score(row, m), total, called
        raise AssertionError("unreachable")  # pragma: no cover

    def _confidence(self, row: dict[str, Any], model: str, check: VerifierCheck) -> float | None:
        """The verifier's confidence in ``model``'s recorded answer; None when the data holds no text of it."""
        answers = self.responses.get(str(row["id"]), {})
        text = answers.get(model)
        if text is None:
            return None
        voters = [v for v in check.models if v in self.ds.models]
        return check.confidence(
            Answer(text), [Answer(answers.get(v, "")) for v in voters], len(voters), self.router.verifiers
        )

    def router_score(self, row: dict[str, Any], strong: str, weak: str) -> float:
        """Two-model routers rank prompts by the predicted quality gain of the strong model; a cascade
        that starts with the weak model and checks it with a verifier, by its doubt in the weak answer
        (where the data holds that answer's text)."""
        category = categorize(row["prompt"])
        obj = self.policy.objective_for(category)
        if isinstance(obj, Cascade) and isinstance(obj.check, VerifierCheck) and obj.steps[0] == weak:
            conf = self._confidence(row, weak, obj.check)
            if conf is not None:
                return 1.0 - conf
        q = self.router.quality.prior([strong, weak], row["prompt"], category)
        return q[strong] - q[weak]
