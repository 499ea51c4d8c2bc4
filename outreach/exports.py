"""DDAS exports asked for on the DDAS page, made by the scheduler instead of in the request.

A region's delivery takes minutes (bench/README.md: 107 s for a million signals on SQLite);
a request must not wait for it, hold a write lock that long, or lose the work when the
browser gives up. So the page only asks (:func:`request_export`), the scheduler's job
``make_ddas_exports`` (:func:`make_exports`) makes the file, telling its progress in the
database as it goes, and the page follows it (``/ddas/exports/<id>/status``) until the file
is ready to download or the export is refused (the paths of the violations, never values).

**The file** is the same checked document as the command line's (:func:`outreach.ddas.
write_file`), but it holds burgerservicenummers and addresses, so it is never on disk in
the clear: it is written through a :class:`SealedFile` into ``ddas_exports_dir`` (mode
0600) under the export's id, encrypted with the data key in frames of ``FRAME`` bytes. Each
frame's associated data names the export, the frame's number and whether it is the last, so
frames cannot be swapped, reordered, dropped or cut off without the download failing. The
file is removed ``ddas_export_keep_hours`` after it is ready, or when the admin removes it.

**Crashes**: the job runs under its lock (``webapp.scheduler.run_job``), so an export still
``running`` when the job starts was left by a maker that died: it is queued again, at most
``ddas_export_max_attempts`` times in all, then failed. An export stopped by the database
going away is queued again without counting (the scheduler retries the job). A file is only
given its name when it is complete (:class:`outreach.ddas.UnnamedFile`), so a dead maker
leaves nothing behind.

**The folder** must be one that the web workers and the scheduler both reach under the same
path (docs/deployment.md): the scheduler writes the file, a web worker sends it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from outreach import ddas
from outreach.models import DdasExport, ExportStatus
from signals import audit
from signals.crypto import DataProtector, DecryptionError
from signals.db import is_outage, unit_of_work, utcnow
from signals.models import Municipality, User

log = logging.getLogger(__name__)

#: Plain bytes per encrypted frame.
FRAME = 1024 * 1024
MAGIC = b"VSDDAS1\n"
_LENGTH = struct.Struct(">I")
#: The database hears of the progress at most this often (seconds).
PROGRESS_SECONDS = 1.0
#: What the page still shows (finished exports, newest first).
FINAL = frozenset({ExportStatus.READY, ExportStatus.REFUSED, ExportStatus.FAILED,
                   ExportStatus.REMOVED})  # fmt: skip
#: Exports of this process stopped by a database outage: not counted as an attempt when the
#: job, retried, finds them still "running".
_STOPPED_BY_OUTAGE: set[str] = set()


# -- the sealed file ---------------------------------------------------------------------------
def _context(export_id: str, number: int, last: bool) -> bytes:
    return f"ddas-export/{export_id}/{number}/{'last' if last else 'more'}".encode()


class SealedFile:
    """Encrypts what is written to ``handle`` in frames; :meth:`finish` seals the end."""

    def __init__(self, handle: IO[bytes], protector: DataProtector, export_id: str) -> None:
        self.handle, self.protector, self.export_id = handle, protector, export_id
        self.buffer = bytearray()
        self.number = 0
        #: plain bytes written: the size of the document
        self.size = 0
        handle.write(MAGIC)

    def write(self, data: bytes, /) -> None:
        self.buffer += data
        self.size += len(data)
        while len(self.buffer) > FRAME:  # the last frame is written by finish(), never empty
            self._frame(bytes(self.buffer[:FRAME]), last=False)
            del self.buffer[:FRAME]

    def finish(self) -> None:
        self._frame(bytes(self.buffer), last=True)
        self.buffer.clear()

    def _frame(self, plain: bytes, last: bool) -> None:
        sealed = self.protector.encrypt(plain, _context(self.export_id, self.number, last))
        self.handle.write(_LENGTH.pack(len(sealed)) + sealed)
        self.number += 1


def unsealed(handle: IO[bytes], protector: DataProtector, export_id: str) -> Iterator[bytes]:
    """The plain document of a sealed file (open, read from its start), frame by frame;
    raises :class:`~signals.crypto.DecryptionError` when the file was changed, swapped or cut
    off. Closes ``handle`` at the end, also when the reader stops early."""
    with handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise DecryptionError("not a sealed DDAS export")
        number = 0
        while True:
            head = handle.read(_LENGTH.size)
            if len(head) != _LENGTH.size:
                raise DecryptionError("the sealed DDAS export is cut off")
            (length,) = _LENGTH.unpack(head)
            sealed = handle.read(length)
            if len(sealed) != length:
                raise DecryptionError("the sealed DDAS export is cut off")
            try:  # a middle frame, else it must be the last one
                plain = protector.decrypt(sealed, _context(export_id, number, last=False))
            except DecryptionError:
                plain = protector.decrypt(sealed, _context(export_id, number, last=True))
                if handle.read(1):
                    raise DecryptionError("the sealed DDAS export goes on after its end") from None
                yield plain
                return
            yield plain
            number += 1


def file_path(folder: str | Path, export_id: str) -> Path:
    return Path(folder) / f"{export_id}.ddas"


def download_name(record: DdasExport) -> str:
    codes = record.gemeenten.replace(",", "-")
    return f"ddas-{codes}-{record.period_start}-{record.period_end}.json"


# -- asking ------------------------------------------------------------------------------------
def request_export(
    session: Session, user: User, municipalities: list[Municipality], start: dt.date,
    end: dt.date,
) -> DdasExport:  # fmt: skip
    """Queue an export for ``user`` (checked by the caller: an admin of ``municipalities``)."""
    record = DdasExport(
        requested_by_id=user.id,
        gemeenten=",".join(m.code for m in municipalities),
        period_start=start,
        period_end=end,
        status=ExportStatus.QUEUED,
        attempts=0,
        signals_done=0,
        downloads=0,
    )
    session.add(record)
    session.flush()
    for municipality in municipalities:
        audit.record(session, user.email, "export.ddas.aangevraagd",
                     purpose=audit.PURPOSE_EXPORT, municipality_id=municipality.id,
                     export_id=record.id, periode=f"{start}/{end}")  # fmt: skip
    return record


def remove_file(session: Session, record: DdasExport, folder: str | Path, actor: str) -> None:
    """Remove a ready export's file (its time is up, or the admin removes it)."""
    file_path(folder, record.id).unlink(missing_ok=True)
    record.status = ExportStatus.REMOVED
    audit.record(session, actor, "export.ddas.verwijderd", purpose=audit.PURPOSE_EXPORT,
                 export_id=record.id)  # fmt: skip


