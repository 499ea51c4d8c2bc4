"""Shared fixtures: one synthetic cohort, split in time, one trained model (made once)."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.pipeline import Pipeline

from scoring.evaluation import evaluate_model, time_split
from scoring.features import raw_matrix
from scoring.model import fit_model
from scoring.synthetic import Cohort, generate

N_HOUSEHOLDS = 60_000
SEED = 7


@pytest.fixture(scope="session")
def cohort() -> Cohort:
    return generate(N_HOUSEHOLDS, seed=SEED)


@pytest.fixture(scope="session")
def split(cohort: Cohort) -> tuple[Cohort, Cohort]:
    train, test = time_split(cohort, test_months=6)
    return cohort.subset(train), cohort.subset(test)


@pytest.fixture(scope="session")
def model(split: tuple[Cohort, Cohort]) -> Pipeline:
    train, _ = split
    return fit_model(raw_matrix(train), train.outcome, order=train.scoring_day)


@pytest.fixture(scope="session")
def report(model: Pipeline, split: tuple[Cohort, Cohort]) -> dict[str, Any]:
    return evaluate_model(model, split[1])
