"""Typed ORM models of outreach: cases, their signals, tasks, contact attempts and events."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    bindparam,
    func,
    inspect,
    literal_column,
)
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from outreach.enums import CaseResult, CaseState, ContactKind, Dagdeel
from signals.db import Base, utcnow
from signals.models import (
    BigId,
    Municipality,
    Signal,
    StatisticsMark,
    User,
    first_of_month,
    new_uuid,
    value_enum,
)


class Case(Base):
    """A *vroegsignaalzaak*: the signals of one household in one matching period.

    ``household_key`` is the keyed hash of the BSN, else of the address, as in scoring.
    Priority, band and probability are copied from the newest score so that the queue is
    one indexed query; the reasons are read from the score itself.
    """

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_state", "municipality_id", "state"),
        Index("ix_cases_household_period", "municipality_id", "household_key", "period"),
        # The statistics count a municipality's cases by the month they were created.
        Index("ix_cases_created", "municipality_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    household_key: Mapped[str] = mapped_column(String(64))
    #: The matching period, e.g. "2026-11" for the calendar month.
    period: Mapped[str] = mapped_column(String(10))
    state: Mapped[CaseState] = mapped_column(value_enum(CaseState, 16))
    meervoudig: Mapped[bool] = mapped_column(default=False)
    opeenvolgend: Mapped[bool] = mapped_column(default=False)
    crisis: Mapped[bool] = mapped_column(default=False)
    end_of_supply: Mapped[bool] = mapped_column(default=False)
    #: Someone under 18 is registered at the household's address (BRP, at the resident
    #: check); None while unknown. For the statistics only.
    children: Mapped[bool | None]
    eviction_date: Mapped[dt.date | None]
    #: Outcome of the resident check: "inwoner", "geen_inwoner", "te_beoordelen"; None
    #: while not checked (no register configured yet).
    resident_check: Mapped[str | None] = mapped_column(String(16))
    #: Why the case waits on the review list (no personal data), else None.
    review_reason: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=2)
    band: Mapped[str | None] = mapped_column(String(8))
    probability: Mapped[float | None]
    score_id: Mapped[int | None] = mapped_column(ForeignKey("household_scores.id"))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    first_attempt_due: Mapped[dt.date | None]
    picked_up_on: Mapped[dt.date | None]
    closed_on: Mapped[dt.date | None]
    result: Mapped[CaseResult | None] = mapped_column(value_enum(CaseResult, 80))
    #: After accepted help: the creditor pauses collection until this date.
    collection_pause_until: Mapped[dt.date | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    municipality: Mapped[Municipality] = relationship()
    assigned_to: Mapped[User | None] = relationship()
    signals: Mapped[list[Signal]] = relationship(
        secondary="case_signals", order_by="Signal.signal_date"
    )
    tasks: Mapped[list[Task]] = relationship(
        back_populates="case", order_by="Task.due_on", cascade="all, delete-orphan"
    )
    attempts: Mapped[list[ContactAttempt]] = relationship(
        back_populates="case", order_by="ContactAttempt.at", cascade="all, delete-orphan"
    )
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )
    messages: Mapped[list[CaseMessage]] = relationship(
        order_by="CaseMessage.id", cascade="all, delete-orphan"
    )


#: The states of the queue (work still to do).
OPEN_STATES = (CaseState.NIEUW, CaseState.OPGEPAKT)


def queue_order() -> tuple[Any, ...]:
    """The queue's order: priority, then the risk (unscored last), the due date, the id."""
    return (
        Case.priority,
        func.coalesce(Case.probability, literal_column("-1.0")).desc(),
        Case.first_attempt_due,
        Case.id,
    )


def is_open() -> Any:
    """``state IN ('nieuw', 'opgepakt')`` with the values inlined, as the partial index
    ``ix_cases_queue`` is written: SQLite uses a partial index only for literally the same
    condition."""
    return Case.state.in_(
        bindparam("open_states", list(OPEN_STATES), expanding=True, literal_execute=True)
    )


