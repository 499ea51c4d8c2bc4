"""Load test: partners uploading batches and counsellors reading the queue, at once, on loopback.

    .venv/bin/python bench/load.py [--users 20] [--partners 10] [--duration 30]
                                   [--rows 20] [--database-url postgresql://...]

Setup (not timed): a fresh database (a temporary SQLite file unless ``--database-url``, which
must be empty) upgraded by the migrations; one municipality with a recipient key; a partner
per uploading user (its own key and API token) and a counsellor per reading user (logged in
with password and second factor); a starting set of batches ingested and matched so the
queue holds cases. Then the real processes start: ``vroegsignaal run`` (the threaded
werkzeug server) on a free loopback port and ``vroegsignaal scheduler`` (batches processed
every second, as a busy production would set it). Rate limits are lifted for the run: the
bench measures the application, not the brake (all users share one loopback address).

Timed, for ``--duration`` seconds: ``--users`` concurrent users, each a thread with its own
HTTP connection, one request after the other without think time. A partner packs a new
batch of ``--rows`` rows (encrypt and sign, not timed), uploads it (``POST
/api/v1/batches``) and reads its status once (``GET /api/v1/batches/{id}``); a counsellor
loads ``/queue``. The latency of every request is recorded; p50, p95, p99 and max per
endpoint are printed.

Afterwards the bench waits for the scheduler to finish and checks that no batch was lost:
every upload answered 202 is in the database, processed, with all its rows accounted for
(accepted plus rejected equals sent) and exactly its accepted signals stored; and no
request answered 5xx. The exit code is 1 if any check fails.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pyotp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from config import Settings
from signals.db import make_engine, unit_of_work
from signals.enums import BatchSource, BatchStatus, PartnerType, Role
from signals.envelope import new_recipient_key, pack
from signals.jobs import ingest_file
from signals.models import Batch, Municipality, Signal
from signals.runtime import Runtime
from signals.service import add_municipality, add_partner, add_recipient_key, add_user
from signals.synthetic import Population, signal_rows, to_csv
from webapp.cli import upgrade_database
from webapp.scheduler import run_job

VS = str(Path(sys.executable).with_name("vroegsignaal"))
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
UPLOAD, STATUS, QUEUE = "POST /api/v1/batches", "GET /api/v1/batches/{id}", "GET /queue"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Partner:
    """A partner's key, token and a supply of unique rows to send."""

    def __init__(self, name: str, token: str, key: rsa.RSAPrivateKey, rows: list[dict[str, str]]):
        self.name, self.token, self.key, self.rows = name, token, key, rows
        self.sent = 0

    def next_batch(self, recipient: object, size: int) -> tuple[bytes, bytes]:
        """A new batch: ``size`` rows with signal ids never sent before, encrypted, signed."""
        start = self.sent * size
        self.sent += 1
        rows = []
        for n in range(size):
            data = dict(self.rows[(start + n) % len(self.rows)])
            data["signaal_id"] = f"{self.name}-{self.sent}-{n}"
            rows.append(data)
        return pack(to_csv(rows), recipient, self.key)  # type: ignore[arg-type]


