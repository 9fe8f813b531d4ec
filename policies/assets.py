"""The trained files a policy names (a quality predictor, answer verifiers), loaded relative to it."""

from __future__ import annotations

from pathlib import Path

from policies.predictor import QualityPredictor
from policies.checks import CheckKind
from policies.objectives import Cascade
from policies.schema import Policy, PolicyError
from policies.verifier import Verifier


def checks_of(policy: Policy) -> list[CheckKind]:
    """Every cascade check the policy holds."""
    own = [o.check for o in (policy.objective, *policy.categories.values()) if isinstance(o, Cascade)]
    return own + [spec.check for spec in policy.cascades.values()]


def _resolve(name: str, base: Path | None) -> Path:
    p = Path(name)
    return base / p if base is not None and not p.is_absolute() else p


def load_assets(policy: Policy, base: Path | None, predictor_override: Path | None = None, *,
                with_predictor: bool = True) -> tuple[QualityPredictor | None, dict[str, Verifier]]:
    """(predictor, verifiers by the name the policy gives them); ``base``: the policy file's folder.
    ``with_predictor=False`` loads the verifiers only (training the predictor the policy names)."""
    problems: list[str] = []
    predictor = None
    pred_path = predictor_override or (_resolve(policy.quality.predictor, base) if policy.quality.predictor else None)
    if pred_path is not None and with_predictor:
        try:
            predictor = QualityPredictor.load(pred_path)
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"quality.predictor: cannot load {pred_path}: {type(exc).__name__}")
    verifiers: dict[str, Verifier] = {}
    for name in dict.fromkeys(f for check in checks_of(policy) for f in check.files()):
        if name not in verifiers:
            path = _resolve(name, base)
            try:
                verifiers[name] = Verifier.load(path)
            except (OSError, ValueError, KeyError) as exc:
                problems.append(f"check.verifier: cannot load {path}: {type(exc).__name__}: {exc}")
    if problems:
        raise PolicyError(policy.name, problems)
    return predictor, verifiers
