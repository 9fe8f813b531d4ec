"""A learned answer verifier for cascades: P(this answer is good | its text, other models' answers).

A cascade's cheap step answers first; the verifier reads that answer and says how likely it is to
be right. Features are generic properties of an answer, not of any benchmark:

- does it state a final answer ("#### 42", "The answer is 42", "Answer: 42"), is that a whole
  number, is it the result of the last calculation written in the answer;
- arithmetic it shows that does not hold ("3 x 4 = 13", calculator notes ``<<3*4=13>>``);
- how much it calculates and writes, and whether it hedges or refuses;
- when the check also asks other models (``with:``), the share that give the same answer.

The weights are a logistic regression trained offline on outcome data (``switchyard policies
train-verifier``) and stored as a small JSON file next to the policy: readable, diffable, and a
prediction is a few regular expressions and one dot product.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from policies.checks import normalise

FEATURES = (
    "bias",
    "has_final",
    "final_is_last_result",
    "final_not_integer",
    "arithmetic_errors",
    "calculations",
    "chars",
    "hedges",
    "voters_agree",
    "voters_disagree",
)

_NUM = r"-?\d[\d,]*(?:\.\d+)?"
_CALC_NOTE = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_PLAIN_CALC = re.compile(rf"({_NUM}(?:\s*[-+*/x×]\s*{_NUM})+)\s*=\s*\$?({_NUM})")
_FINAL = re.compile(rf"(?:####|the (?:final )?answer is|answer:)\s*\$?\s*({_NUM})", re.IGNORECASE)
_HEDGES = (
    "i'm not sure",
    "i am not sure",
    "i cannot",
    "i can't",
    "i do not",
    "i don't know",
    "unfortunately",
    "as an ai",
    "not enough information",
    "i apologize",
)
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").rstrip("."))
    except ValueError:
        return None


def arithmetic(expr: str) -> float | None:
    """The value of a plain arithmetic expression (numbers, + - * / % ** and brackets); None otherwise."""
    text = expr.replace(",", "").replace("×", "*").replace("x", "*").replace("^", "**").strip()
    if not text or len(text) > 120:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 12:
                raise ValueError("exponent too large")
            return float(_OPS[type(node.op)](left, right))
        raise ValueError("not arithmetic")

    try:
        return ev(tree.body)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def features(answer: str, voters: Sequence[str] = ()) -> dict[str, float]:
    """The verifier's view of one answer (and of the voters' answers to the same request)."""
    calcs = _CALC_NOTE.findall(answer)
    rest = _CALC_NOTE.sub(" ", answer)
    calcs += _PLAIN_CALC.findall(rest)
    wrong = 0
    for expr, stated in calcs:
        want, got = arithmetic(expr), _number(stated)
        if got is None or (want is not None and abs(want - got) > 1e-6 * max(1.0, abs(want))):
            wrong += 1
    finals = _FINAL.findall(answer)
    final = _number(finals[-1]) if finals else None
    last = _number(calcs[-1][1]) if calcs else None
    lowered = answer.lower()
    mine = normalise(answer)
    agree = sum(1 for v in voters if mine and normalise(v) == mine)
    return {
        "bias": 1.0,
        "has_final": float(final is not None),
        "final_is_last_result": float(final is not None and last is not None and abs(final - last) < 1e-9),
        "final_not_integer": float(final is not None and final != int(final)),
        "arithmetic_errors": float(min(wrong, 3)),
        "calculations": math.log1p(len(calcs)),
        "chars": math.log1p(len(answer)) / 5.0,
        "hedges": float(any(h in lowered for h in _HEDGES)),
        "voters_agree": agree / len(voters) if voters else 0.0,
        "voters_disagree": (len(voters) - agree) / len(voters) if voters else 0.0,
    }


def fit_logistic(x: Any, y: Any, l2: float, *, iterations: int = 50) -> Any:
    """L2-regularised logistic regression by Newton's method; column 0 of ``x`` is the bias (not
    shrunk). Exact for a few hundred features: no learning rate to tune."""
    import numpy as np

    w = np.zeros(x.shape[1])
    reg = l2 * np.eye(x.shape[1])
    reg[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg
        step = np.linalg.solve(hess, x.T @ (p - y) + reg @ w)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


@dataclass
class Verifier:
    weights: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)

    def confidence(self, answer: str, voters: Sequence[str] = ()) -> float:
        f = features(answer, voters)
        z = sum(self.weights.get(k, 0.0) * v for k, v in f.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    @classmethod
    def train(
        cls,
        answers: Sequence[str],
        voters: Sequence[Sequence[str]],
        good: Sequence[float],
        *,
        l2: float = 1.0,
        meta: dict[str, Any] | None = None,
    ) -> "Verifier":
        """A logistic regression over the ten features (``fit_logistic``; "bias" is the first)."""
        import numpy as np

        x = np.array([[features(a, v)[k] for k in FEATURES] for a, v in zip(answers, voters)], dtype=float)
        w = fit_logistic(x, np.asarray(good, dtype=float), l2)
        return cls({k: round(float(v), 6) for k, v in zip(FEATURES, w)}, {"rows": len(x), **(meta or {})})

    def to_doc(self) -> dict[str, Any]:
        """The verifier as a JSON document (``policies.loaders.save_verifier`` writes it)."""
        return {"weights": self.weights, "meta": self.meta}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "Verifier":
        weights = {str(k): float(v) for k, v in doc["weights"].items()}
        unknown = sorted(set(weights) - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown verifier features: {', '.join(unknown)}")
        return cls(weights, dict(doc.get("meta") or {}))
