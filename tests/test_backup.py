"""Back-up and restore: SQLite online while a writer works, PostgreSQL with pg_dump/pg_restore."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from signals.db import make_engine, unit_of_work
from signals.models import Batch, Municipality, Partner, Signal
from signals.runtime import Runtime
from tests.factories import World, csv_bytes, row
from webapp.cli import upgrade_database

DOCS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def test_sqlite_backup_while_a_writer_is_busy(tmp_path: Path) -> None:
    """Back up a live database that another connection keeps writing to; the copy opens,
    passes its integrity check and holds every transaction committed before it began, each
    whole (no half transaction)."""
    database = tmp_path / "live.db"
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    upgrade_database(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, tx INTEGER, part INTEGER)"))
    stop = threading.Event()
    committed: list[int] = []

    def writer() -> None:
        tx = 0
        while not stop.is_set():
            tx += 1
            with engine.begin() as conn:  # ten rows per transaction
                conn.execute(
                    text("INSERT INTO probe (tx, part) VALUES (:tx, :part)"),
                    [{"tx": tx, "part": p} for p in range(10)],
                )
            committed.append(tx)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(committed) < 50:
            time.sleep(0.01)
        before = len(committed)
        out = tmp_path / "backups" / "vroegsignaal-20261123.db"
        settings = {"VROEGSIGNAAL_DATABASE_URL": url}
        result = json.loads(_vs(tmp_path, "backup", "--out", str(out), "--json", **settings))
        after = len(committed)
    finally:
        stop.set()
        thread.join()
    assert after > before  # the writer kept going during the back-up
    assert result["out"] == str(out) and result["bytes"] == out.stat().st_size
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left
    copy = sqlite3.connect(out)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        txs = dict(copy.execute("SELECT tx, count(*) FROM probe GROUP BY tx").fetchall())
        assert set(copy.execute("SELECT tx FROM probe").fetchall()) <= {(t,) for t in txs}
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        copy.close()
    assert set(txs.values()) == {10}  # every transaction whole
    assert max(txs) >= before and sorted(txs) == list(range(1, max(txs) + 1))
    # The restored copy is a working database for the app.
    restored = make_engine(f"sqlite:///{out}")
    try:
        upgrade_database(restored)  # already at head: nothing to do
        with restored.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM probe")) == 10 * len(txs)
    finally:
        restored.dispose()
        engine.dispose()
    # A second back-up to the same name is refused: a back-up is never overwritten.
    again = _vs(tmp_path, "backup", "--out", str(out), check=False, **settings)
    assert "exists" in again


def test_backup_refuses_postgresql_with_the_procedure(tmp_path: Path) -> None:
    url = "postgresql://vroegsignaal:x@127.0.0.1:5432/vroegsignaal"
    message = _vs(
        tmp_path, "backup", "--out", str(tmp_path / "b.db"), check=False,
        VROEGSIGNAAL_DATABASE_URL=url,
    )  # fmt: skip
    assert "pg_dump -Fc" in message and "pg_restore" in message
    assert "Back-up en herstel" in message
    assert not (tmp_path / "b.db").exists()
    assert "## Back-up en herstel" in DOCS.read_text(encoding="utf-8")


def _vs(tmp_path: Path, *args: str, check: bool = True, **env: str) -> str:
    from tests.test_cli import VS

    base = {
        "VROEGSIGNAAL_SECRET_KEY": "test-secret-key-0123456789",
        "VROEGSIGNAAL_DATA_KEY": "a" * 43 + "=",
        "VROEGSIGNAAL_INBOX_DIR": str(tmp_path / "inbox"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [VS, *args], env={**base, **env}, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
        return result.stdout
    assert result.returncode != 0
    return result.stderr


def test_postgresql_dump_and_restore_as_documented(
    backend: str, runtime: Runtime, world: World, tmp_path: Path
) -> None:
    """The documented procedure: pg_dump -Fc, the data lost, pg_restore, everything back."""
    if backend != "postgresql":
        pytest.skip("pg_dump and pg_restore are for PostgreSQL")
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump/pg_restore are not installed (CI installs them)")
    world.ingest([row(signaal_id=f"B-{n}", huisnummer=str(n + 1)) for n in range(25)])
    url = make_url(runtime.settings.database_url)
    schema = url.query["options"].removeprefix("-csearch_path=")  # the session's own schema
    libpq = (
        url.difference_update_query(["options"])
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
    dump = tmp_path / "vroegsignaal.dump"
    subprocess.run(
        ["pg_dump", "-Fc", "--no-owner", "--no-acl", "-n", schema, "-f", str(dump), libpq],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    tables = (Municipality, Partner, Batch, Signal)
    with unit_of_work(runtime.readers) as session:
        counts = [session.scalar(select(func.count()).select_from(t)) for t in tables]
    runtime.engine.dispose()
    with runtime.engine.begin() as conn:  # the disaster: the data is gone
        conn.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{schema}_lost"'))
    runtime.engine.dispose()
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "-d", libpq, str(dump)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        upgrade_database(runtime.engine)  # at head already: the restore is complete
        with unit_of_work(runtime.readers) as session:
            restored = [session.scalar(select(func.count()).select_from(t)) for t in tables]
            refs = set(session.scalars(select(Signal.signal_ref)))
        # The restored database takes new work (sequences restored too).
        world.ingest(csv_bytes([row(signaal_id="NA-HERSTEL")]), name="na.csv.p7m")
    finally:
        with runtime.engine.begin() as conn:
            if conn.scalar(text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"),
                           {"s": schema}):  # fmt: skip
                conn.execute(text(f'DROP SCHEMA "{schema}_lost" CASCADE'))
            else:
                conn.execute(text(f'ALTER SCHEMA "{schema}_lost" RENAME TO "{schema}"'))
        runtime.engine.dispose()
    assert restored == counts and counts[3] == 25
    assert refs == {f"B-{n}" for n in range(25)}
