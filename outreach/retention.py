"""Retention: personal data is deleted when its term ends (DOMAIN.md, "Retention").

* A case closed without accepted help is deleted ``retention_months`` after it closed, with
  its signals, tasks, contact attempts, messages and timeline; a case with accepted help
  (:data:`outreach.enums.HELP_ACCEPTED`) after ``retention_accepted_months``. Open cases are
  never deleted.
* A signal that never became a case is deleted ``retention_months`` after its signal date.
* A client (the encrypted identity) goes when none of its signals is left, and so do the
  risk scores of a household without any signal left.
* The encrypted file of a finished batch goes after ``retention_months``: the batch row,
  its report and its rejections (row, field and code only) stay.
* Before a signal is deleted, a :class:`~signals.models.RetainedSignal` keeps its keyed
  address hash, partner and date, so matching still recognises a repeat (*opeenvolgend*)
  over ``repeat_lookback_months``; retained rows older than that look-back are deleted.

Deletes go through the ORM, so the statistics hook (``outreach.models``) marks the months
whose figures change and ``count_statistics`` recounts them: the dashboard shows what is
still held. The DDAS delivery log and the audit trail stay. Every purge is audited with
counts, never contents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

from dateutil.relativedelta import relativedelta
from sqlalchemy import Select, and_, delete, or_, select, update
from sqlalchemy.orm import Session, selectinload

from config import Settings
from outreach.enums import HELP_ACCEPTED, CaseState
from outreach.models import Case, CaseSignal
from scoring.models import HouseholdScore
from signals import audit
from signals.enums import BatchStatus
from signals.models import (
    Batch,
    BatchChunk,
    BatchPayload,
    Client,
    RetainedSignal,
    Signal,
)

ACCEPTED = sorted(HELP_ACCEPTED)


@dataclass
class Purged:
    """What one purge deleted: counts only."""

    cases: int = 0
    signals: int = 0
    clients: int = 0
    tasks: int = 0
    attempts: int = 0
    messages: int = 0
    case_events: int = 0
    scores: int = 0
    batch_files: int = 0
    retained_added: int = 0
    retained_deleted: int = 0

    def add(self, other: Purged) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __bool__(self) -> bool:
        return any(self.as_dict().values())


@dataclass(frozen=True)
class Cutoffs:
    """Data from before these days is past its term (dates in Europe/Amsterdam)."""

    plain: dt.date
    accepted: dt.date
    lookback: dt.date

    @classmethod
    def of(cls, today: dt.date, settings: Settings) -> Cutoffs:
        return cls(
            plain=today - relativedelta(months=settings.retention_months),
            accepted=today - relativedelta(months=settings.retention_accepted_months),
            lookback=today - relativedelta(months=settings.repeat_lookback_months),
        )


def expired_cases(municipality_id: int, cutoffs: Cutoffs) -> Select[tuple[int]]:
    """Closed cases of the municipality whose term has ended."""
    accepted = Case.result.in_(ACCEPTED)
    return select(Case.id).where(
        Case.municipality_id == municipality_id,
        Case.state == CaseState.AFGESLOTEN,
        Case.closed_on.is_not(None),
        or_(
            and_(or_(Case.result.is_(None), ~accepted), Case.closed_on < cutoffs.plain),
            and_(accepted, Case.closed_on < cutoffs.accepted),
        ),
    )


def delete_cases_and_signals(
    session: Session,
    cases: list[Case],
    signals: list[Signal],
    lookback: dt.date | None,
) -> Purged:
    """Delete the cases (with everything in them) and the signals; their clients when no
    signal of theirs is left. With ``lookback``, a retained row keeps the keyed address hash
    of every signal of the look-back period."""
    out = Purged()
    every_signal = {s.id: s for s in signals}
    for case in cases:
        for signal in case.signals:
            every_signal[signal.id] = signal
        out.tasks += len(case.tasks)
        out.attempts += len(case.attempts)
        out.messages += len(case.messages)
        out.case_events += len(case.events)
        session.delete(case)
    out.cases = len(cases)
    session.flush()
    clients = {s.client_id for s in every_signal.values()}
    for signal in every_signal.values():
        if lookback is not None and signal.signal_date >= lookback:
            session.add(
                RetainedSignal(
                    municipality_id=signal.municipality_id,
                    address_hash=signal.address_hash,
                    partner_id=signal.partner_id,
                    signal_date=signal.signal_date,
                )
            )
            out.retained_added += 1
        session.delete(signal)
    out.signals = len(every_signal)
    session.flush()
    out.scores = _drop_scores(session, every_signal.values())
    if clients:
        still_used = set(
            session.scalars(select(Signal.client_id).where(Signal.client_id.in_(clients)))
        )
        for client_id in sorted(clients - still_used):
            client = session.get(Client, client_id)
            if client is not None:
                session.delete(client)
                out.clients += 1
        session.flush()
    return out


def _household(signal: Signal) -> tuple[int, str]:
    return signal.municipality_id, signal.bsn_hash or signal.address_hash


def _drop_scores(session: Session, deleted: Iterable[Signal]) -> int:
    """The risk scores of households that no longer have any signal (a profile of a person)."""
    dropped = 0
    for municipality_id, key in sorted({_household(s) for s in deleted}):
        left = session.scalar(
            select(Signal.id)
            .where(
                Signal.municipality_id == municipality_id,
                or_(
                    Signal.bsn_hash == key,
                    and_(Signal.bsn_hash.is_(None), Signal.address_hash == key),
                ),
            )
            .limit(1)
        )
        if left is None:
            dropped += (
                session.execute(
                    delete(HouseholdScore).where(
                        HouseholdScore.municipality_id == municipality_id,
                        HouseholdScore.household_key == key,
                    )
                ).rowcount
                or 0
            )
    return dropped


def purge_municipality(
    session: Session,
    settings: Settings,
    municipality_id: int,
    today: dt.date,
    limit: int = 1_000,
    actor: str = audit.SYSTEM,
) -> Purged:
    """One unit of work of the retention job for one municipality (at most ``limit`` cases
    and ``limit`` loose signals); call again until it returns nothing."""
    cutoffs = Cutoffs.of(today, settings)
    cases = list(
        session.scalars(
            select(Case)
            .where(Case.id.in_(expired_cases(municipality_id, cutoffs)))
            .order_by(Case.id)
            .limit(limit)
            .options(
                selectinload(Case.signals),
                selectinload(Case.tasks),
                selectinload(Case.attempts),
                selectinload(Case.messages),
                selectinload(Case.events),
            )
        )
    )
    loose = list(
        session.scalars(
            select(Signal)
            .outerjoin(CaseSignal, CaseSignal.signal_id == Signal.id)
            .where(
                Signal.municipality_id == municipality_id,
                CaseSignal.signal_id.is_(None),
                Signal.signal_date < cutoffs.plain,
            )
            .order_by(Signal.id)
            .limit(limit)
        )
    )
    out = delete_cases_and_signals(session, cases, loose, cutoffs.lookback)
    out.retained_deleted = (
        session.execute(
            delete(RetainedSignal)
            .where(
                RetainedSignal.municipality_id == municipality_id,
                RetainedSignal.signal_date < cutoffs.lookback,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    out.batch_files = _drop_batch_files(session, municipality_id, cutoffs.plain)
    if out:
        audit.record(
            session,
            actor,
            "bewaartermijn.verwijderd",
            purpose=audit.PURPOSE_RETENTION,
            municipality_id=municipality_id,
            **out.as_dict(),
        )
    return out


def _drop_batch_files(session: Session, municipality_id: int, cutoff: dt.date) -> int:
    """The encrypted files of finished batches received before ``cutoff``."""
    moment = dt.datetime.combine(cutoff, dt.time(), tzinfo=dt.UTC)
    ids = list(
        session.scalars(
            select(Batch.id)
            .join(BatchPayload, BatchPayload.batch_id == Batch.id)
            .where(
                Batch.municipality_id == municipality_id,
                Batch.status.in_([BatchStatus.PROCESSED, BatchStatus.FAILED]),
                Batch.received_at < moment,
                BatchPayload.chunk_count > 0,
            )
        )
    )
    if not ids:
        return 0
    session.execute(delete(BatchChunk).where(BatchChunk.batch_id.in_(ids)))
    session.execute(
        update(BatchPayload).where(BatchPayload.batch_id.in_(ids)).values(chunk_count=0)
    )
    return len(ids)
