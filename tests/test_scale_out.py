"""Scaled out: two web workers (gunicorn) and two schedulers against one PostgreSQL.

Real processes on a free loopback port. Three partners upload batches to the web workers at
once; both schedulers run every job on a one- and two-second timetable. Afterwards every
batch is processed exactly once with all its rows, no job ran twice for one slot of its
timetable, and no two runs of one job overlapped, whichever process ran them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from outreach.models import CaseSignal
from signals.db import unit_of_work
from signals.enums import BatchStatus
from signals.models import Batch, JobState, Signal
from signals.runtime import Runtime
from tests.factories import World, openssl_batch, synthetic_csv
from tests.test_cli import _env

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METRICS_TOKEN = "m" * 40
ROWS = 30
BATCHES_PER_PARTNER = 4

_LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO webapp\.scheduler: job (?P<job>\w+): "
    r"(?P<what>started|finished in [\d.]+ s|failed|skipped, [\w ]+) "
    r"\(slot (?P<slot>\d+), (?P<runner>[^)]+)\)$"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(access_log: Path, path: str) -> set[str]:
    """The pids of the gunicorn workers that answered requests for ``path``."""
    if not access_log.exists():
        return set()
    return {line.split()[0] for line in access_log.read_text().splitlines() if f" {path}" in line}


def _healthz(base: str) -> int:
    try:
        return httpx.get(f"{base}/healthz", timeout=5).status_code
    except httpx.TransportError:
        return 0


def _runs(logs: list[Path]) -> list[dict[str, Any]]:
    """Every run in the schedulers' logs: job, slot, runner, start and end."""
    open_runs: dict[tuple[str, str], dict[str, Any]] = {}
    runs = []
    for path in logs:
        for line in path.read_text().splitlines():
            match = _LINE.match(line)
            if not match:
                continue
            at = dt.datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f")
            key = (match["job"], match["runner"])
            if match["what"].startswith("skipped"):
                continue
            if match["what"] == "started":
                assert key not in open_runs, f"{key} started twice without ending"
                open_runs[key] = {"job": match["job"], "slot": int(match["slot"]), "start": at}
                open_runs[key]["runner"] = match["runner"]
            else:
                run = open_runs.pop(key)
                run["end"] = at
                run["ok"] = match["what"] != "failed"
                runs.append(run)
    return runs


