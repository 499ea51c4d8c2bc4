"""Reliability: the database going away (503, retries with back-off, nothing lost)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from outreach.models import Case, CaseSignal, DdasDelivery
from signals.db import make_engine, unit_of_work
from signals.enums import Role
from signals.jobs import process_pending_batches
from signals.models import Batch, Client, Municipality, Signal
from signals.runtime import Runtime
from tests.conftest import _settings
from tests.factories import World, csv_bytes, login_as, openssl_batch, row, synthetic_csv
from tests.test_cli import _env, vs
from webapp import create_app
from webapp.outage import is_outage
from webapp.scheduler import JOBS, backoff, build_scheduler, retrying, run_job


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_in_counsellor(client: Any, world: World, email: str = "c@example.nl") -> None:
    """Log a new counsellor in (the project's one log-in helper, second factor included)."""
    login_as(client, world, Role.COUNSELLOR, email)


def _upload(client: Any, world: World, path: Path, sig: Path) -> Any:
    return client.post(
        "/api/v1/batches",
        headers={"Authorization": f"Bearer {world.token}"},
        data={"file": (path.open("rb"), path.name), "signature": (sig.open("rb"), sig.name)},
    )


# -- a database that is not there at all --------------------------------------------------------


@pytest.fixture
def down_app(tmp_path: Path) -> Any:
    url = f"postgresql://vroegsignaal:x@127.0.0.1:{_closed_port()}/vroegsignaal"
    runtime = Runtime(_settings(tmp_path, url), make_engine(url))
    yield create_app(runtime=runtime, WTF_CSRF_ENABLED=False)
    runtime.engine.dispose()


def test_api_answers_503_problem_when_the_database_is_unreachable(down_app: Any) -> None:
    response = down_app.test_client().post(
        "/api/v1/batches",
        headers={"Authorization": "Bearer some-token"},
        data={"file": (b"x", "a.p7m"), "signature": (b"y", "a.p7m.sig")},
    )
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 503 and body["code"] == "database_unavailable"
    assert response.headers["Retry-After"].isdigit()


def test_web_page_answers_503_in_dutch_and_english(down_app: Any, caplog: Any) -> None:
    with caplog.at_level(logging.ERROR):
        response = down_app.test_client().post(
            "/login", data={"email": "jan.jansen@example.nl", "password": "geheim-wachtwoord"}
        )
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "tijdelijk niet beschikbaar" in page and "temporarily unavailable" in page
    assert "Traceback" not in page and "OperationalError" not in page
    assert response.headers["Retry-After"].isdigit()
    # The log names the error type, never what was submitted.
    assert "OperationalError" in caplog.text
    assert "jan.jansen" not in caplog.text and "geheim" not in caplog.text


def test_readiness_reports_the_outage(down_app: Any) -> None:
    assert down_app.test_client().get("/readyz").status_code == 503


# -- jobs: retried with exponential back-off, capped ---------------------------------------------


def _outage() -> OperationalError:
    return OperationalError("SELECT * FROM signals WHERE bsn = %s", ("123456782",), Exception())


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 2, 60) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_job_failing_twice_then_succeeding_is_retried_with_backoff(caplog: Any) -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky(_runtime: Any) -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise _outage()
        return "done"

    job = retrying("flaky", flaky, attempts=5, base=1.5, cap=10, sleep=waits.append)
    with caplog.at_level(logging.WARNING):
        assert job(None) == "done"  # type: ignore[arg-type]
    assert len(calls) == 3 and waits == [1.5, 3.0]
    assert caplog.text.count("database unavailable (OperationalError)") == 2
    assert "123456782" not in caplog.text and "SELECT" not in caplog.text


