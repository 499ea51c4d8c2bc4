"""The model registry: a model is activated only when it passes every gate."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

import scoring.models  # noqa: F401  (the registry tables)
from scoring.artifacts import save
from scoring.evaluation import evaluate_model
from scoring.service import ModelRefused, activate_model, active_model, register_model
from scoring.synthetic import Cohort
from signals.db import unit_of_work
from signals.models import Municipality
from signals.runtime import Runtime
from signals.service import add_municipality


def test_activation_needs_every_gate(
    runtime: Runtime, model: Pipeline, split: tuple[Cohort, Cohort], tmp_path: Path
) -> None:
    good_report = evaluate_model(model, split[1], k_fraction=0.10)
    good = save(model, tmp_path / "good", {"evaluation": good_report})
    unfair_model = copy.deepcopy(model)
    unfair_model.metadata_ = {**model.metadata_, "model_version": "0.1+unfair"}
    unfair_report = {**good_report, "model_version": "0.1+unfair", "tpr_ratio_min": 0.61}
    unfair = save(unfair_model, tmp_path / "unfair", {"evaluation": unfair_report})
    with unit_of_work(runtime.sessions) as session:
        municipality = add_municipality(session, "0344", "Utrecht")
        refused = register_model(session, unfair)
        with pytest.raises(ModelRefused, match=r"TPR ratios 0\.610"):
            activate_model(session, municipality, refused, "beheer@example.nl")
        assert active_model(session, municipality) is None
        record = register_model(session, good)
        assert register_model(session, good).id == record.id  # idempotent
        activate_model(session, municipality, record, "beheer@example.nl")
    with unit_of_work(runtime.readers) as session:
        municipality = session.query(Municipality).one()
        active = active_model(session, municipality)
        assert active is not None and active.version == good_report["model_version"]
        assert json.dumps(active.evaluation)  # the report is kept with the version
