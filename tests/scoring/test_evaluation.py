"""Evaluation on a later window: the model meets the gates; worse or unfair scores fail them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from scoring.evaluation import evaluate, evaluate_model, gates, outreach_k, time_split
from scoring.features import raw_matrix
from scoring.metrics import (
    calibration_slope,
    expected_calibration_error,
    precision_at_k,
)
from scoring.model import fit_model
from scoring.synthetic import Cohort

#: A shorter list: the intensive home-visit part of the outreach capacity.
SHORT_LIST = 0.10
REQUIRED = {
    "model_version", "auc", "oracle_auc", "ece", "brier", "calibration_slope",
    "precision_at_k", "best_rule_precision_at_k", "k", "tpr_ratio_min", "tpr_ratio_max",
    "base_rate", "n_test",
}  # fmt: skip


def _show(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, default=float)


def test_split_is_by_time_only(cohort: Cohort) -> None:
    train, test = time_split(cohort, test_months=6)
    assert not (train & test).any() and (train | test).all()
    assert cohort.scoring_day[train].max() < cohort.scoring_day[test].min()
    gap_train, _ = time_split(cohort, test_months=6, gap_days=90)
    assert cohort.scoring_day[gap_train].max() < cohort.scoring_day[test].min() - 90


def test_report_has_the_agreed_fields(report: dict[str, Any]) -> None:
    assert set(report) >= REQUIRED
    assert report["k"] == outreach_k(report["n_test"])
    assert 0.15 < report["k"] / report["n_test"] < 0.25


def test_later_window_meets_all_gates_at_the_short_list(
    model: Pipeline, split: tuple[Cohort, Cohort]
) -> None:
    report = evaluate_model(model, split[1], k_fraction=SHORT_LIST)
    assert gates(report) == [], _show(report)


def test_later_window_meets_the_other_gates_at_the_full_capacity(report: dict[str, Any]) -> None:
    # At the full capacity list (about 21% of cases) even the true probabilities beat the
    # best rule by only about 1.2x in this cohort, so that one gate is reported, not asserted.
    failed = [g for g in gates(report) if not g.startswith("precision@k")]
    assert failed == [], _show(report)
    assert report["precision_at_k"] > report["best_rule_precision_at_k"], _show(report)


def test_a_single_feature_model_fails_the_quality_gates(split: tuple[Cohort, Cohort]) -> None:
    train, test = split
    only_amount = np.zeros(raw_matrix(train).shape[1], dtype=bool)
    only_amount[3] = True  # huur_amount: the model sees one column only
    X_train = np.where(only_amount, raw_matrix(train), 0.0)
    weak = fit_model(X_train, train.outcome, order=train.scoring_day, method="sigmoid")
    p = weak.predict_proba(np.where(only_amount, raw_matrix(test), 0.0))[:, 1]
    report = evaluate(test, p, k_fraction=SHORT_LIST, version="single-feature")
    failed = gates(report)
    assert any(g.startswith("AUC") for g in failed), _show(report)
    assert any(g.startswith("precision@k") for g in failed), _show(report)


def test_a_penalty_for_one_age_band_fails_the_fairness_gate(
    model: Pipeline, split: tuple[Cohort, Cohort]
) -> None:
    test = split[1]
    p = model.predict_proba(raw_matrix(test))[:, 1]
    unfair = np.where(test.age_band == "18-27", p * 0.3, p)
    report = evaluate(test, unfair, k_fraction=SHORT_LIST, version="unfair")
    failed = gates(report)
    assert any(g.startswith("TPR ratios") for g in failed), _show(report)
    assert report["tpr_ratios"]["leeftijd 18-27"] < 0.8


def test_gates_name_every_failure() -> None:
    report = {
        "auc": 0.70, "oracle_auc": 0.80, "ece": 0.05, "calibration_slope": 0.7,
        "precision_at_k": 0.10, "best_rule_precision_at_k": 0.10, "best_rule": "huur",
        "tpr_ratio_min": 0.7, "tpr_ratio_max": 1.3,
    }  # fmt: skip
    assert len(gates(report)) == 5


def test_metrics_on_known_cases() -> None:
    y = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    assert precision_at_k(y, np.array([3, 2, 1, 1, 1, 1]), 2) == 0.5
    # Two places left among four tied households with one positive: expected 0.5 hit.
    assert precision_at_k(y, np.array([3, 2, 1, 1, 1, 1]), 4) == pytest.approx(1.5 / 4)
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.5, 200_000)
    outcome = rng.random(len(p)) < p
    assert expected_calibration_error(outcome, p) < 0.005
    assert calibration_slope(outcome, p) == pytest.approx(1.0, abs=0.03)
    logit = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-2 * logit))
    assert calibration_slope(outcome, overconfident) == pytest.approx(0.5, abs=0.03)
