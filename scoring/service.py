"""Actions on the model registry. Take a Session first; add and flush, never commit."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from scoring.evaluation import gates
from scoring.models import ActiveModel, ModelVersion, OutcomeEvent
from signals.db import utcnow
from signals.models import Municipality


class ModelRefused(Exception):
    """A model may not be activated; the message names every gate it fails."""


def register_model(session: Session, folder: Path) -> ModelVersion:
    """Record an artifact folder (``model.json`` beside ``model.skops``); idempotent."""
    metadata = json.loads((folder / "model.json").read_text())
    version = str(metadata["model_version"])
    existing = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if existing is not None:
        return existing
    report = metadata.get("evaluation") or {}
    record = ModelVersion(
        version=version,
        artifact_path=str(folder),
        training_data=str(metadata.get("training_data", {}).get("kind", "unknown")),
        evaluation=report,
        gates_failed=gates(report) if report else ["no evaluation report"],
    )
    session.add(record)
    session.flush()
    return record


def activate_model(
    session: Session, municipality: Municipality, record: ModelVersion, by: str
) -> ActiveModel:
    """Make ``record`` the municipality's model, only if it passes every release gate."""
    failed = gates(record.evaluation) if record.evaluation else ["no evaluation report"]
    if failed:
        raise ModelRefused("the model fails its gates: " + "; ".join(failed))
    active = session.get(ActiveModel, municipality.id)
    if active is None:
        active = ActiveModel(
            municipality_id=municipality.id, model_version_id=record.id, activated_by=by
        )
        session.add(active)
    else:
        active.model_version_id = record.id
        active.activated_at = utcnow()
        active.activated_by = by
    session.flush()
    return active


def active_model(session: Session, municipality: Municipality) -> ModelVersion | None:
    active = session.get(ActiveModel, municipality.id)
    return active.model_version if active is not None else None


OUTCOME_KINDS = ("ontruiming", "ontruimingsprocedure", "afsluiting")


def record_outcome(
    session: Session,
    municipality_id: int,
    household_key: str,
    kind: str,
    occurred_on: dt.date,
    source: str,
) -> OutcomeEvent:
    """Record an outcome the model should have foreseen (a live label for retraining)."""
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"unknown outcome {kind!r}; one of {', '.join(OUTCOME_KINDS)}")
    event = OutcomeEvent(
        municipality_id=municipality_id,
        household_key=household_key,
        kind=kind,
        occurred_on=occurred_on,
        source=source,
    )
    session.add(event)
    session.flush()
    return event
