"""Queue benchmark: server time of ``GET /queue`` with 200,000 open cases, beside a floor.

    .venv/bin/python bench/outreach_queue.py [--cases 200000] [--database-url postgresql://...]

Setup (not timed): a fresh database (a temporary SQLite file unless ``--database-url``)
upgraded by the migrations; one municipality, one partner and one counsellor; N open cases,
each with one signal (with its client) and a plan of four tasks, spread over the four
priorities, the score bands and due dates. Rows are written with bulk inserts: the setup
builds a realistic *state*, it does not replay the intake.

Timed: the counsellor's ``GET /queue`` through the real Flask app (log-in, session,
database, template), in-process with the test client, so the figure is server time without
a network. Each variant is requested 21 times after one warm-up; the median is reported.
The floor is the plainest query a queue page needs: the first 50 open cases by id, without
ordering by priority, filters, next due date, signals or rendering.
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
import time
from pathlib import Path

import pyotp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratch import PUBLIC_KEY, processed_batch, scratch_runtime
from sqlalchemy import select, text

from outreach.enums import CaseState, ContactKind
from outreach.models import Case, CaseSignal, Task
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


def populate(runtime: Runtime, n: int) -> tuple[str, str, str | None]:
    rng = random.Random(7)
    today = dt.date.today()
    with unit_of_work(runtime.sessions) as session:
        municipality = add_municipality(session, "0344", "Utrecht")
        partner = add_partner(
            session, "Woonstichting Bench", PartnerType.HUUR, [municipality], PUBLIC_KEY
        ).partner
        user = add_user(
            session, "bench@example.nl", Role.COUNSELLOR, [municipality],
            protector=runtime.protector, totp_roles=runtime.settings.totp_roles,
        )  # fmt: skip
        password, totp_secret = user.password, user.totp_secret
        batch = processed_batch(session, partner.id, municipality.id)
        ids = (municipality.id, partner.id, batch.id)
    municipality_id, partner_id, batch_id = ids
    blob = b"\x00" * 60  # stands in for the encrypted identity and contact
    chunk = 5_000
    with runtime.engine.begin() as connection:
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
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
                        "id": i,
                        "batch_id": batch_id,
                        "partner_id": partner_id,
                        "municipality_id": municipality_id,
                        "client_id": i,
                        "signal_ref": f"S{i}",
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
                ],
            )
            cases = []
            for i in numbers:
                priority = rng.choices([0, 1, 2, 3], weights=[5, 10, 25, 60])[0]
                band = ["hoog", "hoog", "midden", "laag"][priority]
                cases.append(
                    {
                        "id": i,
                        "municipality_id": municipality_id,
                        "household_key": f"{i:064x}",
                        "period": f"{today:%Y-%m}",
                        "state": rng.choice([CaseState.NIEUW] * 3 + [CaseState.OPGEPAKT]),
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
                CaseSignal.__table__.insert(), [{"case_id": i, "signal_id": i} for i in numbers]
            )
            connection.execute(
                Task.__table__.insert(),
                [
                    {
                        "case_id": c["id"],
                        "kind": kind,
                        "due_on": c["first_attempt_due"] + dt.timedelta(days=offset),
                    }
                    for c in cases
                    for kind, offset in (
                        (ContactKind.BRIEF, 0),
                        (ContactKind.TELEFOON, 3),
                        (ContactKind.SMS, 5),
                        (ContactKind.HUISBEZOEK, 8),
                    )
                ],
            )
        connection.execute(text("ANALYZE"))  # fresh statistics, as a live database has
    return "bench@example.nl", password, totp_secret


def median_ms(client: object, path: str, times: int = 21) -> float:
    client.get(path)  # type: ignore[attr-defined]
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        answer = client.get(path)  # type: ignore[attr-defined]
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    runtime, folder = scratch_runtime("queue", args.database_url)
    engine = runtime.engine
    started = time.perf_counter()
    email, password, totp_secret = populate(runtime, args.cases)
    setup_s = time.perf_counter() - started

    app = create_app(runtime=runtime, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert client.post("/login", data={"email": email, "password": password}).status_code == 302
    if totp_secret:  # counsellors log in with a second factor
        code = pyotp.TOTP(totp_secret).now()
        assert client.post("/login/totp", data={"code": code}).status_code == 200
    page = client.get("/queue").get_data(as_text=True)
    shown = len(re.findall(r'href="/cases/\d+"', page))

    def floor() -> None:
        with unit_of_work(runtime.readers) as session:
            session.execute(
                select(Case.id, Case.priority).where(Case.state == CaseState.NIEUW).limit(50)
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
    print(f"{args.cases:,} open cases on {engine.dialect.name}; setup {setup_s:.1f} s; "
          f"{shown} cases on the first page")  # fmt: skip
    print(f"{'variant':<28}{'median ms':>10}{'x floor':>9}  target < {TARGET_MS:.0f} ms")
    print(f"{'floor (50 cases by id)':<28}{floor_ms:>10.1f}{1:>9.1f}")
    for name, path in VARIANTS.items():
        ms = median_ms(client, path)
        print(
            f"{name:<28}{ms:>10.1f}{ms / floor_ms:>9.1f}  {'met' if ms < TARGET_MS else 'NOT met'}"
        )
        print(
            json.dumps(
                {
                    "bench": "queue",
                    "variant": name,
                    "path": path,
                    "cases": args.cases,
                    "median_ms": round(ms, 1),
                    "floor_ms": round(floor_ms, 2),
                    "target_ms": TARGET_MS,
                    "met": ms < TARGET_MS,
                    "machine": machine,
                }
            )
        )
    engine.dispose()
    folder.cleanup()


if __name__ == "__main__":
    main()
