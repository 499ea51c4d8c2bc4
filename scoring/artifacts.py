"""Model artifacts: a skops file (no pickle) beside a JSON file of metadata and metrics.

``instance/models/<version>/model.skops`` and ``model.json``. Loading refuses any type that
is not on the explicit allowlist below, so an artifact from an unknown place cannot run code.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import sklearn
import skops
import skops.io as sio
from sklearn.pipeline import Pipeline

from scoring.evaluation import evaluate_model, time_split
from scoring.features import raw_matrix
from scoring.model import fit_model, model_version
from scoring.synthetic import generate

#: Types skops does not trust by default that a Vroegsignaal model legitimately contains.
TRUSTED_TYPES = frozenset(
    {
        "scoring.features.HouseholdFeatures",
        "scoring.model.LaterSlice",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


class ArtifactError(Exception):
    """The artifact is missing, damaged or contains types that are not allowed."""


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "skops": skops.__version__,
    }


def save(model: Pipeline, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.skops`` and ``model.json`` into ``folder``/<version>; return that folder."""
    target = folder / model_version(model)
    target.mkdir(parents=True, exist_ok=True)
    sio.dump(model, target / "model.skops")
    metadata = {
        **getattr(model, "metadata_", {}),
        "libraries": library_versions(),
        **(extra or {}),
    }
    (target / "model.json").write_text(json.dumps(metadata, indent=2, default=float) + "\n")
    return target


def load(folder: Path) -> tuple[Pipeline, dict[str, Any]]:
    """Load an artifact folder; refuse unknown types instead of trusting them."""
    path = folder / "model.skops"
    if not path.is_file():
        raise ArtifactError(f"no model.skops in {folder}")
    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # a damaged zip or schema
        raise ArtifactError(f"{path.name} cannot be read ({type(exc).__name__})") from None
    refused = sorted(untrusted - TRUSTED_TYPES)
    if refused:
        raise ArtifactError(
            "the artifact contains types that are not allowed: " + ", ".join(refused)
        )
    model = sio.load(path, trusted=sorted(untrusted))
    if not isinstance(model, Pipeline):
        raise ArtifactError("the artifact is not a scikit-learn Pipeline")
    metadata = json.loads((folder / "model.json").read_text())
    return model, metadata


def train_synthetic(
    households: int = 200_000, seed: int = 2026, test_months: int = 6
) -> tuple[Pipeline, dict[str, Any]]:
    """Train on the synthetic cohort's earlier window and evaluate on its later window.

    Until enough local outcomes exist this is the model that ships, clearly marked as
    trained on synthetic data.
    """
    cohort = generate(households, seed=seed)
    train_mask, test_mask = time_split(cohort, test_months=test_months)
    train, test = cohort.subset(train_mask), cohort.subset(test_mask)
    model = fit_model(raw_matrix(train), train.outcome, order=train.scoring_day)
    report = evaluate_model(model, test)
    model.metadata_["training_data"] = {  # type: ignore[attr-defined]
        "kind": "synthetic",
        "generator": "scoring.synthetic.generate",
        "households": households,
        "seed": seed,
        "test_months": test_months,
    }
    return model, report


def evaluate_artifact(model: Pipeline, metadata: dict[str, Any]) -> dict[str, Any]:
    """Evaluate a stored model again on the later window of the data it was trained for."""
    data = metadata.get("training_data", {})
    if data.get("kind") == "local" and metadata.get("evaluation"):
        # Local outcomes stay in the database: the report measured at training time stands.
        return dict(metadata["evaluation"])
    if data.get("kind") != "synthetic":
        raise ArtifactError("the artifact says nothing about the data it was trained on")
    cohort = generate(int(data["households"]), seed=int(data["seed"]))
    _, test_mask = time_split(cohort, test_months=int(data["test_months"]))
    return evaluate_model(model, cohort.subset(test_mask))