def setup(
    runtime: Runtime, partners: int, counsellors: int, rows: int
) -> tuple[object, list[Partner], list[tuple[str, str, str]]]:
    """Municipality, key, partners and counsellors; a starting set of batches in the queue."""
    cert, key = new_recipient_key("Bench 0344")
    population = Population(2_000, seed=11)
    today = dt.date.today()
    supply = list(
        signal_rows(population, PartnerType.HUUR, 4_000, today - dt.timedelta(days=25),
                    today - dt.timedelta(days=1), seed=11, id_prefix="L")
    )  # fmt: skip
    made: list[Partner] = []
    staff = []
    with unit_of_work(runtime.sessions) as session:
        municipality = add_municipality(session, "0344", "Utrecht")
        add_recipient_key(session, runtime.protector, municipality, cert, key)
        for n in range(partners):
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            created = add_partner(session, f"Partner {n}", PartnerType.HUUR, [municipality], public)
            made.append(Partner(created.partner.id, created.token, private, supply))
        for n in range(counsellors):
            email = f"counsellor{n}@bench.example"
            user = add_user(
                session, email, Role.COUNSELLOR, [municipality],
                protector=runtime.protector, totp_roles=runtime.settings.totp_roles,
            )  # fmt: skip
            staff.append((email, user.password, user.totp_secret or ""))
    # A queue with cases in it: every partner's first batches through the real intake.
    folder = Path(runtime.settings.inbox_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for partner in made:
        for _ in range(5):
            p7m, sig = partner.next_batch(cert, rows * 5)
            path = folder / f"{partner.name}-{partner.sent}.p7m"
            path.write_bytes(p7m)
            path.with_suffix(".sig").write_bytes(sig)
            ingest_file(runtime, partner.name, path, path.with_suffix(".sig"), BatchSource.CLI)
    for job in ("match_signals", "check_residents", "plan_cases"):
        run_job(runtime, job)
    return cert, made, staff


def log_in(client: httpx.Client, email: str, password: str, secret: str) -> None:
    """As a counsellor does: password, then the code of the second factor."""
    token = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
    answer = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert answer.status_code == 302, ("log-in", answer.status_code)
    if answer.headers["location"].endswith("/login/totp"):
        token = CSRF.search(client.get("/login/totp").text).group(1)  # type: ignore[union-attr]
        code = pyotp.TOTP(secret).now()
        answer = client.post("/login/totp", data={"code": code, "csrf_token": token})
        assert answer.status_code in (200, 302), ("second factor", answer.status_code)
    assert client.get("/queue").status_code == 200


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.accepted: dict[str, int] = {}  # batch id -> rows sent
        self.failures: list[str] = []

    def timed(self, name: str, call: object) -> httpx.Response:
        started = time.perf_counter()
        response: httpx.Response = call()  # type: ignore[operator]
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.samples[name].append(elapsed)
            self.statuses[name][response.status_code] += 1
        return response


def partner_user(base: str, partner: Partner, cert: object, rows: int, stop: threading.Event,
                 rec: Recorder) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {partner.token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        while not stop.is_set():
            p7m, sig = partner.next_batch(cert, rows)
            files = {"file": ("batch.csv.p7m", p7m), "signature": ("batch.csv.p7m.sig", sig)}
            answer = rec.timed(UPLOAD, lambda: client.post("/api/v1/batches", files=files))  # noqa: B023
            if answer.status_code != 202:
                with rec.lock:
                    rec.failures.append(f"upload answered {answer.status_code}")
                continue
            batch_id = answer.json()["id"]
            with rec.lock:
                rec.accepted[batch_id] = rows
            rec.timed(STATUS, lambda: client.get(f"/api/v1/batches/{batch_id}"))  # noqa: B023


def counsellor_user(base: str, login: tuple[str, str, str], stop: threading.Event,
                    rec: Recorder) -> None:  # fmt: skip
    with httpx.Client(base_url=base, timeout=120) as client:
        log_in(client, *login)
        while not stop.is_set():
            answer = rec.timed(QUEUE, lambda: client.get("/queue"))
            if answer.status_code != 200:
                with rec.lock:
                    rec.failures.append(f"queue answered {answer.status_code}")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def wait_until_processed(runtime: Runtime, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with unit_of_work(runtime.readers) as session:
            waiting = session.scalar(
                select(func.count())
                .select_from(Batch)
                .where(Batch.status.in_([BatchStatus.RECEIVED, BatchStatus.PROCESSING]))
            )
        if not waiting:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise SystemExit(f"batches still waiting after {timeout:.0f} s")


def check_nothing_lost(runtime: Runtime, rec: Recorder) -> list[str]:
    problems = []
    with unit_of_work(runtime.readers) as session:
        for batch_id, rows in rec.accepted.items():
            batch = session.get(Batch, batch_id)
            if batch is None:
                problems.append(f"batch {batch_id} answered 202 but is not stored")
                continue
            if batch.status is not BatchStatus.PROCESSED:
                problems.append(f"batch {batch_id} is {batch.status.value}")
                continue
            if batch.rows_total != rows or batch.rows_accepted + batch.rows_rejected != rows:
                problems.append(f"batch {batch_id}: rows do not add up")
            stored = session.scalar(
                select(func.count()).select_from(Signal).where(Signal.batch_id == batch_id)
            )
            if stored != batch.rows_accepted:
                problems.append(f"batch {batch_id}: {stored} signals for {batch.rows_accepted}")
    for name, statuses in rec.statuses.items():
        errors = sum(n for code, n in statuses.items() if code >= 500)
        if errors:
            problems.append(f"{name}: {errors} answers 5xx")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--partners", type=int, help="uploading users (default: half)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--rows", type=int, default=20, help="rows per uploaded batch")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    partners = args.partners if args.partners is not None else args.users // 2
    counsellors = args.users - partners
    folder = tempfile.TemporaryDirectory(prefix="vs-bench-load-")
    url = args.database_url or f"sqlite:///{folder.name}/load.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VROEGSIGNAAL_")},
        "VROEGSIGNAAL_DATABASE_URL": url,
        "VROEGSIGNAAL_SECRET_KEY": base64.b64encode(os.urandom(24)).decode(),
        "VROEGSIGNAAL_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
        "VROEGSIGNAAL_INBOX_DIR": f"{folder.name}/inbox",
        "VROEGSIGNAAL_MODELS_DIR": f"{folder.name}/models",
        "VROEGSIGNAAL_INGEST_POLL_SECONDS": "1",
        "VROEGSIGNAAL_RATE_LIMIT_LOGIN": "100000 per minute",
        "VROEGSIGNAAL_RATE_LIMIT_UPLOAD": "100000 per minute",
        "VROEGSIGNAAL_RATE_LIMIT_TOKEN": "100000 per minute",
    }
    settings = Settings(
        secret_key=env["VROEGSIGNAAL_SECRET_KEY"], data_key=env["VROEGSIGNAAL_DATA_KEY"],
        database_url=url, inbox_dir=env["VROEGSIGNAAL_INBOX_DIR"],
        models_dir=env["VROEGSIGNAAL_MODELS_DIR"],
    )  # type: ignore[call-arg]  # fmt: skip
    engine = make_engine(url)
    upgrade_database(engine)
    runtime = Runtime(settings, engine)
    started = time.perf_counter()
    cert, partner_list, staff = setup(runtime, partners, counsellors, args.rows)
    with unit_of_work(runtime.readers) as session:
        before = session.scalar(select(func.count()).select_from(Batch))
        assert session.scalar(select(func.count()).select_from(Municipality)) == 1
    print(f"setup {time.perf_counter() - started:.1f} s: {before} batches already in", flush=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(Path(folder.name) / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([VS, "run", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    scheduler = subprocess.Popen([VS, "scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        rec = Recorder()
        stop = threading.Event()
        threads = [
            threading.Thread(target=partner_user, args=(base, p, cert, args.rows, stop, rec))
            for p in partner_list
        ] + [threading.Thread(target=counsellor_user, args=(base, s, stop, rec)) for s in staff]
        for thread in threads:
            thread.start()
        time.sleep(args.duration)
        stop.set()
        for thread in threads:
            thread.join()
        drained = wait_until_processed(runtime, timeout=600)
    finally:
        for process in (server, scheduler):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        log.close()

    problems = check_nothing_lost(runtime, rec) + rec.failures[:5]
    with unit_of_work(runtime.readers) as session:
        total = session.scalar(select(func.count()).select_from(Batch))
    if total != before + len(rec.accepted):
        problems.append(f"{total} batches stored, expected {before + len(rec.accepted)}")
    machine = {"date": dt.date.today().isoformat(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "database": engine.dialect.name}  # fmt: skip
    print(f"{args.users} users ({partners} partners, {counsellors} counsellors) for "
          f"{args.duration:.0f} s on {engine.dialect.name}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'endpoint':<28}{'requests':>9}{'per s':>7}{'p50 ms':>8}{'p95 ms':>8}"
          f"{'p99 ms':>8}{'max ms':>8}  statuses")  # fmt: skip
    results = {}
    for name in (UPLOAD, STATUS, QUEUE):
        samples = rec.samples.get(name, [])
        if not samples:
            continue
        row = {
            "requests": len(samples),
            "per_s": round(len(samples) / args.duration, 1),
            "p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(percentile(samples, 95), 1),
            "p99_ms": round(percentile(samples, 99), 1),
            "max_ms": round(max(samples), 1),
            "statuses": dict(rec.statuses[name]),
        }
        results[name] = row
        print(f"{name:<28}{row['requests']:>9}{row['per_s']:>7}{row['p50_ms']:>8}"
              f"{row['p95_ms']:>8}{row['p99_ms']:>8}{row['max_ms']:>8}"
              f"  {row['statuses']}")  # fmt: skip
    print(f"batches accepted during the run: {len(rec.accepted)}; all processed "
          f"{drained:.1f} s after the run ended; lost: {len(problems)} problems")  # fmt: skip
    for problem in problems[:20]:
        print("  PROBLEM:", problem)
    print(json.dumps({"bench": "load", "users": args.users, "partners": partners,
                      "duration_s": args.duration, "rows_per_batch": args.rows,
                      "accepted": len(rec.accepted), "problems": len(problems),
                      "endpoints": results, "machine": machine}))  # fmt: skip
    engine.dispose()
    folder.cleanup()
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
