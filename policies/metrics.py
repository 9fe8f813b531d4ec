"""Router evaluation metrics, as the RouteLLM and RouterBench papers define them.

- RouteLLM (two models): a router scores each prompt; thresholds at the 0, 10, ..., 100%
  quantiles of the scores route the top share to the strong model, giving 11 points (share of
  strong calls, mean quality). Offline evaluation reports APGR from the policy's own decisions
  (``decision_curve``: one point per setting of its parameter); the quantile curve of a score
  the policy does not act on is only labelled as the ranking's. PGR = (q - q_weak) / (q_strong - q_weak); APGR is the area under
  PGR over the call share; CPT(x%) is the share of strong calls needed to reach PGR x, by linear
  interpolation.
- RouterBench (many models): each router setting is a (cost, quality) point; the NDCH is the
  non-decreasing upper convex hull of the points, extended flat to the largest cost; AIQ is the
  area under it from its cheapest point to ``c_max``, divided by ``c_max``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def routellm_curve(
    router_scores: Sequence[float], strong: Sequence[float], weak: Sequence[float], steps: int = 10
) -> list[tuple[float, float]]:
    """(share of strong calls, mean quality) at each quantile threshold of the router's scores."""
    s = np.asarray(router_scores, dtype=float)
    qs, qw = np.asarray(strong, dtype=float), np.asarray(weak, dtype=float)
    n = len(s)
    order = np.argsort(-s, kind="stable")  # highest scores go to the strong model first
    points = []
    for i in range(steps + 1):
        k = round(n * i / steps)
        to_strong = np.zeros(n, dtype=bool)
        to_strong[order[:k]] = True
        points.append((k / n, float(np.where(to_strong, qs, qw).mean())))
    return points


def decision_curve(points: Sequence[tuple[float, float]], q_strong: float, q_weak: float) -> list[tuple[float, float]]:
    """A policy's own curve from its settings' (share of strong calls, quality) points, sorted by the
    share and anchored at (0, weak quality) and (1, strong quality): the settings that send every
    prompt to one model, which every two-model policy reaches at the ends of its parameter. Points
    are kept as they are (a setting worse than another is not dropped); adjacent settings are joined
    by straight lines, which mixing the two settings at random achieves."""
    pts = sorted(set(points))
    if not pts or pts[0][0] > 0:
        pts.insert(0, (0.0, q_weak))
    if pts[-1][0] < 1:
        pts.append((1.0, q_strong))
    return pts


def pgr(quality: float, q_strong: float, q_weak: float) -> float:
    return (quality - q_weak) / (q_strong - q_weak)


def apgr(curve: list[tuple[float, float]], q_strong: float, q_weak: float) -> float:
    xs = np.array([x for x, _ in curve])
    ys = np.array([pgr(y, q_strong, q_weak) for _, y in curve])
    return float(np.trapezoid(ys, xs))


def cpt(curve: list[tuple[float, float]], q_strong: float, q_weak: float, target: float) -> float | None:
    """Share of strong calls (percent) needed to reach PGR ``target``; None if never reached."""
    pts = [(x, pgr(y, q_strong, q_weak)) for x, y in curve]
    if pts[0][1] >= target:
        return 100.0 * pts[0][0]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if y1 >= target > y0:
            return 100.0 * (x0 + (target - y0) * (x1 - x0) / (y1 - y0))
    return None


def ndch(points: Sequence[tuple[float, float]], c_max: float | None = None) -> list[tuple[float, float]]:
    """Non-decreasing upper convex hull of (cost, quality) points, extended flat to ``c_max``."""
    pts = sorted(set(points))
    hull: list[tuple[float, float]] = []
    for c, q in pts:
        if hull and q <= hull[-1][1]:
            continue  # not an improvement: the hull is non-decreasing
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            if (q2 - q1) * (c - c1) <= (q - q1) * (c2 - c1):  # hull[-1] is under the chord: drop it
                hull.pop()
            else:
                break
        hull.append((c, q))
    end = max(c_max if c_max is not None else hull[-1][0], hull[-1][0])
    if end > hull[-1][0]:
        hull.append((end, hull[-1][1]))
    return hull


def aiq(points: Sequence[tuple[float, float]], c_max: float) -> float:
    """The area under the non-decreasing convex hull of (cost, quality) points from its cheapest point
    to ``c_max``, over c_max (which must be positive: a curve over no cost has no area to compare).
    A point dearer than c_max shapes the hull below it (mixing it with a cheaper setting costs c_max
    at most) but adds no area past it, so AIQ never exceeds the best quality reached by c_max."""
    if not c_max > 0:
        raise ValueError("AIQ needs a positive cost: every model costs nothing on these rows")
    hull = ndch(points, c_max)
    area = 0.0
    for (c1, q1), (c2, q2) in zip(hull, hull[1:]):
        if c1 >= c_max:
            break
        if c2 > c_max:  # the hull's value at c_max, on the chord that crosses it
            c2, q2 = c_max, q1 + (q2 - q1) * (c_max - c1) / (c2 - c1)
        area += (c2 - c1) * (q1 + q2) / 2
    return area / c_max


def cost_to_reach(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """The least cost at which the hull of ``points`` reaches quality ``target`` (None: never)."""
    hull = ndch(points)
    if hull[0][1] >= target:
        return hull[0][0]
    for (c1, q1), (c2, q2) in zip(hull, hull[1:]):
        if q2 >= target > q1:
            return c1 + (target - q1) * (c2 - c1) / (q2 - q1)
    return None
