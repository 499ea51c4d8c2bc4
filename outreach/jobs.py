"""Outreach jobs: matching, planning from scores, escalation of overdue work.

Each selects its work by state and commits one unit per municipality, so a re-run after a
crash is safe. Logs carry counts only, never who a case is about.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from outreach import residents, retention, statistics, timeline
from outreach.enums import CaseResult, CaseState
from outreach.letters import MailError, mail
from outreach.matching import match_signals, municipalities_with_unmatched
from outreach.models import OPEN_STATES, Case, Resident, Task
from outreach.residents import HaalCentraalRegister, LocalRegister, Register, RegisterUnavailable
from outreach.rules import priority, threatening
from outreach.service import SYSTEM, Bulk, close, event, plan_case, transition
from scoring.models import ActiveModel, HouseholdScore
from signals.db import unit_of_work, utcnow
from signals.enums import Role
from signals.ingest import CONTACT_CONTEXT, IDENTITY_CONTEXT
from signals.models import Municipality, Signal, User
from signals.rules import today_nl
from signals.runtime import Runtime

log = logging.getLogger(__name__)
OPEN = OPEN_STATES


#: signals matched, and cases planned, per unit of work: a month of a large region is done in
#: one run of the job, in transactions of bounded size and memory
MATCH_CHUNK = 20_000
PLAN_CHUNK = 5_000


def match(runtime: Runtime) -> dict[str, int]:
    """Job ``match_signals``: every unmatched signal into its case, a chunk per commit."""
    with unit_of_work(runtime.readers) as session:
        municipalities = municipalities_with_unmatched(session)
    totals = {"signals": 0, "cases_created": 0, "repeats_closed": 0, "to_review": 0}
    for municipality_id in municipalities:
        matched = 0
        last = None
        while True:
            with unit_of_work(runtime.sessions) as session:
                result = match_signals(
                    session, runtime.settings, municipality_id, MATCH_CHUNK, last
                )
            for key in totals:
                totals[key] += getattr(result, key)
            matched += result.signals
            last = result.last
            if result.signals < MATCH_CHUNK:
                break
        log.info("municipality %s: %d signals matched", municipality_id, matched)
    return totals


def register_for(session: Session, runtime: Runtime, municipality: Municipality) -> Register | None:
    """The configured BRP API, else the municipality's imported extract, else none."""
    settings = runtime.settings
    if settings.brp_api_url:
        return HaalCentraalRegister(
            settings.brp_api_url,
            municipality.code,
            api_key=settings.brp_api_key,
            client_cert=settings.brp_client_cert,
            client_key=settings.brp_client_key,
            ca_bundle=settings.brp_ca_bundle,
        )
    imported = session.scalar(
        select(Resident.id).where(Resident.municipality_id == municipality.id).limit(1)
    )
    if imported is None:
        return None
    return LocalRegister(session, runtime.protector, municipality.id, municipality.code)


def check_municipality(
    session: Session,
    runtime: Runtime,
    municipality: Municipality,
    register: Register,
    limit: int = 2_000,
) -> dict[str, int]:
    """Check new cases against the register: inwoner, geen inwoner (closed) or review."""
    counts = {"inwoner": 0, "geen_inwoner": 0, "te_beoordelen": 0}
    cases = session.scalars(
        select(Case)
        .where(
            Case.municipality_id == municipality.id,
            Case.state == CaseState.NIEUW,
            Case.resident_check.is_(None),
        )
        .order_by(Case.id)
        .limit(limit)
        .options(selectinload(Case.signals).selectinload(Signal.client))
    ).all()
    protector = runtime.protector
    today = today_nl()
    for case in cases:
        verdicts = [
            residents.check(
                protector.decrypt_json(s.client.identity, IDENTITY_CONTEXT),
                protector.decrypt_json(s.contact, CONTACT_CONTEXT),
                register,
                municipality.code,
            )
            for s in case.signals
        ]
        verdict = next(
            v
            for kind in ("inwoner", "te_beoordelen", "geen_inwoner")
            for v in verdicts
            if v.outcome == kind
        )
        case.resident_check = verdict.outcome
        counts[verdict.outcome] += 1
        check = timeline.text(timeline.RESIDENT_CHECK, reason=verdict.reason)
        if verdict.outcome == "inwoner":
            if verdict.address is not None:
                case.children = residents.minors_at(register, verdict.address, today)
            event(case, SYSTEM, "brp", check)
        elif verdict.outcome == "geen_inwoner":
            event(case, SYSTEM, "brp", check)
            close(case, CaseResult.GEEN_INWONER, SYSTEM, today)
        else:
            case.review_reason = str(check)
            transition(case, CaseState.TE_BEOORDELEN, SYSTEM, check)
    session.flush()
    return counts


