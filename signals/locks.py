"""Named locks across processes: one run of a job at a time, whichever process starts it.

Several web workers and more than one scheduler (by mistake, or during a hand-over) may
share one database. A job is therefore run only while its lock is held:

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection kept
  for the duration of the run. The server releases it when that connection ends, also when
  the process is killed: a crashed run never leaves a job locked.
* SQLite file: an ``flock`` on a file beside the database (``<database>.lock-<name>``). The
  kernel releases it when the process ends, however it ends.
* SQLite in memory: one process only; a lock in the process.

Items inside a job are claimed on their own (a batch by a guarded ``UPDATE`` with a lease,
see :func:`signals.ingest.claim_batch`), so even two runs could not process one batch twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator

from sqlalchemy import Engine, text

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory locks are keyed by bigint)."""
    digest = hashlib.sha256(b"vroegsignaal-lock:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def exclusive(engine: Engine, name: str, *, wait: bool = False) -> Iterator[bool]:
    """Hold the lock ``name`` for the block; yields whether it is held.

    With ``wait=False`` the block runs at once with ``False`` when another process holds the
    lock (the caller skips its work); with ``wait=True`` it waits for the lock.
    """
    if engine.dialect.name == "postgresql":
        with _advisory(engine, name, wait) as held:
            yield held
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        with _flock(f"{database}.lock-{name}", wait) as held:
            yield held
        return
    with _process_lock(name, wait) as held:
        yield held


@contextlib.contextmanager
def _advisory(engine: Engine, name: str, wait: bool) -> Iterator[bool]:
    key = lock_key(name)
    with engine.connect() as connection:
        if wait:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            held = True
        else:
            held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        # The lock belongs to the session, not the transaction: end the transaction so the
        # connection does not sit "idle in transaction" while the job runs.
        connection.commit()
        try:
            yield held
        finally:
            if held:
                with contextlib.suppress(Exception):  # a dead connection released it already
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()


@contextlib.contextmanager
def _flock(path: str, wait: bool) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _process_lock(name: str, wait: bool) -> Iterator[bool]:
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    held = lock.acquire(blocking=wait)
    try:
        yield held
    finally:
        if held:
            lock.release()
