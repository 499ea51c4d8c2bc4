"""Artifacts: skops round trip, refusal of foreign types, and the `model` commands."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from scoring.artifacts import ArtifactError, load, save
from scoring.features import raw_matrix
from scoring.synthetic import Cohort

VS = str(Path(sys.executable).with_name("vroegsignaal"))


class Foreign(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A type no Vroegsignaal model contains: loading must refuse it."""

    def fit(self, X: object, y: object = None) -> Foreign:
        return self

    def transform(self, X: object) -> object:
        return X


def test_round_trip_gives_the_same_scores(
    model: Pipeline, split: tuple[Cohort, Cohort], tmp_path: Path
) -> None:
    folder = save(model, tmp_path, {"note": "test"})
    loaded, metadata = load(folder)
    X = raw_matrix(split[1])
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert metadata["model_version"] == folder.name
    assert {"scikit-learn", "numpy", "skops"} <= set(metadata["libraries"])
    assert metadata["features"] and metadata["data_sha256"]


def test_foreign_types_are_refused(model: Pipeline, tmp_path: Path) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    sio.dump(Pipeline([("x", Foreign()), ("model", model)]), folder / "model.skops")
    (folder / "model.json").write_text("{}")
    with pytest.raises(ArtifactError, match="Foreign"):
        load(folder)
    (folder / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="cannot be read"):
        load(folder)


def test_model_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VROEGSIGNAAL_")}
    env.update(
        {
            "VROEGSIGNAAL_SECRET_KEY": "test-secret-key-0123456789",
            "VROEGSIGNAAL_DATA_KEY": base64.b64encode(b"k" * 32).decode(),
            "VROEGSIGNAAL_MODELS_DIR": str(tmp_path / "models"),
        }
    )

    def vs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [VS, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    missing = vs("model", "evaluate", "--json")
    assert missing.returncode != 0 and "model train" in missing.stderr
    trained = json.loads(vs("model", "train", "--households", "30000", "--json").stdout)
    report = json.loads(vs("model", "evaluate", "--json").stdout)
    assert report["model_version"] == trained["model_version"]
    for key in (
        "auc",
        "oracle_auc",
        "ece",
        "brier",
        "calibration_slope",
        "precision_at_k",
        "best_rule_precision_at_k",
        "k",
        "tpr_ratio_min",
        "tpr_ratio_max",
        "base_rate",
        "n_test",
    ):
        assert isinstance(report[key], int | float), key
    assert 0.5 < report["auc"] <= 1 and report["n_test"] > 1000
    listed = json.loads(vs("model", "list", "--json").stdout)["models"]
    assert [m["model_version"] for m in listed] == [trained["model_version"]]
