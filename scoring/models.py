"""Typed ORM models of the scoring stage: the model registry and its activation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from signals.db import Base, utcnow
from signals.models import Municipality


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
