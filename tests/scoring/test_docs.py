"""The published documents are generated from the model's own evaluation."""

from __future__ import annotations

import itertools
from typing import Any

from sklearn.pipeline import Pipeline

from scoring.docs import algoritmeregister, model_card
from scoring.features import EXCLUDED_INPUTS, FEATURE_NAMES


def test_model_card_states_the_measured_figures(model: Pipeline, report: dict[str, Any]) -> None:
    metadata = {**model.metadata_, "training_data": {"kind": "synthetic", "households": 60000}}
    card = model_card(metadata, report)
    assert report["model_version"] in card
    assert f"{report['auc']:.3f}" in card and f"{report['ece']:.4f}" in card
    assert f"{report['best_rule_precision_at_k']:.3f}" in card
    assert all(f"`{name}`" in card for name in FEATURE_NAMES)
    assert all(f"`{name}`" in card for name in EXCLUDED_INPUTS)
    assert "Training data: **synthetic**" in card
    assert "Trained on local outcomes" in model_card(model.metadata_, report)
    for group, ratio in report["tpr_ratios"].items():
        assert f"| {group} | {ratio:.3f} |" in card


def test_register_entry_has_the_publication_fields(model: Pipeline, report: dict[str, Any]) -> None:
    entry = algoritmeregister(model.metadata_, report)
    for heading in (
        "Doel en impact",
        "Menselijke tussenkomst",
        "Risicobeheer",
        "Wettelijke basis",
        "Impacttoetsen",
        "Data",
        "Technische werking",
    ):
        assert f"## {heading}" in entry
    assert f"{report['tpr_ratio_min']:.3f}" in entry


def test_reliability_and_lift_plots_come_from_the_report(report: dict[str, Any]) -> None:
    import xml.etree.ElementTree as ET

    from scoring.docs import plots

    points = report["reliability"]
    assert sum(b["n"] for b in points) == report["n_test"] and len(points) == 10
    curve = report["capture_curve"]
    for key in ("model", "best_rule", "oracle"):
        values = curve[key]
        assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values)), key
        assert abs(values[-1] - 1.0) < 1e-9  # the whole list holds every outcome
    # Half of the list holds more outcomes for the model than for the best rule.
    half = curve["fractions"].index(0.5)
    assert curve["model"][half] > curve["best_rule"][half]
    first, second = plots(report), plots(report)
    assert first == second  # regenerating gives the same files
    for name in ("reliability.svg", "lift.svg"):
        root = ET.fromstring(first[name])  # noqa: S314  (our own output)
        assert root.tag.endswith("svg")
    assert "Betrouwbaarheid" in first["reliability.svg"] and "beste regel" in first["lift.svg"]


def test_model_card_holds_the_reliability_table(model: Pipeline, report: dict[str, Any]) -> None:
    card = model_card(model.metadata_, report)
    assert "![Reliability diagram](reliability.svg)" in card
    last = report["reliability"][-1]
    assert f"| 10 | {last['predicted']:.4f} | {last['observed']:.4f} | {last['n']} |" in card