def check_residents(runtime: Runtime) -> dict[str, int]:
    """Job ``check_residents``: new cases against the BRP (API or imported extract)."""
    totals = {"inwoner": 0, "geen_inwoner": 0, "te_beoordelen": 0}
    with unit_of_work(runtime.readers) as session:
        ids = list(session.scalars(select(Municipality.id)))
    for municipality_id in ids:
        try:
            with unit_of_work(runtime.sessions) as session:
                municipality = session.get(Municipality, municipality_id)
                assert municipality is not None
                register = register_for(session, runtime, municipality)
                if register is None:
                    continue
                for key, count in check_municipality(
                    session, runtime, municipality, register
                ).items():
                    totals[key] += count
        except RegisterUnavailable as exc:
            # Nothing of this run is kept; the cases are checked again on the next run.
            log.warning("municipality %s: resident check postponed: %s", municipality_id, exc)
    return totals


def _to_plan(session: Session, municipality_id: int, *what: Any) -> Any:
    """``select(*what)`` of the open cases that need a plan: new, or their score changed."""
    active = session.get(ActiveModel, municipality_id)
    version_id = active.model_version_id if active else -1
    return (
        select(*what)
        .select_from(Case)
        .outerjoin(
            HouseholdScore,
            and_(
                HouseholdScore.municipality_id == Case.municipality_id,
                HouseholdScore.household_key == Case.household_key,
                HouseholdScore.model_version_id == version_id,
            ),
        )
        .where(Case.municipality_id == municipality_id, Case.state.in_(OPEN))
        .where(
            or_(
                Case.first_attempt_due.is_(None),
                and_(
                    HouseholdScore.id.is_not(None),
                    or_(Case.score_id.is_(None), Case.score_id != HouseholdScore.id),
                ),
                HouseholdScore.scored_at > Case.updated_at,
            )
        )
    )


def plan_municipality(
    session: Session,
    runtime: Runtime,
    municipality_id: int,
    today: dt.date,
    case_ids: Sequence[int] | None = None,
) -> int:
    """Priority and contact plan for the open cases that need one (new cases and cases whose
    score changed): all of the municipality's, or those among ``case_ids``."""
    query = _to_plan(session, municipality_id, Case, HouseholdScore).order_by(Case.id)
    if case_ids is not None:
        query = query.where(Case.id.in_(case_ids))
    rows = session.execute(query.options(selectinload(Case.tasks))).all()
    bulk = Bulk()
    for case, score in rows:
        if score is not None:
            case.score_id, case.band, case.probability = score.id, score.band, score.probability
        threat = threatening(
            case.eviction_date, case.end_of_supply, case.crisis, today, runtime.settings
        )
        plan_case(case, priority(case.band, threat), today, runtime.settings, bulk)
        case.updated_at = utcnow()
    bulk.write(session)
    return len(rows)


def plan(runtime: Runtime) -> int:
    """Job ``plan_cases``: priorities and contact plans from the newest scores.

    The cases to plan are found once per municipality (their ids only) and planned in
    chunks of ``PLAN_CHUNK``, a transaction each: asking again for "the first N still
    unplanned" after every chunk walked past every case planned before it, quadratic in a
    large municipality (a million signals took over half an hour)."""
    with unit_of_work(runtime.readers) as session:
        municipalities = list(session.scalars(select(Municipality.id)))
    total = 0
    for municipality_id in municipalities:
        with unit_of_work(runtime.readers) as session:
            due = list(
                session.scalars(_to_plan(session, municipality_id, Case.id).order_by(Case.id))
            )
        for start in range(0, len(due), PLAN_CHUNK):
            with unit_of_work(runtime.sessions) as session:
                total += plan_municipality(
                    session, runtime, municipality_id, today_nl(), due[start : start + PLAN_CHUNK]
                )
    return total


