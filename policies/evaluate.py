"""Offline evaluation: replay a dataset of prompts with per-model outcomes through a policy.

Dataset format (JSON lines): ``id``, ``prompt``, optional ``benchmark``, a split field
(``split`` or ``routerdc_split``), and per model flat keys ``"<model>|score"`` (0/1, or 1-10
judge scores, normalised to [0, 1]) plus ``"<model>|cost_usd"`` (or ``|cost_usd_est``), or token
counts (``|input_tokens``, ``|output_tokens``) priced with ``prices``.

The policy sees only what a live request would: the prompt, its token count, and prices; the
scores are read after the choice, to grade it (the oracle baseline alone reads them to choose).
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from policies import metrics
from policies.checks import Answer, CheckKind, VerifierCheck
from policies.decide import CandidateInfo, Decision, PolicyRouter, RequestFeatures
from policies.features import categorize
from policies.predictor import QualityPredictor
from policies.quality import BanditState, QualityModel
from policies.objectives import Cascade
from policies.schema import Policy, checks_of
from policies.verifier import Verifier
from pricing import ModelPrice


@dataclass
class Dataset:
    rows: list[dict[str, Any]]
    models: list[str]
    split_field: str

    def split(self, name: str | None) -> list[dict[str, Any]]:
        return self.rows if name in (None, "all") else [r for r in self.rows if r.get(self.split_field) == name]


def dataset_from_rows(rows: Iterable[dict[str, Any]], *, include_excluded: bool = False) -> Dataset:
    """A routing outcome dataset from its rows (``policies.loaders.load_dataset`` reads them)."""
    kept = [r for r in rows if include_excluded or not r.get("excluded_by_routellm_decontamination")]
    models = sorted({k.split("|")[0] for k in kept[0] if k.endswith("|score")})
    split_field = "split" if "split" in kept[0] else "routerdc_split"
    return Dataset(kept, models, split_field)


def score(row: dict[str, Any], model: str) -> float:
    v = float(row[f"{model}|score"])
    return v / 10.0 if v > 1.0 else v  # 1-10 judge scores become [0.1, 1]


def tokens(row: dict[str, Any], model: str) -> tuple[int, int]:
    inp = row.get(f"{model}|input_tokens") or row.get(f"{model}|input_tokens_question_only") or 0
    return int(inp), int(row.get(f"{model}|output_tokens") or 0)


def cost(row: dict[str, Any], model: str, prices: dict[str, ModelPrice]) -> float:
    for key in (f"{model}|cost_usd", f"{model}|cost_usd_est"):
        if row.get(key) is not None:
            return float(row[key])
    inp, out = tokens(row, model)
    p = prices[model]
    return inp * p.input + out * p.output


def prices_from_doc(doc: Mapping[str, Any], models: list[str]) -> dict[str, ModelPrice]:
    """Per-model prices from a prices.json as shipped with the routing data ({model: {dataset_price_usd_per_1M: ...}})."""
    out: dict[str, ModelPrice] = {}
    for m in models:
        entry = doc.get(m) or doc.get(m.split("/")[-1]) or {}
        per_m = entry.get("dataset_price_usd_per_1M") or entry
        out[m] = ModelPrice(
            input=float(per_m.get("input", 0.0)) / 1e6, output=float(per_m.get("output", 0.0)) / 1e6, source="dataset"
        )
    return out


def train_predictor(
    ds: Dataset,
    split: str,
    *,
    exclude: Iterable[str] = (),
    epochs: int = 5,
    lr: float = 0.5,
    policy: Policy | None = None,
    responses: dict[str, dict[str, str]] | None = None,
    verifiers: dict[str, Verifier] | None = None,
    solver: str = "adagrad",
    l2: float | None = None,
) -> QualityPredictor:
    """One quality column per model; with a ``policy``, one more per named cascade it defines, its
    outcome on each row replayed from the recorded answers (the check sees only answer texts)."""
    rows = [r for r in ds.split(split) if r.get("benchmark") not in set(exclude)]
    columns = list(ds.models)
    y = np.array([[score(r, m) for m in ds.models] for r in rows], dtype=float)
    if policy is not None and policy.cascades:
        replay = Replay(policy, ds, prices_from_doc({}, ds.models), None, [], answer_texts(ds, responses), verifiers)
        extra = list(replay.cascades)
        if extra:
            y = np.hstack([y, np.array([[replay.run_cascade(r, replay.cascades[n])[1] for n in extra] for r in rows])])
            columns += extra
    l2 = (1e-6 if solver == "adagrad" else 1.0) if l2 is None else l2
    return QualityPredictor.train(
        [r["prompt"] for r in rows],
        y,
        columns,
        epochs=epochs,
        lr=lr,
        l2=l2,
        solver=solver,
        meta={
            "rows": len(rows),
            "split": split,
            "excluded": list(exclude),
            "epochs": epochs,
            "lr": lr,
            "solver": solver,
            "l2": l2,
            "cascade_columns": columns[len(ds.models) :],
        },
    )


def train_verifier(
    ds: Dataset,
    split: str,
    model: str,
    voters: list[str],
    *,
    exclude: Iterable[str] = (),
    responses: dict[str, dict[str, str]] | None = None,
) -> Verifier:
    """A verifier of ``model``'s answers, trained on the rows of ``split`` that hold its answer text."""
    texts = answer_texts(ds, responses)
    skip = set(exclude)
    answers, votes, good = [], [], []
    for r in ds.split(split):
        t = texts.get(str(r["id"]), {})
        if r.get("benchmark") in skip or t.get(model) is None:
            continue
        answers.append(t[model])
        votes.append([t.get(v, "") for v in voters])
        good.append(score(r, model))
    if not answers:
        raise ValueError(f"no '{split}' rows hold an answer text of {model}")
    return Verifier.train(
        answers, votes, good, meta={"model": model, "with": voters, "split": split, "excluded": sorted(skip)}
    )


