"""Queue benchmark: ``GET /queue`` with 1,000,000 signals and 200,000 open cases, beside
the indexed query of the same page, alone and with 20 counsellors at once.

    .venv/bin/python bench/outreach_queue.py [--signals 1000000] [--cases 200000]
        [--counsellors 20] [--seconds 20] [--database-url postgresql://...]

Setup (not timed): a fresh database (a temporary SQLite file unless ``--database-url``)
upgraded by the migrations; one municipality, one partner and 20 counsellors; the signals
in cases of two signals each (one client per case), of which N are open with a plan of four
tasks, spread over the four priorities, the score bands and due dates, and the rest closed.
Rows are written with bulk inserts: the setup builds a realistic *state*, it does not replay
the intake.

Timed, through the real Flask app (log-in, session, database, template) in this process,
so the figures are server time without a network:

* each variant (the queue as it opens, five filters, a deep page): the median of 21 requests
  after one warm-up;
* ``concurrent``: every counsellor a thread of its own with its own session, loading the
  queue again and again for ``--seconds``: with one second between a counsellor's requests
  (someone working the queue), and without any pause (the worst case); p50 and p95.

The baseline is the indexed ``SELECT ... LIMIT 50`` of the same page (the open cases of the
municipality in queue order, on the queue's partial index), timed the same ways.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratch import PUBLIC_KEY, processed_batch, scratch_runtime
from sqlalchemy import select, text

from outreach.enums import CaseState, ContactKind
from outreach.models import Case, CaseSignal, Task, is_open, queue_order
from signals.db import unit_of_work
from signals.enums import (
    PartnerType,
    Role,
    SignalStatus,
    WindowFlag,
)
from signals.models import Client, Signal
from signals.runtime import Runtime
from signals.service import add_municipality, add_partner, add_user
from webapp import create_app

TARGET_MS = 150.0
PARTNERS = [PartnerType.HUUR, PartnerType.ENERGIE, PartnerType.WATER, PartnerType.ZORG]
VARIANTS = {
    "queue (all open cases)": "/queue",
    "filter: priority hoog": "/queue?prioriteit=hoog",
    "filter: partner Huur": "/queue?partner=Huur",
    "filter: overdue": "/queue?termijn=verlopen",
    "filter: unassigned": "/queue?toegewezen=niemand",
    "page 100": "/queue?pagina=100",
}


def populate(
    runtime: Runtime, n: int, signals: int, counsellors: int
) -> tuple[int, list[tuple[str, str, str | None]]]:
    """N open cases among ``signals // 2`` cases of two signals; the counsellors' log-ins."""
    rng = random.Random(7)
    today = dt.date.today()
    users = []
    with unit_of_work(runtime.sessions) as session:
        municipality = add_municipality(session, "0344", "Utrecht")
        partner = add_partner(
            session, "Woonstichting Bench", PartnerType.HUUR, [municipality], PUBLIC_KEY
        ).partner
        for number in range(counsellors):
            user = add_user(
                session, f"bench{number}@example.nl", Role.COUNSELLOR, [municipality],
                protector=runtime.protector, totp_roles=runtime.settings.totp_roles,
            )  # fmt: skip
            users.append((f"bench{number}@example.nl", user.password, user.totp_secret))
        batch = processed_batch(session, partner.id, municipality.id)
        ids = (municipality.id, partner.id, batch.id)
    total = max(n, signals // 2)
    municipality_id, partner_id, batch_id = ids
    blob = b"\x00" * 60  # stands in for the encrypted identity and contact
    chunk = 5_000
    with runtime.engine.begin() as connection:
        for start in range(0, total, chunk):
            size = min(chunk, total - start)
            numbers = range(start + 1, start + size + 1)
            connection.execute(
                Client.__table__.insert(),
                [
                    {
                        "id": i,
                        "municipality_id": municipality_id,
                        "client_key": f"{i:064x}",
                        "bsn_hash": f"{i:064x}",
                        "identity": blob,
                        "created_at": dt.datetime.now(dt.UTC),
                    }
                    for i in numbers
                ],
            )
            connection.execute(
                Signal.__table__.insert(),
                [
                    {
                        "id": i * 2 - second,
                        "batch_id": batch_id,
                        "partner_id": partner_id,
                        "municipality_id": municipality_id,
                        "client_id": i,
                        "signal_ref": f"S{i * 2 - second}",
                        "partner_type": rng.choice(PARTNERS),
                        "signal_date": today - dt.timedelta(days=rng.randrange(1, 180)),
                        "arrears_start_date": today - dt.timedelta(days=200),
                        "amount": 1000,
                        "crisis": False,
                        "warm_handover": False,
                        "end_of_supply": False,
                        "window_flag": WindowFlag.INSIDE,
                        "status": SignalStatus.NOG_NIET_OPGEPAKT,
                        "address_hash": f"{i:064x}",
                        "bsn_hash": f"{i:064x}",
                        "postcode_area": "3511",
                        "contact": blob,
                        "created_at": dt.datetime.now(dt.UTC),
                    }
                    for i in numbers
                    for second in (0, 1)
                    if i * 2 - second <= max(signals, n)
                ],
            )
            cases = []
            for i in numbers:
                state = (
                    rng.choice([CaseState.NIEUW] * 3 + [CaseState.OPGEPAKT])
                    if i <= n
                    else CaseState.AFGESLOTEN
                )
                priority = rng.choices([0, 1, 2, 3], weights=[5, 10, 25, 60])[0]
                band = ["hoog", "hoog", "midden", "laag"][priority]
                cases.append(
                    {
                        "id": i,
                        "municipality_id": municipality_id,
                        "household_key": f"{i:064x}",
                        "period": f"{today:%Y-%m}",
                        "state": state,
                        "priority": priority,
                        "band": band,
                        "probability": rng.random() * 0.4,
                        "first_attempt_due": today + dt.timedelta(days=rng.randrange(-20, 20)),
                        "created_at": dt.datetime.now(dt.UTC),
                        "updated_at": dt.datetime.now(dt.UTC),
                    }
                )
            connection.execute(Case.__table__.insert(), cases)
            connection.execute(
                CaseSignal.__table__.insert(),
                [
                    {"case_id": i, "signal_id": i * 2 - second}
                    for i in numbers
                    for second in (0, 1)
                    if i * 2 - second <= max(signals, n)
                ],
            )
            tasks = [
                {
                    "case_id": c["id"],
                    "kind": kind,
                    "due_on": c["first_attempt_due"] + dt.timedelta(days=offset),
                }
                for c in cases
                if c["state"] is not CaseState.AFGESLOTEN
                for kind, offset in (
                    (ContactKind.BRIEF, 0),
                    (ContactKind.TELEFOON, 3),
                    (ContactKind.SMS, 5),
                    (ContactKind.HUISBEZOEK, 8),
                )
            ]
            if tasks:  # closed cases have none
                connection.execute(Task.__table__.insert(), tasks)
        connection.execute(text("ANALYZE"))  # fresh statistics, as a live database has
    return municipality_id, users


def median_ms(client: object, path: str, times: int = 21) -> float:
    client.get(path)  # type: ignore[attr-defined]
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        answer = client.get(path)  # type: ignore[attr-defined]
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(samples)


def log_in(app: Any, email: str, password: str, totp_secret: str | None) -> Any:
    client = app.test_client()
    assert client.post("/login", data={"email": email, "password": password}).status_code == 302
    if totp_secret:  # counsellors log in with a second factor
        code = pyotp.TOTP(totp_secret).now()
        assert client.post("/login/totp", data={"code": code}).status_code == 200
    return client


def concurrent(
    work: list[Callable[[], None]], seconds: float, pause: float
) -> tuple[list[float], int]:
    """Each callable in a thread of its own, again and again for ``seconds`` with ``pause``
    between its calls; every call's milliseconds, and how many failed."""
    samples: list[float] = []
    failures = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    start = threading.Barrier(len(work))

    def loop(call: Callable[[], None], offset: float) -> None:
        nonlocal failures
        start.wait()
        time.sleep(offset)  # spread the first requests over the pause, as people are
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                call()
            except Exception:
                with lock:
                    failures += 1
                continue
            ms = (time.perf_counter() - t) * 1000
            with lock:
                samples.append(ms)
            if pause:
                time.sleep(pause)

    threads = [
        threading.Thread(target=loop, args=(call, pause * n / len(work)))
        for n, call in enumerate(work)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, failures


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "requests": len(ordered),
        "p50_ms": round(cut[49], 1),
        "p95_ms": round(cut[94], 1),
        "max_ms": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=200_000, help="open cases")
    parser.add_argument("--counsellors", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrent phase")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    runtime, folder = scratch_runtime(
        "queue", args.database_url, rate_limit_login="10000 per minute"
    )
    engine = runtime.engine
    started = time.perf_counter()
    municipality_id, users = populate(runtime, args.cases, args.signals, args.counsellors)
    setup_s = time.perf_counter() - started

    app = create_app(runtime=runtime, WTF_CSRF_ENABLED=False)
    clients = [log_in(app, *user) for user in users]
    client = clients[0]
    page = client.get("/queue").get_data(as_text=True)
    shown = len(re.findall(r'href="/cases/\d+"', page))

    def floor() -> None:
        with unit_of_work(runtime.readers) as session:
            session.execute(
                select(Case.id, Case.priority, Case.band, Case.first_attempt_due)
                .where(Case.municipality_id == municipality_id, is_open())
                .order_by(*queue_order())
                .limit(50)
            ).all()

    floor()
    samples = []
    for _ in range(21):
        t = time.perf_counter()
        floor()
        samples.append((time.perf_counter() - t) * 1000)
    floor_ms = statistics.median(samples)
    machine = {"date": dt.date.today().isoformat(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "database": engine.dialect.name}  # fmt: skip
    print(f"{args.signals:,} signals, {args.cases:,} open cases on {engine.dialect.name}; "
          f"setup {setup_s:.1f} s; {shown} cases on the first page")  # fmt: skip
    print(f"{'variant':<28}{'median ms':>10}{'x floor':>9}  target < {TARGET_MS:.0f} ms")
    print(f"{'floor (the same page, SQL)':<28}{floor_ms:>10.1f}{1:>9.1f}")
    variants = {}
    for name, path in VARIANTS.items():
        ms = median_ms(client, path)
        variants[name] = round(ms, 1)
        print(
            f"{name:<28}{ms:>10.1f}{ms / floor_ms:>9.1f}  {'met' if ms < TARGET_MS else 'NOT met'}"
        )

    def page_of(c: Any) -> Callable[[], None]:
        def call() -> None:
            assert c.get("/queue").status_code == 200

        return call

    phases = {}
    for label, pause in (("working (1 s between requests)", 1.0), ("no pause", 0.0)):
        queue, failed = concurrent([page_of(c) for c in clients], args.seconds, pause)
        base, _ = concurrent([floor] * len(clients), args.seconds, pause)
        phases[label] = {**percentiles(queue), "failed": failed, "baseline": percentiles(base)}
        q, b = phases[label], phases[label]["baseline"]
        print(
            f"{len(clients)} counsellors, {label}: /queue p50 {q['p50_ms']} ms, "
            f"p95 {q['p95_ms']} ms ({q['requests']} requests, {failed} failed); "
            f"the same page in SQL p50 {b['p50_ms']} ms, p95 {b['p95_ms']} ms"
        )
    headline = phases["working (1 s between requests)"]
    print(
        json.dumps(
            {
                "bench": "queue",
                "scenario": "queue",
                "database": engine.dialect.name,
                "signals": args.signals,
                "open_cases": args.cases,
                "counsellors": len(clients),
                "p50_ms": headline["p50_ms"],
                "p95_ms": headline["p95_ms"],
                "requests": headline["requests"],
                "failed": headline["failed"],
                "no_pause": {k: v for k, v in phases["no pause"].items() if k != "baseline"},
                "single_request_median_ms": variants,
                "baseline": {
                    "what": "indexed SELECT ... LIMIT 50 of the same page",
                    "single_median_ms": round(floor_ms, 2),
                    **headline["baseline"],
                    "no_pause": phases["no pause"]["baseline"],
                },
                "target": f"p95 under {TARGET_MS:g} ms",
                "met": headline["p95_ms"] < TARGET_MS,
                "setup_seconds": round(setup_s, 1),
                "machine": machine,
            }
        )
    )
    engine.dispose()
    folder.cleanup()


if __name__ == "__main__":
    main()
