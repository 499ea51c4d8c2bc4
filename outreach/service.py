"""Actions on cases. Take a Session first; add and flush, never commit.

Every state change goes through :func:`transition`, which refuses what is not allowed and
writes an audit event. Messages name what is wrong, never who the case is about.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session, object_session

from config import Settings
from outreach import timeline
from outreach.enums import (
    HELP_ACCEPTED,
    CaseResult,
    CaseState,
    ContactKind,
    Dagdeel,
    Priority,
)
from outreach.models import Case, CaseEvent, ContactAttempt, Task
from outreach.rules import (
    NOT_PICKED_UP_RESULTS,
    PLANS,
    STATE_LABELS,
    TRANSITIONS,
    add_working_days,
    first_attempt_due,
)
from signals import audit
from signals.crypto import DataProtector
from signals.db import utcnow
from signals.enums import SignalStatus
from signals.models import User
from signals.rules import NL
from signals.texts import Text

NOTE_CONTEXT = b"attempt.note"
SYSTEM = "systeem"
COLLECTION_PAUSE_DAYS = 30


class OutreachError(Exception):
    """A refused action; the message says why in Dutch, without personal data.

    The message is a :class:`~signals.texts.Text`: Dutch as a string, in the page's language
    where the web app shows it.
    """


class NotAllowed(OutreachError):
    """A state change the workflow does not allow (HTTP 409)."""


class AlreadyClaimed(OutreachError):
    """Another counsellor claimed the case first."""


def event(case: Case, actor: str, kind: str, text: str, **data: Any) -> CaseEvent:
    """Add an event to the case's timeline and to the audit trail (every change, once).

    The audit event carries the kind and the event's data (states, contact kinds, ids), not
    the timeline text, which may hold dates and amounts of the resident.
    """
    record = CaseEvent(actor=actor, kind=kind, text=str(text), data=data, at=utcnow())
    # Through the many-to-one side: an unloaded timeline is not read just to add to it.
    record.case = case
    session = object_session(case)
    if session is not None:
        session.add(record)
        audit.record(
            session, actor, f"zaak.{kind}", purpose=audit.PURPOSE_OUTREACH, case=case, **data
        )
    return record


@dataclass
class Bulk:
    """Events and tasks of many cases, written in one statement each (jobs, not pages).

    A job that plans or creates thousands of cases queues their events and tasks here and
    calls :meth:`write` after the cases are flushed (so they have ids). The rows are the same
    as :func:`event` and :func:`plan_case` write one by one, audit events included; only the
    cases' ``events`` and ``tasks`` collections already in memory do not show them.
    """

    events: list[tuple[Case, str, str, str, dict[str, Any]]] = field(default_factory=list)
    tasks: list[tuple[Case, ContactKind, dt.date]] = field(default_factory=list)

    def event(self, case: Case, actor: str, kind: str, text: str, **data: Any) -> None:
        self.events.append((case, actor, kind, str(text), data))

    def write(self, session: Session) -> None:
        session.flush()
        now = utcnow()
        if self.events:
            session.execute(
                insert(CaseEvent),
                [
                    {"case_id": case.id, "actor": actor, "kind": kind, "text": text,
                     "data": data, "at": now}
                    for case, actor, kind, text, data in self.events
                ],
            )  # fmt: skip
            for case, actor, kind, _, data in self.events:
                audit.record(
                    session, actor, f"zaak.{kind}", purpose=audit.PURPOSE_OUTREACH, case=case,
                    **data,
                )  # fmt: skip
        if self.tasks:
            session.execute(
                insert(Task),
                [
                    {"case_id": case.id, "kind": kind, "due_on": due}
                    for case, kind, due in self.tasks
                ],
            )
        self.events.clear()
        self.tasks.clear()


def transition(case: Case, to: CaseState, actor: str, text: str, **data: Any) -> None:
    """Move ``case`` to state ``to``, or refuse; every change leaves an audit event."""
    if to not in TRANSITIONS[case.state]:
        raise NotAllowed(
            Text(
                "zaak %(id)s is %(state)s en kan niet naar %(to)s",
                id=case.id,
                state=STATE_LABELS[case.state],
                to=STATE_LABELS[to],
            )
        )
    before = case.state
    case.state = to
    event(case, actor, "status", text, van=before.value, naar=to.value, **data)


def plan_case(
    case: Case, level: Priority, today: dt.date, settings: Settings, bulk: Bulk | None = None
) -> None:
    """Set the priority and, the first time, the contact plan (four or more attempts).

    With ``bulk`` the plan's tasks and event are queued there instead of added one by one.
    """
    case.priority = int(level)
    due = first_attempt_due(level, today, settings)
    if case.first_attempt_due is None or due < case.first_attempt_due:
        case.first_attempt_due = due
    if case.tasks or case.state not in (CaseState.NIEUW, CaseState.OPGEPAKT):
        return
    kinds = ", ".join(k.value for k, _ in PLANS[level])
    text = timeline.text(timeline.PLAN, kinds=kinds, day=f"{due:%d-%m-%Y}")
    for kind, offset in PLANS[level]:
        on = add_working_days(due, offset) if offset else due
        if bulk is None:
            case.tasks.append(Task(kind=kind, due_on=on))
        else:
            bulk.tasks.append((case, kind, on))
    if bulk is None:
        event(case, SYSTEM, "plan", text, prioriteit=level.label)
    else:
        bulk.event(case, SYSTEM, "plan", text, prioriteit=level.label)


def claim(session: Session, case: Case, user: User) -> None:
    """Assign an unassigned case to ``user``; of two at once, one wins, the other is told."""
    if case.state is CaseState.AFGESLOTEN:
        raise NotAllowed(Text("zaak %(id)s is al afgesloten", id=case.id))
    won = session.execute(
        update(Case)
        .where(Case.id == case.id, Case.assigned_to_id.is_(None))
        .values(assigned_to_id=user.id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        session.refresh(case)
        if case.assigned_to_id == user.id:
            return
        raise AlreadyClaimed(Text("zaak %(id)s is al opgepakt door een collega", id=case.id))
    session.refresh(case)
    event(case, user.email, "claim", timeline.text(timeline.CLAIMED), aan=user.email)


def release(case: Case, user: User) -> None:
    if case.assigned_to_id != user.id:
        raise NotAllowed(Text("zaak %(id)s is niet aan u toegewezen", id=case.id))
    case.assigned_to_id = None
    event(case, user.email, "release", timeline.text(timeline.RELEASED))


def record_attempt(
    case: Case,
    user: User,
    kind: ContactKind,
    at: dt.datetime,
    reached: bool,
    note: str | None,
    protector: DataProtector,
    now: dt.datetime | None = None,
) -> ContactAttempt:
    """Record a contact attempt; the first one picks the case up (DDAS *datum opgepakt*)."""
    now = now or utcnow()
    if case.state is CaseState.AFGESLOTEN:
        raise NotAllowed(
            Text(
                "zaak %(id)s is afgesloten; een poging kan niet meer worden vastgelegd", id=case.id
            )
        )
    if case.state is CaseState.TE_BEOORDELEN:
        raise NotAllowed(
            Text("zaak %(id)s staat op de beoordelingslijst; beoordeel haar eerst", id=case.id)
        )
    if at.tzinfo is None:
        raise OutreachError(Text("het tijdstip van de poging heeft geen tijdzone"))
    if at > now + dt.timedelta(minutes=5):
        raise OutreachError(Text("een poging kan niet in de toekomst liggen"))
    local = at.astimezone(NL)
    attempt = ContactAttempt(
        kind=kind,
        at=at,
        dagdeel=Dagdeel.of(local.time()),
        reached=reached,
        note=protector.encrypt(note.encode(), NOTE_CONTEXT) if note else None,
        by_id=user.id,
    )
    case.attempts.append(attempt)
    for task in case.tasks:  # the first open task of this kind is done
        if task.kind is kind and task.done_at is None:
            task.done_at = now
            break
    if case.state is CaseState.NIEUW:
        case.picked_up_on = local.date()
        transition(case, CaseState.OPGEPAKT, user.email, timeline.text(timeline.PICKED_UP))
        for signal in case.signals:
            if signal.status is SignalStatus.NOG_NIET_OPGEPAKT:
                signal.status = SignalStatus.OPGEPAKT
    event(
        case,
        user.email,
        "poging",
        timeline.text(
            timeline.REACHED if reached else timeline.NOT_REACHED,
            kind=kind.value,
            dagdeel=attempt.dagdeel.value.lower(),
        ),
        soort=kind.value,
        bereikt=reached,
    )
    return attempt


def close(case: Case, result: CaseResult, actor: str, today: dt.date) -> None:
    """Close ``case`` with a DDAS end result; its signals get the matching DDAS status."""
    if case.state is CaseState.AFGESLOTEN:
        raise NotAllowed(
            Text("zaak %(id)s is al afgesloten (%(result)s)", id=case.id, result=case.result)
        )
    if case.state is not CaseState.OPGEPAKT and result not in NOT_PICKED_UP_RESULTS:
        raise NotAllowed(
            Text(
                "'%(result)s' vraagt om contact: leg eerst een contactpoging vast "
                "of kies een resultaat 'niet opgepakt'",
                result=result.value,
            )
        )
    transition(
        case, CaseState.AFGESLOTEN, actor, timeline.text(timeline.CLOSED, result=result.value)
    )
    case.result, case.closed_on = result, today
    for task in case.tasks:
        if task.done_at is None:
            task.done_at = utcnow()
    if case.picked_up_on is None:
        for signal in case.signals:
            if signal.status is SignalStatus.NOG_NIET_OPGEPAKT:
                signal.status = SignalStatus(result.value)
    if result in HELP_ACCEPTED:
        case.collection_pause_until = today + dt.timedelta(days=COLLECTION_PAUSE_DAYS)
        event(
            case,
            actor,
            "pauze",
            timeline.text(timeline.PAUSE, day=f"{case.collection_pause_until:%d-%m-%Y}"),
        )


def help_requested(case: Case, actor: str, today: dt.date, settings: Settings) -> dt.date:
    """The resident asked for help: the first conversation is due within 4 weeks (20 working
    days), or 3 working days in a threatening situation."""
    days = (
        settings.first_attempt_working_days_threat
        if case.priority == Priority.SPOED
        else settings.help_request_working_days
    )
    due = add_working_days(today, days)
    case.tasks.append(Task(kind=ContactKind.AFSPRAAK, due_on=due))
    event(case, actor, "hulpvraag", timeline.text(timeline.HELP_REQUEST, day=f"{due:%d-%m-%Y}"))
    return due


def review(case: Case, actor: str, accept: bool, today: dt.date, settings: Settings) -> None:
    """Decide a case on the review list: work it after all, or close it as not picked up."""
    if case.state is not CaseState.TE_BEOORDELEN:
        raise NotAllowed(Text("zaak %(id)s staat niet op de beoordelingslijst", id=case.id))
    if accept:
        case.review_reason = None
        transition(case, CaseState.NIEUW, actor, timeline.text(timeline.REVIEWED))
        plan_case(case, Priority(case.priority), today, settings)
    else:
        close(case, CaseResult.NIET_OPGEPAKT_ONTERECHT, actor, today)
