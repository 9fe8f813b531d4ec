"""Offline evaluation: replay a dataset of prompts with per-model outcomes through a policy.

The dataset and what is trained from it are in ``policies.outcomes``.

The policy sees only what a live request would: the prompt, its token count, and prices; the
scores are read after the choice, to grade it (the oracle baseline alone reads them to choose).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import numpy as np

from policies import metrics
from policies.features import categorize
from policies.predictor import QualityPredictor
from policies.replay import Replay
from policies.outcomes import Dataset, answer_texts, cost, prices_from_doc, score, tokens
from policies.schema import CATEGORIES, Policy
from policies.verifier import Verifier
from pricing import ModelPrice


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
        if not best_c > 0:
            raise ValueError(
                f"'{strongest}' costs nothing on the {b} rows: costs and shares of its cost are undefined "
                "(give the rows costs, or prices.json a price for it)"
            )
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
    topic_field: str | None = None,
    topic_l2: float = 0.1,
    topic_blend: float = 0.5,
    features: str = "words",
    categories: Iterable[str] = (),
) -> QualityPredictor:
    """One quality column per model; with a ``policy``, one more per named cascade it defines, its
    outcome on each row replayed from the recorded answers (the check sees only answer texts). With
    a ``topic_field``, a topic head learns that field of the rows as its target (policies.topics).
    ``features``: the prompt's feature set (``policies.features.FEATURES``). ``categories``: learn
    only from the rows whose prompt reads as one of these task categories (``categorize``, the
    prompt's own words, never the row's benchmark label); empty: every row."""
    kinds, excluded = set(categories), set(exclude)
    unknown = kinds - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown task categories {sorted(unknown)} (known: {', '.join(CATEGORIES)})")
    rows = [
        r
        for r in ds.split(split)
        if r.get("benchmark") not in excluded and (not kinds or categorize(r["prompt"]) in kinds)
    ]
    if not rows:
        raise ValueError(
            f"no rows to learn from in split '{split}'"
            + (f" whose prompt reads as {', '.join(sorted(kinds))}" if kinds else "")
        )
    if topic_field is not None and not any(r.get(topic_field) for r in rows):
        raise ValueError(f"no training row has the topic field '{topic_field}'")
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
        topics=None if topic_field is None else [str(r.get(topic_field) or "") for r in rows],
        topic_l2=topic_l2,
        topic_blend=topic_blend,
        features=features,
        meta={
            "rows": len(rows),
            "split": split,
            "excluded": list(exclude),
            "epochs": epochs,
            "lr": lr,
            "solver": solver,
            "l2": l2,
            "cascade_columns": columns[len(ds.models) :],
            **({"categories": sorted(kinds)} if kinds else {}),
            **({"topic_field": topic_field, "topic_l2": topic_l2, "topic_blend": topic_blend} if topic_field else {}),
        },
    )