def with_param(policy: Policy, name: str, value: float) -> Policy:
    """A copy of ``policy`` with one parameter set: an objective's (``target``, ``lambda``,
    ``max_cost_usd``, ``min_gain``, ``min_quality``, ``check.min_confidence``), a category's objective's
    (``categories.CATEGORY.min_gain``) or a named cascade's (``cascades.NAME.check.min_confidence``)."""
    data = policy.model_dump(by_alias=True)
    node = data if name.startswith(("cascades.", "categories.")) else data["objective"]
    *path, key = name.removeprefix("objective.").split(".")
    where = "the policy" if node is data else f"the {data['objective']['type']} objective"
    for part in path:
        if not isinstance(node.get(part), dict):
            raise ValueError(f"{where} has no parameter '{name}'")
        node = node[part]
    if key not in node or isinstance(node[key], (dict, list, str)) or node[key] is None:
        raise ValueError(f"{where} has no parameter '{name}'")
    node[key] = value
    return Policy.model_validate(data)


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
            f, infos, random.Random(str(row["id"]) if self.seed is None else f"{self.seed}\x1f{row['id']}")
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


def baselines(
    rows: list[dict[str, Any]], models: list[str], prices: dict[str, ModelPrice], strongest: str, cheapest: str
) -> dict[str, dict[str, Any]]:
    def avg(fn: Any) -> float:
        return float(np.mean([fn(r) for r in rows]))

    def oracle(r: dict[str, Any]) -> str:
        best = max(score(r, m) for m in models)
        return min((m for m in models if score(r, m) == best), key=lambda m: cost(r, m, prices))

    return {
        "always_strongest": {
            "model": strongest,
            "quality": avg(lambda r: score(r, strongest)),
            "cost": avg(lambda r: cost(r, strongest, prices)),
        },
        "always_cheapest": {
            "model": cheapest,
            "quality": avg(lambda r: score(r, cheapest)),
            "cost": avg(lambda r: cost(r, cheapest, prices)),
        },
        "random": {
            "quality": avg(lambda r: np.mean([score(r, m) for m in models])),
            "cost": avg(lambda r: np.mean([cost(r, m, prices) for m in models])),
        },
        "oracle": {"quality": avg(lambda r: score(r, oracle(r))), "cost": avg(lambda r: cost(r, oracle(r), prices))},
    }


Sweep = list[tuple[str, list[float]]]


def revenue(row: dict[str, Any], model: str, sold_at: tuple[float, float]) -> float:
    """What the tenant pays for the answer of ``model`` at a fixed per-token price."""
    inp, out = tokens(row, model)
    return inp * sold_at[0] + out * sold_at[1]


def _settings(policy: Policy, sweep: Sweep | tuple[str, list[float]] | None) -> list[tuple[dict[str, float], Policy]]:
    """(swept values, policy) per setting; several sweeps go in lockstep (each the same length)."""
    if not sweep:
        return [({}, policy)]
    sweeps = [sweep] if isinstance(sweep, tuple) else list(sweep)
    n = len(sweeps[0][1])
    if any(len(v) != n for _, v in sweeps):
        raise ValueError("swept parameters go in lockstep: give each the same number of values")
    out = []
    for i in range(n):
        pol, values = policy, {}
        for name, vals in sweeps:
            pol = with_param(pol, name, vals[i])
            values[name] = vals[i]
        out.append((values, pol))
    return out


