"""Local outcomes: labels from the live data, and retraining champion versus challenger.

**Snapshots.** A household is scored in every month in which it gets a signal. For the live
training set, every calendar month ``m`` is a snapshot: each household with a signal in
``m`` gets one row, its raw aggregates as they were at the end of ``m`` (signals of months
``m-11 .. m`` only, exactly as the scoring job sees them).

**Labels.** A snapshot is positive when, within ``horizon_days`` (365) after its day, the
household gets a *later* signal with an ``ontruimingsdatum`` (an eviction date announced),
or an :class:`~scoring.models.OutcomeEvent` is recorded (eviction, disconnection or an
eviction procedure, from a case result or entered by hand). Only snapshots whose horizon
has fully passed are labelled, so a recent month never counts as "nothing happened".

**Retraining.** With enough labelled snapshots (households and positives), the challenger is
trained on the earlier months and both it and the active model (the champion) are scored on
the last ``test_months`` months. The challenger's report carries the champion's figures; the
release gates then demand calibration, the rule baseline, the subgroup true-positive-rate
ratios (age band and gender; children are not known in live data) and no loss against the
champion. The challenger is stored and registered, never activated by itself: a person
activates it with ``vroegsignaal model activate``, which applies the gates again.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from scoring.aggregates import RAW_COLUMNS, SIGNAL_DTYPE, aggregate
from scoring.artifacts import load, save
from scoring.evaluation import evaluate_model, gates, time_split
from scoring.features import raw_matrix
from scoring.model import fit_model
from scoring.models import OutcomeEvent
from scoring.service import active_model, register_model
from scoring.stored import day_number, load_signals, month_number
from scoring.synthetic import Cohort
from signals.models import Municipality

HORIZON_DAYS = 365
MIN_HOUSEHOLDS = 2_000
MIN_POSITIVES = 100


def _month_end(month: int) -> dt.date:
    year, index = divmod(month, 12)
    return dt.date(year, index + 1, calendar.monthrange(year, index + 1)[1])


def live_cohort(
    session: Session,
    municipality_id: int,
    today: dt.date,
    horizon_days: int = HORIZON_DAYS,
) -> Cohort:
    """The labelled monthly snapshots of a municipality's households (see the module)."""
    stored = load_signals(session, municipality_id, until=today)
    index = {key: i for i, key in enumerate(stored.keys)}
    # Outcome days per household: later eviction-date signals and recorded outcomes.
    s = stored.signals
    event_h = [s["household"][s["eviction_day"] >= 0].astype(np.int64)]
    event_d = [s["signal_day"][s["eviction_day"] >= 0].astype(np.int64)]
    recorded = session.execute(
        select(OutcomeEvent.household_key, OutcomeEvent.occurred_on).where(
            OutcomeEvent.municipality_id == municipality_id
        )
    ).all()
    known = [(index[k], day_number(d)) for k, d in recorded if k in index]
    if known:
        event_h.append(np.array([h for h, _ in known], dtype=np.int64))
        event_d.append(np.array([d for _, d in known], dtype=np.int64))
    span = 1 << 20  # more days than the origin will ever be apart from a signal
    events = np.sort(np.concatenate(event_h) * span + np.concatenate(event_d))

    parts: list[tuple[np.ndarray, ...]] = []
    last_month = month_number(today - dt.timedelta(days=horizon_days)) - 1
    first_month = int(stored.month.min()) if len(s) else last_month + 1  # none: no snapshot
    for month in range(first_month, last_month + 1):
        end = _month_end(month)
        if (today - end).days < horizon_days:
            break
        households = np.unique(s["household"][stored.month == month])
        if not len(households):
            continue
        window = (
            (stored.month <= month)
            & (stored.month >= month - 11)
            & np.isin(s["household"], households)
        )
        signals = stored.as_of(month, window)
        renumber = np.full(len(stored.keys), -1, dtype=np.int64)
        renumber[households] = np.arange(len(households))
        signals["household"] = renumber[signals["household"]]
        day = day_number(end)
        raw = aggregate(signals, np.full(len(households), day))
        lo = households.astype(np.int64) * span + day  # events after the snapshot day ...
        hi = lo + horizon_days  # ... up to the horizon
        label = np.searchsorted(events, hi, side="right") > np.searchsorted(
            events, lo, side="right"
        )
        parts.append((households, np.full(len(households), day), raw, label))
    if not parts:  # nothing labelled yet: an empty cohort with the right shapes
        parts.append(
            (
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros((0, len(RAW_COLUMNS))),
                np.zeros(0, bool),
            )
        )
    households = np.concatenate([p[0] for p in parts])
    return Cohort(
        seed=0,
        scoring_day=np.concatenate([p[1] for p in parts]),
        raw=np.concatenate([p[2] for p in parts]),
        age_band=stored.age_band[households],
        gender=stored.gender[households],
        children=None,
        true_p=np.full(len(households), np.nan),
        outcome=np.concatenate([p[3] for p in parts]),
        signals=np.zeros(0, SIGNAL_DTYPE),
    )


@dataclass
class Retraining:
    """What a retraining run did: trained or not, and why."""

    retrained: bool
    reason: str
    snapshots: int
    positives: int
    model_version: str | None = None
    gates_failed: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "retrained": self.retrained,
            "reason": self.reason,
            "snapshots": self.snapshots,
            "positives": self.positives,
            "model_version": self.model_version,
            "gates_failed": self.gates_failed,
            "champion": self.report.get("champion"),
        }


def retrain(
    session: Session,
    municipality: Municipality,
    models_dir: Path,
    today: dt.date,
    min_households: int = MIN_HOUSEHOLDS,
    min_positives: int = MIN_POSITIVES,
    test_months: int = 6,
    gap_days: int = 0,
) -> Retraining:
    """Train a challenger on local outcomes and compare it with the champion (see module)."""
    cohort = live_cohort(session, municipality.id, today)
    n, positives = len(cohort), int(cohort.outcome.sum())
    if n < min_households or positives < min_positives:
        return Retraining(
            False,
            f"not enough local outcomes yet: {n} labelled snapshots with {positives} "
            f"outcomes (needs {min_households} and {min_positives}); the active model stays",
            n,
            positives,
        )
    train_mask, test_mask = time_split(cohort, test_months=test_months, gap_days=gap_days)
    train, test = cohort.subset(train_mask), cohort.subset(test_mask)
    if not train.outcome.any() or not test.outcome.any() or test.outcome.all():
        return Retraining(
            False,
            "the earlier and the later window each need households with and without an outcome",
            n,
            positives,
        )
    challenger = fit_model(raw_matrix(train), train.outcome, order=train.scoring_day)
    report = evaluate_model(challenger, test)
    champion_record = active_model(session, municipality)
    if champion_record is not None:
        champion, _ = load(Path(champion_record.artifact_path))
        theirs = evaluate_model(champion, test)
        report["champion"] = {
            key: theirs[key] for key in ("model_version", "auc", "precision_at_k", "ece", "brier")
        }
    failed = gates(report)
    challenger.metadata_["training_data"] = {  # type: ignore[attr-defined]
        "kind": "local",
        "gemeente": municipality.code,
        "snapshots": n,
        "positives": positives,
        "horizon_days": HORIZON_DAYS,
        "test_months": test_months,
        "until": today.isoformat(),
    }
    folder = save(challenger, models_dir, {"evaluation": report, "gates_failed": failed})
    record = register_model(session, folder)
    return Retraining(True, "challenger trained", n, positives, record.version, failed, report)
