"""The risk model: an additive boosted model (a GAM), calibrated, with exact reasons.

``Pipeline([("features", HouseholdFeatures()), ("classifier", CalibratedClassifierCV(HGB))])``

* The gradient-boosted trees may not combine features (``interaction_cst=
  "no_interactions"``): every tree looks at one feature, so the raw score is
  ``intercept + sum_j f_j(x_j)``. Interactions the domain needs are explicit features.
* Monotone constraints (:data:`scoring.features.MONOTONE`) make "a higher or older arrear
  never lowers the risk" true by construction.
* Calibration is fitted on a *later* slice of the training period (:class:`LaterSlice`),
  never on a random fold: rows must be in time order when fitting (:func:`fit_model`
  sorts them). The calibrator is monotone, so the order of households by probability is
  the order by raw score.
* Reasons are exact: the contribution of feature ``j`` is ``f(x) - f(x with x_j set to its
  reference)`` on the raw score; for an additive model the contributions add up to
  ``f(x) - f(reference)``. Related features are reported together (their contributions
  summed, which is exact as well).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Iterator

import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from scoring import reasons as r
from scoring.features import FEATURE_NAMES, MONOTONE, HouseholdFeatures
from scoring.metrics import expected_calibration_error

MODEL_NAME = "vroegsignaal-gam"
MODEL_SCHEMA = "0.1"
CALIBRATION_METHODS = ("sigmoid", "isotonic")


class LaterSlice:
    """One split of time-ordered rows: fit on the earlier part, calibrate on the last part.

    Parameters
    ----------
    validation_fraction : float, default=0.25
        Share of the (time-ordered) rows kept for the calibrator.
    """

    def __init__(self, validation_fraction: float = 0.25) -> None:
        self.validation_fraction = validation_fraction

    def __repr__(self) -> str:  # part of the model's version hash: no memory address
        return f"LaterSlice(validation_fraction={self.validation_fraction})"

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:
        return 1

    def split(
        self, X: np.ndarray, y: object = None, groups: object = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(X)
        cut = round(n * (1 - self.validation_fraction))
        yield np.arange(cut), np.arange(cut, n)


def _boosting_estimator(random_state: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=600,
        max_leaf_nodes=8,
        min_samples_leaf=40,
        l2_regularization=1.0,
        interaction_cst="no_interactions",
        monotonic_cst=[MONOTONE[name] for name in FEATURE_NAMES],
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=30,
        random_state=random_state,
    )


def build_model(
    method: str = "sigmoid", validation_fraction: float = 0.25, random_state: int = 0
) -> Pipeline:
    """An unfitted risk model; fit it on rows in time order (or use :func:`fit_model`)."""
    calibrated = CalibratedClassifierCV(
        _boosting_estimator(random_state),
        method=method,
        cv=LaterSlice(validation_fraction),
        ensemble=True,
    )
    return Pipeline([("features", HouseholdFeatures()), ("classifier", calibrated)])


def choose_calibration(
    X: np.ndarray, y: np.ndarray, random_state: int = 0
) -> tuple[str, dict[str, float]]:
    """Pick sigmoid or isotonic calibration on time-ordered training rows, never the test set.

    Boosting on the first 60%, each calibrator on the next 20%, ECE compared on the last 20%.
    """
    n = len(y)
    a, b = int(n * 0.6), int(n * 0.8)
    base = Pipeline(
        [("features", HouseholdFeatures()), ("boosting", _boosting_estimator(random_state))]
    )
    base.fit(X[:a], y[:a])
    scores = {}
    for method in CALIBRATION_METHODS:
        calibrator = CalibratedClassifierCV(FrozenEstimator(base), method=method)
        calibrator.fit(X[a:b], y[a:b])
        scores[method] = expected_calibration_error(y[b:], calibrator.predict_proba(X[b:])[:, 1])
    return min(scores, key=scores.__getitem__), scores


def fit_model(
    X: np.ndarray,
    y: np.ndarray,
    order: np.ndarray | None = None,
    method: str = "auto",
    random_state: int = 0,
) -> Pipeline:
    """Fit the risk model on raw rows ``X``; ``order`` (e.g. scoring days) sets time order.

    ``method="auto"`` chooses the calibration with :func:`choose_calibration`. The fitted
    pipeline carries ``metadata_``: name, version, sklearn version, features, calibration,
    training size and a hash of the training data.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    if order is not None:
        idx = np.argsort(order, kind="stable")
        X, y = X[idx], y[idx]
    calibration_ece: dict[str, float] = {}
    if method == "auto":
        method, calibration_ece = choose_calibration(X, y, random_state)
    model = build_model(method=method, random_state=random_state)
    model.fit(X, y)
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(X).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    digest.update(repr(sorted(model.get_params(deep=False).items())).encode())
    data_hash = digest.hexdigest()
    model.metadata_ = {  # type: ignore[attr-defined]
        "model_name": MODEL_NAME,
        "model_version": f"{MODEL_SCHEMA}+{method}.{data_hash[:12]}",
        "sklearn_version": sklearn.__version__,
        "features": list(FEATURE_NAMES),
        "calibration": method,
        "calibration_ece_selection": calibration_ece,
        "n_train": len(y),
        "positives_train": int(y.sum()),
        "data_sha256": data_hash,
    }
    return model


