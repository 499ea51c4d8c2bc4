"""Evaluate a risk score on a later time window, against today's rules, with a bias audit.

* **Split**: time only. Train on households scored before the test window (optionally
  leaving a gap, e.g. the 12-month outcome horizon a live retrain must wait for), test on
  the last ``test_months`` months. Never a random split.
* **List size k** (the outreach capacity): by default 0.33 FTE per 10,000 inhabitants per
  month. Conversion (:func:`outreach_k`): a municipality gets 44 signals per 10,000
  inhabitants a month (DOMAIN.md: 4.4 per 1,000), 80% become a case, a case bundles 1.12
  signals (measured in the synthetic cohort), so about 31.4 cases per 10,000 a month; one
  FTE works about 20 intensive cases a month (assumption: about 120 productive hours, some
  6 hours per case for several attempts including a call or home visit). So
  ``k = n_cases * 0.33 * 20 / 31.4``, about 21% of the cases in the window; the inhabitant
  count cancels. ``k`` can also be given as a count or as a fraction of the test set.
* **Metrics**: AUC, the oracle AUC (of the true probabilities), Brier score, ECE over 10
  equal-frequency bins, calibration slope, precision and lift at k.
* **Rule baselines** (what municipalities use today): *meervoudig* (two or more partners
  this month), *opeenvolgend* (another signal in the previous six months), a rent signal,
  the total amount above a threshold (several thresholds), every AND and OR of two of
  them, and a points score (how many of the rules hold). Each is judged by its expected
  precision at k with random tie-breaking; the best one on the *test set itself* is the
  baseline, which favours the rules.
* **Bias audit**: true-positive rate at k per age band, gender and household with or
  without children, divided by the overall true-positive rate; min and max ratio.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from scoring.features import FEATURE_NAMES, HouseholdFeatures, raw_matrix
from scoring.metrics import (
    ECE_BINS,
    calibration_slope,
    capture_curve,
    expected_calibration_error,
    precision_at_k,
    reliability,
    top_k,
)
from scoring.model import model_version
from scoring.synthetic import Cohort

SIGNALS_PER_10K_MONTH = 44.0
SHARE_TO_CASE = 0.8
SIGNALS_PER_CASE = 1.12
CASES_PER_FTE_MONTH = 20.0
FTE_PER_10K_MONTH = 0.33
#: List sizes (shares of the households) at which the lift curve is drawn.
CURVE_FRACTIONS = [round(0.05 * i, 2) for i in range(1, 21)]
AMOUNT_THRESHOLDS = (250.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0)

GATE_AUC_VS_ORACLE = 0.97
GATE_ECE = 0.02
GATE_SLOPE = (0.9, 1.1)
GATE_RULE_LIFT = 1.2
GATE_TPR_RATIO = (0.8, 1.25)
#: A challenger trained on local outcomes may lose at most this much AUC to the champion
#: on the same later window (and no precision at k at all).
GATE_CHAMPION_AUC_TOLERANCE = 0.005


def time_split(
    cohort: Cohort, test_months: int = 6, gap_days: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test): the test window is the last ``test_months`` months.

    Training households are scored more than ``gap_days`` before the window starts.
    """
    day = cohort.scoring_day
    start = day.max() + 1 - round(test_months * 30.4)
    return day < start - gap_days, day >= start


def outreach_k(
    n_cases: int,
    fte_per_10k: float = FTE_PER_10K_MONTH,
    cases_per_fte_month: float = CASES_PER_FTE_MONTH,
    fraction: float | None = None,
) -> int:
    """The outreach list size for ``n_cases`` cases (see the module docstring).

    With ``fraction`` the list is that share of the cases instead.
    """
    if fraction is None:
        cases_per_10k = SIGNALS_PER_10K_MONTH * SHARE_TO_CASE / SIGNALS_PER_CASE
        fraction = fte_per_10k * cases_per_fte_month / cases_per_10k
    return max(1, min(n_cases, round(n_cases * fraction)))


def rule_scores(features: np.ndarray) -> dict[str, np.ndarray]:
    """Today's triage rules as scores on the model features (higher = earlier in the list)."""
    z = {name: features[:, j] for j, name in enumerate(FEATURE_NAMES)}
    flags = {
        "meervoudig": z["n_partners_current"] >= 2,
        "opeenvolgend": z["n_signals_6m"] > z["n_partners_current"],
        "huur": z["has_huur"] > 0,
    }
    for t in AMOUNT_THRESHOLDS:
        flags[f"bedrag>{t:g}"] = z["total_amount"] > t
    scores = {name: flag.astype(float) for name, flag in flags.items()}
    for a, b in itertools.combinations(flags, 2):
        if a.startswith("bedrag") and b.startswith("bedrag"):
            continue
        scores[f"{a} en {b}"] = (flags[a] & flags[b]).astype(float)
        scores[f"{a} of {b}"] = (flags[a] | flags[b]).astype(float)
    base = flags["meervoudig"].astype(float) + flags["opeenvolgend"] + flags["huur"]
    for t in AMOUNT_THRESHOLDS:
        scores[f"punten(bedrag>{t:g})"] = base + flags[f"bedrag>{t:g}"]
    return scores


def tpr_ratios(
    y: np.ndarray, selected: np.ndarray, groups: dict[str, np.ndarray]
) -> dict[str, float]:
    """True-positive rate of each subgroup divided by the overall true-positive rate."""
    overall = selected[y].mean()
    out = {}
    for name, mask in groups.items():
        positives = y & mask
        if positives.any():
            out[name] = float(selected[positives].mean() / overall)
    return out


