"""The feature set: excluded inputs stay out, features are what their names say."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from scoring.aggregates import COLUMN, RAW_COLUMNS
from scoring.features import (
    EXCLUDED_INPUTS,
    FEATURE_NAMES,
    MONOTONE,
    HouseholdFeatures,
    raw_matrix,
)
from scoring.synthetic import Cohort


def test_no_excluded_input_is_a_feature_or_raw_column() -> None:
    for name in (*FEATURE_NAMES, *RAW_COLUMNS):
        assert name not in EXCLUDED_INPUTS
        tokens = set(name.split("_"))
        assert not tokens & set(EXCLUDED_INPUTS), name
    assert {"gender", "age_band", "children", "postcode", "nationality"} <= set(EXCLUDED_INPUTS)


def _row(**values: float) -> np.ndarray:
    raw = np.zeros((1, len(RAW_COLUMNS)))
    raw[0, COLUMN["eviction_days"]] = np.nan
    for name, value in values.items():
        raw[0, COLUMN[name]] = value
    return raw


def test_features_of_a_household_with_growing_rent_arrears_and_energy_now() -> None:
    raw = _row(
        huur_signals_6m=2,
        huur_signals_12m=2,
        huur_amount=2400,
        huur_monthly=800,
        huur_days=95,
        huur_first_amount=800,
        energie_signals_6m=1,
        energie_signals_12m=1,
        energie_current=1,
        energie_amount=300,
        energie_monthly=150,
        energie_days=70,
        energie_first_amount=300,
        end_of_supply_signals=1,
        eviction_days=21,
        days_since_first_signal=120,
    )
    features = HouseholdFeatures().fit(raw)
    z = dict(zip(features.get_feature_names_out(), features.transform(raw)[0], strict=True))
    assert z["huur_months"] == 3 and z["huur_growth_months"] == 2
    assert z["huur_growth_x_energie_current"] == 2
    assert z["n_partners_12m"] == 2 and z["n_partners_current"] == 1
    assert z["total_amount"] == 2700 and z["max_amount"] == 2400
    assert z["max_other_months"] == 2 and z["max_days_in_arrears"] == 95
    assert z["eviction_date"] == 1 and z["days_until_eviction"] == 21
    assert z["end_of_supply_x_huur"] == 1 and z["end_of_supply_x_huur_months"] == 3


def test_no_eviction_date_is_the_far_end_and_the_reference(cohort: Cohort) -> None:
    features = clone(HouseholdFeatures(eviction_horizon=365)).fit(raw_matrix(cohort))
    Z = features.transform(raw_matrix(cohort))
    j = FEATURE_NAMES.index("days_until_eviction")
    none = Z[:, FEATURE_NAMES.index("eviction_date")] == 0
    assert (Z[none, j] == 365).all() and (Z[~none, j] < 365).all()
    assert features.reference_[j] == 365 and MONOTONE["days_until_eviction"] == -1
    assert Z.shape == (len(cohort), len(features.get_feature_names_out()))
    assert features.n_features_in_ == len(RAW_COLUMNS)
