"""Live labels from stored signals and recorded outcomes; retraining champion vs challenger."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from scoring.live import live_cohort, retrain
from scoring.service import ModelRefused, activate_model, record_outcome, register_model
from signals.db import unit_of_work
from signals.models import Municipality, Signal
from signals.synthetic import make_bsn
from tests.factories import World, row

TODAY = dt.date(2026, 11, 23)


def _household(world: World, signal_ref: str) -> str:
    with unit_of_work(world.runtime.readers) as session:
        signal = session.scalars(select(Signal).where(Signal.signal_ref == signal_ref)).one()
        return signal.bsn_hash or signal.address_hash


def test_labels_come_from_later_eviction_signals_and_recorded_outcomes(world: World) -> None:
    def signal(ref: str, bsn: str, day: str, **extra: str) -> dict[str, str]:
        start = dt.date.fromisoformat(day) - dt.timedelta(days=60)
        return row(signaal_id=ref, bsn=bsn, signaaldatum=day, ontstaansdatum=str(start), **extra)

    world.ingest(
        [
            signal("A1", "111222333", "2024-03-10"),
            signal("B1", "123456782", "2024-03-12"),
            signal("C1", "100000009", "2024-03-15"),
            # A: a later signal announces an eviction: A's March snapshot is positive.
            signal("A2", "111222333", "2024-08-05", ontruimingsdatum="2024-09-30"),
            # D: too recent, the 12-month horizon has not passed: not labelled at all.
            signal("D1", "100000010", "2026-01-10"),
        ],
        "a.p7m",
    )
    with unit_of_work(world.runtime.sessions) as session:
        # C: a disconnection recorded 2.5 months later; B: an eviction, but 13 months later.
        record_outcome(
            session, world.municipality_id, _household(world, "C1"), "afsluiting",
            dt.date(2024, 6, 1), "casus",
        )  # fmt: skip
        record_outcome(
            session, world.municipality_id, _household(world, "B1"), "ontruiming",
            dt.date(2025, 5, 1), "beheer",
        )  # fmt: skip
        with pytest.raises(ValueError, match="unknown outcome"):
            record_outcome(session, world.municipality_id, "x", "verhuisd", TODAY, "beheer")
        cohort = live_cohort(session, world.municipality_id, TODAY)
    days = [str(dt.date(2000, 1, 1) + dt.timedelta(days=int(d))) for d in cohort.scoring_day]
    found = sorted(zip(days, cohort.outcome.tolist(), strict=True))
    # Snapshots at the end of each month with a signal: March (A, B, C) and August (A).
    assert found == [
        ("2024-03-31", False),  # B: outcome after the horizon
        ("2024-03-31", True),  # A: later eviction date
        ("2024-03-31", True),  # C: recorded disconnection
        ("2024-08-31", False),  # A: nothing after August
    ]
    assert np.isnan(cohort.true_p).all() and cohort.children is None
    assert set(cohort.gender) == {"Vrouw"}  # audit only: from the stored client


def _history(world: World, households: int, seed: int) -> None:
    """Two years of rent signals; large, growing arrears end in a recorded eviction."""
    rng = random.Random(seed)
    rows, outcomes = [], []
    start = dt.date(2023, 11, 1)
    for h in range(households):
        bsn = make_bsn(rng)
        first = start + dt.timedelta(days=rng.randrange(0, 700))
        monthly = rng.choice([550, 725, 900])
        months = rng.uniform(0.8, 5.0)
        for n in range(rng.choice([1, 1, 2, 3])):
            day = first + dt.timedelta(days=31 * n)
            amount = monthly * (months + n * rng.uniform(0, 1.2))
            rows.append(
                row(
                    signaal_id=f"H{h}-{n}",
                    bsn=bsn,
                    signaaldatum=str(day),
                    ontstaansdatum=str(day - dt.timedelta(days=int(amount / monthly * 30))),
                    bedrag=f"{amount:.2f}",
                    maandbedrag=f"{monthly:.2f}",
                    geboortedatum=str(dt.date(1950 + rng.randrange(55), 1 + h % 12, 1 + h % 28)),
                    geslacht=rng.choice("MV"),
                )
            )
            risk = 0.02 + 0.9 / (1 + np.exp(-(amount / monthly - 4.5) * 1.6))
        if rng.random() < risk:
            outcomes.append((f"H{h}-0", day + dt.timedelta(days=rng.randrange(20, 200))))
    world.ingest(rows, "history.p7m")
    with unit_of_work(world.runtime.sessions) as session:
        for ref, day in outcomes:
            record_outcome(
                session, world.municipality_id, _household(world, ref), "ontruiming", day, "casus"
            )


def test_retraining_waits_for_enough_local_outcomes(world: World, tmp_path: Path) -> None:
    _history(world, 60, seed=1)
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        result = retrain(session, municipality, tmp_path / "models", TODAY)
    assert not result.retrained
    assert "not enough local outcomes yet" in result.reason
    assert not (tmp_path / "models").exists()  # nothing stored


def test_a_challenger_is_compared_with_the_champion_and_gated(
    world: World, passing_artifact: Path, tmp_path: Path
) -> None:
    _history(world, 1_500, seed=2)
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        champion = register_model(session, passing_artifact)
        activate_model(session, municipality, champion, "test")
        result = retrain(
            session, municipality, tmp_path / "models", TODAY, min_households=500, min_positives=50
        )
    assert result.retrained, result.reason
    report = result.report
    # Both models measured on the same later window of local outcomes.
    assert report["champion"]["model_version"] == champion.version
    assert report["oracle_auc"] is None  # no true probabilities in live data
    assert 0.5 < report["auc"] <= 1 and 0.5 < report["champion"]["auc"] <= 1
    assert set(report["tpr_ratios"]) >= {"geslacht Man", "geslacht Vrouw"}
    assert not any("kinderen" in group for group in report["tpr_ratios"])
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        record = register_model(session, tmp_path / "models" / str(result.model_version))
        assert record.training_data == "local"
        assert record.gates_failed == result.gates_failed
        if result.gates_failed:
            with pytest.raises(ModelRefused) as refused:
                activate_model(session, municipality, record, "test")
            assert result.gates_failed[0] in str(refused.value)
        else:
            activate_model(session, municipality, record, "test")


def test_a_challenger_worse_than_the_champion_fails_its_gate() -> None:
    from scoring.evaluation import gates

    report = {
        "auc": 0.80,
        "oracle_auc": None,
        "ece": 0.01,
        "calibration_slope": 1.0,
        "precision_at_k": 0.30,
        "best_rule_precision_at_k": 0.20,
        "best_rule": "huur",
        "tpr_ratio_min": 0.9,
        "tpr_ratio_max": 1.1,
    }
    champion = {"model_version": "0.1+champ", "auc": 0.83, "precision_at_k": 0.31}
    failed = gates({**report, "champion": champion})
    assert any("below the champion's 0.8300" in f for f in failed)
    assert any("precision@k 0.3000 below the champion's 0.3100" in f for f in failed)
    assert gates({**report, "champion": {**champion, "auc": 0.801, "precision_at_k": 0.3}}) == []
    assert gates(report) == ["no oracle AUC and no champion to compare with"]
