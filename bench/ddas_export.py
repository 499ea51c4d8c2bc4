"""DDAS export benchmark: 1,000,000 signals streamed to a delivery file in bounded memory.

    .venv/bin/python bench/ddas_export.py [--signals 1000000] [--database-url postgresql://...]

Setup (not timed): a fresh database (a temporary SQLite file unless ``--database-url``) with
one municipality and N signals, each with its client; identity and contact details are
encrypted with the data key exactly as the intake stores them (a third of the clients have
no BSN, so the export decrypts their address). Every second signal belongs to a case with
one contact attempt.

Timed: ``outreach.ddas.export`` for the whole period: reading in chunks, decrypting,
building and checking every object against our DDAS rules, writing the file and its hash.
Memory: the high-water mark of resident memory is reset (``/proc/self/clear_refs``) when the
clock starts; ``added`` is the peak during the export minus the memory before it.
Baseline (``--baseline``): the memory the same delivery takes when held as one object in
memory, the plain way of building it (it grows with N; the export's should not).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratch import PUBLIC_KEY, processed_batch, scratch_runtime
from sqlalchemy import select

from outreach import exports
from outreach.ddas import export
from outreach.enums import CaseState, ContactKind, Dagdeel
from outreach.models import Case, CaseSignal, ContactAttempt, DdasExport, ExportStatus
from signals.db import unit_of_work
from signals.enums import (
    Gender,
    PartnerType,
    Role,
    SignalStatus,
    WindowFlag,
)
from signals.ingest import CONTACT_CONTEXT, IDENTITY_CONTEXT
from signals.models import Client, Municipality, Signal
from signals.runtime import Runtime
from signals.service import add_municipality, add_partner, add_user
from signals.synthetic import make_bsn

PARTNERS = [PartnerType.HUUR, PartnerType.ENERGIE, PartnerType.WATER, PartnerType.ZORG]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def populate(runtime: Runtime, n: int, year: int) -> int:
    rng = random.Random(3)
    protector = runtime.protector
    with unit_of_work(runtime.sessions) as session:
        municipality = add_municipality(session, "0344", "Utrecht")
        partner = add_partner(
            session, "Bench", PartnerType.HUUR, [municipality], PUBLIC_KEY
        ).partner
        user = add_user(session, "bench@example.nl", Role.COUNSELLOR, [municipality]).user
        batch = processed_batch(session, partner.id, municipality.id)
        ids = (municipality.id, partner.id, batch.id, user.id)
    municipality_id, partner_id, batch_id, user_id = ids
    chunk = 5_000
    now = dt.datetime.now(dt.UTC)
    with runtime.engine.begin() as connection:
        for start in range(0, n, chunk):
            numbers = range(start + 1, min(n, start + chunk) + 1)
            clients, signals, cases, links, attempts = [], [], [], [], []
            for i in numbers:
                bsn = make_bsn(rng) if i % 3 else None
                day = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
                identity = {"achternaam": "Jansen", "voorletters": "J."}
                if bsn:
                    identity["bsn"] = bsn
                else:
                    identity["geboortedatum"] = "1980-02-03"
                contact = {"postcode": "3511AB", "huisnummer": str(i % 250 + 1)}
                clients.append(
                    {
                        "id": i,
                        "municipality_id": municipality_id,
                        "client_key": f"{i:064x}",
                        "bsn_hash": protector.bsn_hash(bsn) if bsn else None,
                        "gender": Gender.VROUW,
                        "identity": protector.encrypt_json(identity, IDENTITY_CONTEXT),
                        "created_at": now,
                    }
                )
                signals.append(
                    {
                        "id": i,
                        "batch_id": batch_id,
                        "partner_id": partner_id,
                        "municipality_id": municipality_id,
                        "client_id": i,
                        "signal_ref": f"S{i}",
                        "partner_type": rng.choice(PARTNERS),
                        "signal_date": day,
                        "arrears_start_date": day - dt.timedelta(days=60),
                        "amount": round(rng.uniform(50, 4000), 2),
                        "crisis": False,
                        "warm_handover": False,
                        "end_of_supply": False,
                        "window_flag": WindowFlag.INSIDE,
                        "status": SignalStatus.OPGEPAKT
                        if i % 2
                        else SignalStatus.NOG_NIET_OPGEPAKT,
                        "address_hash": f"{i:064x}",
                        "bsn_hash": None,
                        "postcode_area": "3511",
                        "contact": protector.encrypt_json(contact, CONTACT_CONTEXT),
                        "created_at": now,
                    }
                )
                if i % 2:
                    cases.append(
                        {
                            "id": i,
                            "municipality_id": municipality_id,
                            "household_key": f"{i:064x}",
                            "period": f"{day:%Y-%m}",
                            "state": CaseState.OPGEPAKT,
                            "priority": 2,
                            "picked_up_on": day + dt.timedelta(days=3),
                            "created_at": dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC),
                            "updated_at": now,
                        }
                    )
                    links.append({"case_id": i, "signal_id": i})
                    attempts.append(
                        {
                            "case_id": i,
                            "kind": ContactKind.TELEFOON,
                            "at": dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC),
                            "dagdeel": Dagdeel.OCHTEND,
                            "reached": True,
                            "by_id": user_id,
                            "created_at": now,
                        }
                    )
            connection.execute(Client.__table__.insert(), clients)
            connection.execute(Signal.__table__.insert(), signals)
            connection.execute(Case.__table__.insert(), cases)
            connection.execute(CaseSignal.__table__.insert(), links)
            connection.execute(ContactAttempt.__table__.insert(), attempts)
    return municipality_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    parser.add_argument("--baseline", action="store_true", help="also the in-memory baseline")
    args = parser.parse_args()
    runtime, folder = scratch_runtime(
        "ddas", args.database_url, ddas_contact_email="vroegsignalering@utrecht.example"
    )
    settings, engine = runtime.settings, runtime.engine
    year = dt.date.today().year - 1
    started = time.perf_counter()
    municipality_id = populate(runtime, args.signals, year)
    setup_s = time.perf_counter() - started
    out = Path(folder.name) / "levering.json"

    before = _status_kib("VmRSS")
    reset = _reset_peak()
    started = time.perf_counter()
    cpu = time.process_time()
    with unit_of_work(runtime.sessions) as session:
        municipality = session.scalars(
            select(Municipality).where(Municipality.id == municipality_id)
        ).one()
        delivery = export(
            session,
            runtime.protector,
            settings,
            [municipality],
            dt.date(year, 1, 1),
            dt.date(year, 12, 31),
            out,
            by="bench",
        )
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    added = (_status_kib("VmHWM") - before) / 1024
    size_mib = out.stat().st_size / 2**20
    figures: dict[str, Any] = {
        "bench": "ddas_export",
        "scenario": "ddas_export",
        "signals": delivery.signals,
        "cases": delivery.cases,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_s, 1),
        "signals_per_s": round(delivery.signals / seconds),
        "file_mib": round(size_mib, 1),
        "memory_added_mib": round(added, 1),
        "peak_reset": reset,
        "setup_s": round(setup_s, 1),
        "database": engine.dialect.name,
        "machine": {
            "date": dt.date.today().isoformat(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    print(
        f"{delivery.signals:,} signals, {delivery.cases:,} cases on {engine.dialect.name}: "
        f"{seconds:.1f} s ({figures['signals_per_s']:,} signals/s), file {size_mib:.0f} MiB, "
        f"memory added {added:.0f} MiB (setup {setup_s:.0f} s)"
    )
    # The same delivery as an admin asks for it on /ddas: queued, then made by the scheduler's
    # job (counting the signals first, telling the progress, sealing the file with AES-GCM).
    with unit_of_work(runtime.sessions) as session:
        municipality = session.get(Municipality, municipality_id)
        assert municipality is not None
        admin = add_user(session, "bench-admin@example.nl", Role.ADMIN, [municipality]).user
        asked = exports.request_export(
            session, admin, [municipality], dt.date(year, 1, 1), dt.date(year, 12, 31)
        )
        asked_id = asked.id
    queued_runtime = Runtime(
        settings.model_copy(update={"ddas_exports_dir": f"{folder.name}/exports"}), engine
    )
    started = time.perf_counter()
    assert exports.make_exports(queued_runtime) == 1
    queued_s = time.perf_counter() - started
    with unit_of_work(runtime.readers) as session:
        made = session.get(DdasExport, asked_id)
        assert made is not None and made.status is ExportStatus.READY, made
        assert made.delivery is not None and made.delivery.signals == delivery.signals
    figures["queued_export"] = {
        "what": "the same delivery asked for on /ddas and made by make_ddas_exports (count, "
        "progress, sealed with AES-GCM)",
        "seconds": round(queued_s, 1),
        "ratio_to_export": round(queued_s / seconds, 2),
    }
    print(
        f"queued export (/ddas, made by the scheduler's job, sealed): {queued_s:.1f} s, "
        f"{figures['queued_export']['ratio_to_export']}x the plain export"
    )
    # Baseline: json.dumps of the same rows, streamed from the database to a file as they are
    # stored (no decryption, checking, DDAS structure or hashing): the least an export does.
    plain = Path(folder.name) / "rows.jsonl"
    before = _status_kib("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    rows = 0
    with engine.connect() as connection, plain.open("w", encoding="utf-8") as sink:
        result = connection.execution_options(yield_per=2_000).execute(
            select(Signal.__table__).where(Signal.municipality_id == municipality_id)
        )
        for row in result.mappings():
            sink.write(json.dumps(dict(row), default=str))
            sink.write("\n")
            rows += 1
    base_s = time.perf_counter() - started
    figures["baseline"] = {
        "what": "json.dumps of the same signal rows, streamed from the database to a file",
        "rows": rows,
        "seconds": round(base_s, 1),
        "rows_per_s": round(rows / base_s),
        "memory_added_mib": round((_status_kib("VmHWM") - before) / 1024, 1),
    }
    figures["ratio_to_baseline"] = round(seconds / base_s, 2)
    figures["target"] = "bounded memory, seconds within 3x the baseline's"
    figures["met"] = seconds <= 3 * base_s and added < 256
    print(
        f"baseline: json.dumps of the same {rows:,} rows {base_s:.1f} s "
        f"({figures['baseline']['rows_per_s']:,} rows/s); the export takes "
        f"{figures['ratio_to_baseline']}x"
    )
    if args.baseline:
        # The plain way holds the whole delivery in memory before writing it.
        before = _status_kib("VmRSS")
        document = json.loads(out.read_text())
        figures["baseline_memory_mib"] = round((_status_kib("VmRSS") - before) / 1024, 1)
        print(
            f"baseline: the same delivery as one object in memory takes "
            f"{figures['baseline_memory_mib']:.0f} MiB ({len(document['leveringen'])} levering)"
        )
    print(json.dumps(figures))
    engine.dispose()
    folder.cleanup()


if __name__ == "__main__":
    main()
