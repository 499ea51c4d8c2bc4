"""Every benchmark scenario against SQLite and PostgreSQL, each figure beside its baseline.

    .venv/bin/python bench/run.py            # the full sizes (make bench; about an hour)
    .venv/bin/python bench/run.py --quick    # small sizes, about two minutes (make bench-quick)
    .venv/bin/python bench/run.py --only ingest,queue --database sqlite

PostgreSQL is used when ``BENCH_DATABASE_URL`` or ``TEST_DATABASE_URL`` names a server, or
a local server answers on its socket (``postgresql:///postgres`` as the current user). Every
scenario gets a fresh schema of its own there, dropped afterwards; SQLite scenarios use a
temporary file. Each scenario script runs in a child process and prints what it measured;
this script passes their tables through on stderr and prints on stdout one JSON line per
scenario and database: the figures, the baseline's figures measured in the same run on the
same data, the target and whether it is met. The lines are also appended to
``bench/out/results.jsonl``. A target not met is a finding, not a failure: the exit status
is non-zero only when a scenario could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

#: scenario -> (script, arguments per mode); "ingest" runs once per size
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "ingest": [100_000, 1_000_000],
        "queue": ["--signals", "1000000", "--cases", "200000", "--seconds", "20"],
        "dashboard": ["--signals", "1000000", "--municipalities", "10"],
        "ddas_export": ["--signals", "1000000"],
        "scoring": ["--households", "200000"],
    },
    "quick": {
        "ingest": [2_000, 10_000],
        "queue": ["--signals", "40000", "--cases", "10000", "--seconds", "3"],
        "dashboard": ["--signals", "20000", "--municipalities", "3"],
        "ddas_export": ["--signals", "10000"],
        "scoring": ["--households", "50000"],
    },
}
SCRIPTS = {
    "ingest": "ingest.py",
    "queue": "outreach_queue.py",
    "dashboard": "dashboard.py",
    "ddas_export": "ddas_export.py",
    "scoring": "model_scoring.py",
}
#: scenarios that use no database run once
NO_DATABASE = {"scoring"}
MEMORY_GROWTH_TARGET = 1.5


def postgresql_url() -> tuple[str | None, str]:
    """A PostgreSQL server to use, or None and why not."""
    from sqlalchemy import text

    from signals.db import make_engine

    candidates = [
        os.environ.get("BENCH_DATABASE_URL"),
        os.environ.get("TEST_DATABASE_URL"),
        "postgresql:///postgres",
    ]
    reason = "no BENCH_DATABASE_URL or TEST_DATABASE_URL, and no local server answered"
    for url in filter(None, candidates):
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return url, ""
        except Exception as error:
            reason = f"{type(error).__name__} connecting to PostgreSQL"
        finally:
            engine.dispose()
    return None, reason


class Schema:
    """A fresh schema on the server for one scenario; its URL points there."""

    def __init__(self, base: str) -> None:
        from sqlalchemy.engine import make_url

        from signals.db import make_engine

        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        self.admin = make_engine(base)
        url = make_url(base).update_query_dict({"options": f"-csearch_path={self.name}"})
        self.url = url.render_as_string(hide_password=False)

    def __enter__(self) -> str:
        from sqlalchemy import text

        with self.admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{self.name}"'))
        return self.url

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import text

        with self.admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self.admin.dispose()


def run_script(script: str, arguments: list[str]) -> list[dict[str, Any]]:
    """Run one bench script; its table goes to stderr, its JSON lines are returned."""
    command = [sys.executable, str(HERE / script), *arguments]
    print(f"\n$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        if line.startswith("{"):
            lines.append(json.loads(line))
        else:
            sys.stderr.write(line)
    if process.wait() != 0:
        raise RuntimeError(f"{script} failed (exit {process.returncode})")
    return lines


def on_database(script: str, arguments: list[str], base: str | None) -> list[dict[str, Any]]:
    """Run ``script`` on a fresh database: a new schema on the server, else SQLite."""
    if base is None:
        return run_script(script, arguments)
    with Schema(base) as url:
        return run_script(script, [*arguments, "--database-url", url])


def scenario_lines(name: str, mode: str, base: str | None) -> list[dict[str, Any]]:
    """The JSON lines of one scenario on one database (``base``: PostgreSQL, else SQLite)."""
    sizes = SIZES[mode][name]
    out: list[dict[str, Any]] = []
    if name == "ingest":
        by_rows = {}
        for rows in sizes:
            lines = on_database(SCRIPTS[name], ["--rows", str(rows)], base)
            by_rows[rows] = {line["scenario"]: line for line in lines}
            out.extend(lines)
        small, large = (by_rows[rows]["ingest"] for rows in sizes)
        growth = large["peak_increase_mib"] / max(small["peak_increase_mib"], 0.1)
        out.append(
            {
                "bench": "ingest",
                "scenario": "ingest_memory",
                "rows": large["rows"],
                "peak_increase_mib": large["peak_increase_mib"],
                "ratio_to_baseline": round(growth, 2),
                "baseline": {
                    "what": f"peak RSS added by the ingest of {small['rows']:,} rows",
                    "rows": small["rows"],
                    "peak_increase_mib": small["peak_increase_mib"],
                },
                "target": f"at most {MEMORY_GROWTH_TARGET:g}x the smaller batch's",
                "met": growth <= MEMORY_GROWTH_TARGET,
            }
        )
        return out
    return on_database(SCRIPTS[name], sizes, base)


def summary(line: dict[str, Any]) -> str:
    """One readable line: the scenario's figure beside its baseline."""
    name = line.get("scenario") or line.get("bench")
    met = line.get("met")
    verdict = "" if met is None else ("met" if met else "NOT met")
    if "skipped" in line:
        return f"{line['database']:<11}{name:<16}skipped: {line['skipped']}"
    if name in ("ingest", "pipeline"):
        base = line["baseline"]
        figure = (
            f"{line['rows']:>9,} rows {line['seconds']:>8.2f} s ({line['rows_per_second']:,}/s)"
            f" beside {base['scenario']} {base['seconds']:.2f} s: "
            f"{line['ratio_to_baseline']['seconds']}x"
        )
    elif name == "ingest_memory":
        figure = (
            f"{line['rows']:>9,} rows add {line['peak_increase_mib']} MiB beside "
            f"{line['baseline']['peak_increase_mib']} MiB for {line['baseline']['rows']:,}: "
            f"{line['ratio_to_baseline']}x"
        )
    elif name == "queue":
        base = line["baseline"]
        figure = (
            f"{line['counsellors']} counsellors p50 {line['p50_ms']} / p95 {line['p95_ms']} ms "
            f"beside SQL p95 {base['p95_ms']} ms (no pause: p95 {line['no_pause']['p95_ms']} ms)"
        )
    elif name == "dashboard":
        worst = max(line["seconds"], line["newest_month_changed_seconds"])
        figure = (
            f"{line['scope'][:34]}: {worst:.3f} s (worst of pre-counted and newest month "
            f"changed) beside count {line['baseline']['seconds']:.3f} s"
        )
    elif name == "scoring":
        figure = f"{line['figure']} {line['value']:,} (target {line.get('target', '-')})"
    elif name == "ddas_export":
        base = line["baseline"]
        figure = (
            f"{line['signals']:,} signals {line['seconds']} s ({line['signals_per_s']:,}/s, "
            f"+{line['memory_added_mib']} MiB) beside json.dumps {base['seconds']} s: "
            f"{line['ratio_to_baseline']}x"
        )
    else:
        figure = ", ".join(
            f"{k}={v}" for k, v in line.items() if k not in ("machine", "bench", "database")
        )[:110]
    return f"{line.get('database', '-'):<11}{name:<16}{figure}  {verdict}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes)")
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCRIPTS))
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = set(names) - set(SCRIPTS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    databases: list[tuple[str, str | None]] = []
    skipped = ""
    if args.database in ("sqlite", "both"):
        databases.append(("sqlite", None))
    if args.database in ("postgresql", "both"):
        url, skipped = postgresql_url()
        if url:
            databases.append(("postgresql", url))
    results_file = HERE / "out" / "results.jsonl"
    results_file.parent.mkdir(exist_ok=True)
    started = time.perf_counter()
    collected: list[dict[str, Any]] = []
    failures = 0

    def emit(line: dict[str, Any]) -> None:
        line = {"mode": mode, **line, "run_at": dt.datetime.now(dt.UTC).isoformat()}
        collected.append(line)
        print(json.dumps(line), flush=True)
        with results_file.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(line) + "\n")

    if skipped:
        emit({"database": "postgresql", "scenario": "all", "skipped": skipped})
    for name in names:
        for database, base in databases if name not in NO_DATABASE else [("-", None)]:
            try:
                lines = scenario_lines(name, mode, base)
            except Exception as error:
                failures += 1
                emit({"database": database, "scenario": name, "error": str(error)})
                continue
            for line in lines:
                emit({"database": database, **line})
    minutes = (time.perf_counter() - started) / 60
    print(f"\nSummary ({mode}, {minutes:.1f} min):", file=sys.stderr)
    for line in collected:
        if "error" in line:
            print(f"{line['database']:<11}{line['scenario']:<16}FAILED: {line['error']}",
                  file=sys.stderr)  # fmt: skip
        else:
            print(summary(line), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
