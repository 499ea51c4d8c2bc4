"""Typed ORM models of the intake stage: municipalities, partners and keys, batches, signals."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from signals.db import Base, utcnow
from signals.enums import (
    BatchCode,
    BatchSource,
    BatchStatus,
    Gender,
    PartnerType,
    Role,
    RowCode,
    SignalStatus,
    WindowFlag,
)

BigId = BigInteger().with_variant(Integer, "sqlite")


def value_enum(cls: type[enum.Enum], length: int = 64) -> Enum:
    """Store an enum by its value (the DDAS string), as a plain string column."""
    return Enum(
        cls,
        values_callable=lambda members: [m.value for m in members],
        native_enum=False,
        length=length,
        validate_strings=True,
    )


def new_uuid() -> str:
    return str(uuid.uuid4())


partner_municipalities = Table(
    "partner_municipalities",
    Base.metadata,
    Column("partner_id", ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "municipality_id", ForeignKey("municipalities.id", ondelete="CASCADE"), primary_key=True
    ),
)

user_municipalities = Table(
    "user_municipalities",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "municipality_id", ForeignKey("municipalities.id", ondelete="CASCADE"), primary_key=True
    ),
)


class Municipality(Base):
    """A gemeente, by its 4-digit CBS code."""

    __tablename__ = "municipalities"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(4), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    recipient_keys: Mapped[list[RecipientKey]] = relationship(back_populates="municipality")


class Partner(Base):
    """A signaalpartner: a fixed-cost creditor that sends signals to one or more municipalities."""

    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200))
    partner_type: Mapped[PartnerType] = mapped_column(value_enum(PartnerType))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    municipalities: Mapped[list[Municipality]] = relationship(secondary=partner_municipalities)
    keys: Mapped[list[PartnerKey]] = relationship(
        back_populates="partner", order_by="PartnerKey.id"
    )


class PartnerKey(Base):
    """A public key a partner signs batches with; valid for a period, revocable."""

    __tablename__ = "partner_keys"
    __table_args__ = (UniqueConstraint("partner_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    public_key_pem: Mapped[str] = mapped_column(Text)
    #: SHA-256 of the DER SubjectPublicKeyInfo, hex.
    fingerprint: Mapped[str] = mapped_column(String(64))
    key_type: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[dt.datetime | None]
    valid_until: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    partner: Mapped[Partner] = relationship(back_populates="keys")

    def usable_at(self, moment: dt.datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= moment:
            return False
        if self.valid_from is not None and moment < self.valid_from:
            return False
        return not (self.valid_until is not None and moment > self.valid_until)


class RecipientKey(Base):
    """A key pair partners encrypt to; the private key is stored encrypted with the data key."""

    __tablename__ = "recipient_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="CASCADE")
    )
    certificate_pem: Mapped[str] = mapped_column(Text)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    not_after: Mapped[dt.datetime | None]
    retired_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    municipality: Mapped[Municipality | None] = relationship(back_populates="recipient_keys")


class User(Base):
    """Somebody who logs in: admin, counsellor, analyst or a partner's portal user."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(value_enum(Role, 16))
    #: Further staff roles, comma-separated (a counsellor who is also an analyst).
    extra_roles: Mapped[str] = mapped_column(String(64), default="", server_default="")
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    #: Second factor (TOTP, RFC 6238): the secret, encrypted with the data key; set when the
    #: user is added, confirmed (enrolled) with the first valid code.
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enrolled_at: Mapped[dt.datetime | None]
    #: The last TOTP time step used, so a code cannot be replayed.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    #: Recovery codes as argon2id hashes; each can be used once.
    recovery_codes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    #: Brute-force brake: failed log-ins in a row, and until when the account is locked.
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None]

    municipalities: Mapped[list[Municipality]] = relationship(secondary=user_municipalities)
    partner: Mapped[Partner | None] = relationship()

    @property
    def roles(self) -> frozenset[Role]:
        """Every role of the user: the main one and the extra ones."""
        extra = (Role(r) for r in (self.extra_roles or "").split(",") if r)
        return frozenset({self.role, *extra})