def model_version(model: Pipeline) -> str:
    """The version recorded with every score of this model."""
    return str(getattr(model, "metadata_", {}).get("model_version", f"{MODEL_SCHEMA}+unversioned"))


def _boosting(model: Pipeline) -> HistGradientBoostingClassifier:
    calibrated = model["classifier"].calibrated_classifiers_
    if len(calibrated) != 1:
        raise ValueError("reasons need exactly one additive model (one calibration split)")
    return calibrated[0].estimator


def additive_score(model: Pipeline, X: np.ndarray) -> np.ndarray:
    """The raw (uncalibrated) additive log-odds score of raw rows ``X``."""
    return _boosting(model).decision_function(model["features"].transform(X))


def contributions_direct(model: Pipeline, X: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact per-feature contributions by re-scoring: the definition, slow but plain.

    ``C[i, j] = f(z_i) - f(z_i with z_ij := reference_j)`` in feature space ``z``. For the
    additive model, ``C[i].sum() == f(z_i) - f(reference)`` (up to float rounding). One
    extra scoring pass per feature; :func:`contributions` gives the same numbers from
    per-feature tables and is what the scoring job uses.
    """
    features = model["features"]
    boosting = _boosting(model)
    Z = features.transform(X)
    full = boosting.decision_function(Z)
    out = np.empty_like(Z)
    for j in range(Z.shape[1]):
        Zj = Z.copy()
        Zj[:, j] = features.reference_[j]
        out[:, j] = full - boosting.decision_function(Zj)
    reference = float(boosting.decision_function(features.reference_[None, :])[0])
    return out, reference


class ShapeTables:
    """The additive model written out as one step function per feature.

    With ``interaction_cst="no_interactions"`` every tree splits on one feature only, so
    ``f_j`` changes value only at the split thresholds of the trees on feature ``j``. A
    tree sends ``x`` left when ``x <= threshold``, so every ``x`` in ``(t_{i-1}, t_i]``
    scores as ``t_i`` does: one scoring pass over those points (on the reference row)
    gives ``f_j(v) - f_j(reference_j)`` for every ``v``, exactly. Reading the thresholds
    uses the fitted trees' node arrays (``_predictors``, not public API); the tests check
    the tables against :func:`contributions_direct`.
    """

    def __init__(self, model: Pipeline) -> None:
        features = model["features"]
        boosting = _boosting(model)
        reference = features.reference_
        n_features = len(reference)
        thresholds: list[set[float]] = [set() for _ in range(n_features)]
        for trees in boosting._predictors:
            for tree in trees:
                nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
                for j, t in zip(nodes["feature_idx"], nodes["num_threshold"], strict=True):
                    thresholds[int(j)].add(float(t))
        self.thresholds = [np.array(sorted(t)) for t in thresholds]
        grid = [
            np.r_[t, np.nextafter(t[-1], np.inf)] if len(t) else np.zeros(1)
            for t in self.thresholds
        ]
        rows = np.repeat(reference[None, :], sum(len(g) for g in grid), axis=0)
        at = 0
        for j, g in enumerate(grid):
            rows[at : at + len(g), j] = g
            at += len(g)
        self.reference_score = float(boosting.decision_function(reference[None, :])[0])
        scores = boosting.decision_function(rows) - self.reference_score
        self.values, at = [], 0
        for g in grid:
            self.values.append(scores[at : at + len(g)])
            at += len(g)

    def contributions(self, Z: np.ndarray) -> np.ndarray:
        """Contributions of feature rows ``Z`` (after ``HouseholdFeatures``)."""
        out = np.empty_like(Z)
        for j, (t, v) in enumerate(zip(self.thresholds, self.values, strict=True)):
            out[:, j] = v[np.searchsorted(t, Z[:, j], side="left")] if len(t) else 0.0
        return out


_TABLES: weakref.WeakKeyDictionary[Pipeline, ShapeTables] = weakref.WeakKeyDictionary()


def shape_tables(model: Pipeline) -> ShapeTables:
    """The model's :class:`ShapeTables`, built once per fitted model (kept beside it)."""
    tables = _TABLES.get(model)
    if tables is None:
        tables = _TABLES[model] = ShapeTables(model)
    return tables


def contributions(model: Pipeline, X: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact per-feature contributions to the raw score, and the reference row's score.

    The same numbers as :func:`contributions_direct`, read from :class:`ShapeTables`.
    """
    tables = shape_tables(model)
    return tables.contributions(model["features"].transform(X)), tables.reference_score


def _months(value: float) -> int:
    return max(round(value), 1)


def _eviction(z: dict[str, float]) -> str:
    days = z["days_until_eviction"]
    for limit in (14, 30, 60, 90):
        if days <= limit:
            return r.text(r.EVICTION_WITHIN, days=limit)
    return r.text(r.EVICTION_KNOWN)


def _arrears(z: dict[str, float]) -> str:
    total = z["total_amount"]
    if z["has_huur"] and z["huur_months"] >= 0.75:
        return r.plural(r.RENT_MONTHS, _months(z["huur_months"]), amount=total)
    if z["has_huur"]:
        return r.text(r.RENT, amount=total)
    return r.text(r.TOTAL, amount=total)


def _growth(z: dict[str, float]) -> str:
    template = r.RENT_GREW if z["huur_growth_months"] > 0 else r.ARREARS_GREW
    return r.text(template, amount=z["max_growth_amount"])


def _also(also: str, alone: str) -> Callable[[dict[str, float]], str]:
    return lambda z: r.text(also if z["n_partners_12m"] > 1 else alone)


def _fixed(template: str) -> Callable[[dict[str, float]], str]:
    return lambda z: r.text(template)


#: Reason groups: the features reported together and their Dutch text (a template of
#: :mod:`scoring.reasons`, so that a page can show it in its own language).
REASONS: tuple[tuple[str, tuple[str, ...], Callable[[dict[str, float]], str]], ...] = (
    ("achterstand", ("has_huur", "huur_months", "total_amount", "max_amount"), _arrears),
    ("ontruiming", ("eviction_date", "days_until_eviction"), _eviction),
    ("energie", ("has_energie",), _also(r.ALSO_ENERGY, r.ENERGY)),
    ("water", ("has_water",), _also(r.ALSO_WATER, r.WATER)),
    ("zorg", ("has_zorg",), _also(r.ALSO_HEALTH, r.HEALTH)),
    (
        "partners",
        ("n_partners_current", "n_partners_12m"),
        lambda z: r.plural(r.PARTNERS, max(z["n_partners_12m"], z["n_partners_current"])),
    ),
    (
        "herhaling",
        ("n_signals_6m", "n_signals_12m"),
        lambda z: r.plural(r.SIGNALS_12M, z["n_signals_12m"]),
    ),
    (
        "andere_achterstand",
        ("max_other_months",),
        lambda z: r.plural(r.OTHER_MONTHS, _months(z["max_other_months"])),
    ),
    (
        "duur",
        ("max_days_in_arrears",),
        lambda z: r.plural(r.DAYS_IN_ARREARS, z["max_days_in_arrears"]),
    ),
    ("groei", ("huur_growth_months", "max_growth_amount"), _growth),
    (
        "groei_huur_energie",
        ("huur_growth_x_energie_current",),
        _fixed(r.RENT_GROWS_WITH_ENERGY),
    ),
    ("eindelevering", ("end_of_supply",), _fixed(r.END_OF_SUPPLY)),
    (
        "eindelevering_huur",
        ("end_of_supply_x_huur", "end_of_supply_x_huur_months"),
        _fixed(r.END_OF_SUPPLY_RENT),
    ),
    ("crisis", ("crisis",), _fixed(r.CRISIS)),
    ("warm", ("warm_handover",), _fixed(r.WARM)),
    ("venster", ("outside_window_share",), _fixed(r.WINDOW)),
    (
        "looptijd",
        ("months_since_first_signal",),
        lambda z: r.plural(r.FIRST_SIGNAL, _months(z["months_since_first_signal"])),
    ),
)


def group_contributions(model: Pipeline, X: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Exact contributions per reason group (sums of its features' contributions)."""
    C, _ = contributions(model, X)
    index = {name: j for j, name in enumerate(FEATURE_NAMES)}
    G = np.column_stack([C[:, [index[f] for f in feats]].sum(axis=1) for _, feats, _ in REASONS])
    return G, [key for key, _, _ in REASONS]


def reasons(model: Pipeline, X: np.ndarray, top: int = 3) -> list[list[str]]:
    """Per household, the (at most) ``top`` largest positive contributions as Dutch text
    (each a :class:`~signals.texts.Text` of a :mod:`scoring.reasons` template)."""
    G, _ = group_contributions(model, X)
    Z = model["features"].transform(X)
    out = []
    for i in range(len(G)):
        z = dict(zip(FEATURE_NAMES, Z[i].tolist(), strict=True))
        order = np.argsort(-G[i], kind="stable")[:top]
        out.append([REASONS[g][2](z) for g in order if G[i, g] > 1e-9])
    return out
