"""Policies' file I/O, at the edge: policy files, the trained files they name (quality predictor
.npz, verifiers .json), routing outcome datasets, their prices and recorded answers. The core
modules (schema, decide, objectives, checks, quality, predictor, verifier, evaluate, simulate) take
what these return as data and never read a file or the clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policies.outcomes import Dataset, dataset_from_rows, prices_from_doc
from policies.predictor import QualityPredictor
from policies.schema import Policy, PolicyError, checks_of, parse_policy
from policies.verifier import Verifier
from pricing import ModelPrice


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(p), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError(str(p), [f"not UTF-8 text (byte {exc.start})"]) from None
    return parse_policy(text, str(p))


def load_predictor(path: str | Path) -> QualityPredictor:
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        return QualityPredictor.from_arrays({k: f[k] for k in f.files})


def save_predictor(predictor: QualityPredictor, path: str | Path) -> None:
    import numpy as np

    np.savez_compressed(path, **predictor.to_arrays())


def load_verifier(path: str | Path) -> Verifier:
    return Verifier.from_doc(json.loads(Path(path).read_text()))


def save_verifier(verifier: Verifier, path: str | Path) -> None:
    Path(path).write_text(json.dumps(verifier.to_doc(), indent=1) + "\n")


def _resolve(name: str, base: Path | None) -> Path:
    p = Path(name)
    return base / p if base is not None and not p.is_absolute() else p


def load_assets(
    policy: Policy, base: Path | None, predictor_override: Path | None = None, *, with_predictor: bool = True
) -> tuple[QualityPredictor | None, dict[str, Verifier]]:
    """(predictor, verifiers by the name the policy gives them); ``base``: the policy file's folder.
    ``with_predictor=False`` loads the verifiers only (training the predictor the policy names)."""
    problems: list[str] = []
    predictor = None
    pred_path = predictor_override or (_resolve(policy.quality.predictor, base) if policy.quality.predictor else None)
    if pred_path is not None and with_predictor:
        try:
            predictor = load_predictor(pred_path)
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"quality.predictor: cannot load {pred_path}: {type(exc).__name__}")
    verifiers: dict[str, Verifier] = {}
    for name in dict.fromkeys(f for check in checks_of(policy) for f in check.files()):
        path = _resolve(name, base)
        try:
            verifiers[name] = load_verifier(path)
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"check.verifier: cannot load {path}: {type(exc).__name__}: {exc}")
    if problems:
        raise PolicyError(policy.name, problems)
    return predictor, verifiers


def load_dataset(path: str | Path, *, include_excluded: bool = False) -> Dataset:
    """A routing outcome dataset (JSON lines, one prompt per row with each model's score, tokens, cost).
    Raises OSError when the file cannot be read, ValueError (naming the line) when it is not such data."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise ValueError(f"line {n} is not JSON (the data is JSON lines, one row each)") from None
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise ValueError(f"line {n} is not a row: a JSON object with a 'prompt' text")
            rows.append(row)
    if not rows:
        raise ValueError("no rows in the data")
    ds = dataset_from_rows(rows, include_excluded=include_excluded)
    if not ds.models:
        raise ValueError("no '<model>|score' fields in the first row: no model to evaluate")
    return ds


def load_prices(path: str | Path | None, models: list[str]) -> dict[str, ModelPrice]:
    """Per-model prices: a prices.json as shipped with the routing data ({model: {dataset_price_usd_per_1M: ...}})."""
    return prices_from_doc(json.loads(Path(path).read_text()) if path else {}, models)


def load_responses(path: str | Path | None) -> dict[str, dict[str, str]] | None:
    """Recorded answer texts by row id (JSON lines: {id, <model>: text, ...}); None when there is no such file."""
    if not path or not Path(path).exists():
        return None
    out: dict[str, dict[str, str]] = {}
    with open(path) as fh:
        for line in fh:
            r: dict[str, Any] = json.loads(line)
            out[str(r.pop("id"))] = {k: str(v) for k, v in r.items()}
    return out
