"""The scoring job: score new and changed households with each municipality's active model.

Selects its work by state (a household whose newest signal is newer than its score under the
active model) and writes one transaction per municipality, so re-running after a crash is
safe. Lower layers never call upward: outreach picks up the scores later.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import cache
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from scoring.aggregates import aggregate
from scoring.artifacts import load
from scoring.model import reasons
from scoring.models import ActiveModel, HouseholdScore, ModelVersion
from scoring.stored import day_number, load_signals, month_number
from signals.db import unit_of_work, utcnow
from signals.rules import today_nl
from signals.runtime import Runtime

log = logging.getLogger(__name__)

#: Probability bands the counsellor sees (never the number as a verdict).
BANDS = ((0.15, "hoog"), (0.05, "midden"), (0.0, "laag"))

#: Scores written per statement.
WRITE_CHUNK = 5_000


def band(probability: float) -> str:
    return next(name for threshold, name in BANDS if probability >= threshold)


@cache
def _model(path: str) -> Pipeline:
    model, _ = load(Path(path))
    return model


def score_municipality(session: Session, active: ActiveModel, today: dt.date | None = None) -> int:
    """Score the households of one municipality whose signals changed; returns how many."""
    today = today or today_nl()
    version: ModelVersion = active.model_version
    stored = load_signals(
        session, active.municipality_id, since=today - dt.timedelta(days=366), until=today
    )
    if not stored.keys:
        return 0
    keys = stored.keys
    newest = stored.newest_id()
    seen = {
        key: (score_id, last)
        for score_id, key, last in session.execute(
            select(
                HouseholdScore.id, HouseholdScore.household_key, HouseholdScore.last_signal_id
            ).where(
                HouseholdScore.municipality_id == active.municipality_id,
                HouseholdScore.model_version_id == version.id,
            )
        )
    }
    due = np.array([seen.get(key, (0, 0))[1] < newest[i] for i, key in enumerate(keys)])
    if not due.any():
        return 0
    signals = stored.as_of(month_number(today))
    raw = aggregate(signals, np.full(len(keys), day_number(today)))[due]
    model = _model(version.artifact_path)
    probability = model.predict_proba(raw)[:, 1]
    texts = reasons(model, raw)
    now = utcnow()
    # Written in bulk, by primary key for the scores that exist: one statement per chunk,
    # never an IN list of every household (PostgreSQL takes at most 65,535 parameters).
    updates: list[dict[str, object]] = []
    inserts: list[dict[str, object]] = []
    for n, i in enumerate(np.flatnonzero(due)):
        key, p = keys[i], float(probability[n])
        values: dict[str, object] = {
            "probability": p,
            "band": band(p),
            "reasons": texts[n],
            "last_signal_id": int(newest[i]),
            "scored_at": now,
        }
        if key in seen:
            updates.append({"id": seen[key][0], **values})
        else:
            inserts.append(
                {
                    "municipality_id": active.municipality_id,
                    "household_key": key,
                    "model_version_id": version.id,
                    **values,
                }
            )
    for start in range(0, len(updates), WRITE_CHUNK):
        session.execute(update(HouseholdScore), updates[start : start + WRITE_CHUNK])
    for start in range(0, len(inserts), WRITE_CHUNK):
        session.execute(insert(HouseholdScore), inserts[start : start + WRITE_CHUNK])
    session.flush()
    return int(due.sum())


def score_households(runtime: Runtime) -> int:
    """Job ``score_households``: every municipality with an active model, one unit each."""
    with unit_of_work(runtime.readers) as session:
        municipalities = list(session.scalars(select(ActiveModel.municipality_id)))
    total = 0
    for municipality_id in municipalities:
        with unit_of_work(runtime.sessions) as session:
            active = session.get(ActiveModel, municipality_id)
            if active is not None:
                count = score_municipality(session, active)
                log.info("municipality %s: %d households scored", municipality_id, count)
                total += count
    return total
