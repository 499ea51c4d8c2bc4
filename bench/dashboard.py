"""Dashboard benchmark: a year of statistics for one large and for ten municipalities.

    .venv/bin/python bench/dashboard.py [--signals 1000000] [--municipalities 10]
    .venv/bin/python bench/dashboard.py --database-url postgresql://user@host/scratch_db

Setup (not timed): N signals over last year spread over M municipalities (the first gets a
tenth of them: 100,000 of a million, a large municipality), each matched into a case (a
tenth *meervoudig*), three quarters of the cases with one to three contact attempts and a
DDAS result, written with bulk inserts (identity and contact are placeholders: the
statistics never read them).

Timed: the one-off first count (``count_statistics``, which pre-counts every month), then
``outreach.statistics.compute`` for the whole year, for the large municipality and for all
municipalities together, median of 5 runs after a warm-up: with every month pre-counted,
and with the newest month marked as changed (work in progress: the dashboard counts that
month directly). Also the same figures counted directly (no pre-counting, one run).
Baseline: one ``SELECT count(*)`` of the signals in the period, the least any statistic
must do.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratch import PUBLIC_KEY, processed_batch, scratch_runtime
from sqlalchemy import func, select, text

from outreach.enums import CaseResult, CaseState, ContactKind, Dagdeel
from outreach.models import Case, CaseSignal, ContactAttempt
from outreach.statistics import compute, refresh
from signals.db import unit_of_work
from signals.enums import (
    PartnerType,
    Role,
    SignalStatus,
    WindowFlag,
)
from signals.models import Client, Signal, StatisticsMark
from signals.runtime import Runtime
from signals.service import add_municipality, add_partner, add_user

PARTNERS = [PartnerType.HUUR, PartnerType.ENERGIE, PartnerType.WATER, PartnerType.ZORG]
KINDS = [ContactKind.BRIEF, ContactKind.TELEFOON, ContactKind.HUISBEZOEK, ContactKind.SMS]
RESULTS = [
    CaseResult.VERVOLGHULP_FINANCIEEL,
    CaseResult.ADVIES_QUICK_FIX,
    CaseResult.GEEN_CONTACT,
    CaseResult.REGELT_ZELF,
]
BANDS = ["18-27", "28-44", "45-64", "65+"]


def populate(runtime: Runtime, n: int, municipalities: int, year: int) -> list[int]:
    rng = random.Random(5)
    with unit_of_work(runtime.sessions) as session:
        places = [
            add_municipality(session, f"{100 + i:04d}", f"Gemeente {i}")
            for i in range(municipalities)
        ]
        partner = add_partner(session, "Bench", PartnerType.HUUR, places, PUBLIC_KEY).partner
        user = add_user(session, "bench@example.nl", Role.COUNSELLOR, places).user
        batch = processed_batch(session, partner.id, places[0].id)
        ids = [m.id for m in places]
        partner_id, batch_id, user_id = partner.id, batch.id, user.id
    large = n // 10
    now = dt.datetime.now(dt.UTC)
    chunk, attempt_id = 5_000, 0
    with runtime.engine.begin() as connection:
        for start in range(0, n, chunk):
            numbers = range(start + 1, min(n, start + chunk) + 1)
            clients, signals, cases, links, attempts = [], [], [], [], []
            for i in numbers:
                place = (
                    ids[0]
                    if i <= large
                    else ids[1 + i % (len(ids) - 1)]
                    if len(ids) > 1
                    else ids[0]
                )
                day = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
                clients.append({"id": i, "municipality_id": place, "client_key": f"{i:064x}",
                                "identity": b"x", "created_at": now})  # fmt: skip
                signals.append(
                    {
                        "id": i, "batch_id": batch_id, "partner_id": partner_id,
                        "municipality_id": place, "client_id": i, "signal_ref": f"S{i}",
                        "partner_type": rng.choice(PARTNERS), "signal_date": day,
                        "arrears_start_date": day - dt.timedelta(days=60), "amount": 900,
                        "crisis": False, "warm_handover": False,
                        "end_of_supply": rng.random() < 0.05, "window_flag": WindowFlag.INSIDE,
                        "status": SignalStatus.OPGEPAKT, "address_hash": f"{i:064x}",
                        "postcode_area": "3511", "age_band": rng.choice(BANDS),
                        "contact": b"x", "created_at": now,
                    }
                )  # fmt: skip
                worked = rng.random() < 0.75
                cases.append(
                    {
                        "id": i, "municipality_id": place, "household_key": f"{i:064x}",
                        "period": f"{day:%Y-%m}",
                        "state": CaseState.AFGESLOTEN if worked else CaseState.NIEUW,
                        "meervoudig": rng.random() < 0.1, "opeenvolgend": rng.random() < 0.4,
                        "priority": 2, "band": rng.choice(["hoog", "midden", "laag"]),
                        "picked_up_on": day + dt.timedelta(days=5) if worked else None,
                        "closed_on": day + dt.timedelta(days=20) if worked else None,
                        "result": rng.choice(RESULTS) if worked else None,
                        "created_at": dt.datetime.combine(day, dt.time(18), tzinfo=dt.UTC),
                        "updated_at": now,
                    }
                )  # fmt: skip
                links.append({"case_id": i, "signal_id": i})
                if worked:
                    for k in range(rng.randint(1, 3)):
                        attempt_id += 1
                        attempts.append(
                            {
                                "id": attempt_id, "case_id": i, "kind": rng.choice(KINDS),
                                "at": dt.datetime.combine(day + dt.timedelta(days=5 + k),
                                                          dt.time(10), tzinfo=dt.UTC),
                                "dagdeel": rng.choice(list(Dagdeel)), "reached": rng.random() < 0.3,
                                "by_id": user_id, "created_at": now,
                            }
                        )  # fmt: skip
            connection.execute(Client.__table__.insert(), clients)
            connection.execute(Signal.__table__.insert(), signals)
            connection.execute(Case.__table__.insert(), cases)
            connection.execute(CaseSignal.__table__.insert(), links)
            connection.execute(ContactAttempt.__table__.insert(), attempts)
        connection.execute(text("ANALYZE"))
    return ids


def median_s(action: object, runs: int = 5) -> float:
    action()  # type: ignore[operator]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1_000_000)
    parser.add_argument("--municipalities", type=int, default=10)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    runtime, folder = scratch_runtime("dashboard", args.database_url)
    engine = runtime.engine
    year = dt.date.today().year - 1
    started = time.perf_counter()
    ids = populate(runtime, args.signals, args.municipalities, year)
    setup_s = time.perf_counter() - started
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)

    def run(scope: list[int], stored: bool = True) -> None:
        with unit_of_work(runtime.readers) as session:
            compute(session, scope, start, end, {}, stored=stored)

    def floor(scope: list[int]) -> None:
        with unit_of_work(runtime.readers) as session:
            session.scalar(
                select(func.count()).where(
                    Signal.municipality_id.in_(scope),
                    Signal.signal_date >= start,
                    Signal.signal_date <= end,
                )
            )

    def mark_newest_month() -> None:
        with unit_of_work(runtime.sessions) as session:
            for municipality_id in ids:
                session.add(
                    StatisticsMark(municipality_id=municipality_id, month=end.replace(day=1))
                )

    machine = {"date": dt.date.today().isoformat(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "database": engine.dialect.name}  # fmt: skip
    started = time.perf_counter()
    with unit_of_work(runtime.sessions) as session:
        refresh(session)
    first_count_s = time.perf_counter() - started
    print(f"{args.signals:,} signals in {args.municipalities} municipalities on "
          f"{engine.dialect.name}; setup {setup_s:.0f} s; "
          f"first count (once) {first_count_s:.1f} s")  # fmt: skip
    scopes = (
        (f"large municipality ({args.signals // 10:,} signals)", ids[:1], 1.0),
        (f"all {len(ids)} municipalities ({args.signals:,} signals)", ids, 3.0),
    )
    results = {}
    for name, scope, _ in scopes:
        results[name] = {
            "seconds": median_s(lambda scope=scope: run(scope)),
            "floor_seconds": median_s(lambda scope=scope: floor(scope)),
            "direct_seconds": median_s(lambda scope=scope: run(scope, stored=False), runs=1),
        }
    mark_newest_month()
    for name, scope, _ in scopes:
        results[name]["newest_month_changed_seconds"] = median_s(lambda scope=scope: run(scope))
    started = time.perf_counter()
    with unit_of_work(runtime.sessions) as session:
        refresh(session)
    recount_s = time.perf_counter() - started
    for name, _, target in scopes:
        r = results[name]
        worst = max(r["seconds"], r["newest_month_changed_seconds"])
        met = "met" if worst < target else "NOT met"
        print(f"{name:<42} {r['seconds']:6.2f} s (newest month changed "
              f"{r['newest_month_changed_seconds']:.2f} s)   direct {r['direct_seconds']:5.2f} s   "
              f"floor {r['floor_seconds']:5.2f} s   target < {target:.0f} s: {met}")  # fmt: skip
        print(json.dumps({"bench": "dashboard", "scenario": "dashboard", "scope": name,
                          "signals": args.signals,
                          **{k: round(v, 3) for k, v in r.items()}, "target_s": target,
                          "baseline": {"what": "direct SQL count(*) of the period's signals",
                                       "seconds": round(r["floor_seconds"], 3)},
                          "met": worst < target, "first_count_seconds": round(first_count_s, 1),
                          "recount_one_month_seconds": round(recount_s, 2),
                          "machine": machine}))  # fmt: skip
    print(f"recount of the changed month in all municipalities (job): {recount_s:.2f} s")
    engine.dispose()
    folder.cleanup()


if __name__ == "__main__":
    main()