class Batch(Base):
    """One upload of one partner: its envelope, state and the counts of its report."""

    __tablename__ = "batches"
    __table_args__ = (Index(None, "status", "received_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    source: Mapped[BatchSource] = mapped_column(value_enum(BatchSource, 16))
    filename: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[BatchStatus] = mapped_column(value_enum(BatchStatus, 16))
    refusal_code: Mapped[BatchCode | None] = mapped_column(value_enum(BatchCode, 32))
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))
    #: ``partner:sha256`` for a batch whose signature checked out: the same file again is
    #: the same batch. Refused signatures leave it empty, so a corrected re-send goes through.
    dedupe_key: Mapped[str | None] = mapped_column(String(110), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_format: Mapped[str | None] = mapped_column(String(8))
    rows_total: Mapped[int] = mapped_column(default=0)
    rows_accepted: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    rows_outside_window: Mapped[int] = mapped_column(default=0)
    unknown_columns: Mapped[list[str] | None] = mapped_column(JSON)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    #: How often processing was started; an unexpected error more often than allowed fails it.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Set by the worker that claimed the batch; only that worker may finish it.
    claim_token: Mapped[str | None] = mapped_column(String(36))

    partner: Mapped[Partner] = relationship()
    municipality: Mapped[Municipality] = relationship()
    payload: Mapped[BatchPayload | None] = relationship(
        back_populates="batch", cascade="all, delete-orphan"
    )


class BatchPayload(Base):
    """The detached signature of a batch; its ciphertext is kept in :class:`BatchChunk` rows."""

    __tablename__ = "batch_payloads"

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    chunk_count: Mapped[int]

    batch: Mapped[Batch] = relationship(back_populates="payload")


class BatchChunk(Base):
    """One piece (at most 1 MiB) of a batch's ciphertext exactly as received; never plaintext.

    Kept in pieces so that processing a batch of any size reads it with flat memory.
    """

    __tablename__ = "batch_chunks"

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Rejection(Base):
    """One refused row of a batch: row number, field and code; never the submitted value."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    row: Mapped[int]
    field: Mapped[str] = mapped_column(String(64))
    code: Mapped[RowCode] = mapped_column(value_enum(RowCode, 32))


class Client(Base):
    """A person signalled to a municipality, recognised by a keyed hash; identity encrypted."""

    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("municipality_id", "client_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    #: HMAC of the BSN, or (without BSN) of address, birth date and surname.
    client_key: Mapped[str] = mapped_column(String(64))
    bsn_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    gender: Mapped[Gender | None] = mapped_column(value_enum(Gender, 16))
    #: AES-GCM ciphertext of the identity: BSN, initials, prefix, surname, birth date.
    identity: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Signal(Base):
    """A vroegsignaal: one row of a batch that passed validation."""

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("partner_id", "signal_ref"),
        Index(None, "municipality_id", "signal_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), index=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    #: The partner's own reference (``signaal_id``).
    signal_ref: Mapped[str] = mapped_column(String(64))
    partner_type: Mapped[PartnerType] = mapped_column(value_enum(PartnerType))
    signal_date: Mapped[dt.date]
    arrears_start_date: Mapped[dt.date]
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    monthly_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    crisis: Mapped[bool] = mapped_column(default=False)
    warm_handover: Mapped[bool] = mapped_column(default=False)
    end_of_supply: Mapped[bool] = mapped_column(default=False)
    eviction_date: Mapped[dt.date | None]
    window_flag: Mapped[WindowFlag] = mapped_column(value_enum(WindowFlag, 16))
    status: Mapped[SignalStatus] = mapped_column(
        value_enum(SignalStatus), default=SignalStatus.NOG_NIET_OPGEPAKT
    )
    #: Keyed hash of postcode + house number (+ addition): recognises a household.
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    bsn_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    #: The four digits of the postcode: coarse enough for statistics.
    postcode_area: Mapped[str] = mapped_column(String(4))
    age_band: Mapped[str | None] = mapped_column(String(8))
    #: AES-GCM ciphertext of the address and contact details as the partner reported them.
    contact: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    client: Mapped[Client] = relationship()
    partner: Mapped[Partner] = relationship()


__all__: list[Any] = [
    "Batch",
    "BatchChunk",
    "BatchPayload",
    "Client",
    "Municipality",
    "Partner",
    "PartnerKey",
    "RecipientKey",
    "Rejection",
    "Signal",
    "User",
]


class StatisticsMark(Base):
    """A month of a municipality whose statistics must be counted again.

    Written in the same transaction as the change (ingest, matching, attempts, results), so
    a mark exists exactly as long as the pre-counted figures of that month may be stale.
    Duplicates are allowed (no unique key): two writers never collide on a mark.
    """

    __tablename__ = "statistics_marks"
    __table_args__ = (Index(None, "municipality_id", "month"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    #: The first day of the month.
    month: Mapped[dt.date]


def first_of_month(day: dt.date | dt.datetime) -> dt.date:
    return dt.date(day.year, day.month, 1)


class AuditEvent(Base):
    """The audit trail: who saw or changed what, when and why. Append-only and chained.

    ``hash`` is SHA-256 over the previous event's hash and this event's fields, so changing,
    removing or reordering an event breaks the chain (``vroegsignaal audit verify``). No
    personal data: case and municipality by id, the subject of an AVG request only as a
    keyed hash.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    #: A user's e-mail, "cli:<login>", "systeem" or "partner:<id>".
    actor: Mapped[str] = mapped_column(String(254))
    #: What happened: "case.view", "case.change", "export", "avg.inzage", "avg.wissen", ...
    action: Mapped[str] = mapped_column(String(40))
    #: Why (the purpose of processing), in plain Dutch.
    purpose: Mapped[str] = mapped_column(String(200), default="")
    #: Kept as plain ids, not foreign keys: the trail outlives deleted cases.
    case_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    municipality_id: Mapped[int | None]
    #: A keyed hash naming the person of an AVG request (never the BSN).
    subject: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class RetainedSignal(Base):
    """What is left of a deleted signal: the keyed address hash, for the 6-month repeat rule.

    The retention job deletes signals and cases without accepted help after the configured
    term; matching still recognises a repeat from these rows, which hold no personal data
    beyond a keyed hash and are themselves deleted after the repeat look-back.
    """

    __tablename__ = "retained_signals"
    __table_args__ = (Index(None, "municipality_id", "address_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    address_hash: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[str] = mapped_column(String(36))
    signal_date: Mapped[dt.date]


class JobState(Base):
    """The last run of each periodic job, kept by whichever process ran it.

    ``last_slot`` makes a scheduled run happen once however many schedulers fire it: the
    slot is the run's place in the job's timetable (the interval's number since the epoch,
    or the day of a daily job) and a process runs the job only for a slot newer than this.
    The other fields are what ``/metrics`` reports: no personal data, counts and times only.
    """

    __tablename__ = "job_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_slot: Mapped[int | None] = mapped_column(BigInteger)
    last_started_at: Mapped[dt.datetime | None]
    last_finished_at: Mapped[dt.datetime | None]
    last_success_at: Mapped[dt.datetime | None]
    last_duration_seconds: Mapped[float | None]
    #: "running", "ok" or "failed"
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    #: The exception's type of a failed run, never its message (it may quote data).
    last_error: Mapped[str | None] = mapped_column(String(120))
    #: host:pid of the process of the last run
    runner: Mapped[str | None] = mapped_column(String(120))
    runs: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failures: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