def test_two_schedulers_and_two_web_workers_run_each_job_once_and_each_batch_once(
    backend: str, runtime: Runtime, world: World, tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("several processes against one database server: PostgreSQL")
    partners = [(world.partner_id, world.token, "rsa")]
    for number, key in enumerate(["rsa2", "ed25519"], start=2):
        partner_id, token = world.add_partner(f"Woonstichting {number}", key=key)
        partners.append((partner_id, token, key))
    uploads = []
    for partner_id, token, key in partners:
        for n in range(BATCHES_PER_PARTNER):
            prefix = f"P{partner_id[:4]}N{n}-"
            data = synthetic_csv(ROWS, seed=n + 1, prefix=prefix)
            path, sig = openssl_batch(world, data, name=f"{prefix}.csv.p7m", key=key)
            uploads.append((token, path.read_bytes(), sig.read_bytes()))

    port = _free_port()
    env = _env(
        runtime,
        VROEGSIGNAAL_INGEST_POLL_SECONDS="1",
        VROEGSIGNAAL_INBOX_POLL_SECONDS="2",
        VROEGSIGNAAL_SCORING_POLL_SECONDS="2",
        VROEGSIGNAAL_MATCHING_POLL_SECONDS="2",
        VROEGSIGNAAL_RATE_LIMIT_UPLOAD="1000 per minute",
        VROEGSIGNAAL_METRICS_TOKEN=METRICS_TOKEN,
        VROEGSIGNAAL_MODELS_DIR=str(tmp_path / "models"),
    )
    access_log = tmp_path / "access.log"
    logs = [tmp_path / "scheduler-1.log", tmp_path / "scheduler-2.log"]
    processes: list[subprocess.Popen[bytes]] = []
    files = []
    try:
        web_log = (tmp_path / "web.log").open("wb")
        files.append(web_log)
        processes.append(
            subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "--workers=2",
                    f"--bind=127.0.0.1:{port}",
                    f"--access-logfile={access_log}",
                    "--access-logformat=%(p)s %(s)s %(m)s %(U)s",
                    "webapp.wsgi:app",
                ],
                env=env,
                cwd=REPO,
                stdout=web_log,
                stderr=web_log,
            )
        )
        for path in logs:
            out = path.open("wb")
            files.append(out)
            processes.append(
                subprocess.Popen(
                    [str(BIN / "vroegsignaal"), "scheduler"],
                    env=env,
                    cwd=REPO,
                    stdout=out,
                    stderr=out,
                )
            )
        base = f"http://127.0.0.1:{port}"
        # Both workers up: requests at once until each has answered one.
        deadline = time.monotonic() + 90
        while len(_workers(access_log, "/healthz")) < 2:
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(_healthz, [base] * 4))
            assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()[-2000:]
            time.sleep(0.2)

        def upload(item: tuple[str, bytes, bytes]) -> int:
            token, ciphertext, signature = item
            response = httpx.post(
                f"{base}/api/v1/batches",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("batch.csv.p7m", ciphertext), "signature": ("b.sig", signature)},
                timeout=60,
            )
            return response.status_code

        # Every upload at once, spread over both workers.
        with ThreadPoolExecutor(max_workers=len(uploads)) as pool:
            statuses = list(pool.map(upload, uploads))
        assert statuses == [202] * len(uploads)

        # Both schedulers work until every batch is processed and every signal is in a case.
        expected_signals = ROWS * len(uploads)
        deadline = time.monotonic() + 180
        while True:
            with unit_of_work(runtime.readers) as session:
                processed = session.scalar(
                    select(func.count()).where(Batch.status == BatchStatus.PROCESSED)
                )
                in_cases = session.scalar(select(func.count()).select_from(CaseSignal))
            if processed == len(uploads) and in_cases == expected_signals:
                break
            for process in processes:
                assert process.poll() is None, "a process ended early"
            assert time.monotonic() < deadline, f"{processed} batches, {in_cases} in cases"
            time.sleep(0.5)
        time.sleep(4)  # a few more slots of every job, with nothing left to do
        for process in processes:
            assert process.poll() is None, "a process ended early"

        metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert metrics.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
        batches = {s.labels["status"]: s.value for s in families["vroegsignaal_batches"].samples}
        assert batches["processed"] == len(uploads) and batches["received"] == 0
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for file in files:
            file.close()

    # Each batch once: claimed once (one attempt), all its rows stored, none twice.
    with unit_of_work(runtime.readers) as session:
        batches_stored = session.execute(select(Batch.attempts, Batch.rows_accepted)).all()
        signals = session.scalar(select(func.count()).select_from(Signal))
        distinct = session.scalar(
            select(func.count()).select_from(
                select(Signal.partner_id, Signal.signal_ref).distinct().subquery()
            )
        )
        states = {s.name: s for s in session.scalars(select(JobState))}
    assert len(batches_stored) == len(uploads)
    assert all(attempts == 1 for attempts, _ in batches_stored), batches_stored
    assert sum(accepted for _, accepted in batches_stored) == expected_signals
    assert signals == distinct == expected_signals

    # Each job once per slot, never two runs of one job at the same time.
    runs = _runs(logs)
    # Both schedulers were at work: each ran jobs or found them run by the other.
    for path in logs:
        seen = [m for line in path.read_text().splitlines() if (m := _LINE.match(line))]
        assert seen, f"{path.name}: no job started or skipped"
    by_slot: dict[tuple[str, int], list[str]] = defaultdict(list)
    for run in runs:
        by_slot[run["job"], run["slot"]].append(run["runner"])
    twice = {key: who for key, who in by_slot.items() if len(who) > 1}
    assert not twice, f"ran twice in one slot: {twice}"
    by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_job[run["job"]].append(run)
    for job, job_runs in by_job.items():
        job_runs.sort(key=lambda run: run["start"])
        for earlier, later in itertools.pairwise(job_runs):
            assert later["start"] >= earlier["end"], f"{job}: runs overlapped"
    assert all(run["ok"] for run in runs), [run for run in runs if not run["ok"]]
    for job in ("process_batches", "match_signals", "score_households", "plan_cases"):
        assert states[job].runs == len(by_job[job]) > 1, job
