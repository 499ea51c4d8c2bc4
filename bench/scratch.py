"""What the benchmarks share: a scratch database with its runtime, a partner key, and a
processed batch to hang bulk-inserted signals on."""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.orm import Session

from config import Settings
from signals.db import make_engine
from signals.enums import BatchSource, BatchStatus
from signals.models import Batch
from signals.runtime import Runtime
from webapp.cli import upgrade_database

#: An Ed25519 public key for the bench partner (nothing is signed with it).
PUBLIC_KEY = (
    b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
    b"-----END PUBLIC KEY-----\n"
)


def scratch_runtime(
    name: str, database_url: str | None, **settings: Any
) -> tuple[Runtime, tempfile.TemporaryDirectory[str]]:
    """A runtime on ``database_url`` (else a SQLite file in a new temporary folder), with
    fresh secrets and the schema upgraded. The caller disposes of the engine and cleans up
    the folder."""
    folder = tempfile.TemporaryDirectory(prefix=f"vs-bench-{name}-")
    url = database_url or f"sqlite:///{folder.name}/{name}.db"
    values = {
        "secret_key": base64.b64encode(os.urandom(24)).decode(),
        "data_key": base64.b64encode(os.urandom(32)).decode(),
        "database_url": url,
        "inbox_dir": f"{folder.name}/inbox",
        "models_dir": f"{folder.name}/models",
        **settings,
    }
    engine = make_engine(url)
    upgrade_database(engine)
    return Runtime(Settings(**values), engine), folder


def processed_batch(session: Session, partner_id: str, municipality_id: int) -> Batch:
    """A processed batch with no payload, for signals the bench inserts in bulk."""
    batch = Batch(
        partner_id=partner_id,
        municipality_id=municipality_id,
        source=BatchSource.CLI,
        status=BatchStatus.PROCESSED,
        ciphertext_sha256="0" * 64,
        size_bytes=0,
    )
    session.add(batch)
    session.flush()
    return batch
