"""The published documents are generated from the model's own evaluation."""

from __future__ import annotations

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
