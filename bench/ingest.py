"""Ingest benchmark: N synthetic rows through the real batch path, beside a bare "floor".

    .venv/bin/python bench/ingest.py [--rows 100000] [--database-url URL]

Setup (not timed) makes a temporary installation: schema, municipality 0344, a recipient
key and a Huur partner with its own RSA key, then N synthetic rows packed as a partner
sends them (encrypted ``.p7m`` plus detached signature; the plaintext never touches disk).

Three scenarios, each in a fresh child process so their peak memory is their own:

* ``floor``: decrypt the same file with ``cryptography``, ``csv.reader`` it and
  ``executemany`` the cells as text into a bare table of the same database, in one
  transaction.
* ``ingest``: ``signals.jobs.ingest_file`` -- verify, store, decrypt, parse, validate,
  hash, encrypt and store the signals, exactly as the CLI and the inbox do it.
* ``pipeline``: what the scheduler does next with those rows -- score the households
  (``score_households``), put every signal in its case (``match_signals``, run until
  nothing is left) and plan the contact tasks (``plan_cases``). Its baseline is the ingest.

Prints a table and one JSON line per scenario: ingest beside the floor, the pipeline beside
the ingest.
See bench/README.md for how to read them.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import io
import json
import os
import platform
import resource
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("floor", "ingest", "pipeline")
BASELINE = "floor"
AIM = 3.0  # the target: ingest within 3x the floor's time
PIPELINE_AIM = 1.0  # the target: scoring, matching and planning within the ingest's time
MUNICIPALITY = ("0344", "Utrecht")


# -- measuring ---------------------------------------------------------------------------------
def _proc_status_kib(field: str) -> int | None:
    """A memory figure of this process from /proc (Linux); None where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_rss_kib() -> int:
    # ru_maxrss survives exec: it starts at the RSS of the process that forked us. The parent
    # therefore stays small (setup runs in a child too), far below any scenario's peak.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _reset_peak_rss() -> bool:
    """Lower the high-water mark to the current RSS (Linux), so the peak is the timed part's.

    Without it, a transient allocation before the timed part (imports, warm-up) would show
    as the scenario's peak.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


class _Clock:
    """Wall and CPU time plus memory around the timed part of one scenario."""

    def __enter__(self) -> _Clock:
        self.peak_untimed = _peak_rss_kib()  # imports and preparation of this child
        self.peak_reset = _reset_peak_rss()
        self.rss_before = _proc_status_kib("VmRSS") or _peak_rss_kib()
        self.cpu = _cpu_seconds()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu = _cpu_seconds() - self.cpu
        self.peak = _peak_rss_kib()

    def figures(self, rows: int) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu, 3),
            "rows_per_second": round(rows / self.seconds) if self.seconds else None,
            "rss_before_mib": _mib(self.rss_before),
            "peak_rss_mib": _mib(self.peak),
            "peak_increase_mib": _mib(self.peak - self.rss_before),
            "peak_untimed_mib": _mib(self.peak_untimed),
            "peak_is_timed_part_only": self.peak_reset,
        }


# -- setup (in a child of its own, not timed) ------------------------------------------------
def _environment(workdir: Path, database_url: str | None) -> None:
    """Settings for the children, through the environment they inherit."""
    url = database_url or f"sqlite:///{workdir / 'vroegsignaal.db'}"
    os.environ.pop("VROEGSIGNAAL_CONFIG", None)  # a local demo TOML must not leak in
    os.environ.update(
        {
            "VROEGSIGNAAL_SECRET_KEY": secrets.token_urlsafe(32),
            # Kept when given: a database used before holds keys sealed with that data key.
            "VROEGSIGNAAL_DATA_KEY": os.environ.get("VROEGSIGNAAL_DATA_KEY")
            or base64.b64encode(secrets.token_bytes(32)).decode(),
            "VROEGSIGNAAL_DATABASE_URL": url,
            "VROEGSIGNAAL_MAX_BATCH_BYTES": str(512 * 1024 * 1024),
            "VROEGSIGNAAL_INBOX_DIR": str(workdir / "inbox"),
            # The risk model is trained once and kept for later runs (bench/out is ignored).
            "VROEGSIGNAAL_MODELS_DIR": str(ROOT / "bench" / "out" / "models"),
        }
    )


def _previous_month(today: dt.date) -> tuple[dt.date, dt.date]:
    end = today.replace(day=1) - dt.timedelta(days=1)
    return end.replace(day=1), end


def _check_recipient_keys(session: Any, protector: Any, municipality_id: int) -> None:
    """Ingest unlocks every active key: those of an earlier run need its data key."""
    from signals.crypto import DecryptionError
    from signals.service import active_recipient_keys, unlock_recipient_key

    for record in active_recipient_keys(session, municipality_id):
        try:
            unlock_recipient_key(protector, record)
        except DecryptionError:
            raise SystemExit(
                "the database holds recipient keys sealed with another data key: set "
                "VROEGSIGNAAL_DATA_KEY to the one used before, or use a fresh database"
            ) from None


def prepare(workdir: Path, rows: int, invalid_share: float) -> dict[str, Any]:
    """Schema, municipality, keys, partner and the encrypted batch; returns the setup facts."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from signals.db import unit_of_work
    from signals.enums import PartnerType
    from signals.envelope import pack
    from signals.errors import NotFound
    from signals.runtime import Runtime
    from signals.service import (
        add_municipality,
        add_partner,
        create_recipient_key,
        unlock_recipient_key,
    )
    from signals.service import get_municipality as find_municipality
    from signals.synthetic import Population, signal_rows, to_csv

    runtime = Runtime.from_settings()
    from webapp.cli import upgrade_database

    upgrade_database(runtime.engine)
    partner_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    partner_pem = partner_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with unit_of_work(runtime.sessions) as session:
        try:  # an existing (PostgreSQL) database may have it from an earlier run
            municipality = find_municipality(session, MUNICIPALITY[0])
        except NotFound:
            municipality = add_municipality(session, *MUNICIPALITY)
        _check_recipient_keys(session, runtime.protector, municipality.id)
        recipient = create_recipient_key(session, runtime.protector, municipality)
        partner = add_partner(
            session, "Benchmark woningcorporatie", PartnerType.HUUR, [municipality], partner_pem
        ).partner
        partner_id = partner.id
        certificate, recipient_key = unlock_recipient_key(runtime.protector, recipient)
    _activate_model(runtime, MUNICIPALITY[0])
    runtime.engine.dispose()

    month_start, month_end = _previous_month(dt.date.today())
    population = Population(max(1000, rows // 2), seed=2026)  # some households signalled twice
    prefix = f"BENCH-{secrets.token_hex(4)}"
    plaintext = to_csv(
        signal_rows(
            population,
            PartnerType.HUUR,
            rows,
            month_start,
            month_end,
            seed=1,
            id_prefix=prefix,
            invalid_share=invalid_share,
        )
    )
    p7m, signature = pack(plaintext, certificate, partner_key)
    csv_bytes = len(plaintext)
    del plaintext

    # Only ciphertext and key material go to disk; the floor needs the recipient key too.
    files = {
        "p7m": workdir / "batch.p7m",
        "sig": workdir / "batch.p7m.sig",
        "cert": workdir / "recipient.pem",
        "key": workdir / "recipient.key",
    }
    files["p7m"].write_bytes(p7m)
    files["sig"].write_bytes(signature)
    files["cert"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files["key"].touch(mode=0o600)
    files["key"].write_bytes(
        recipient_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "rows": rows,
        "partner_id": partner_id,
        "csv_bytes": csv_bytes,
        "p7m_bytes": len(p7m),
        "floor_db": str(workdir / "floor.db"),
        **{name: str(path) for name, path in files.items()},
    }


def _activate_model(runtime: Any, code: str) -> None:
    """The synthetic risk model, trained once into bench/out/models, active for ``code``."""
    from scoring.artifacts import save, train_synthetic
    from scoring.evaluation import gates
    from scoring.service import activate_model, register_model
    from signals.db import unit_of_work
    from signals.service import get_municipality

    root = Path(runtime.settings.models_dir)
    folders = [
        meta.parent
        for meta in sorted(root.glob("*/model.json"), key=lambda p: p.stat().st_mtime)
        if not json.loads(meta.read_text()).get("gates_failed")
    ]
    if folders:
        folder = folders[-1]
    else:
        model, report = train_synthetic(households=200_000)
        folder = save(model, root, {"evaluation": report, "gates_failed": gates(report)})
    with unit_of_work(runtime.sessions) as session:
        record = register_model(session, folder)
        activate_model(session, get_municipality(session, code), record, by="bench")


# -- scenarios (children) ----------------------------------------------------------------------
def run_floor(setup: dict[str, Any]) -> dict[str, Any]:
    """Decrypt, csv.reader, executemany into a bare SQLite table: the least any ingest does."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs7

    certificate = x509.load_pem_x509_certificate(Path(setup["cert"]).read_bytes())
    key = serialization.load_pem_private_key(Path(setup["key"]).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    url = os.environ["VROEGSIGNAAL_DATABASE_URL"]
    postgresql = url.startswith("postgresql")
    if postgresql:  # the same server as the ingest: a bare table beside its tables
        from signals.db import make_engine

        engine = make_engine(url)
        connection: Any = engine.raw_connection()
        connection.cursor().execute("DROP TABLE IF EXISTS bench_floor_cells")
        connection.commit()
        mark = "%s"
    else:
        connection = sqlite3.connect(setup["floor_db"], isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")  # the same pragmas as signals.db
        connection.execute("PRAGMA synchronous=NORMAL")
        mark = "?"

    with _Clock() as clock:
        plaintext = pkcs7.pkcs7_decrypt_der(Path(setup["p7m"]).read_bytes(), certificate, key, [])
        text = io.TextIOWrapper(io.BytesIO(plaintext), encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=";")  # decodes as it goes, like signals.parsing
        width = len(next(reader))
        columns = ", ".join(f"c{i} TEXT" for i in range(width))
        insert = f"INSERT INTO bench_floor_cells VALUES ({', '.join([mark] * width)})"  # noqa: S608
        cursor = connection.cursor()
        if not postgresql:
            cursor.execute("BEGIN")
        cursor.execute(f"CREATE TABLE bench_floor_cells ({columns})")
        rows = list(reader) if postgresql else reader
        cursor.executemany(insert, rows)
        inserted = len(rows) if postgresql else cursor.rowcount
        if postgresql:
            connection.commit()
        else:
            cursor.execute("COMMIT")
    if postgresql:
        connection.cursor().execute("DROP TABLE bench_floor_cells")
        connection.commit()
    connection.close()
    return {"rows_total": inserted, "rows_accepted": inserted, **clock.figures(inserted)}


def run_ingest(setup: dict[str, Any], profile: bool) -> dict[str, Any]:
    """``ingest_file`` as the CLI calls it: receive and process in the production code path."""
    from signals.db import unit_of_work
    from signals.enums import BatchSource
    from signals.jobs import ingest_file
    from signals.runtime import Runtime
    from signals.service import get_partner

    runtime = Runtime.from_settings()
    with unit_of_work(runtime.sessions) as session:  # connect and configure the mappers
        get_partner(session, setup["partner_id"])
    profiler = _profiler() if profile else None

    with _Clock() as clock:
        if profiler is not None:
            profiler.start()
        result = ingest_file(
            runtime,
            setup["partner_id"],
            Path(setup["p7m"]),
            Path(setup["sig"]),
            BatchSource.CLI,
        )
        if profiler is not None:
            profiler.stop()
    runtime.engine.dispose()
    if profiler is not None:
        print(profiler.output_text(unicode=True, color=False), file=sys.stderr)
    report = result.report
    if not result.ok:
        raise SystemExit(f"ingest failed: {report.get('code')} {report.get('detail', '')}")
    codes: dict[str, int] = {}
    for rejection in report["rejections"]:
        codes[rejection["code"]] = codes.get(rejection["code"], 0) + 1
    return {
        "rows_total": report["rows_total"],
        "rows_accepted": report["rows_accepted"],
        "rows_rejected": report["rows_rejected"],
        "rows_outside_window": report["rows_outside_window"],
        "rejection_codes": codes,
        **clock.figures(report["rows_total"]),
    }


def run_pipeline(setup: dict[str, Any], profile: bool) -> dict[str, Any]:
    """What the scheduler does after an ingest: score, match (until done), plan."""
    from outreach import jobs as outreach_jobs
    from scoring.jobs import score_households
    from signals.db import unit_of_work
    from signals.runtime import Runtime
    from signals.service import get_partner

    runtime = Runtime.from_settings()
    with unit_of_work(runtime.sessions) as session:  # connect and configure the mappers
        get_partner(session, setup["partner_id"])
    profiler = _profiler() if profile else None
    with _Clock() as clock:
        if profiler is not None:
            profiler.start()
        scored = score_households(runtime)
        matched = cases = 0
        while (done := outreach_jobs.match(runtime))["signals"]:
            matched += done["signals"]
            cases += done["cases_created"]
        planned = 0
        while more := outreach_jobs.plan(runtime):
            planned += more
        if profiler is not None:
            profiler.stop()
    runtime.engine.dispose()
    if profiler is not None:
        print(profiler.output_text(unicode=True, color=False), file=sys.stderr)
    return {
        "rows_total": matched,
        "rows_accepted": matched,
        "households_scored": scored,
        "cases_created": cases,
        "cases_planned": planned,
        **clock.figures(matched),
    }


def _profiler() -> Any:
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit(
            "--profile needs pyinstrument: .venv/bin/pip install pyinstrument"
        ) from None
    return Profiler(interval=0.001)


def _child(role: str, workdir: Path, args: argparse.Namespace) -> None:
    setup_file = workdir / "setup.json"
    if role == "setup":
        started = time.perf_counter()
        setup = prepare(workdir, args.rows, args.invalid_share)
        setup["machine"] = machine_facts(os.environ["VROEGSIGNAAL_DATABASE_URL"])
        setup["setup_seconds"] = round(time.perf_counter() - started, 1)
        setup_file.write_text(json.dumps(setup), encoding="utf-8")
        return
    setup = json.loads(setup_file.read_text(encoding="utf-8"))
    if role == "floor":
        figures = run_floor(setup)
    elif role == "ingest":
        figures = run_ingest(setup, args.profile)
    else:
        figures = run_pipeline(setup, args.profile)
    print(json.dumps(figures))


def _run_child(role: str, workdir: Path, *options: str) -> dict[str, Any]:
    """Run one role in a fresh interpreter; a scenario answers with one JSON line."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", role]
    command += ["--workdir", str(workdir), *options]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{role} failed (exit {done.returncode})")
    if role == "setup":
        setup: dict[str, Any] = json.loads((workdir / "setup.json").read_text(encoding="utf-8"))
        return setup
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# -- report ------------------------------------------------------------------------------------
def machine_facts(database_url: str) -> dict[str, Any]:
    import cryptography
    import sqlalchemy
    from sqlalchemy.engine import make_url

    from config import load_settings

    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "date": dt.date.today().isoformat(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity else None,
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cryptography": cryptography.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "ingest_database": make_url(database_url).get_backend_name(),
        "ingest_chunk_rows": load_settings().ingest_chunk_rows,
    }


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, baseline: float | None) -> float | None:
    return round(value / baseline, 2) if value is not None and baseline else None


def print_report(
    facts: dict[str, Any],
    setup: dict[str, Any],
    results: dict[str, dict[str, Any]],
    profiled: bool,
) -> None:
    floor, ingest = results[BASELINE], results["ingest"]
    mib = 1024 * 1024
    print(
        f"\nIngest benchmark: {setup['rows']:,} rows "
        f"(CSV {setup['csv_bytes'] / mib:.1f} MiB, .p7m {setup['p7m_bytes'] / mib:.1f} MiB)"
    )
    print(
        f"{facts['date']}  {facts['cpu_count']} CPUs ({facts['machine']})  "
        f"Python {facts['python']}  SQLite {facts['sqlite']}  "
        f"cryptography {facts['cryptography']}  SQLAlchemy {facts['sqlalchemy']}"
    )
    print(
        f"database: {facts['ingest_database']} (floor and ingest), "
        f"chunk {facts['ingest_chunk_rows']} rows\n"
    )
    if profiled:
        print("PROFILED RUN: the figures include the profiler's overhead\n")
    header = (
        f"{'scenario':<9}{'rows':>9}{'accepted':>10}{'seconds':>9}{'cpu s':>8}"
        f"{'rows/s':>10}{'RSS before':>12}{'peak RSS':>10}{'increase':>10}{'x floor':>9}"
    )
    print(header)
    print("-" * len(header))
    for name in SCENARIOS:
        r = results[name]
        print(
            f"{name:<9}{_number(r['rows_total']):>9}{_number(r['rows_accepted']):>10}"
            f"{_number(r['seconds'], 2):>9}{_number(r['cpu_seconds'], 2):>8}"
            f"{_number(r['rows_per_second']):>10}"
            f"{_number(r['rss_before_mib'], 1) + ' MiB':>12}"
            f"{_number(r['peak_rss_mib'], 1) + ' MiB':>10}"
            f"{_number(r['peak_increase_mib'], 1) + ' MiB':>10}"
            f"{_number(r['seconds'] / floor['seconds'], 1) + 'x':>9}"
        )
    ratio = ingest["seconds"] / floor["seconds"]
    codes = ingest["rejection_codes"]
    print(
        f"\ningest: {ingest['rows_rejected']:,} rows rejected{f' {codes}' if codes else ''}, "
        f"{ingest['rows_outside_window']:,} accepted and flagged outside the convenant window"
    )
    print(
        f"memory: the timed part adds {ingest['peak_increase_mib']} MiB at its peak "
        f"(floor {floor['peak_increase_mib']} MiB); the ingest child peaked at "
        f"{ingest['peak_untimed_mib']} MiB before it (imports)"
    )
    pipeline = results["pipeline"]
    pipeline_ratio = pipeline["seconds"] / ingest["seconds"]
    print(
        f"pipeline: {pipeline['households_scored']:,} households scored, "
        f"{pipeline['rows_total']:,} signals matched into {pipeline['cases_created']:,} cases, "
        f"{pipeline['cases_planned']:,} planned"
    )
    print(f"target: ingest within {AIM:g}x the floor: {_verdict(ratio <= AIM)} ({ratio:.1f}x)")
    print(
        f"target: pipeline within {PIPELINE_AIM:g}x the ingest: "
        f"{_verdict(pipeline_ratio <= PIPELINE_AIM)} ({pipeline_ratio:.2f}x)\n"
    )
    for name, baseline, aim in (("ingest", BASELINE, AIM), ("pipeline", "ingest", PIPELINE_AIM)):
        figures, base = results[name], results[baseline]
        ratio = figures["seconds"] / base["seconds"]
        line = {
            "bench": "ingest",
            "scenario": name,
            "database": facts["ingest_database"],
            "rows": setup["rows"],
            **figures,
            "baseline": {"scenario": baseline, **base},
            "ratio_to_baseline": {
                "seconds": _ratio(figures["seconds"], base["seconds"]),
                "peak_increase_mib": _ratio(
                    figures["peak_increase_mib"], base["peak_increase_mib"]
                ),
            },
            "target": f"seconds at most {aim:g}x the {baseline}'s",
            "met": ratio <= aim,
            "csv_bytes": setup["csv_bytes"],
            "p7m_bytes": setup["p7m_bytes"],
            "profiled": profiled,
            "machine": facts,
        }
        print(json.dumps(line))


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


# -- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the batch (100000)")
    parser.add_argument(
        "--database-url",
        help="database for the ingest scenario (default: SQLite in a temporary folder); "
        "a PostgreSQL database gets a municipality, key and partner added: use a scratch one",
    )
    parser.add_argument(
        "--invalid-share", type=float, default=0.0, help="share of rows with a mistake (0)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the ingest scenario with pyinstrument (printed to stderr; slows it)",
    )
    parser.add_argument("--child", choices=("setup", *SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.workdir, args)
        return
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if not 0 <= args.invalid_share <= 1:
        parser.error("--invalid-share must be between 0 and 1")

    # This process only orchestrates and stays small: every child's ru_maxrss starts at the
    # RSS of its parent (see _peak_rss_kib), so setup runs in a child of its own as well.
    with tempfile.TemporaryDirectory(prefix="vroegsignaal-bench-") as tmp:
        workdir = Path(tmp)
        _environment(workdir, args.database_url)
        options = ["--rows", str(args.rows), "--invalid-share", str(args.invalid_share)]
        setup = _run_child("setup", workdir, *options)
        print(f"setup: {setup['setup_seconds']} s (not timed)", flush=True)
        profile = ["--profile"] if args.profile else []
        results = {name: _run_child(name, workdir, *profile) for name in SCENARIOS}
        print_report(setup["machine"], setup, results, args.profile)


if __name__ == "__main__":
    main()
