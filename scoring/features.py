"""The household feature set: raw signal aggregates in, model features out (a sklearn transformer).

Input is the raw aggregate row of :mod:`scoring.aggregates` (columns :data:`RAW_COLUMNS`,
built by :func:`raw_matrix` for a synthetic cohort, later by the scoring job from stored
signals). Output is :data:`FEATURE_NAMES`, each with the direction it may move the risk in
(:data:`MONOTONE`) and its "no signal" reference value, used for exact reasons.

Nothing about the person is an input: see :data:`EXCLUDED_INPUTS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from scoring.aggregates import COLUMN, PARTNER_KEYS, RAW_COLUMNS

if TYPE_CHECKING:
    from scoring.synthetic import Cohort

__all__ = [
    "EXCLUDED_INPUTS",
    "FEATURE_NAMES",
    "MONOTONE",
    "RAW_COLUMNS",
    "HouseholdFeatures",
    "raw_matrix",
]

#: Never a model input, not even as a raw column (DOMAIN.md, "Risk scoring"): the SyRI,
#: Belastingdienst, Rotterdam and Amsterdam lessons. Gender, age and household with children
#: are audit dimensions only.
EXCLUDED_INPUTS: tuple[str, ...] = (
    "nationality",
    "nationaliteit",
    "ethnicity",
    "etniciteit",
    "migration_background",
    "migratieachtergrond",
    "language",
    "taal",
    "neighbourhood",
    "wijk",
    "buurt",
    "postcode",
    "postcode_area",
    "gender",
    "geslacht",
    "age",
    "leeftijd",
    "birth_date",
    "geboortedatum",
    "age_band",
    "children",
    "household_with_children",
    "kinderen",
)

#: Model features with their monotone direction (+1 never lowers the risk when it grows,
#: -1 never raises it, 0 free) and their "no signal" reference value (None: the training
#: median).
_SPEC: tuple[tuple[str, int, float | None], ...] = (
    ("has_huur", 1, 0.0),
    ("has_energie", 1, 0.0),
    ("has_water", 1, 0.0),
    ("has_zorg", 1, 0.0),
    ("n_partners_current", 1, 0.0),
    ("n_partners_12m", 1, 0.0),
    ("n_signals_6m", 1, 0.0),
    ("n_signals_12m", 1, 0.0),
    ("total_amount", 1, 0.0),
    ("max_amount", 1, 0.0),
    ("huur_months", 1, 0.0),
    ("max_other_months", 1, 0.0),
    ("max_days_in_arrears", 1, 0.0),
    ("huur_growth_months", 1, 0.0),
    ("max_growth_amount", 1, 0.0),
    ("eviction_date", 1, 0.0),
    ("days_until_eviction", -1, None),  # reference set to the horizon in fit
    ("end_of_supply", 1, 0.0),
    ("crisis", 1, 0.0),
    ("warm_handover", 1, 0.0),
    ("outside_window_share", 0, None),
    ("months_since_first_signal", 1, 0.0),
    ("huur_growth_x_energie_current", 1, 0.0),
    ("end_of_supply_x_huur", 1, 0.0),
    ("end_of_supply_x_huur_months", 1, 0.0),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _SPEC)
MONOTONE: dict[str, int] = {name: direction for name, direction, _ in _SPEC}
MONTH_DAYS = 30.4


def raw_matrix(cohort: Cohort) -> np.ndarray:
    """The raw model input of a cohort: float array (households, ``len(RAW_COLUMNS)``)."""
    return np.asarray(cohort.raw, dtype=float)


class HouseholdFeatures(TransformerMixin, BaseEstimator):
    """Turn raw aggregate rows (:data:`RAW_COLUMNS`) into :data:`FEATURE_NAMES`.

    Parameters
    ----------
    eviction_horizon : float, default=365
        Days until eviction used when no eviction date is known (and the cap for later
        dates), so that "no date" sits at the far, low-risk end of the scale.

    Attributes
    ----------
    n_features_in_ : int
    reference_ : ndarray of shape (n_features,)
        Per feature, the "no signal" value (no partner, no amount, no eviction date) or,
        for a feature without a direction, its training median. Reasons compare a
        household with this reference.
    """

    def __init__(self, eviction_horizon: float = 365.0) -> None:
        self.eviction_horizon = eviction_horizon

    def fit(self, X: np.ndarray, y: object = None) -> HouseholdFeatures:
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        if X.shape[1] != len(RAW_COLUMNS):
            raise ValueError(f"expected {len(RAW_COLUMNS)} raw columns, got {X.shape[1]}")
        features = self._compute(X)
        reference = []
        for j, (name, _, value) in enumerate(_SPEC):
            if name == "days_until_eviction":
                reference.append(float(self.eviction_horizon))
            elif value is None:
                reference.append(float(np.median(features[:, j])))
            else:
                reference.append(value)
        self.reference_ = np.asarray(reference)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "reference_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return self._compute(X)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(FEATURE_NAMES, dtype=object)

    def _compute(self, X: np.ndarray) -> np.ndarray:
        def col(name: str) -> np.ndarray:
            return np.nan_to_num(X[:, COLUMN[name]])

        amount = {p: np.maximum(col(f"{p}_amount"), 0) for p in PARTNER_KEYS}
        present = {p: (col(f"{p}_signals_12m") > 0).astype(float) for p in PARTNER_KEYS}
        months = {}
        for p in PARTNER_KEYS:
            monthly = col(f"{p}_monthly")
            # Without a monthly amount, the days in arrears stand in for the months.
            by_days = np.maximum(col(f"{p}_days"), 0) / MONTH_DAYS
            months[p] = np.where(
                monthly > 0, amount[p] / np.where(monthly > 0, monthly, 1.0), by_days
            ) * (present[p] > 0)
        growth_amount = {
            p: np.maximum(amount[p] - np.maximum(col(f"{p}_first_amount"), 0), 0)
            for p in PARTNER_KEYS
        }
        huur_monthly = col("huur_monthly")
        huur_growth = np.where(
            huur_monthly > 0,
            growth_amount["huur"] / np.where(huur_monthly > 0, huur_monthly, 1.0),
            0.0,
        )
        n_signals_12m = sum(col(f"{p}_signals_12m") for p in PARTNER_KEYS)
        eviction = X[:, COLUMN["eviction_days"]]
        has_eviction = (~np.isnan(eviction)).astype(float)
        horizon = float(self.eviction_horizon)
        days_until = np.where(
            has_eviction > 0, np.clip(np.nan_to_num(eviction), 0, horizon), horizon
        )
        eos = (col("end_of_supply_signals") > 0).astype(float)
        outside = col("outside_window_signals") / np.maximum(n_signals_12m, 1)
        columns = {
            "has_huur": present["huur"],
            "has_energie": present["energie"],
            "has_water": present["water"],
            "has_zorg": present["zorg"],
            "n_partners_current": sum(col(f"{p}_current") for p in PARTNER_KEYS),
            "n_partners_12m": sum(present.values()),
            "n_signals_6m": sum(col(f"{p}_signals_6m") for p in PARTNER_KEYS),
            "n_signals_12m": n_signals_12m,
            "total_amount": sum(amount.values()),
            "max_amount": np.maximum.reduce(list(amount.values())),
            "huur_months": months["huur"],
            "max_other_months": np.maximum.reduce([months[p] for p in PARTNER_KEYS[1:]]),
            "max_days_in_arrears": np.maximum.reduce(
                [np.maximum(col(f"{p}_days"), 0) * present[p] for p in PARTNER_KEYS]
            ),
            "huur_growth_months": huur_growth,
            "max_growth_amount": np.maximum.reduce(list(growth_amount.values())),
            "eviction_date": has_eviction,
            "days_until_eviction": days_until,
            "end_of_supply": eos,
            "crisis": (col("crisis_signals") > 0).astype(float),
            "warm_handover": (col("warm_handover_signals") > 0).astype(float),
            "outside_window_share": outside,
            "months_since_first_signal": np.maximum(col("days_since_first_signal"), 0) / MONTH_DAYS,
            "huur_growth_x_energie_current": huur_growth * (col("energie_current") > 0),
            "end_of_supply_x_huur": eos * present["huur"],
            "end_of_supply_x_huur_months": eos * months["huur"],
        }
        return np.column_stack([columns[name] for name in FEATURE_NAMES])
