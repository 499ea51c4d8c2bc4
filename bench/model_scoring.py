"""Scoring benchmark: training time on 200,000 households and scoring throughput.

Prints one JSON line per figure beside its target (issue 3's gates): training on 200,000
synthetic households under 2 minutes; scoring at least 50,000 households per second (the
probability alone, and with the three exact reasons per household).

    .venv/bin/python bench/scoring.py [--households 200000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.features import raw_matrix
from scoring.model import fit_model, reasons
from scoring.synthetic import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=200_000)
    args = parser.parse_args()
    machine = {
        "date": dt.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }

    started = time.perf_counter()
    cohort = generate(args.households, seed=2026)
    generated = time.perf_counter() - started
    X = raw_matrix(cohort)
    started = time.perf_counter()  # the gate: training on all 200,000 households
    model = fit_model(X, cohort.outcome, order=cohort.scoring_day)
    training = time.perf_counter() - started

    model.predict_proba(X[:1000])  # warm up
    started = time.perf_counter()
    model.predict_proba(X)
    scoring = time.perf_counter() - started
    sample = X[:20_000]
    started = time.perf_counter()
    model.predict_proba(sample)
    reasons(model, sample)
    with_reasons = time.perf_counter() - started

    rows = [
        {
            "figure": "generate_cohort_s",
            "households": args.households,
            "value": round(generated, 2),
        },
        {
            "figure": "train_s",
            "households_train": len(X),
            "value": round(training, 2),
            "target": "< 120 s on 200,000 households",
            "met": training < 120,
        },
        {
            "figure": "score_households_per_s",
            "value": round(len(X) / scoring),
            "target": ">= 50,000",
            "met": len(X) / scoring >= 50_000,
        },
        {
            "figure": "score_with_reasons_households_per_s",
            "value": round(len(sample) / with_reasons),
            "target": ">= 50,000",
            "met": len(sample) / with_reasons >= 50_000,
        },
    ]
    for row in rows:
        print(json.dumps({"bench": "scoring", "scenario": "scoring", **row,
                          "baseline": None,  # no baseline: an absolute target
                          "machine": machine}))  # fmt: skip


if __name__ == "__main__":
    main()
