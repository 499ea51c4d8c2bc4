"""The model: monotone in arrears, exact reasons in plain Dutch, versioned."""

from __future__ import annotations

import numpy as np
from sklearn.pipeline import Pipeline

from scoring.aggregates import COLUMN, PARTNER_KEYS, RAW_COLUMNS
from scoring.features import FEATURE_NAMES, raw_matrix
from scoring.model import (
    additive_score,
    contributions,
    contributions_direct,
    model_version,
    reasons,
)
from scoring.synthetic import Cohort


def test_a_higher_or_older_arrear_never_lowers_the_risk(
    model: Pipeline, split: tuple[Cohort, Cohort]
) -> None:
    raw = raw_matrix(split[1])[:3_000]
    p = model.predict_proba(raw)[:, 1]
    rng = np.random.default_rng(0)
    for _ in range(3):
        worse = raw.copy()
        for key in PARTNER_KEYS:
            present = raw[:, COLUMN[f"{key}_signals_12m"]] > 0
            worse[present, COLUMN[f"{key}_amount"]] += rng.uniform(0, 1500, present.sum())
            worse[present, COLUMN[f"{key}_days"]] += rng.integers(0, 120, present.sum())
        p_worse = model.predict_proba(worse)[:, 1]
        assert (p_worse >= p - 1e-12).all()
        assert (p_worse > p + 1e-6).mean() > 0.5  # and it does raise it, mostly


def test_contributions_are_exact(model: Pipeline, split: tuple[Cohort, Cohort]) -> None:
    raw = raw_matrix(split[1])[:2_000]
    C, reference = contributions(model, raw)
    assert C.shape == (len(raw), len(FEATURE_NAMES))
    assert np.allclose(C.sum(axis=1), additive_score(model, raw) - reference, atol=1e-9)
    # Monotone features measured from their "no signal" end only ever add risk.
    assert (C[:, FEATURE_NAMES.index("huur_months")] >= -1e-12).all()


def test_shape_tables_give_the_contributions_of_rescoring(
    model: Pipeline, split: tuple[Cohort, Cohort]
) -> None:
    raw = raw_matrix(split[1])[:2_000]
    # Values exactly on, just above and far beyond the split points must agree too.
    raw[:50, COLUMN["huur_amount"]] = np.linspace(0, 20_000, 50)
    raw[50:100, COLUMN["huur_days"]] = np.arange(50) * 7.0
    fast, reference = contributions(model, raw)
    slow, reference_direct = contributions_direct(model, raw)
    assert reference == reference_direct
    assert np.allclose(fast, slow, rtol=0, atol=1e-9)


def test_reasons_name_eviction_and_rent_arrears_in_dutch(model: Pipeline) -> None:
    raw = np.zeros((1, len(RAW_COLUMNS)))
    values = {
        "huur_signals_6m": 2,
        "huur_signals_12m": 2,
        "huur_current": 1,
        "huur_amount": 2400,
        "huur_monthly": 800,
        "huur_days": 100,
        "huur_first_amount": 1600,
        "eviction_days": 20,
        "days_since_first_signal": 70,
    }
    for name, value in values.items():
        raw[0, COLUMN[name]] = value
    texts = reasons(model, raw)[0]
    assert len(texts) == 3
    assert "ontruimingsdatum binnen 30 dagen" in texts
    assert any(text.startswith("huurachterstand van 3 maanden") for text in texts), texts
    assert any(text.startswith("huurachterstand gegroeid") for text in texts), texts


def test_reasons_are_at_most_three_positive_texts(
    model: Pipeline, split: tuple[Cohort, Cohort]
) -> None:
    out = reasons(model, raw_matrix(split[1])[:200])
    assert all(1 <= len(r) <= 3 for r in out)
    assert all(isinstance(text, str) and text for r in out for text in r)


def test_model_carries_its_version(model: Pipeline) -> None:
    assert model_version(model).startswith("0.1+")
    assert model.metadata_["features"] == list(FEATURE_NAMES)
    assert model.metadata_["calibration"] in {"sigmoid", "isotonic"}


def test_the_same_data_gives_the_same_model_version(split: tuple[Cohort, Cohort]) -> None:
    from scoring.model import fit_model

    train = split[0].subset(np.arange(8_000))
    models = [fit_model(raw_matrix(train), train.outcome, order=train.scoring_day) for _ in "ab"]
    versions = {model_version(m) for m in models}
    assert len(versions) == 1, versions