def escalate(runtime: Runtime) -> int:
    """Job ``escalate_overdue``: an open task past its due date is escalated once."""
    today = today_nl()
    with unit_of_work(runtime.sessions) as session:
        tasks = session.scalars(
            select(Task)
            .join(Case)
            .where(
                Task.done_at.is_(None),
                Task.escalated_at.is_(None),
                Task.due_on < today,
                Case.state.in_(OPEN),
            )
            .options(selectinload(Task.case))
        ).all()
        for task in tasks:
            task.escalated_at = utcnow()
            event(
                task.case,
                SYSTEM,
                "escalatie",
                timeline.text(
                    timeline.OVERDUE, kind=task.kind.value, day=f"{task.due_on:%d-%m-%Y}"
                ),
            )
        return len(tasks)


def count_statistics(runtime: Runtime) -> dict[str, int]:
    """Job ``count_statistics``: recount the months of the dashboard that changed."""
    with unit_of_work(runtime.sessions) as session:
        done = statistics.refresh(session)
    if any(done.values()):
        log.info("statistics recounted: %(gemeenten)s municipalities, %(maanden)s months", done)
    return done


def purge_expired(runtime: Runtime) -> dict[str, int]:
    """Job ``purge_expired`` (daily): delete what is past its retention term
    (``outreach.retention``); one unit of work per municipality and chunk, audited with
    counts."""
    today = today_nl()
    with unit_of_work(runtime.readers) as session:
        ids = list(session.scalars(select(Municipality.id).order_by(Municipality.id)))
    totals = retention.Purged()
    for municipality_id in ids:
        done = retention.Purged()
        while True:
            with unit_of_work(runtime.sessions) as session:
                purged = retention.purge_municipality(
                    session, runtime.settings, municipality_id, today
                )
            done.add(purged)
            if not (purged.cases or purged.signals):
                break
        if done:
            log.info("municipality %s: retention purge %s", municipality_id, done.as_dict())
        totals.add(done)
    return totals.as_dict()


def due_tasks(session: Session, user_id: int, today: dt.date) -> list[tuple[int, str, dt.date]]:
    """A counsellor's reminder list: (case id, contact kind, due date) of the open tasks of
    their cases due today or earlier, oldest first."""
    rows = session.execute(
        select(Case.id, Task.kind, Task.due_on)
        .join(Task)
        .where(
            Case.assigned_to_id == user_id,
            Case.state.in_(OPEN),
            Task.done_at.is_(None),
            Task.due_on <= today,
        )
        .order_by(Task.due_on, Case.id)
    ).all()
    return [(case_id, kind.value, due) for case_id, kind, due in rows]


def send_reminders(runtime: Runtime) -> int:
    """Job ``send_reminders`` (daily): each counsellor with due tasks gets their list by
    e-mail: case numbers, contact kinds and dates only, never who a case is about."""
    settings = runtime.settings
    if not settings.smtp_host:
        log.info("reminders not sent: no SMTP server configured")
        return 0
    today = today_nl()
    sent = 0
    with unit_of_work(runtime.readers) as session:
        counsellors = session.scalars(
            select(User).where(User.role == Role.COUNSELLOR, User.active.is_(True))
        ).all()
        lists = {u.email: due_tasks(session, u.id, today) for u in counsellors}
    for email, tasks in lists.items():
        if not tasks:
            continue
        lines = [
            f"- zaak {case_id}: {kind}, uiterlijk {due:%d-%m-%Y}"
            + (" (verlopen)" if due < today else "")
            for case_id, kind, due in tasks
        ]
        body = (
            f"Goedemorgen,\n\nU heeft vandaag {len(tasks)} taken in de werkvoorraad:\n\n"
            + "\n".join(lines)
            + "\n\nOpen de werkvoorraad: /queue?toegewezen=mij\n"
        )
        try:
            mail(settings, email, f"Vroegsignalering: {len(tasks)} taken voor vandaag", body)
            sent += 1
        except MailError as exc:
            log.warning("reminder not sent: %s", exc)
    return sent
