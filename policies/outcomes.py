"""Outcome data: prompts with each model's score and cost (or token counts, priced), split for
training and testing; and what is trained from it (the quality predictor, the cascade verifier).

Dataset format (JSON lines): ``id``, ``prompt``, optional ``benchmark``, a split field
(``split`` or ``routerdc_split``), and per model flat keys ``"<model>|score"`` (0/1, or 1-10
judge scores, normalised to [0, 1]) plus ``"<model>|cost_usd"`` (or ``|cost_usd_est``), or token
counts (``|input_tokens``, ``|output_tokens``) priced with ``prices``. Pure: the rows come from
``policies.loaders``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping


from policies.verifier import Verifier
from pricing import ModelPrice


@dataclass
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


def _price_entry(doc: Mapping[str, Any], model: str) -> Any:
    return doc.get(model) or doc.get(model.split("/")[-1])


def unpriced_models(ds: Dataset, doc: Mapping[str, Any]) -> list[str]:
    """The models some row of ``ds`` has no cost for (no ``<model>|cost_usd`` or ``|cost_usd_est``)
    while the prices document names no price for them either: their cost would be read as $0."""
    return [
        m
        for m in ds.models
        if not _price_entry(doc, m)
        and any(r.get(f"{m}|cost_usd") is None and r.get(f"{m}|cost_usd_est") is None for r in ds.rows)
    ]


def prices_from_doc(doc: Mapping[str, Any], models: list[str]) -> dict[str, ModelPrice]:
    """Per-model prices from a prices.json as shipped with the routing data ({model: {dataset_price_usd_per_1M: ...}})."""
    out: dict[str, ModelPrice] = {}
    for m in models:
        entry = _price_entry(doc, m) or {}
        per_m = entry.get("dataset_price_usd_per_1M") or entry
        out[m] = ModelPrice(
            input=float(per_m.get("input", 0.0)) / 1e6, output=float(per_m.get("output", 0.0)) / 1e6, source="dataset"
        )
    return out


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


def resplit(ds: Dataset, seed: int, train: str = "train", test: str = "test") -> Dataset:
    """The same rows split anew: a seeded hash of each id puts it in ``train`` with the share of
    rows the dataset's own split gave it, else in ``test``."""
    share = len(ds.split(train)) / len(ds.rows)
    rows = []
    for r in ds.rows:
        u = zlib.crc32(f"{seed}\x1f{r['id']}".encode()) / 2**32
        rows.append({**r, ds.split_field: train if u < share else test})
    return Dataset(rows, ds.models, ds.split_field)


def answer_texts(ds: Dataset, responses: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Answer texts by row id and model: those the dataset carries itself (``"<model>|response"``),
    then those of a separate responses file."""
    out: dict[str, dict[str, str]] = {}
    for r in ds.rows:
        texts = {m: str(r[f"{m}|response"]) for m in ds.models if r.get(f"{m}|response") is not None}
        if texts:
            out[str(r["id"])] = texts
    return {**out, **(responses or {})}