# -- making (the scheduler's job) --------------------------------------------------------------
def make_exports(runtime: Any) -> int:
    """Job ``make_ddas_exports``: take up what dead makers left, remove files whose time is
    up, then make every queued export, oldest first; returns how many were made."""
    settings = runtime.settings
    folder = Path(settings.ddas_exports_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    _tidy(runtime, folder)
    made = 0
    while (export_id := _claim(runtime)) is not None:
        _make(runtime, export_id, folder)
        made += 1
    return made


def _tidy(runtime: Any, folder: Path) -> None:
    settings = runtime.settings
    now = utcnow()
    with unit_of_work(runtime.sessions) as session:
        for record in session.scalars(
            select(DdasExport).where(DdasExport.status == ExportStatus.RUNNING)
        ):
            if record.id in _STOPPED_BY_OUTAGE:
                _STOPPED_BY_OUTAGE.discard(record.id)
                record.status, record.attempts = ExportStatus.QUEUED, record.attempts - 1
                log.info("DDAS export %s: taken up again after a database outage", record.id)
            elif record.attempts >= settings.ddas_export_max_attempts:
                record.status, record.error = ExportStatus.FAILED, "interrupted"
                record.finished_at = now
                log.warning("DDAS export %s failed: interrupted %d times", record.id,
                            record.attempts)  # fmt: skip
            else:
                record.status = ExportStatus.QUEUED
                log.info("DDAS export %s: taken up again after an interruption", record.id)
        for record in session.scalars(
            select(DdasExport).where(
                DdasExport.status == ExportStatus.READY, DdasExport.expires_at <= now
            )
        ):
            remove_file(session, record, folder, ddas.SYSTEM)
        ready = set(
            session.scalars(select(DdasExport.id).where(DdasExport.status == ExportStatus.READY))
        )
    for path in folder.glob("*.ddas"):  # left by a maker that died between file and record
        if path.stem not in ready:
            path.unlink(missing_ok=True)
    for path in folder.glob(".ddas-*.tmp"):  # a dead maker's file, where O_TMPFILE is missing
        path.unlink(missing_ok=True)


def _claim(runtime: Any) -> str | None:
    with unit_of_work(runtime.sessions) as session:
        record = session.scalars(
            select(DdasExport)
            .where(DdasExport.status == ExportStatus.QUEUED)
            .order_by(DdasExport.requested_at, DdasExport.id)
            .limit(1)
        ).first()
        if record is None:
            return None
        record.status, record.started_at = ExportStatus.RUNNING, utcnow()
        record.attempts += 1
        record.signals_done, record.signals_total = 0, None
        return record.id


class _Progress:
    """Tells the database how far the export is, at most every ``PROGRESS_SECONDS``."""

    def __init__(self, runtime: Any, export_id: str) -> None:
        self.runtime, self.export_id = runtime, export_id
        self.told: float | None = None

    def __call__(self, done: int) -> None:
        if self.told is not None and time.monotonic() - self.told < PROGRESS_SECONDS:
            return
        with unit_of_work(self.runtime.sessions) as session:
            record = session.get(DdasExport, self.export_id)
            if record is not None:
                record.signals_done = done
        self.told = time.monotonic()


def _make(runtime: Any, export_id: str, folder: Path) -> None:
    settings, protector = runtime.settings, runtime.protector
    # The document is read in one read-only transaction that sees one snapshot throughout
    # (SQLite's WAL reader; PostgreSQL's REPEATABLE READ): the count, the cases and their
    # signals agree while matching goes on; and on SQLite no write lock is held for minutes.
    # Progress and the outcome are short writes of their own.
    with unit_of_work(runtime.readers) as session:
        if session.get_bind().dialect.name == "postgresql":
            snapshot = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            session.connection(execution_options=snapshot)
        record = session.get(DdasExport, export_id)
        assert record is not None  # claimed just now
        start, end = record.period_start, record.period_end
        codes = record.gemeenten.split(",")
        by = session.scalars(select(User.email).where(User.id == record.requested_by_id)).one()
        municipalities = list(
            session.scalars(
                select(Municipality).where(Municipality.code.in_(codes)).order_by(Municipality.code)
            )
        )
        total = sum(ddas.count_signals(session, m.id, start, end) for m in municipalities)
        with unit_of_work(runtime.sessions) as writing:
            writing.get(DdasExport, export_id).signals_total = total  # type: ignore[union-attr]
        sealed: list[SealedFile] = []

        def seal(handle: IO[bytes]) -> SealedFile:
            sealed.append(SealedFile(handle, protector, export_id))
            return sealed[0]

        try:
            delivery = ddas.write_file(
                session, protector, settings, municipalities, start, end,
                file_path(folder, export_id), seal=seal, progress=_Progress(runtime, export_id),
            )  # fmt: skip
        except ddas.ExportRefused as refused:
            with unit_of_work(runtime.sessions) as writing:
                done = writing.get(DdasExport, export_id)
                assert done is not None
                done.status, done.violations = ExportStatus.REFUSED, refused.violations[:1000]
                done.finished_at = utcnow()
            log.warning("DDAS export %s refused: %d violation(s)", export_id,
                        len(refused.violations))  # fmt: skip
            return
        except Exception as error:
            # Left "running": the next run takes it up again, until its attempts are used up;
            # a database outage does not count. The class name only: a message could quote
            # values.
            if is_outage(error):
                _STOPPED_BY_OUTAGE.add(export_id)
            log.error("DDAS export %s stopped (%s)", export_id, type(error).__name__)
            raise
    try:
        with unit_of_work(runtime.sessions) as writing:
            done = writing.get(DdasExport, export_id)
            assert done is not None
            tally = ddas.Tally(delivery.signals, delivery.cases, delivery.attempts)
            logged = ddas.log_delivery(writing, start, end, codes, tally, delivery.sha256, by)
            now = utcnow()
            done.status, done.delivery_id = ExportStatus.READY, logged.id
            done.signals_done, done.signals_total = delivery.signals, delivery.signals
            done.size = sealed[0].size
            done.finished_at = now
            done.expires_at = now + dt.timedelta(hours=settings.ddas_export_keep_hours)
    except BaseException:
        file_path(folder, export_id).unlink(missing_ok=True)
        raise
    log.info("DDAS export %s ready: %d signals, %d cases", export_id, delivery.signals,
             delivery.cases)  # fmt: skip
