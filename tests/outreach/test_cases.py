"""Cases: every transition and refusal, due dates across a Dutch holiday, plans, claims."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from outreach.enums import (
    PERSONAL_KINDS,
    CaseResult,
    CaseState,
    ContactKind,
    Dagdeel,
    Priority,
)
from outreach.jobs import escalate, match, plan
from outreach.models import Case
from outreach.rules import PLANS, add_working_days, first_attempt_due
from outreach.service import (
    AlreadyClaimed,
    NotAllowed,
    OutreachError,
    claim,
    close,
    record_attempt,
    review,
    transition,
)
from signals.db import unit_of_work
from signals.enums import Role, SignalStatus
from signals.models import Municipality, User
from signals.rules import NL, today_nl
from signals.service import add_user
from tests.factories import World, row


def test_due_dates_count_dutch_working_days_across_christmas(world: World) -> None:
    settings = world.runtime.settings
    # Wednesday 23 December 2026: Christmas (Fri 25, Sat 26) and a weekend lie ahead.
    assert add_working_days(dt.date(2026, 12, 23), 3) == dt.date(2026, 12, 29)
    assert first_attempt_due(Priority.SPOED, dt.date(2026, 12, 23), settings) == dt.date(
        2026, 12, 29
    )
    # King's Day (Monday 27 April 2026) is skipped as well.
    assert add_working_days(dt.date(2026, 4, 24), 1) == dt.date(2026, 4, 28)
    assert first_attempt_due(Priority.HOOG, dt.date(2026, 4, 24), settings) == dt.date(2026, 5, 6)


def test_every_plan_has_four_attempts_with_a_call_or_visit() -> None:
    for level, plan_ in PLANS.items():
        kinds = [kind for kind, _ in plan_]
        assert len(kinds) >= 4, level
        assert PERSONAL_KINDS & set(kinds), level


def _one_case(world: World) -> int:
    assert world.ingest([row(signaal_id="S-1")])["rows_accepted"] == 1
    match(world.runtime)
    plan(world.runtime)
    with unit_of_work(world.runtime.readers) as session:
        return session.scalars(select(Case.id)).one()


def _counsellor(world: World, email: str) -> int:
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        return add_user(session, email, Role.COUNSELLOR, [municipality]).user.id


def test_transitions_and_refusals(world: World) -> None:
    case_id = _one_case(world)
    user_id = _counsellor(world, "c@example.nl")
    protector = world.runtime.protector
    today = today_nl()
    with unit_of_work(world.runtime.sessions) as session:
        case = session.get(Case, case_id)
        user = session.get(User, user_id)
        assert case is not None and user is not None
        assert case.state is CaseState.NIEUW and len(case.tasks) >= 4
        # A result that needs contact is refused before anyone was reached.
        with pytest.raises(NotAllowed, match="vraagt om contact"):
            close(case, CaseResult.VERVOLGHULP_FINANCIEEL, user.email, today)
        # An attempt in the future is refused; so is one without a time zone.
        future = dt.datetime.now(NL) + dt.timedelta(days=1)
        with pytest.raises(OutreachError, match="toekomst"):
            record_attempt(case, user, ContactKind.TELEFOON, future, False, None, protector)
        with pytest.raises(OutreachError, match="tijdzone"):
            record_attempt(
                case, user, ContactKind.TELEFOON, dt.datetime(2026, 1, 5, 10), False, None,
                protector,
            )  # fmt: skip
        # Not on the review list: a review decision is refused.
        with pytest.raises(NotAllowed, match="beoordelingslijst"):
            review(case, user.email, True, today, world.runtime.settings)
        # The first attempt picks the case up; dagdeel from the local time.
        evening = dt.datetime.now(NL).replace(hour=19, minute=5) - dt.timedelta(days=1)
        attempt = record_attempt(
            case, user, ContactKind.TELEFOON, evening, True, "teruggebeld", protector
        )
        assert attempt.dagdeel is Dagdeel.AVOND
        assert case.state is CaseState.OPGEPAKT and case.picked_up_on == evening.date()
        assert all(s.status is SignalStatus.OPGEPAKT for s in case.signals)
        assert b"teruggebeld" not in attempt.note  # notes are encrypted
        with pytest.raises(NotAllowed, match="kan niet naar nieuw"):
            transition(case, CaseState.NIEUW, user.email, "terug")
        close(case, CaseResult.ADVIES_QUICK_FIX, user.email, today)
        assert case.collection_pause_until == today + dt.timedelta(days=30)
        # Closing twice is refused, and so is any attempt afterwards.
        with pytest.raises(NotAllowed, match="al afgesloten"):
            close(case, CaseResult.GEEN_CONTACT, user.email, today)
        with pytest.raises(NotAllowed, match="afgesloten"):
            record_attempt(case, user, ContactKind.BRIEF, evening, False, None, protector)
        kinds = [e.kind for e in case.events]
        assert kinds.count("status") == 2 and "poging" in kinds and "pauze" in kinds
        assert all("Vries" not in e.text and "111222333" not in e.text for e in case.events)


def test_a_case_closed_before_pickup_gives_its_signals_the_ddas_status(world: World) -> None:
    case_id = _one_case(world)
    with unit_of_work(world.runtime.sessions) as session:
        case = session.get(Case, case_id)
        assert case is not None
        close(case, CaseResult.GEEN_INWONER, "c@example.nl", today_nl())
        assert [s.status for s in case.signals] == [SignalStatus.GEEN_INWONER]
        assert all(t.done_at for t in case.tasks)


def test_two_counsellors_claim_at_once_one_wins_the_other_is_told(world: World) -> None:
    case_id = _one_case(world)
    users = [_counsellor(world, f"c{i}@example.nl") for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def attempt(user_id: int) -> None:
        barrier.wait()  # both start together (SQLite writers then queue for the lock)
        try:
            with unit_of_work(world.runtime.sessions) as session:
                case, user = session.get(Case, case_id), session.get(User, user_id)
                assert case is not None and user is not None
                claim(session, case, user)
            outcomes[user_id] = "won"
        except AlreadyClaimed as exc:
            outcomes[user_id] = str(exc)

    threads = [threading.Thread(target=attempt, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values())[0] == "won"
    assert "al opgepakt door een collega" in sorted(outcomes.values())[1]
    with unit_of_work(world.runtime.readers) as session:
        case = session.get(Case, case_id)
        assert case is not None
        winner = next(u for u, o in outcomes.items() if o == "won")
        assert case.assigned_to_id == winner


def test_overdue_tasks_are_escalated_once(world: World) -> None:
    case_id = _one_case(world)
    with unit_of_work(world.runtime.sessions) as session:
        case = session.get(Case, case_id)
        assert case is not None
        for task in case.tasks:
            task.due_on = today_nl() - dt.timedelta(days=2)
    assert escalate(world.runtime) >= 4
    assert escalate(world.runtime) == 0
    with unit_of_work(world.runtime.readers) as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert any(e.kind == "escalatie" for e in case.events)


def test_a_help_request_sets_the_first_conversation_in_working_days(world: World) -> None:
    from outreach.rules import add_working_days
    from outreach.service import help_requested

    case_id = _one_case(world)
    today = dt.date(2026, 12, 21)  # Monday before Christmas
    with unit_of_work(world.runtime.sessions) as session:
        case = session.get(Case, case_id)
        assert case is not None
        case.priority = int(Priority.MIDDEN)
        due = help_requested(case, "c@example.nl", today, world.runtime.settings)
        # 20 working days, skipping Christmas, Boxing Day and New Year: 20 January 2027.
        assert due == add_working_days(today, 20) == dt.date(2027, 1, 20)
        case.priority = int(Priority.SPOED)  # a threatening situation: 3 working days
        assert help_requested(case, "c@example.nl", today, world.runtime.settings) == dt.date(
            2026, 12, 24
        )
        assert [t.kind for t in case.tasks].count(ContactKind.AFSPRAAK) == 2
        assert any(e.kind == "hulpvraag" for e in case.events)
