"""Periodic jobs of the intake stage. Idempotent: each selects its work by state.

One unit of work per batch: one bad batch never undoes another.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signals.db import unit_of_work
from signals.enums import BatchCode, BatchSource
from signals.errors import BatchRefused, NotFound
from signals.ingest import (
    LostClaim,
    UnknownMunicipality,
    claim_batch,
    fail_batch,
    pending_batch_ids,
    process_batch,
    receive_batch,
    release_batch,
    report,
)
from signals.models import Batch
from signals.runtime import Runtime
from signals.service import get_partner

log = logging.getLogger(__name__)


def run_batch(runtime: Runtime, batch_id: str) -> bool:
    """Claim and process one batch, each outcome in a transaction of its own.

    A refusal is recorded; an unexpected error hands the batch back for the next run, and
    after ``batch_max_attempts`` refuses it as ``processing_error``. Logs carry the batch id
    and the error's type, never its message (it might quote a submitted value).
    """
    with unit_of_work(runtime.sessions) as session:
        claim = claim_batch(session, batch_id, runtime.settings.batch_lease_seconds)
    if claim is None:
        return False
    try:
        with unit_of_work(runtime.sessions) as session:
            process_batch(session, runtime.settings, runtime.protector, batch_id, claim.token)
    except BatchRefused as exc:
        with unit_of_work(runtime.sessions) as session:
            fail_batch(session, batch_id, exc.code, claim.token)
    except LostClaim:
        log.warning("batch %s was taken over by another worker; this result is dropped", batch_id)
    except Exception as exc:
        log.error(
            "batch %s: processing failed (%s), attempt %d of %d",
            batch_id,
            type(exc).__name__,
            claim.attempts,
            runtime.settings.batch_max_attempts,
        )
        with unit_of_work(runtime.sessions) as session:
            if claim.attempts >= runtime.settings.batch_max_attempts:
                fail_batch(session, batch_id, BatchCode.PROCESSING_ERROR, claim.token)
            else:
                release_batch(session, batch_id, claim.token)
    return True


def process_pending_batches(runtime: Runtime) -> int:
    """Job ``process_batches``: process every received batch (and any a dead worker left)."""
    with unit_of_work(runtime.readers) as session:
        ids = pending_batch_ids(session, runtime.settings.batch_lease_seconds)
    done = 0
    for batch_id in ids:
        try:
            done += run_batch(runtime, batch_id)
        except Exception as exc:
            # The database itself failed; the batch stays claimed and is taken up again when
            # its lease runs out. Go on with the others.
            log.error("batch %s could not be processed (%s)", batch_id, type(exc).__name__)
    return done


@dataclass(frozen=True)
class InboxResult:
    name: str
    report: dict[str, Any]
    ok: bool


def _move(files: list[Path], target: Path, report_data: dict[str, Any]) -> None:
    target.mkdir(exist_ok=True)
    for file in files:
        if file.exists():
            shutil.move(str(file), target / file.name)
    (target / f"{files[0].name}.report.json").write_text(
        json.dumps(report_data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def poll_inbox(runtime: Runtime) -> list[InboxResult]:
    """Job ``poll_inbox``: ingest ``inbox/<partner>/NAME.p7m`` with ``NAME.p7m.sig`` beside it.

    Processed files move to ``done/``, refused ones to ``failed/``, each with its report.
    A ``.p7m`` whose signature file has not arrived yet is left for the next poll, until
    ``inbox_signature_wait_seconds`` have passed: then it is refused (signature_invalid).
    """
    root = Path(runtime.settings.inbox_dir)
    results: list[InboxResult] = []
    if not root.is_dir():
        return results
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.p7m")):
            candidate = file.with_name(file.name + ".sig")
            signature_file = candidate if candidate.exists() else None
            waited = time.time() - file.stat().st_mtime
            if signature_file is None and waited < runtime.settings.inbox_signature_wait_seconds:
                continue  # the signature may still be on its way; later it is refused
            try:
                result = ingest_file(runtime, folder.name, file, signature_file, BatchSource.INBOX)
            except Exception as exc:  # the database failed: leave the file for the next poll
                log.error("inbox file could not be ingested (%s)", type(exc).__name__)
                continue
            files = [file] if signature_file is None else [file, signature_file]
            _move(files, folder / ("done" if result.ok else "failed"), result.report)
            results.append(result)
    return results


def ingest_file(
    runtime: Runtime,
    partner_id: str,
    file: Path,
    signature_file: Path | None,
    source: BatchSource,
    gemeentecode: str | None = None,
) -> InboxResult:
    """Receive and process one file synchronously (CLI and inbox): the API's code path."""
    settings = runtime.settings
    if file.stat().st_size > settings.max_batch_bytes:
        refusal = {
            "status": "failed",
            "code": BatchCode.TOO_LARGE.value,
            "detail": "the file is larger than the batch size limit",
        }
        return InboxResult(file.name, refusal, False)
    try:
        with unit_of_work(runtime.sessions) as session, file.open("rb") as stream:
            partner = get_partner(session, partner_id)
            received = receive_batch(
                session,
                settings,
                partner=partner,
                ciphertext=stream,
                signature=signature_file.read_bytes() if signature_file else None,
                source=source,
                filename=file.name,
                gemeentecode=gemeentecode,
            )
            batch_id = received.batch.id
    except NotFound:
        refusal = {
            "status": "failed",
            "code": BatchCode.UNKNOWN_PARTNER.value,
            "detail": "no partner with that id",
        }
        return InboxResult(file.name, refusal, False)
    except UnknownMunicipality as exc:
        return InboxResult(
            file.name, {"status": "failed", "code": "unknown_gemeente", "detail": str(exc)}, False
        )
    except BatchRefused as exc:
        return InboxResult(
            file.name, {"status": "failed", "code": exc.code.value, "detail": exc.detail}, False
        )
    # Process it here; when another process has it in hand (the same file sent twice at
    # once), wait for its outcome, so a synchronous caller always gets the final report.
    deadline = time.monotonic() + settings.batch_lease_seconds
    while True:
        with unit_of_work(runtime.readers) as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            data = report(session, batch)
        if data["status"] in ("processed", "failed") or time.monotonic() > deadline:
            break
        if data["status"] == "received":
            run_batch(runtime, batch_id)  # first try, or a retry after an unexpected error
        else:
            time.sleep(0.2)
    return InboxResult(file.name, data, data["status"] == "processed")