# A counsellor's own cases (their count, their due tasks): only assigned cases are indexed.
# A plain index on assigned_to_id, NULL for most cases, looked unselective to SQLite's
# planner, which then scanned every open task instead (bench/README.md).
Index(
    "ix_cases_assigned",
    Case.assigned_to_id,
    Case.state,
    sqlite_where=Case.assigned_to_id.is_not(None),
    postgresql_where=Case.assigned_to_id.is_not(None),
)

# The queue walks this index in order and stops after one page, however many cases are open.
Index(
    "ix_cases_queue",
    Case.municipality_id,
    *queue_order(),
    sqlite_where=Case.state.in_(list(OPEN_STATES)),
    postgresql_where=Case.state.in_(list(OPEN_STATES)),
)


class CaseSignal(Base):
    """A signal belongs to exactly one case."""

    __tablename__ = "case_signals"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    signal_id: Mapped[int] = mapped_column(ForeignKey("signals.id"), primary_key=True)


class Task(Base):
    """A planned contact attempt; done when an attempt of the case records it."""

    __tablename__ = "tasks"
    __table_args__ = (Index(None, "done_at", "due_on"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ContactKind] = mapped_column(value_enum(ContactKind, 24))
    due_on: Mapped[dt.date]
    done_at: Mapped[dt.datetime | None]
    escalated_at: Mapped[dt.datetime | None]

    case: Mapped[Case] = relationship(back_populates="tasks")


class ContactAttempt(Base):
    """A *contactpoging*: kind, moment (dagdeel derived), reached or not, and a note."""

    __tablename__ = "contact_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ContactKind] = mapped_column(value_enum(ContactKind, 24))
    at: Mapped[dt.datetime]
    dagdeel: Mapped[Dagdeel] = mapped_column(value_enum(Dagdeel, 8))
    reached: Mapped[bool]
    #: The counsellor's note, encrypted like all personal data.
    note: Mapped[bytes | None] = mapped_column(LargeBinary)
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="attempts")
    by: Mapped[User] = relationship()


