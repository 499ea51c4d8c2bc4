"""The synthetic cohort lands on its DOMAIN.md anchors and keeps the truth observable."""

from __future__ import annotations

import time

import numpy as np

from scoring.aggregates import COLUMN, PARTNER_KEYS, PARTNERS, RAW_COLUMNS
from scoring.synthetic import AGE_BANDS, MONTHLY_RANGE, Cohort, generate, true_log_odds
from signals.enums import PartnerType


def test_partner_shares_match_the_national_figures(cohort: Cohort) -> None:
    shares = np.bincount(cohort.signals["partner"], minlength=4) / len(cohort.signals)
    anchors = {PartnerType.ZORG: 0.41, PartnerType.ENERGIE: 0.20, PartnerType.HUUR: 0.20}
    anchors[PartnerType.WATER] = 0.18
    for partner, anchor in anchors.items():
        assert abs(shares[PARTNERS.index(partner)] - anchor) < 0.02, (partner, shares)


def test_case_patterns_and_base_rate(cohort: Cohort) -> None:
    s = cohort.signals
    n = len(cohort)
    current = np.bincount(s["household"][s["months_back"] == 0], minlength=n)
    previous = np.bincount(
        s["household"][(s["months_back"] >= 1) & (s["months_back"] <= 6)], minlength=n
    )
    assert (current >= 1).all()
    assert abs((current >= 2).mean() - 0.11) < 0.015  # meervoudig
    assert abs((previous > 0).mean() - 0.40) < 0.03  # opeenvolgend
    assert abs(((current == 1) & (previous == 0)).mean() - 0.5) < 0.06  # single signal
    assert abs(cohort.outcome.mean() - 0.04) < 0.006
    assert abs(cohort.true_p.mean() - cohort.outcome.mean()) < 0.005


def test_amounts_and_arrears_are_realistic(cohort: Cohort) -> None:
    s = cohort.signals
    for p, (lo, hi) in enumerate(MONTHLY_RANGE):
        monthly = s["monthly_amount"][s["partner"] == p]
        assert monthly.min() >= lo - 0.01 and monthly.max() <= hi * 1.07 + 0.01
    months = s["amount"] / s["monthly_amount"]
    in_window = ~s["outside_window"] | (s["partner"] == PARTNERS.index(PartnerType.ZORG))
    assert months.max() <= 6 * 1.05 + 1e-9
    assert np.median(months[in_window]) >= 1
    energy = s["partner"] == PARTNERS.index(PartnerType.ENERGIE)
    assert 0.18 < s["end_of_supply"][energy].mean() < 0.3  # about a quarter


def test_same_seed_same_cohort_and_scoring_dates_span_two_years() -> None:
    a, b = generate(2_000, seed=3), generate(2_000, seed=3)
    assert np.array_equal(a.raw, b.raw, equal_nan=True)
    assert np.array_equal(a.outcome, b.outcome)
    assert not np.array_equal(generate(2_000, seed=4).outcome, a.outcome)
    span = a.scoring_date.max() - a.scoring_date.min()
    assert span >= np.timedelta64(700, "D")


def test_two_hundred_thousand_households_in_a_few_seconds() -> None:
    started = time.perf_counter()
    big = generate(200_000, seed=1)
    assert len(big) == 200_000
    assert time.perf_counter() - started < 10


def test_truth_depends_only_on_the_raw_row_and_is_monotone(cohort: Cohort) -> None:
    assert np.allclose(1 / (1 + np.exp(-true_log_odds(cohort.raw))), cohort.true_p)
    raw = cohort.raw[:5_000].copy()
    worse = raw.copy()
    for p in PARTNER_KEYS:
        present = raw[:, COLUMN[f"{p}_signals_12m"]] > 0
        worse[present, COLUMN[f"{p}_amount"]] *= 1.5
        worse[present, COLUMN[f"{p}_days"]] += 60
    assert (true_log_odds(worse) >= true_log_odds(raw) - 1e-12).all()
    # Audit attributes are not columns of the truth's input.
    assert not {"age_band", "gender", "children"} & set(RAW_COLUMNS)


def test_audit_attributes_are_drawn_but_weakly_related(cohort: Cohort) -> None:
    assert set(np.unique(cohort.age_band)) == set(AGE_BANDS)
    assert set(np.unique(cohort.gender)) == {"Man", "Vrouw"}
    rates = [cohort.outcome[cohort.age_band == band].mean() for band in AGE_BANDS]
    assert max(rates) / min(rates) < 1.5


def test_partner_rows_carry_the_cohorts_patterns_as_valid_batch_rows() -> None:
    import datetime as dt
    from collections import Counter

    from scoring.synthetic import partner_rows
    from signals.parsing import read_rows
    from signals.schemas import RowValidator
    from signals.synthetic import Population, to_csv

    today = dt.date(2026, 11, 23)
    batches = partner_rows(1_500, today, 6, Population(1_500))
    rows = [r for group in batches.values() for r in group]
    assert abs(len(rows) - 1_500) <= 10  # whole households, so about the number asked
    assert {month for _, month in batches} == {dt.date(2026, m, 1) for m in (6, 7, 8, 9, 10, 11)}
    validate = RowValidator(today)
    _, parsed = read_rows(to_csv(rows), max_field_chars=1000)  # as the ingest reads them
    checked = [validate(row) for _, row in parsed]
    assert len(checked) == len(rows)
    assert all(not errors for _, errors in checked)  # no spoiled rows asked for
    assert all(data["signaaldatum"] < today for data, _ in checked)
    assert len({r["signaal_id"] for r in rows}) == len(rows)
    # The cohort's patterns: households with several signals, eviction dates on rent
    # signals only, end-of-supply on energy only.
    per_person = Counter((r["achternaam"], r["postcode"].replace(" ", "")) for r in rows)
    assert sum(1 for n in per_person.values() if n > 1) > 0.25 * len(per_person)
    for (partner, _), group in batches.items():
        evictions = sum(1 for r in group if r["ontruimingsdatum"])
        ends = sum(1 for r in group if r["eindelevering"] == "1")
        assert evictions == 0 or partner is PartnerType.HUUR
        assert ends == 0 or partner is PartnerType.ENERGIE
    assert any(r["ontruimingsdatum"] for r in rows)
