"""Metrics for a risk score: ranking at a list size, calibration error and calibration slope."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

ECE_BINS = 10


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-frequency bins of the predicted probability.

    The households are sorted by ``p`` and cut into ``bins`` groups of (almost) equal size;
    the ECE is the size-weighted mean of ``|mean(p) - mean(y)|`` over the groups. Equal
    frequency, not equal width: with a 4% base rate almost every household falls in the
    first equal-width bin.
    """
    n = len(np.asarray(p))
    return float(
        sum(b["n"] * abs(b["predicted"] - b["observed"]) for b in reliability(y, p, bins)) / n
    )


def reliability(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """The reliability diagram's points: per equal-frequency bin of ``p``, the mean
    predicted probability, the observed outcome rate and the number of households."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    return [
        {"predicted": float(p[g].mean()), "observed": float(y[g].mean()), "n": len(g)}
        for g in np.array_split(order, bins)
        if len(g)
    ]


def calibration_slope(y: np.ndarray, p: np.ndarray, eps: float = 1e-6) -> float:
    """Slope of the logistic regression of the outcome on ``logit(p)`` (1 is ideal).

    Fitted without a penalty by damped Newton-Raphson (two parameters), so no solver warnings.
    """
    y = np.asarray(y, dtype=float)
    q = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    x = np.log(q / (1 - q))
    design = np.column_stack([np.ones_like(x), x])

    def log_likelihood(b: np.ndarray) -> float:
        eta = design @ b
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    beta = np.array([0.0, 1.0])
    current = log_likelihood(beta)
    for _ in range(100):
        mu = expit(design @ beta)
        w = mu * (1 - mu)
        hessian = design.T @ (design * w[:, None]) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, design.T @ (y - mu))
        # Damped Newton: halve the step until the likelihood does not drop (a badly
        # calibrated score would make the plain step overshoot).
        for _ in range(30):
            candidate = log_likelihood(beta + step)
            if candidate >= current - 1e-12:
                break
            step = step / 2
        beta, current = beta + step, candidate
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(beta[1])


def precision_at_k(y: np.ndarray, score: np.ndarray, k: int) -> float:
    """Expected precision of the ``k`` highest scores, ties broken at random.

    Households strictly above the cut-off score are all taken; from the group tied at the
    cut-off a random share is taken, which contributes its positive rate times the places
    left. So a rule (a score with few distinct values) is judged by its expectation, not
    by one lucky draw.
    """
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    if not 0 < k <= len(y):
        raise ValueError("k must be between 1 and the number of households")
    cut = np.sort(score)[::-1][k - 1]
    above = score > cut
    tied = score == cut
    n_left = k - int(above.sum())
    hits = y[above].sum() + n_left * y[tied].mean()
    return float(hits / k)


def capture_curve(y: np.ndarray, score: np.ndarray, fractions: np.ndarray) -> list[float]:
    """Share of all positives in the top ``fraction`` of households, per fraction (the lift
    curve's y-axis; ties broken at random in expectation, as :func:`precision_at_k`)."""
    y = np.asarray(y, dtype=float)
    positives = y.sum()
    n = len(y)
    return [
        float(precision_at_k(y, score, max(1, round(f * n))) * max(1, round(f * n)) / positives)
        for f in fractions
    ]


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """A boolean mask of the ``k`` highest scores (ties by position: deterministic)."""
    mask = np.zeros(len(score), dtype=bool)
    mask[np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k]] = True
    return mask
