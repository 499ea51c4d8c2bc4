"""The scoring job over stored signals: every household scored once, again when it changes."""

from __future__ import annotations

from pathlib import Path

from sklearn.pipeline import Pipeline
from sqlalchemy import func, select

from scoring.artifacts import save
from scoring.evaluation import evaluate_model
from scoring.jobs import score_households
from scoring.models import HouseholdScore
from scoring.service import activate_model, register_model
from scoring.synthetic import Cohort
from signals.db import unit_of_work
from signals.models import Municipality, Signal
from tests.factories import World, csv_bytes, row, synthetic_csv


def _activate(world: World, model: Pipeline, test: Cohort, tmp_path: Path) -> None:
    folder = save(
        model, tmp_path / "models", {"evaluation": evaluate_model(model, test, k_fraction=0.10)}
    )
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        activate_model(session, municipality, register_model(session, folder), "test")


def test_households_are_scored_once_and_again_when_they_change(
    world: World, model: Pipeline, split: tuple[Cohort, Cohort], tmp_path: Path
) -> None:
    world.ingest(synthetic_csv(400, prefix="A"), "a.p7m")
    runtime = world.runtime
    assert score_households(runtime) == 0  # no active model: nothing is scored
    _activate(world, model, split[1], tmp_path)
    with unit_of_work(runtime.readers) as session:
        households = session.scalar(
            select(func.count(func.distinct(func.coalesce(Signal.bsn_hash, Signal.address_hash))))
        )
    scored = score_households(runtime)
    assert scored == households > 100
    assert score_households(runtime) == 0  # nothing new: nothing to do
    with unit_of_work(runtime.readers) as session:
        scores = session.scalars(select(HouseholdScore)).all()
    assert len(scores) == households
    assert {s.band for s in scores} <= {"hoog", "midden", "laag"}
    assert all(0 <= s.probability <= 1 for s in scores)
    assert any(s.reasons for s in scores)
    assert all(isinstance(text, str) and text for s in scores for text in s.reasons)
    # A new signal for one household: only that one is scored again, and its risk is no
    # lower for a second, larger arrear.
    world.ingest(csv_bytes([row(signaal_id="N-1", bsn="111222333", bedrag="900")]), "b.p7m")
    score_households(runtime)
    world.ingest(
        csv_bytes(
            [
                row(
                    signaal_id="N-2",
                    bsn="111222333",
                    bedrag="2900",
                    ontstaansdatum=row()["ontstaansdatum"],
                )
            ]
        ),
        "c.p7m",
    )
    with unit_of_work(runtime.readers) as session:
        before = session.scalars(select(HouseholdScore).order_by(HouseholdScore.id.desc())).first()
        assert before is not None
        first_probability, before_scored = before.probability, before.scored_at
        count = session.scalar(select(func.count()).select_from(HouseholdScore))
    assert score_households(runtime) == 1
    with unit_of_work(runtime.readers) as session:
        after = session.get(HouseholdScore, before.id)
        assert after is not None and after.probability >= first_probability
        # The score was updated in place, up to the newest signal, not added a second time.
        assert session.scalar(select(func.count()).select_from(HouseholdScore)) == count
        newest = session.scalar(select(func.max(Signal.id)))
        assert after.last_signal_id == newest and after.scored_at > before_scored


def test_a_newly_activated_model_scores_every_household_afresh(
    world: World, model: Pipeline, split: tuple[Cohort, Cohort], tmp_path: Path
) -> None:
    import copy

    world.ingest(synthetic_csv(120, prefix="B"), "a.p7m")
    _activate(world, model, split[1], tmp_path)
    first = score_households(world.runtime)
    challenger = copy.deepcopy(model)
    challenger.metadata_ = {**model.metadata_, "model_version": "0.1+challenger"}
    folder = save(
        challenger,
        tmp_path / "models",
        {
            "evaluation": {
                **evaluate_model(model, split[1], k_fraction=0.10),
                "model_version": "0.1+challenger",
            }
        },
    )
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        activate_model(session, municipality, register_model(session, folder), "test")
    assert score_households(world.runtime) == first