class CaseEvent(Base):
    """The audit trail of a case: every state change and every action, by whom and when."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: A user's e-mail or "systeem" for a job.
    actor: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(32))
    #: Plain Dutch for the timeline; never names, BSN, addresses or amounts.
    text: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    case: Mapped[Case] = relationship(back_populates="events")


class Resident(Base):
    """One person of an imported BRP extract: keyed hashes to find them, the rest encrypted.

    An import replaces the municipality's whole extract in one transaction.
    """

    __tablename__ = "residents"
    __table_args__ = (
        Index("ix_residents_bsn", "municipality_id", "bsn_hash"),
        Index("ix_residents_address", "municipality_id", "building_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipalities.id", ondelete="CASCADE")
    )
    bsn_hash: Mapped[str] = mapped_column(String(64))
    #: Keyed hash of postcode and house number (without letter or addition).
    building_hash: Mapped[str] = mapped_column(String(64))
    #: Names, partner names, birth date and address, encrypted.
    identity: Mapped[bytes] = mapped_column(LargeBinary)
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CaseMessage(Base):
    """A letter, card or e-mail sent to the resident, kept in the case as it was sent."""

    __tablename__ = "case_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ContactKind] = mapped_column(value_enum(ContactKind, 24))
    #: Recipient (address or e-mail), subject and text: encrypted like all personal data.
    content: Mapped[bytes] = mapped_column(LargeBinary)
    #: The SMTP Message-ID of an e-mail.
    message_id: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    by: Mapped[User] = relationship()


class DdasDelivery(Base):
    """The delivery log: which period went to CBS, how much, its hash, who, when. No BSN."""

    __tablename__ = "ddas_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    #: Comma-separated CBS codes of the municipalities in the delivery.
    gemeenten: Mapped[str] = mapped_column(Text)
    ddas_version: Mapped[str] = mapped_column(String(8))
    product: Mapped[str] = mapped_column(String(80))
    signals: Mapped[int]
    cases: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    #: A user's e-mail, "cli:<login>" or "systeem".
    by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExportStatus(enum.StrEnum):
    """Where an export asked for on the DDAS page stands (:mod:`outreach.exports`)."""

    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    REFUSED = "refused"
    FAILED = "failed"
    #: ready once, then removed: its time was up, or the admin removed it
    REMOVED = "removed"


class DdasExport(Base):
    """An export asked for on the DDAS page, made by the scheduler, not in the request.

    Holds no personal data: the file is in ``ddas_exports_dir`` under the export's id,
    encrypted with the data key (:class:`outreach.exports.SealedFile`). ``violations`` are
    the paths and rules of a refusal, never values; ``error`` says why it failed
    ("interrupted": its maker stopped ``ddas_export_max_attempts`` times).
    """

    __tablename__ = "ddas_exports"
    __table_args__ = (Index(None, "status", "requested_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    #: Only the admin who asked may follow and download it.
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: Comma-separated CBS codes, as in the delivery log.
    gemeenten: Mapped[str] = mapped_column(Text)
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    status: Mapped[ExportStatus] = mapped_column(value_enum(ExportStatus, 16))
    attempts: Mapped[int] = mapped_column(default=0)
    #: Progress: the signals the delivery will hold (counted when it starts), and written.
    signals_total: Mapped[int | None]
    signals_done: Mapped[int] = mapped_column(default=0)
    violations: Mapped[list[str] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(120))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("ddas_deliveries.id"))
    size: Mapped[int | None] = mapped_column(BigId)
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    downloads: Mapped[int] = mapped_column(default=0)

    delivery: Mapped[DdasDelivery | None] = relationship()


class StatisticsCount(Base):
    """One pre-counted figure of one month of one municipality (``outreach.statistics``).

    ``figure`` names what is counted, ``key`` the category within it (a partner type, a
    DDAS result, a number of days), ``n`` the count. Kept equal to a direct count by the
    ``count_statistics`` job, which recounts every month with a :class:`StatisticsMark`.
    """

    __tablename__ = "statistics_counts"

    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), primary_key=True)
    month: Mapped[dt.date] = mapped_column(primary_key=True)
    figure: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    n: Mapped[int] = mapped_column(BigId)


class StatisticsState(Base):
    """A municipality whose months have all been counted once; from then on only marks."""

    __tablename__ = "statistics_state"

    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), primary_key=True)
    counted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# -- marks for the pre-counted statistics -------------------------------------------------------
def _case_month(session: Session, case_id: int | None, case: Case | None) -> tuple[int, dt.date]:
    if case is None:
        case = session.get(Case, case_id)
    assert case is not None
    return case.municipality_id, first_of_month(case.created_at or utcnow())


@orm_event.listens_for(Session, "before_flush")
def _mark_statistics(session: Session, context: Any, instances: Any) -> None:
    """Mark the months whose statistics a flush changes, in the same transaction.

    Core statements bypass this: the ingest marks the months of the signals it inserts
    itself, and the only core update of a case (claiming it) changes no statistic.
    """
    months: set[tuple[int, dt.date]] = set()
    with session.no_autoflush:
        for obj in (*session.new, *session.dirty, *session.deleted):
            if isinstance(obj, Signal):
                if obj.municipality_id is not None and obj.signal_date is not None:
                    months.add((obj.municipality_id, first_of_month(obj.signal_date)))
            elif isinstance(obj, Case):
                if obj.municipality_id is not None:
                    months.add((obj.municipality_id, first_of_month(obj.created_at or utcnow())))
                # A signal joining (or leaving) a case changes the month of the signal too.
                history = inspect(obj).attrs.signals.history
                for signal in (*history.added, *history.deleted):
                    months.add((signal.municipality_id, first_of_month(signal.signal_date)))
            elif isinstance(obj, ContactAttempt):
                months.add(_case_month(session, obj.case_id, obj.__dict__.get("case")))
            elif isinstance(obj, CaseSignal):
                months.add(_case_month(session, obj.case_id, obj.__dict__.get("case")))
                signal = obj.__dict__.get("signal") or session.get(Signal, obj.signal_id)
                if signal is not None:
                    months.add((signal.municipality_id, first_of_month(signal.signal_date)))
    for municipality_id, month in months:
        session.add(StatisticsMark(municipality_id=municipality_id, month=month))
