"""The batch path: receive (verify, store ciphertext) and process (decrypt, parse, validate, store).

Receiving happens in the request; processing in a job or the CLI, in one transaction per
batch, so a crash leaves no partial signals and the batch is simply taken up again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import logging
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import String, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Settings
from signals.cms import decrypt_stream
from signals.crypto import DataProtector
from signals.db import utcnow
from signals.enums import BatchCode, BatchSource, BatchStatus, RowCode, SignalStatus
from signals.envelope import to_der, verify_detached
from signals.errors import BatchRefused, IntakeError
from signals.models import (
    Batch,
    BatchChunk,
    BatchPayload,
    Client,
    Municipality,
    Partner,
    Rejection,
    Signal,
    StatisticsMark,
    first_of_month,
)
from signals.parsing import MALFORMED, read_rows
from signals.rules import age_band, today_nl, window_flag
from signals.schemas import RowValidator
from signals.service import active_recipient_keys, unlock_recipient_key, usable_public_keys

log = logging.getLogger(__name__)

_IDENTITY = ("bsn", "voorletters", "tussenvoegsel", "achternaam", "geboortedatum")
_CONTACT = (
    "straat",
    "huisnummer",
    "huisnummertoevoeging",
    "postcode",
    "woonplaats",
    "telefoon",
    "email",
    "klantnummer",
)
IDENTITY_CONTEXT = b"client.identity"
#: The ciphertext is stored in pieces of this size, so processing reads it with flat memory.
CHUNK_BYTES = 1 << 20
CONTACT_CONTEXT = b"signal.contact"


class UnknownMunicipality(IntakeError):
    """The batch names a municipality the partner does not deliver to."""


@dataclass(frozen=True)
class Received:
    batch: Batch
    created: bool


def _batch_municipality(partner: Partner, gemeentecode: str | None) -> Municipality:
    if gemeentecode:
        for municipality in partner.municipalities:
            if municipality.code == gemeentecode:
                return municipality
        raise UnknownMunicipality("the partner does not deliver to that municipality")
    if len(partner.municipalities) == 1:
        return partner.municipalities[0]
    raise UnknownMunicipality("the partner delivers to several municipalities: name one")


def _refusal(
    session: Session, partner: Partner, municipality: Municipality, code: BatchCode, **kw: Any
) -> Batch:
    now = utcnow()
    batch = Batch(
        partner=partner,
        municipality=municipality,
        status=BatchStatus.FAILED,
        refusal_code=code,
        received_at=now,
        finished_at=now,
        **kw,
    )
    session.add(batch)
    session.flush()
    log.info("batch %s refused: %s", batch.id, code.value)
    return batch


def _size(stream: BinaryIO) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _sha256(stream: BinaryIO) -> str:
    stream.seek(0)
    hasher = hashlib.sha256()
    while piece := stream.read(CHUNK_BYTES):
        hasher.update(piece)
    return hasher.hexdigest()


def _envelope_refusal(stream: BinaryIO, size: int) -> BatchCode | None:
    """``empty`` or ``not_cms`` from the first bytes; nothing is decrypted here."""
    if size == 0:
        return BatchCode.EMPTY
    stream.seek(0)
    head = stream.read(64)
    if head.lstrip()[:11] == b"-----BEGIN ":
        stream.seek(0)
        head = stream.read()  # PEM: decode it all to see it is CMS (rare, and small)
    try:
        to_der(head)
    except BatchRefused as exc:
        return exc.code
    return None


def receive_batch(
    session: Session,
    settings: Settings,
    *,
    partner: Partner,
    ciphertext: bytes | BinaryIO,
    signature: bytes | None,
    source: BatchSource,
    filename: str | None = None,
    gemeentecode: str | None = None,
) -> Received:
    """Verify the signature and store the ciphertext; nothing is decrypted here.

    ``ciphertext`` is the file's bytes or a seekable binary stream of them (read in pieces,
    so a large upload is never held in memory whole). Returns the new batch, the first batch
    when the identical file was sent before, or a stored refusal (``status == failed``) when
    the signature or envelope is wrong.
    """
    stream = io.BytesIO(ciphertext) if isinstance(ciphertext, bytes) else ciphertext
    size = _size(stream)
    if size > settings.max_batch_bytes:
        raise BatchRefused(BatchCode.TOO_LARGE, "the file is larger than the batch size limit")
    if not partner.active:
        raise BatchRefused(BatchCode.UNKNOWN_PARTNER, "the partner is not active")
    municipality = _batch_municipality(partner, gemeentecode)
    digest = _sha256(stream)
    common = {
        "source": source,
        "filename": (filename or "")[-255:] or None,
        "ciphertext_sha256": digest,
        "size_bytes": size,
    }
    keys = usable_public_keys(partner, utcnow())
    if not verify_detached(stream, signature or b"", keys):  # type: ignore[arg-type]
        return Received(
            _refusal(session, partner, municipality, BatchCode.SIGNATURE_INVALID, **common), True
        )
    dedupe_key = f"{partner.id}:{digest}"
    existing = session.scalar(select(Batch).where(Batch.dedupe_key == dedupe_key))
    if existing is not None:
        return Received(existing, False)
    refusal = _envelope_refusal(stream, size)
    try:
        with session.begin_nested():
            if refusal is not None:
                batch = _refusal(
                    session, partner, municipality, refusal, dedupe_key=dedupe_key, **common
                )
            else:
                batch = Batch(
                    partner=partner,
                    municipality=municipality,
                    status=BatchStatus.RECEIVED,
                    dedupe_key=dedupe_key,
                    payload=BatchPayload(
                        signature=signature or b"", chunk_count=-(-size // CHUNK_BYTES)
                    ),
                    **common,
                )
                session.add(batch)
                session.flush()
                stream.seek(0)
                statement = BatchChunk.__table__.insert()
                for seq in range(batch.payload.chunk_count):  # type: ignore[union-attr]
                    piece = stream.read(CHUNK_BYTES)
                    session.execute(statement, {"batch_id": batch.id, "seq": seq, "data": piece})
    except IntegrityError:
        # The same file arrived at the same moment through another process: theirs won.
        existing = session.scalar(select(Batch).where(Batch.dedupe_key == dedupe_key))
        if existing is None:
            raise
        return Received(existing, False)
    log.info("batch %s received from partner %s (%d bytes)", batch.id, partner.id, size)
    return Received(batch, True)


# -- processing --------------------------------------------------------------------------------
class LostClaim(IntakeError):
    """Another worker took the batch over (this one outlived its lease): its work is void."""


@dataclass(frozen=True)
class Claim:
    token: str
    attempts: int


def claim_batch(session: Session, batch_id: str, lease_seconds: int) -> Claim | None:
    """Move a batch to ``processing``; also take over one whose worker died (lease expired).

    One guarded UPDATE, so two processes never both claim the same batch. The claim token
    lets the finishing UPDATE check that this worker still holds the batch.
    """
    now = utcnow()
    expired = now - dt.timedelta(seconds=lease_seconds)
    token = str(uuid.uuid4())
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            (Batch.status == BatchStatus.RECEIVED)
            | ((Batch.status == BatchStatus.PROCESSING) & (Batch.started_at <= expired)),
        )
        .values(
            status=BatchStatus.PROCESSING,
            started_at=now,
            claim_token=token,
            attempts=Batch.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    attempts = session.scalar(select(Batch.attempts).where(Batch.id == batch_id)) or 1
    return Claim(token, attempts)


def _holding(batch_id: str, token: str) -> Any:
    return (
        (Batch.id == batch_id)
        & (Batch.status == BatchStatus.PROCESSING)
        & (Batch.claim_token == token)
    )


def fail_batch(session: Session, batch_id: str, code: BatchCode, token: str) -> None:
    """Record a refusal; nothing of the batch but the refusal is stored."""
    result = session.execute(
        update(Batch)
        .where(_holding(batch_id, token))
        .values(
            status=BatchStatus.FAILED,
            refusal_code=code,
            finished_at=utcnow(),
            rows_total=0,
            rows_accepted=0,
            rows_rejected=0,
            rows_outside_window=0,
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise LostClaim(batch_id)
    log.info("batch %s failed: %s", batch_id, code.value)


def release_batch(session: Session, batch_id: str, token: str) -> None:
    """Hand a batch back for the next run after an unexpected (perhaps passing) error."""
    session.execute(
        update(Batch)
        .where(_holding(batch_id, token))
        .values(status=BatchStatus.RECEIVED, claim_token=None)
        .execution_options(synchronize_session=False)
    )


def _chunks(rows: Iterator[tuple[int, dict[str, str]]], size: int) -> Iterator[list[Any]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _padded(values: Iterable[str], step: int = 256) -> list[str]:
    """The values, padded with a repeat to a multiple of ``step``: few distinct SQL texts."""
    result = list(values)
    if result:
        result += [result[-1]] * (-len(result) % step)
    return result


def _surname_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.lower())
    return "".join(c for c in decomposed if c.isalpha())


class _BatchWriter:
    """Validates chunks of rows and writes their signals, clients and rejections."""

    def __init__(
        self,
        session: Session,
        settings: Settings,
        protector: DataProtector,
        batch: Batch,
        today: dt.date,
    ) -> None:
        self.session = session
        self.protector = protector
        self.batch = batch
        self.partner = batch.partner
        self.validate = RowValidator(today)
        self.municipalities = {m.code: m.id for m in self.partner.municipalities}
        self.postgresql = session.get_bind().dialect.name == "postgresql"
        self.total = self.accepted = self.rejected = self.outside = 0

    def write(self, chunk: list[tuple[int, dict[str, str]]]) -> None:
        valid: list[tuple[int, dict[str, Any], int]] = []
        rejections: list[dict[str, Any]] = []
        rejected_rows: set[int] = set()

        def reject(number: int, field: str, code: RowCode) -> None:
            rejections.append(
                {"batch_id": self.batch.id, "row": number, "field": field, "code": code}
            )
            rejected_rows.add(number)

        for number, row in chunk:
            if MALFORMED in row:
                reject(number, MALFORMED, RowCode.INVALID_VALUE)
                continue
            data, errors = self.validate(row)
            if errors:
                for field, code in errors:
                    reject(number, field, code)
                continue
            code = data.get("gemeentecode")
            municipality_id = self.municipalities.get(code) if code else self.batch.municipality_id
            if municipality_id is None:
                reject(number, "gemeentecode", RowCode.UNKNOWN_GEMEENTE)
                continue
            valid.append((number, data, municipality_id))

        valid = self._drop_duplicates(valid, reject)
        if valid:
            clients = self._client_ids(valid)
            self.session.execute(
                # Core, not the ORM's bulk path: a third of the cost for plain rows
                Signal.__table__.insert(),
                [self._signal_row(d, m, clients) for _, d, m in valid],
            )
            # Core bypasses the ORM hook: mark the months these signals change ourselves.
            months = {(m, first_of_month(d["signaaldatum"])) for _, d, m in valid}
            self.session.execute(
                StatisticsMark.__table__.insert(),
                [{"municipality_id": m, "month": month} for m, month in sorted(months)],
            )
        if rejections:
            self.session.execute(Rejection.__table__.insert(), rejections)
        self.total += len(chunk)
        self.accepted += len(valid)
        self.rejected += len(rejected_rows)

    def _member(self, column: Any, values: Iterable[str]) -> Any:
        """``column IN values`` that stays an index lookup on both databases.

        PostgreSQL gets ``= ANY(array)``: one parameter, so the prepared statement's generic
        plan keeps the whole key as index condition (with a long ``IN`` list it scanned the
        partner's rows and became quadratic as a batch grew).
        """
        if self.postgresql:
            return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
        return column.in_(_padded(values))

    def _drop_duplicates(self, valid: list[Any], reject: Any) -> list[Any]:
        refs = {data["signaal_id"] for _, data, _ in valid}
        if not refs:
            return valid
        known = set(
            self.session.scalars(
                select(Signal.signal_ref).where(
                    Signal.partner_id == self.partner.id, self._member(Signal.signal_ref, refs)
                )
            )
        )
        kept = []
        for number, data, municipality_id in valid:
            ref = data["signaal_id"]
            if ref in known:
                reject(number, "signaal_id", RowCode.DUPLICATE_SIGNAL)
                continue
            known.add(ref)
            kept.append((number, data, municipality_id))
        return kept

    def _client_key(self, data: dict[str, Any]) -> str:
        if "bsn" in data:
            return self.protector.keyed_hash("client", "bsn|" + data["bsn"])
        birth = data.get("geboortedatum")
        return self.protector.keyed_hash(
            "client",
            "|".join(
                (
                    "adr",
                    data["postcode"],
                    data["huisnummer"],
                    data.get("huisnummertoevoeging", "").upper(),
                    birth.isoformat() if birth else "",
                    _surname_key(data["achternaam"]),
                )
            ),
        )

    def _client_ids(self, valid: list[Any]) -> dict[tuple[int, str], int]:
        wanted: dict[tuple[int, str], dict[str, Any]] = {}
        for _, data, municipality_id in valid:
            data["_client_key"] = key = self._client_key(data)
            wanted.setdefault((municipality_id, key), data)
        ids: dict[tuple[int, str], int] = {}
        for municipality_id in {m for m, _ in wanted}:
            keys = [k for m, k in wanted if m == municipality_id]
            for client_id, key in self.session.execute(
                select(Client.id, Client.client_key).where(
                    Client.municipality_id == municipality_id,
                    self._member(Client.client_key, keys),
                )
            ):
                ids[(municipality_id, key)] = client_id
        new = [
            {
                "municipality_id": m,
                "client_key": k,
                "bsn_hash": self.protector.bsn_hash(d["bsn"]) if "bsn" in d else None,
                "gender": d.get("geslacht"),
                "identity": self.protector.encrypt_json(
                    {f: _plain(d[f]) for f in _IDENTITY if f in d}, IDENTITY_CONTEXT
                ),
                "created_at": utcnow(),
            }
            for (m, k), d in wanted.items()
            if (m, k) not in ids
        ]
        if new:
            for client_id, municipality_id, key in self.session.execute(
                Client.__table__.insert().returning(
                    Client.id, Client.municipality_id, Client.client_key
                ),
                new,
            ):
                ids[(municipality_id, key)] = client_id
        return ids

    def _signal_row(
        self, data: dict[str, Any], municipality_id: int, clients: dict[tuple[int, str], int]
    ) -> dict[str, Any]:
        partner_type = self.partner.partner_type
        end_of_supply = data.get("eindelevering", False)
        flag = window_flag(
            partner_type,
            data["ontstaansdatum"],
            data["signaaldatum"],
            data["bedrag"],
            data.get("maandbedrag"),
            end_of_supply,
        )
        if flag.value in ("too_early", "too_late"):
            self.outside += 1
        bsn = data.get("bsn")
        return {
            "batch_id": self.batch.id,
            "partner_id": self.partner.id,
            "municipality_id": municipality_id,
            "client_id": clients[(municipality_id, data["_client_key"])],
            "signal_ref": data["signaal_id"],
            "partner_type": partner_type,
            "signal_date": data["signaaldatum"],
            "arrears_start_date": data["ontstaansdatum"],
            "amount": data["bedrag"],
            "monthly_amount": data.get("maandbedrag"),
            "crisis": data.get("crisissignaal", False),
            "warm_handover": data.get("warme_overdracht", False),
            "end_of_supply": end_of_supply,
            "eviction_date": data.get("ontruimingsdatum"),
            "window_flag": flag,
            "status": SignalStatus.NOG_NIET_OPGEPAKT,
            "address_hash": self.protector.address_hash(
                data["postcode"], data["huisnummer"], data.get("huisnummertoevoeging")
            ),
            "bsn_hash": self.protector.bsn_hash(bsn) if bsn else None,
            "postcode_area": data["postcode"][:4],
            "age_band": age_band(data.get("geboortedatum"), data["signaaldatum"]),
            "contact": self.protector.encrypt_json(
                {f: data[f] for f in _CONTACT if f in data}, CONTACT_CONTEXT
            ),
            "created_at": utcnow(),
        }


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def process_batch(
    session: Session,
    settings: Settings,
    protector: DataProtector,
    batch_id: str,
    token: str,
    today: dt.date | None = None,
) -> Batch:
    """Decrypt, parse, validate and store one claimed batch, in the caller's transaction.

    Raises :class:`BatchRefused` for a batch-level refusal; the caller rolls back and records
    it with :func:`fail_batch`, so nothing of a refused batch is half-stored.
    """
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise BatchRefused(BatchCode.UNKNOWN_PARTNER, "no such batch")
    payload = session.get(BatchPayload, batch_id)
    if payload is None or payload.chunk_count == 0:
        raise BatchRefused(BatchCode.EMPTY, "the batch has no content")
    recipients = [
        unlock_recipient_key(protector, record)
        for record in active_recipient_keys(session, batch.municipality_id)
    ]
    plaintext = decrypt_stream(_ciphertext(session, batch_id, payload.chunk_count), recipients)
    header, rows = read_rows(plaintext, settings.max_field_chars)
    writer = _BatchWriter(session, settings, protector, batch, today or today_nl())
    for chunk in _chunks(rows, settings.ingest_chunk_rows):
        writer.write(chunk)
    if writer.total == 0:
        raise BatchRefused(BatchCode.EMPTY, "the file contains a header but no rows")
    finished = session.execute(
        update(Batch)
        .where(_holding(batch_id, token))
        .values(
            status=BatchStatus.PROCESSED,
            content_format=header.format,
            unknown_columns=header.unknown or None,
            rows_total=writer.total,
            rows_accepted=writer.accepted,
            rows_rejected=writer.rejected,
            rows_outside_window=writer.outside,
            finished_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if not finished.rowcount:  # type: ignore[attr-defined]
        raise LostClaim(batch_id)  # the caller rolls back: another worker's result stands
    log.info(
        "batch %s processed: %d rows, %d accepted, %d rejected",
        batch.id,
        writer.total,
        writer.accepted,
        writer.rejected,
    )
    session.expire(batch)
    return batch


def _ciphertext(session: Session, batch_id: str, chunk_count: int) -> Iterator[bytes]:
    """The stored ciphertext, one chunk at a time; PEM is decoded to DER first."""
    first = session.scalar(
        select(BatchChunk.data).where(BatchChunk.batch_id == batch_id, BatchChunk.seq == 0)
    )
    assert first is not None
    rest = (
        session.scalar(
            select(BatchChunk.data).where(BatchChunk.batch_id == batch_id, BatchChunk.seq == seq)
        )
        or b""
        for seq in range(1, chunk_count)
    )
    if first.lstrip()[:11] == b"-----BEGIN ":
        yield to_der(b"".join([first, *rest]))  # PEM is rare and small: decode it whole
        return
    yield first
    yield from rest


def pending_batch_ids(session: Session, lease_seconds: int, limit: int = 100) -> list[str]:
    expired = utcnow() - dt.timedelta(seconds=lease_seconds)
    return list(
        session.scalars(
            select(Batch.id)
            .where(
                (Batch.status == BatchStatus.RECEIVED)
                | ((Batch.status == BatchStatus.PROCESSING) & (Batch.started_at <= expired))
            )
            .order_by(Batch.received_at)
            .limit(limit)
        )
    )


def report(session: Session, batch: Batch, limit: int | None = None) -> dict[str, Any]:
    """The batch report of CONTRACT §3.3; never contains a submitted value."""
    query = (
        select(Rejection.row, Rejection.field, Rejection.code)
        .where(Rejection.batch_id == batch.id)
        .order_by(Rejection.row, Rejection.id)
    )
    if limit is not None:
        query = query.limit(limit)
    result: dict[str, Any] = {
        "id": batch.id,
        "status": batch.status.value,
        "rows_total": batch.rows_total,
        "rows_accepted": batch.rows_accepted,
        "rows_rejected": batch.rows_rejected,
        "rows_outside_window": batch.rows_outside_window,
        "rejections": [
            {"row": row, "field": field, "code": code.value}
            for row, field, code in session.execute(query)
        ],
    }
    if batch.refusal_code is not None:
        result["code"] = batch.refusal_code.value
    if batch.unknown_columns:
        result["unknown_columns"] = batch.unknown_columns
    result["received_at"] = batch.received_at.isoformat()
    if batch.finished_at:
        result["finished_at"] = batch.finished_at.isoformat()
    return result
