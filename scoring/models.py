"""Typed ORM models of the scoring stage: the model registry and its activation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from signals.db import Base, utcnow
from signals.models import BigId, Municipality


class ModelVersion(Base):
    """A trained model known to the installation: where its artifact is and how it scored."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(80), unique=True)
    artifact_path: Mapped[str] = mapped_column(Text)
    #: "synthetic" until a model is trained on local outcomes.
    training_data: Mapped[str] = mapped_column(String(16))
    #: The evaluation report (metrics only; never personal data).
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON)
    gates_failed: Mapped[list[str]] = mapped_column(JSON)
    registered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ActiveModel(Base):
    """The one model that scores a municipality's households now."""

    __tablename__ = "active_models"

    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipalities.id", ondelete="CASCADE"), primary_key=True
    )
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    activated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Who decided (a person always does: the score never activates itself).
    activated_by: Mapped[str] = mapped_column(String(254))

    municipality: Mapped[Municipality] = relationship()
    model_version: Mapped[ModelVersion] = relationship()


class HouseholdScore(Base):
    """The risk score of one household under one model version, with its reasons.

    A household is recognised by the keyed hash of its BSN, else of its address. The score
    orders outreach; it never withholds help.
    """

    __tablename__ = "household_scores"
    __table_args__ = (UniqueConstraint("municipality_id", "household_key", "model_version_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipalities.id", ondelete="CASCADE")
    )
    household_key: Mapped[str] = mapped_column(String(64))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    probability: Mapped[float]
    band: Mapped[str] = mapped_column(String(8))
    #: The top three contributions in plain Dutch.
    reasons: Mapped[list[str]] = mapped_column(JSON)
    #: The newest signal the score has seen: a newer one makes the household due again.
    last_signal_id: Mapped[int] = mapped_column(BigInteger)
    scored_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OutcomeEvent(Base):
    """Something that happened to a household that the risk model should have foreseen.

    A recorded eviction (``ontruiming``), a disconnection (``afsluiting``) or the start of an
    eviction procedure (``ontruimingsprocedure``), entered by a case result or by hand.
    A later signal with an ``ontruimingsdatum`` counts as an outcome too; it needs no row
    here. Only the keyed household hash and a date: never who it was.
    """

    __tablename__ = "outcome_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipalities.id", ondelete="CASCADE"), index=True
    )
    household_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))
    occurred_on: Mapped[dt.date]
    #: "casus" (a case result) or "beheer" (entered by an administrator).
    source: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
