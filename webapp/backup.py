"""Online back-up of the SQLite database (``vroegsignaal backup``).

SQLite's online backup API copies a consistent snapshot while the web app and the scheduler
keep working: with WAL, readers and writers are not blocked, and the copy holds exactly the
transactions committed when it began. The copy is written beside the target under a
temporary name, checked (``PRAGMA integrity_check``) and only then renamed into place, so a
back-up that stops halfway never leaves a file that looks complete. PostgreSQL is backed up
with its own tools (``pg_dump -Fc``, ``pg_restore``): docs/operations.md, "Back-up en herstel".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

PG_PROCEDURE = (
    "vroegsignaal backup copies SQLite databases only; back up PostgreSQL with "
    "pg_dump -Fc and restore with pg_restore (docs/operations.md, 'Back-up en herstel')"
)


class BackupRefused(Exception):
    """The back-up cannot be made (wrong database kind, target exists, copy damaged)."""


@dataclass(frozen=True)
class Backup:
    path: Path
    bytes: int
    tables: int
    sha256: str

    def as_dict(self) -> dict[str, object]:
        return {"out": str(self.path), "bytes": self.bytes, "tables": self.tables,
                "sha256": self.sha256}  # fmt: skip


def sqlite_path(database_url: str) -> Path:
    """The database file of a SQLite URL; refuses any other database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupRefused(PG_PROCEDURE)
    if not url.database or url.database == ":memory:":
        raise BackupRefused("an in-memory SQLite database cannot be backed up")
    path = Path(url.database)
    if not path.is_file():
        raise BackupRefused(f"no SQLite database at {path}")
    return path


def backup_sqlite(database_url: str, out: Path) -> Backup:
    """Copy the live SQLite database to ``out`` (which must not exist yet)."""
    source_path = sqlite_path(database_url)
    if out.exists():
        raise BackupRefused(f"{out} exists already; choose a new file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}-", suffix=".tmp")
    os.close(descriptor)
    temporary = Path(name)
    try:
        source = sqlite3.connect(source_path)
        target = sqlite3.connect(temporary)
        try:
            source.execute("PRAGMA busy_timeout=30000")
            # All pages in one step: one read transaction, one consistent snapshot (stepwise
            # copying would restart whenever another process writes).
            source.backup(target)
            # A single self-contained file: no -wal beside it to forget.
            target.execute("PRAGMA journal_mode=DELETE")
            checked = target.execute("PRAGMA integrity_check").fetchone()
            if checked is None or checked[0] != "ok":
                raise BackupRefused("the copy failed its integrity check; nothing written")
            tables = target.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
        finally:
            target.close()
            source.close()
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        os.replace(temporary, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return Backup(out, out.stat().st_size, int(tables), digest)
