"""Retention: what is past its term is deleted, on the boundary days exactly; repeats are
still recognised from the keyed address hash; every purge is audited with counts only."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, func, select, update

from outreach.enums import CaseResult, CaseState, ContactKind
from outreach.jobs import match, purge_expired
from outreach.models import Case, CaseEvent, ContactAttempt, DdasDelivery, Task
from scoring.models import HouseholdScore, ModelVersion
from signals import audit
from signals.db import unit_of_work, utcnow
from signals.models import (
    AuditEvent,
    Batch,
    BatchChunk,
    BatchPayload,
    Client,
    Rejection,
    RetainedSignal,
    Signal,
    StatisticsMark,
    first_of_month,
)
from signals.rules import NL, today_nl
from signals.runtime import Runtime
from tests.factories import World, row

TODAY = today_nl()


def bsn(seed: int) -> str:
    """A BSN passing the elfproef, different for every seed."""
    while True:
        digits = f"{seed:08d}"
        total = sum(w * int(d) for w, d in zip(range(9, 1, -1), digits, strict=True))
        for last in range(10):
            if (total - last) % 11 == 0 and int(digits):
                return digits + str(last)
        seed += 1


def months_ago(n: int, days: int = 0) -> dt.date:
    return TODAY - relativedelta(months=n) - dt.timedelta(days=days)


def signal_row(ref: str, person: int, day: dt.date, **extra: str) -> dict[str, str]:
    return row(
        signaal_id=ref,
        bsn=bsn(10_000_000 + person * 7919),
        signaaldatum=day.isoformat(),
        ontstaansdatum=(day - dt.timedelta(days=60)).isoformat(),
        **extra,
    )


def close_as(runtime: Runtime, ref: str, result: CaseResult, closed_on: dt.date) -> int:
    """Close the case of signal ``ref`` on ``closed_on`` (the test stands in for months of work)."""
    with unit_of_work(runtime.sessions) as session:
        case = session.scalars(
            select(Case).join(Case.signals).where(Signal.signal_ref == ref)
        ).one()
        case.state, case.result, case.closed_on = CaseState.AFGESLOTEN, result, closed_on
        case.tasks.append(Task(kind=ContactKind.BRIEF, due_on=closed_on, done_at=utcnow()))
        return case.id


def refs(runtime: Runtime) -> set[str]:
    with unit_of_work(runtime.readers) as session:
        return set(session.scalars(select(Signal.signal_ref)))


def purges(runtime: Runtime) -> list[dict[str, Any]]:
    with unit_of_work(runtime.readers) as session:
        return [
            audit.as_dict(e)
            for e in audit.events(session)
            if e.action == "bewaartermijn.verwijderd"
        ]


def test_expired_cases_and_signals_go_on_the_boundary_day_the_rest_stays(world: World) -> None:
    runtime = world.runtime
    plain = months_ago(6)  # the default term: closed before this day is expired
    accepted = months_ago(36)
    world.ingest(
        [
            signal_row("GONE-1", 1, months_ago(8)),  # closed a day before the boundary
            signal_row("KEPT-1", 2, months_ago(8)),  # closed on the boundary day
            signal_row("KEPT-2", 3, months_ago(8)),  # help accepted: its own term
            signal_row("GONE-2", 4, months_ago(39)),  # help accepted, term over
            signal_row("KEPT-3", 5, months_ago(39)),  # help accepted, closed on that boundary
            signal_row("KEPT-4", 6, months_ago(9)),  # open case: never deleted
        ],
        "cases.p7m",
    )
    match(runtime)
    gone_1 = close_as(runtime, "GONE-1", CaseResult.GEEN_CONTACT, plain - dt.timedelta(days=1))
    close_as(runtime, "KEPT-1", CaseResult.GEEN_CONTACT, plain)
    close_as(runtime, "KEPT-2", CaseResult.ADVIES_QUICK_FIX, months_ago(7))
    gone_2 = close_as(runtime, "GONE-2", CaseResult.VERVOLGHULP, accepted - dt.timedelta(days=1))
    close_as(runtime, "KEPT-3", CaseResult.VERVOLGHULP_FINANCIEEL, accepted)
    # Signals that never became a case: one a day past the term, one on the boundary.
    world.ingest(
        [signal_row("GONE-3", 7, plain - dt.timedelta(days=1)), signal_row("KEPT-5", 8, plain)],
        "loose.p7m",
    )
    with unit_of_work(runtime.sessions) as session:
        session.add(
            DdasDelivery(period_start=months_ago(40), period_end=months_ago(37), gemeenten="0344",
                         ddas_version="1.2", product="t", signals=1, cases=1, sha256="0" * 64,
                         by="systeem")
        )  # fmt: skip
        session.execute(delete(StatisticsMark))  # counted; only new marks are left
        clients_before = session.scalar(select(func.count(Client.id)))
        # A risk score for a household that goes and one that stays.
        version = ModelVersion(version="t", artifact_path="-", training_data="synthetic",
                               evaluation={}, gates_failed=[])  # fmt: skip
        session.add(version)
        session.flush()
        for ref in ("GONE-1", "KEPT-1"):
            key = session.scalars(select(Signal.bsn_hash).where(Signal.signal_ref == ref)).one()
            session.add(
                HouseholdScore(municipality_id=world.municipality_id, household_key=key,
                               model_version_id=version.id, probability=0.5, band="midden",
                               reasons=[], last_signal_id=0)
            )  # fmt: skip

    totals = purge_expired(runtime)

    assert refs(runtime) == {"KEPT-1", "KEPT-2", "KEPT-3", "KEPT-4", "KEPT-5"}
    assert totals["cases"] == 2 and totals["signals"] == 3 and totals["clients"] == 3
    assert totals["scores"] == 1
    assert totals["tasks"] == 2 and totals["retained_added"] == 0  # all older than the look-back
    with unit_of_work(runtime.readers) as session:
        assert session.scalar(select(func.count(Case.id)).where(Case.id.in_([gone_1, gone_2]))) == 0
        assert session.scalar(select(func.count(CaseEvent.id)).where(
            CaseEvent.case_id.in_([gone_1, gone_2]))) == 0  # fmt: skip
        assert session.scalar(select(func.count(Client.id))) == clients_before - 3
        assert session.scalar(select(func.count(DdasDelivery.id))) == 1  # the log stays
        assert session.scalar(select(func.count(HouseholdScore.id))) == 1
        # The statistics of the months concerned are marked for a recount.
        marked = set(session.scalars(select(StatisticsMark.month)))
        assert {first_of_month(months_ago(8)), first_of_month(months_ago(39))} <= marked
        # The trail keeps what happened to the deleted cases, by id.
        assert session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.case_id == gone_1))
    (purge,) = purges(runtime)
    assert purge["municipality_id"] == world.municipality_id
    assert purge["detail"]["cases"] == 2 and purge["detail"]["signals"] == 3
    assert purge["purpose"] and purge["actor"] == "systeem"
    stored = json.dumps(purge)
    for value in ("GONE", "Vries", "Oudegracht", bsn(10_000_000 + 7919)):
        assert value not in stored

    # Nothing is left to do: a second run deletes nothing and records nothing.
    assert not any(purge_expired(runtime).values())
    assert len(purges(runtime)) == 1
    with unit_of_work(runtime.readers) as session:
        assert audit.verify(session).ok


def test_the_encrypted_file_of_an_old_batch_goes_its_report_stays(world: World) -> None:
    runtime = world.runtime
    report = world.ingest([signal_row("B-1", 1, TODAY - dt.timedelta(days=3))], "old.p7m")
    world.ingest([signal_row("B-2", 2, TODAY - dt.timedelta(days=3))], "new.p7m")
    old_moment = dt.datetime.combine(months_ago(6, days=1), dt.time(12), tzinfo=NL)
    with unit_of_work(runtime.sessions) as session:
        session.execute(
            update(Batch).where(Batch.id == report["id"]).values(received_at=old_moment)
        )
        session.add(Rejection(batch_id=report["id"], row=2, field="bsn", code="bsn_checksum"))
    assert purge_expired(runtime)["batch_files"] == 1
    with unit_of_work(runtime.readers) as session:
        chunks = dict(
            session.execute(
                select(BatchChunk.batch_id, func.count()).group_by(BatchChunk.batch_id)
            ).all()
        )
        assert report["id"] not in chunks and len(chunks) == 1  # the newer file stays
        assert session.get(BatchPayload, report["id"]).chunk_count == 0  # type: ignore[union-attr]
        assert session.get(Batch, report["id"]).rows_accepted == 1  # type: ignore[union-attr]
        assert session.scalar(select(func.count(Rejection.id))) == 1
    assert refs(runtime) == {"B-1", "B-2"}  # stored signals follow their own term


def test_a_repeat_is_recognised_from_the_retained_address_hash(world: World) -> None:
    # A short term for signals, the usual look-back for repeats.
    runtime = Runtime(
        world.runtime.settings.model_copy(update={"retention_months": 1}), world.runtime.engine
    )
    world.ingest(
        [
            signal_row("EARLY", 1, months_ago(3)),
            signal_row("ELSEWHERE", 2, months_ago(3), postcode="9999 ZZ", huisnummer="1"),
        ],
        "early.p7m",
    )
    match(runtime)
    close_as(runtime, "EARLY", CaseResult.GEEN_CONTACT, months_ago(2))
    close_as(runtime, "ELSEWHERE", CaseResult.GEEN_CONTACT, months_ago(2))
    with unit_of_work(runtime.sessions) as session:
        session.add(
            RetainedSignal(municipality_id=world.municipality_id, address_hash="f" * 64,
                           partner_id=world.partner_id, signal_date=months_ago(6, days=1))
        )  # fmt: skip
    totals = purge_expired(runtime)
    assert totals["signals"] == 2 and totals["retained_added"] == 2
    assert totals["retained_deleted"] == 1  # older than the look-back
    assert refs(runtime) == set()
    with unit_of_work(runtime.readers) as session:
        retained = session.scalars(select(RetainedSignal)).all()
        assert {r.signal_date for r in retained} == {months_ago(3)}
        assert {r.partner_id for r in retained} == {world.partner_id}

    # The same address signals again (another person there, and a new address for control).
    world.ingest(
        [
            signal_row("AGAIN", 3, TODAY - dt.timedelta(days=1)),
            signal_row("NEW", 4, TODAY - dt.timedelta(days=1), postcode="1234 AB"),
        ],
        "now.p7m",
    )
    match(runtime)
    with unit_of_work(runtime.readers) as session:
        flags = dict(
            session.execute(select(Signal.signal_ref, Case.opeenvolgend).join(Case.signals)).all()
        )
    assert flags == {"AGAIN": True, "NEW": False}


def test_attempts_and_open_work_of_a_kept_case_are_untouched(world: World) -> None:
    world.ingest([signal_row("OPEN", 1, months_ago(12))], "open.p7m")
    match(world.runtime)
    with unit_of_work(world.runtime.readers) as session:
        before = (
            session.scalar(select(func.count(ContactAttempt.id))),
            session.scalar(select(func.count(Task.id))),
        )
    assert not any(purge_expired(world.runtime).values())
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalars(select(Case.state)).one() is not CaseState.AFGESLOTEN
        after = (
            session.scalar(select(func.count(ContactAttempt.id))),
            session.scalar(select(func.count(Task.id))),
        )
    assert before == after and refs(world.runtime) == {"OPEN"}


def test_the_pre_counted_statistics_follow_a_purge(world: World) -> None:
    """Deleted rows leave the figures of their months; the marks make the dashboard count
    those months directly until ``count_statistics`` has recounted them."""
    from outreach.jobs import count_statistics
    from outreach.statistics import compute
    from tests.outreach.test_statistics import _tables

    runtime = world.runtime
    world.ingest(
        [signal_row("GONE-1", 1, months_ago(8)), signal_row("KEPT-1", 2, months_ago(8))], "s.p7m"
    )
    match(runtime)
    close_as(runtime, "GONE-1", CaseResult.GEEN_CONTACT, months_ago(7))
    count_statistics(runtime)
    period = (months_ago(12), TODAY)

    def figures(stored: bool) -> Any:
        with unit_of_work(runtime.readers) as session:
            return _tables(compute(session, [world.municipality_id], *period, {}, stored=stored))

    before = figures(True)
    assert before == figures(False)
    assert purge_expired(runtime)["signals"] == 1
    after = figures(True)
    assert after == figures(False) and after != before
    assert count_statistics(runtime)["maanden"] >= 1
    assert figures(True) == after