def test_job_gives_up_after_its_attempts_without_personal_data(caplog: Any) -> None:
    waits: list[float] = []

    def down(_runtime: Any) -> None:
        raise _outage()

    job = retrying("down", down, attempts=4, base=1, cap=3, sleep=waits.append)
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError) as raised:
        job(None)  # type: ignore[arg-type]
    assert waits == [1, 2, 3]
    assert raised.value.__cause__ is None and "123456782" not in str(raised.value)
    assert "gave up after 4 attempts" in caplog.text and "123456782" not in caplog.text


def test_other_job_errors_are_not_retried() -> None:
    waits: list[float] = []

    def broken(_runtime: Any) -> None:
        raise IntegrityError("INSERT", {}, Exception())

    with pytest.raises(IntegrityError):
        retrying("broken", broken, sleep=waits.append)(None)  # type: ignore[arg-type]
    assert waits == []


# -- PostgreSQL going away in the middle: a loopback proxy we can cut -----------------------------


class Proxy:
    """A TCP proxy on loopback in front of PostgreSQL; ``cut()`` drops every connection and
    refuses new ones, ``restore()`` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = _closed_port()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.listener is not None
        # shutdown() wakes the thread blocked in accept(); close() alone would not, and
        # the port would go on accepting.
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets.clear()


def test_postgresql_going_away_mid_test_loses_nothing(
    backend: str, runtime: Runtime, world: World, tmp_path: Path
) -> None:
    """Uploads and pages answer 503 while the database is away, the refused upload is sent
    again and stored once, and the job that found it away retries until it is back."""
    if backend != "postgresql":
        pytest.skip("cutting the connection needs a database server (PostgreSQL)")
    url = make_url(runtime.settings.database_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxied = Runtime(_settings(tmp_path, proxied_url), make_engine(proxied_url))
    app = create_app(runtime=proxied)
    client = app.test_client()
    try:
        log_in_counsellor(client, world)
        assert client.get("/queue").status_code == 200
        first = openssl_batch(world, csv_bytes([row(signaal_id="V-1")]), name="voor.csv.p7m")
        assert _upload(client, world, *first).status_code == 202

        proxy.cut()
        queue = client.get("/queue")
        assert queue.status_code == 503
        assert "tijdelijk niet beschikbaar" in queue.get_data(as_text=True)
        second = openssl_batch(world, csv_bytes([row(signaal_id="V-2")]), name="tijdens.csv.p7m")
        refused = _upload(client, world, *second)
        assert refused.status_code == 503
        assert refused.mimetype == "application/problem+json"
        assert app.test_client().get("/readyz").status_code == 503

        # The job finds the database away twice, then it is back.
        waits: list[float] = []

        def wait(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 2:
                proxy.restore()

        job = retrying("process_batches", process_pending_batches, sleep=wait)
        assert job(proxied) == 1  # the first batch, processed after two waits
        assert waits == [backoff(1), backoff(2)]

        # The partner sends the refused batch again (and once more): stored once.
        assert _upload(client, world, *second).status_code == 202
        assert _upload(client, world, *second).status_code == 200
        assert client.get("/queue").status_code == 200
        process_pending_batches(runtime)
        with unit_of_work(runtime.readers) as session:
            assert session.scalar(select(func.count()).select_from(Batch)) == 2
            ids = set(session.scalars(select(Signal.signal_ref)))
        assert ids == {"V-1", "V-2"}
    finally:
        proxy.cut()
        proxied.engine.dispose()


# -- killed mid-ingest, mid-matching and mid-export: nothing half-stored, all completes ---------

REPO = Path(__file__).resolve().parents[1]


def _killed_at_pause(runtime: Runtime, tmp_path: Path, *args: str, **pause: str) -> None:
    """Run ``vroegsignaal ARGS`` until it reaches its pause point, then SIGKILL it."""
    marker = tmp_path / f"paused-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.pausable", *args],
        env=_env(runtime, PAUSE_MARKER=str(marker), **pause),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if process.poll() is not None:
                raise AssertionError(f"ended before its pause point: {process.stderr.read()!r}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "never reached its pause point"
            time.sleep(0.05)
        assert marker.read_text() == str(process.pid)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()  # type: ignore[union-attr]
    assert process.returncode == -signal.SIGKILL


def _count(runtime: Runtime, table: Any) -> int:
    with unit_of_work(runtime.readers) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_killed_mid_ingest_stores_nothing_of_the_batch_then_completes(
    runtime: Runtime, world: World, tmp_path: Path
) -> None:
    path, sig = openssl_batch(world, synthetic_csv(1_000, prefix="KILL"))
    batch_id = world.receive(path, sig)
    # Killed with the first rows sent to the database, the transaction still open.
    _killed_at_pause(
        runtime, tmp_path, "jobs", "run", "process_batches",
        PAUSE_INSERT_TABLE="signals", PAUSE_AFTER="1",
    )  # fmt: skip
    with unit_of_work(runtime.readers) as session:
        assert session.get(Batch, batch_id).status.value == "processing"  # type: ignore[union-attr]
    assert _count(runtime, Signal) == 0 and _count(runtime, Client) == 0
    # The dead worker's lease runs out; the next run takes the batch up and finishes it.
    time.sleep(1.1)
    restarted = Runtime(
        runtime.settings.model_copy(update={"batch_lease_seconds": 1}), runtime.engine
    )
    assert run_job(restarted, "process_batches") == 1
    with unit_of_work(runtime.readers) as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.status.value == "processed"
        assert batch.rows_total == 1_000 and batch.rows_accepted > 950
        accepted = batch.rows_accepted
    assert _count(runtime, Signal) == accepted


def test_killed_mid_matching_leaves_no_case_without_signals_then_completes(
    runtime: Runtime, world: World, tmp_path: Path
) -> None:
    world.ingest(synthetic_csv(300, prefix="MATCH"))
    signals = _count(runtime, Signal)
    # Killed in the municipality's unit of work with its cases and their first events
    # written and the signals going into them.
    _killed_at_pause(
        runtime, tmp_path, "jobs", "run", "match_signals",
        PAUSE_INSERT_TABLE="case_signals", PAUSE_AFTER="1",
    )  # fmt: skip
    assert _count(runtime, Case) == 0 and _count(runtime, CaseSignal) == 0
    matched_now = run_job(runtime, "match_signals")  # the restart
    assert matched_now["signals"] == signals
    with unit_of_work(runtime.readers) as session:
        empty = session.scalar(
            select(func.count())
            .select_from(Case)
            .outerjoin(CaseSignal, CaseSignal.case_id == Case.id)
            .where(CaseSignal.case_id.is_(None))
        )
        matched = session.scalar(select(func.count(func.distinct(CaseSignal.signal_id))))
        cases = session.scalar(select(func.count()).select_from(Case))
    assert empty == 0 and matched == signals
    assert cases == matched_now["cases_created"] > 20


def test_killed_mid_export_leaves_no_file_then_completes(
    runtime: Runtime, world: World, tmp_path: Path
) -> None:
    world.ingest(synthetic_csv(150, prefix="EXP"))
    run_job(runtime, "match_signals")
    folder = tmp_path / "levering"
    out = folder / "ddas.json"
    args = ("export", "ddas", "--from", "2000-01-01", "--to", "2099-12-31", "--out", str(out))
    contact = {"VROEGSIGNAAL_DDAS_CONTACT_EMAIL": "vroegsignalering@utrecht.example"}
    # Killed with part of the delivery written.
    _killed_at_pause(runtime, tmp_path, *args, PAUSE_EXPORT_BYTES="10000", **contact)
    assert list(folder.iterdir()) == []  # no partial file, under any name
    assert _count(runtime, DdasDelivery) == 0  # and nothing logged as delivered
    report = json.loads(vs(runtime, *args, "--json", **contact).stdout)
    document = json.loads(out.read_bytes())
    assert report["signals"] == _count(runtime, Signal) > 100
    assert sum(len(lev["vroegsignalen"]) for lev in document["leveringen"]) == report["signals"]
    assert [p.name for p in folder.iterdir()] == ["ddas.json"]
    assert _count(runtime, DdasDelivery) == 1


def test_an_export_asked_for_in_the_browser_shows_progress_survives_a_kill_and_completes(
    runtime: Runtime, world: World, tmp_path: Path
) -> None:
    """The scheduler's maker of DDAS exports, killed halfway: the page showed how far it was,
    no file is left, and the next run makes the export from the start."""
    from outreach.exports import make_exports

    world.ingest(synthetic_csv(600, prefix="EXQ"))
    run_job(runtime, "match_signals")
    contact = {"ddas_contact_email": "vroegsignalering@utrecht.example"}
    settings = runtime.settings.model_copy(update=contact)
    app = create_app(runtime=Runtime(settings, runtime.engine), TESTING=True)
    client = app.test_client()
    login_as(client, world, Role.ADMIN, "beheer@example.nl")
    page = client.get("/ddas").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert token is not None
    form = {"van": "2000-01-01", "tot": "2099-12-31", "gemeente": "alle",
            "csrf_token": token.group(1)}  # fmt: skip
    path = client.post("/ddas", data=form).headers["Location"]
    # Killed with a good part of the document written (some 150,000 bytes of signals).
    _killed_at_pause(runtime, tmp_path, "jobs", "run", "make_ddas_exports",
                     PAUSE_EXPORT_BYTES="100000",
                     VROEGSIGNAAL_DDAS_CONTACT_EMAIL=contact["ddas_contact_email"])  # fmt: skip
    state = client.get(f"{path}/status").get_json()
    assert state["status"] == "running" and state["total"] == 600
    assert 200 <= state["done"] < 600, state  # told while it went
    assert state["progress"] == f"{state['done']} van 600 signalen"
    folder = Path(settings.ddas_exports_dir)
    assert list(folder.iterdir()) == []  # nothing of the half-made file, under any name
    assert _count(runtime, DdasDelivery) == 0
    assert make_exports(Runtime(settings, runtime.engine)) == 1
    state = client.get(f"{path}/status").get_json()
    assert (state["status"], state["done"], state["total"]) == ("ready", 600, 600)
    document = json.loads(client.get(f"{path}/bestand").get_data())
    assert sum(len(lev["vroegsignalen"]) for lev in document["leveringen"]) == 600
    assert _count(runtime, DdasDelivery) == 1


def test_database_errors_never_quote_submitted_values(runtime: Runtime) -> None:
    """A failing statement's message (which reaches tracebacks and logs) hides its values."""
    with pytest.raises(IntegrityError) as raised, unit_of_work(runtime.sessions) as session:
        session.add(Municipality(code="0344", name="Utrecht"))
        session.add(Municipality(code="0344", name="Geheimstad"))
        session.flush()
    assert "Geheimstad" not in str(raised.value) and "hidden" in str(raised.value)


def test_every_scheduled_job_retries_database_outages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    runtime = Runtime(_settings(tmp_path, url), make_engine(url))
    scheduled = {job.id: job.func for job in build_scheduler(runtime).get_jobs()}
    assert set(scheduled) == set(JOBS)
    for name, function in scheduled.items():
        # retrying(name, scheduled(name, setting)): the job's own function inside
        assert function.__wrapped__.job is JOBS[name][0], name
    runtime.engine.dispose()


def test_sqlite_lock_is_an_outage_but_a_wrong_statement_is_not() -> None:
    def wrapped(message: str) -> OperationalError:
        return OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))

    assert is_outage(wrapped("database is locked"))
    assert is_outage(wrapped("unable to open database file"))
    assert not is_outage(wrapped("no such table: signals"))
    assert is_outage(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert not is_outage(IntegrityError("INSERT", {}, Exception()))
