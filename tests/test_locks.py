"""Job locks and timetable slots: one run of a job at a time, one run per slot."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from signals.db import unit_of_work
from signals.locks import exclusive
from signals.models import JobState
from signals.runtime import Runtime
from webapp.scheduler import SKIPPED, run_job, slot_of


def test_a_slot_runs_once_and_the_state_is_kept(runtime: Runtime) -> None:
    assert run_job(runtime, "escalate_overdue", slot=100, wait=False) == 0
    assert run_job(runtime, "escalate_overdue", slot=100, wait=False) is SKIPPED
    assert run_job(runtime, "escalate_overdue", slot=99, wait=False) is SKIPPED
    assert run_job(runtime, "escalate_overdue", slot=101, wait=False) == 0
    assert run_job(runtime, "escalate_overdue") == 0  # by hand: outside the timetable
    with unit_of_work(runtime.readers) as session:
        state = session.scalars(select(JobState).where(JobState.name == "escalate_overdue")).one()
        assert (state.runs, state.failures, state.last_slot) == (3, 0, 101)
        assert state.last_outcome == "ok" and state.last_success_at is not None


def test_a_job_held_elsewhere_is_skipped_by_the_scheduler(runtime: Runtime) -> None:
    with exclusive(runtime.engine, "escalate_overdue") as held:
        assert held
        # Another holder (another connection, another open file) is refused at once.
        with exclusive(runtime.engine, "escalate_overdue") as again:
            assert not again
        assert run_job(runtime, "escalate_overdue", slot=7, wait=False) is SKIPPED
        with exclusive(runtime.engine, "count_statistics") as other:
            assert other  # one job's lock does not hold another's
    assert run_job(runtime, "escalate_overdue", slot=7, wait=False) == 0


def test_slots_number_intervals_and_days() -> None:
    moment = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)  # 00:30 in Amsterdam
    assert slot_of("06:00", moment) == 20261124
    assert slot_of(60, moment) == int(moment.timestamp()) // 60
    assert slot_of(60, moment + dt.timedelta(seconds=59)) == slot_of(60, moment)
    assert slot_of(60, moment + dt.timedelta(seconds=60)) == slot_of(60, moment) + 1