def audit_groups(cohort: Cohort) -> dict[str, np.ndarray]:
    """The audit subgroups: each age band, each gender, with and without children."""
    groups = {f"leeftijd {band}": cohort.age_band == band for band in np.unique(cohort.age_band)}
    groups.update({f"geslacht {g}": cohort.gender == g for g in np.unique(cohort.gender)})
    if cohort.children is not None:  # not known in live data
        groups["met kinderen"] = cohort.children
        groups["zonder kinderen"] = ~cohort.children
    return groups


def evaluate(
    cohort: Cohort,
    p: np.ndarray,
    k: int | None = None,
    k_fraction: float | None = None,
    version: str = "unknown",
) -> dict[str, Any]:
    """Evaluate probabilities ``p`` for the households of ``cohort`` (the test window)."""
    y = np.asarray(cohort.outcome, dtype=bool)
    p = np.asarray(p, dtype=float)
    n = len(y)
    if k is None:
        k = outreach_k(n, fraction=k_fraction)
    base_rate = float(y.mean())
    features = HouseholdFeatures().fit_transform(raw_matrix(cohort))
    rules = {name: precision_at_k(y, s, k) for name, s in rule_scores(features).items()}
    # The true probabilities exist for the synthetic cohort only; live data has none.
    oracle = bool(np.isfinite(cohort.true_p).all())
    best_rule = max(rules, key=rules.__getitem__)
    precision = precision_at_k(y, p, k)
    ratios = tpr_ratios(y, top_k(p, k), audit_groups(cohort))
    return {
        "model_version": version,
        "n_test": n,
        "positives": int(y.sum()),
        "base_rate": base_rate,
        "auc": float(roc_auc_score(y, p)),
        "oracle_auc": float(roc_auc_score(y, cohort.true_p)) if oracle else None,
        "brier": float(brier_score_loss(y, p)),
        "oracle_brier": float(brier_score_loss(y, cohort.true_p)) if oracle else None,
        "ece": expected_calibration_error(y, p),
        "ece_bins": ECE_BINS,
        "calibration_slope": calibration_slope(y, p),
        "k": k,
        "k_fraction": k / n,
        "precision_at_k": precision,
        "lift_at_k": precision / base_rate,
        "oracle_precision_at_k": precision_at_k(y, cohort.true_p, k) if oracle else None,
        "best_rule": best_rule,
        "best_rule_precision_at_k": rules[best_rule],
        "rule_precision_at_k": rules,
        "tpr_at_k": float(top_k(p, k)[y].mean()),
        "reliability": reliability(y, p),
        "capture_curve": {
            "fractions": CURVE_FRACTIONS,
            "model": capture_curve(y, p, np.asarray(CURVE_FRACTIONS)),
            "best_rule": capture_curve(
                y, rule_scores(features)[best_rule], np.asarray(CURVE_FRACTIONS)
            ),
            "oracle": capture_curve(y, cohort.true_p, np.asarray(CURVE_FRACTIONS))
            if oracle
            else None,
        },
        "tpr_ratios": ratios,
        "tpr_ratio_min": min(ratios.values()),
        "tpr_ratio_max": max(ratios.values()),
    }


def evaluate_model(
    model: Pipeline, cohort: Cohort, k: int | None = None, k_fraction: float | None = None
) -> dict[str, Any]:
    """Score ``cohort`` (the test window) with ``model`` and :func:`evaluate` it."""
    p = model.predict_proba(raw_matrix(cohort))[:, 1]
    return evaluate(cohort, p, k=k, k_fraction=k_fraction, version=model_version(model))


def gates(report: dict[str, Any]) -> list[str]:
    """The release gates a report fails (empty: all met)."""
    failed = []
    champion = report.get("champion")
    if report.get("oracle_auc") is not None:
        if report["auc"] < GATE_AUC_VS_ORACLE * report["oracle_auc"]:
            failed.append(
                f"AUC {report['auc']:.4f} < {GATE_AUC_VS_ORACLE} x oracle "
                f"{report['oracle_auc']:.4f}"
            )
    elif champion is None:
        failed.append("no oracle AUC and no champion to compare with")
    if champion is not None:
        if report["auc"] < champion["auc"] - GATE_CHAMPION_AUC_TOLERANCE:
            failed.append(
                f"AUC {report['auc']:.4f} below the champion's {champion['auc']:.4f} "
                f"({champion['model_version']})"
            )
        if report["precision_at_k"] < champion["precision_at_k"]:
            failed.append(
                f"precision@k {report['precision_at_k']:.4f} below the champion's "
                f"{champion['precision_at_k']:.4f} ({champion['model_version']})"
            )
    if report["ece"] > GATE_ECE:
        failed.append(f"ECE {report['ece']:.4f} > {GATE_ECE}")
    lo, hi = GATE_SLOPE
    if not lo <= report["calibration_slope"] <= hi:
        failed.append(f"calibration slope {report['calibration_slope']:.3f} outside {lo}-{hi}")
    if report["precision_at_k"] < GATE_RULE_LIFT * report["best_rule_precision_at_k"]:
        failed.append(
            f"precision@k {report['precision_at_k']:.4f} < {GATE_RULE_LIFT} x best rule "
            f"{report['best_rule_precision_at_k']:.4f} ({report['best_rule']})"
        )
    lo, hi = GATE_TPR_RATIO
    if report["tpr_ratio_min"] < lo or report["tpr_ratio_max"] > hi:
        failed.append(
            f"TPR ratios {report['tpr_ratio_min']:.3f}-{report['tpr_ratio_max']:.3f} "
            f"outside {lo}-{hi}"
        )
    return failed