def evaluate(
    policy: Policy,
    ds: Dataset,
    *,
    split: str = "test",
    prices: dict[str, ModelPrice],
    predictor: QualityPredictor | None = None,
    sweep: Sweep | tuple[str, list[float]] | None = None,
    responses: dict[str, dict[str, str]] | None = None,
    train_split: str = "train",
    verifiers: dict[str, Verifier] | None = None,
    sold_at: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Replay ``split`` through the policy at each setting of the sweep. Every figure comes from the
    policy's own decisions; two-model data also gets the predictor's ranking curve, labelled as
    such (``ranking_apgr``: what thresholding the predicted gain would reach, not what the policy
    does). ``sold_at``: a fixed price (USD per input, per output token) to report the operator's
    margin under."""
    rows = ds.split(split)
    responses = answer_texts(ds, responses)
    history = ds.split(train_split)
    if not rows:
        raise ValueError(f"no rows in split '{split}'")
    train_q = {m: float(np.mean([score(r, m) for r in history])) for m in ds.models} if history else {}
    train_c = {m: float(np.mean([cost(r, m, prices) for r in history])) for m in ds.models} if history else {}
    strongest = max(ds.models, key=lambda m: train_q.get(m, 0.0))
    cheapest = min(ds.models, key=lambda m: train_c.get(m, 0.0))
    settings: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    per_bench_points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    per_bench_calls: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (share of strongest calls, quality)
    for values, pol in _settings(policy, sweep):
        replay = Replay(pol, ds, prices, predictor, history, responses, verifiers, sold_at)
        qs, cs, rev = [], [], []
        by_bench: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
        for r in rows:
            m, q, c, called = replay.choose(r)
            qs.append(q)
            cs.append(c)
            if sold_at is not None:
                rev.append(revenue(r, m, sold_at))
            by_bench[r.get("benchmark", "all")].append((c, q, strongest in called))
            line: dict[str, Any] = {"id": r["id"], "model": m}
            if len(called) > 1:
                line["called"] = called
            line.update(values)
            decisions.append(line)
        setting: dict[str, Any] = {
            "quality": float(np.mean(qs)),
            "cost": float(np.mean(cs)),
            "cost_total": float(np.sum(cs)),
        }
        if sold_at is not None:
            setting["revenue"] = float(np.mean(rev))
            setting["margin"] = (float(np.sum(rev)) - float(np.sum(cs))) / float(np.sum(rev)) if sum(rev) else None
        setting.update(values)
        setting["by_benchmark"] = {
            b: {
                "quality": float(np.mean([q for _, q, _ in pts])),
                "cost": float(np.mean([c for c, _, _ in pts])),
                "strongest_calls": float(np.mean([s for _, _, s in pts])),
            }
            for b, pts in by_bench.items()
        }
        for b, e in setting["by_benchmark"].items():
            per_bench_points[b].append((e["cost"], e["quality"]))
            per_bench_calls[b].append((e["strongest_calls"], e["quality"]))
        settings.append(setting)
    report: dict[str, Any] = {
        "policy": policy.name,
        "split": split,
        "rows": len(rows),
        "models": ds.models,
        "strongest": strongest,
        "cheapest": cheapest,
        "settings": settings,
        "baselines": baselines(rows, ds.models, prices, strongest, cheapest),
        "single_models": {
            m: {
                "quality": float(np.mean([score(r, m) for r in rows])),
                "cost": float(np.mean([cost(r, m, prices) for r in rows])),
            }
            for m in ds.models
        },
    }
    if sold_at is not None:
        report["sold_at_per_mtok"] = [sold_at[0] * 1e6, sold_at[1] * 1e6]
        for m, e in report["single_models"].items():
            total = sum(revenue(r, m, sold_at) for r in rows)
            e["margin"] = (total - e["cost"] * len(rows)) / total if total else None
    report["benchmarks"] = {}
    for b in sorted(per_bench_points):
        brows = [r for r in rows if r.get("benchmark", "all") == b]
        singles = [
            (float(np.mean([cost(r, m, prices) for r in brows])), float(np.mean([score(r, m) for r in brows])))
            for m in ds.models
        ]
        c_max = max(c for c, _ in singles)
        best_c, best_q = dict(zip(ds.models, singles))[strongest]
        pts = per_bench_points[b]
        entry: dict[str, Any] = {
            "rows": len(brows),
            "aiq": metrics.aiq(pts, c_max),
            "zero_router_aiq": metrics.aiq(singles, c_max),
        }
        for pct in (95, 100):
            need = metrics.cost_to_reach(pts, best_q * pct / 100)
            entry[f"cost_to_{pct}pct_of_strongest_frac"] = None if need is None else need / best_c
        if len(ds.models) == 2:
            weak = next(m for m in ds.models if m != strongest)
            qs_, qw_ = [score(r, strongest) for r in brows], [score(r, weak) for r in brows]
            ms, mw = float(np.mean(qs_)), float(np.mean(qw_))
            # the policy's own curve: each setting's share of calls to the strong model and its
            # quality, anchored at the always-weak and always-strong ends every two-model policy reaches
            curve = metrics.decision_curve(per_bench_calls[b], ms, mw)
            entry.update(
                {
                    "apgr": metrics.apgr(curve, ms, mw),
                    "cpt50": metrics.cpt(curve, ms, mw, 0.5),
                    "cpt80": metrics.cpt(curve, ms, mw, 0.8),
                    "strong_quality": ms,
                    "weak_quality": mw,
                    "curve": curve,
                }
            )
            replay = Replay(policy, ds, prices, predictor, history, responses, verifiers)
            ranking = metrics.routellm_curve([replay.router_score(r, strongest, weak) for r in brows], qs_, qw_)
            entry["ranking_apgr"] = metrics.apgr(ranking, ms, mw)
        report["benchmarks"][b] = entry
    aiqs = [e["aiq"] for e in report["benchmarks"].values()]
    report["mean_aiq"] = float(np.mean(aiqs))
    report["mean_zero_router_aiq"] = float(np.mean([e["zero_router_aiq"] for e in report["benchmarks"].values()]))
    pooled = [(s["cost"], s["quality"]) for s in settings]
    best = report["baselines"]["always_strongest"]
    for pct in (95, 100):
        need = metrics.cost_to_reach(pooled, best["quality"] * pct / 100)
        report[f"cost_to_{pct}pct_of_strongest_frac"] = None if need is None else need / best["cost"]
    report["decisions"] = decisions
    return report


def resplit(ds: Dataset, seed: int, train: str = "train", test: str = "test") -> Dataset:
    """The same rows split anew: a seeded hash of each id puts it in ``train`` with the share of
    rows the dataset's own split gave it, else in ``test``."""
    share = len(ds.split(train)) / len(ds.rows)
    rows = []
    for r in ds.rows:
        u = zlib.crc32(f"{seed}\x1f{r['id']}".encode()) / 2**32
        rows.append({**r, ds.split_field: train if u < share else test})
    return Dataset(rows, ds.models, ds.split_field)


def headline(report: dict[str, Any]) -> dict[str, float]:
    """A report's figures by name (what ``--resplits`` averages); a target never reached is left out."""
    out: dict[str, float] = {
        "mean AIQ": report["mean_aiq"],
        "zero-router mean AIQ": report["mean_zero_router_aiq"],
        "AIQ gain over zero router": report["mean_aiq"] - report["mean_zero_router_aiq"],
    }
    strongest = report["baselines"]["always_strongest"]["quality"]
    out["strongest model quality"] = strongest
    if report["cost_to_95pct_of_strongest_frac"] is not None:
        out["pooled cost to 95% of strongest"] = report["cost_to_95pct_of_strongest_frac"]
    for b, e in report["benchmarks"].items():
        out[f"{b} AIQ"] = e["aiq"]
        if e["cost_to_95pct_of_strongest_frac"] is not None:
            out[f"{b} cost to 95%"] = e["cost_to_95pct_of_strongest_frac"]
        for k in ("apgr", "ranking_apgr", "cpt50", "cpt80"):
            if e.get(k) is not None:
                out[f"{b} {k.replace('_', ' ').upper() if k != 'ranking_apgr' else 'APGR (predictor ranking)'}"] = e[k]
    for i, st in enumerate(report["settings"]):
        label = (
            ", ".join(
                f"{k}={v:g}"
                for k, v in st.items()
                if isinstance(v, float) and k not in ("quality", "cost", "cost_total", "revenue", "margin")
            )
            or "policy"
        )
        out[f"[{label}] quality"] = st["quality"]
        out[f"[{label}] share of strongest quality"] = st["quality"] / strongest if strongest else 0.0
        out[f"[{label}] USD/1k prompts"] = st["cost"] * 1000
        if st.get("margin") is not None:
            out[f"[{label}] margin"] = st["margin"]
    return out


def answer_texts(ds: Dataset, responses: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Answer texts by row id and model: those the dataset carries itself (``"<model>|response"``),
    then those of a separate responses file."""
    out: dict[str, dict[str, str]] = {}
    for r in ds.rows:
        texts = {m: str(r[f"{m}|response"]) for m in ds.models if r.get(f"{m}|response") is not None}
        if texts:
            out[str(r["id"])] = texts
    return {**out, **(responses or {})}
