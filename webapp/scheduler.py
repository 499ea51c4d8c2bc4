"""The scheduler process (APScheduler 3.x): jobs registered by name, each run once.

One scheduler process is the design; a second one (a hand-over, a mistake, a standby that
was started too) must not make any job run twice. Every run therefore holds the job's lock
(:func:`signals.locks.exclusive`: a PostgreSQL advisory lock, or a file lock beside a SQLite
database), so runs of one job never overlap, and a scheduled run claims its *slot* in the
job's timetable (``job_states.last_slot``), so a slot that one process ran is skipped by the
other. Interval timetables are aligned to the epoch, so every scheduler fires a job at the
same moments. ``vroegsignaal jobs run`` waits for the lock and runs at once, outside the
timetable.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, Final
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from outreach import ddas, exports
from outreach import jobs as outreach_jobs
from scoring import jobs as scoring_jobs
from signals import jobs as signal_jobs
from signals.db import unit_of_work, utcnow
from signals.locks import exclusive
from signals.models import JobState
from signals.runtime import Runtime
from webapp.outage import is_outage

log = logging.getLogger(__name__)

#: a job that finds the database unreachable tries again this often in one run, waiting
#: RETRY_BASE_SECONDS, then twice as long each time, at most RETRY_MAX_SECONDS; after that
#: the run gives up and the job's next scheduled run starts afresh
RETRY_ATTEMPTS = 6
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0

#: name -> (function, setting): an interval in seconds, or a daily time "HH:MM" (Amsterdam)
JOBS: dict[str, tuple[Callable[[Runtime], Any], str]] = {
    "process_batches": (signal_jobs.process_pending_batches, "ingest_poll_seconds"),
    "poll_inbox": (signal_jobs.poll_inbox, "inbox_poll_seconds"),
    "score_households": (scoring_jobs.score_households, "scoring_poll_seconds"),
    "match_signals": (outreach_jobs.match, "matching_poll_seconds"),
    "check_residents": (outreach_jobs.check_residents, "matching_poll_seconds"),
    "plan_cases": (outreach_jobs.plan, "matching_poll_seconds"),
    "escalate_overdue": (outreach_jobs.escalate, "matching_poll_seconds"),
    "count_statistics": (outreach_jobs.count_statistics, "matching_poll_seconds"),
    "send_reminders": (outreach_jobs.send_reminders, "reminder_time"),
    "deliver_ddas": (ddas.deliver_periodically, "ddas_delivery_time"),
    "make_ddas_exports": (exports.make_exports, "ddas_export_poll_seconds"),
    "purge_expired": (outreach_jobs.purge_expired, "retention_time"),
}


AMSTERDAM = ZoneInfo("Europe/Amsterdam")


class _Skipped:
    def __repr__(self) -> str:
        return "SKIPPED"


#: what :func:`run_job` returns when another process runs (or ran) the job
SKIPPED: Final = _Skipped()

RUNNER = f"{socket.gethostname()}:{os.getpid()}"


def run_job(runtime: Runtime, name: str, *, slot: int | None = None, wait: bool = True) -> Any:
    """Run job ``name`` once in this process while holding its lock; return its result.

    ``slot`` is the scheduled run's place in the timetable (see :func:`slot_of`): the job is
    skipped (:data:`SKIPPED`) when that slot was already run, by this or another process.
    With ``wait=False`` it is also skipped when another process is running the job now.
    Start, end, outcome and duration are kept in ``job_states`` for ``/metrics``.
    """
    function, _ = JOBS[name]
    with exclusive(runtime.engine, name, wait=wait) as held:
        if not held:  # another process runs it now (a second scheduler shows in the log)
            log.info("job %s: skipped, running elsewhere (slot %s, %s)", name, slot, RUNNER)
            return SKIPPED
        with unit_of_work(runtime.sessions) as session:
            state = session.get(JobState, name)
            if state is None:
                state = JobState(name=name, runs=0, failures=0)
                session.add(state)
            if slot is not None and state.last_slot is not None and state.last_slot >= slot:
                log.info("job %s: skipped, slot already run (slot %s, %s)", name, slot, RUNNER)
                return SKIPPED
            started = utcnow()
            state.last_started_at, state.last_outcome, state.runner = started, "running", RUNNER
        log.info("job %s: started (slot %s, %s)", name, slot, RUNNER)
        clock = time.perf_counter()
        try:
            result = function(runtime)
        except Exception as error:
            if not is_outage(error):  # with the database away, nothing can be recorded
                _finish(runtime, name, slot, time.perf_counter() - clock, error)
            log.info("job %s: failed (slot %s, %s)", name, slot, RUNNER)
            raise
        seconds = time.perf_counter() - clock
        _finish(runtime, name, slot, seconds, None)
        log.info("job %s: finished in %.3f s (slot %s, %s)", name, seconds, slot, RUNNER)
        return result


def _finish(
    runtime: Runtime, name: str, slot: int | None, seconds: float, error: Exception | None
) -> None:
    with unit_of_work(runtime.sessions) as session:
        state = session.scalars(select(JobState).where(JobState.name == name)).one()
        now = utcnow()
        state.last_finished_at, state.last_duration_seconds = now, seconds
        state.runs += 1
        if slot is not None:
            state.last_slot = max(slot, state.last_slot or slot)
        if error is None:
            state.last_outcome, state.last_error, state.last_success_at = "ok", None, now
        else:
            state.last_outcome, state.last_error = "failed", type(error).__name__[:120]
            state.failures += 1


def slot_of(setting: int | str, now: dt.datetime | None = None) -> int:
    """The slot of a run at ``now`` in a timetable: an interval's number since the epoch, or
    the day (``20261123``, Amsterdam time) of a daily job."""
    now = now or dt.datetime.now(dt.UTC)
    if isinstance(setting, str):
        day = now.astimezone(AMSTERDAM).date()
        return day.year * 10_000 + day.month * 100 + day.day
    return int(now.timestamp() // setting)


def scheduled(name: str, setting: int | str) -> Callable[[Runtime], Any]:
    """What the scheduler calls: the job for the slot of this moment, skipped if taken."""

    def run(runtime: Runtime) -> Any:
        return run_job(runtime, name, slot=slot_of(setting), wait=False)

    run.__name__ = name
    run.job = JOBS[name][0]  # type: ignore[attr-defined]
    return run


def backoff(
    attempt: int, base: float = RETRY_BASE_SECONDS, cap: float = RETRY_MAX_SECONDS
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): doubling, capped."""
    return float(min(cap, base * 2 ** (attempt - 1)))


def retrying(
    name: str,
    function: Callable[[Runtime], Any],
    *,
    attempts: int = RETRY_ATTEMPTS,
    base: float = RETRY_BASE_SECONDS,
    cap: float = RETRY_MAX_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[Runtime], Any]:
    """``function`` retried with exponential back-off while the database is unreachable.

    Only outages are retried (see :func:`webapp.outage.is_outage`): a job's unit of work
    rolled back, so running it again is safe. Any other error, and an outage on the last
    attempt, propagates to the scheduler, which logs it; the next run starts afresh. The log
    names the job, the error type and the attempt, never the message (SQLAlchemy quotes the
    statement's parameters in it).
    """

    @functools.wraps(function)
    def run(runtime: Runtime) -> Any:
        for attempt in range(1, attempts + 1):
            try:
                return function(runtime)
            except Exception as error:
                if not is_outage(error) or attempt == attempts:
                    if is_outage(error):
                        log.error(
                            "job %s: database unavailable (%s); gave up after %d attempts",
                            name, type(error).__name__, attempt,
                        )  # fmt: skip
                        raise RuntimeError(f"job {name}: database unavailable") from None
                    raise
                delay = backoff(attempt, base, cap)
                log.warning(
                    "job %s: database unavailable (%s), attempt %d of %d; retrying in %.0f s",
                    name, type(error).__name__, attempt, attempts, delay,
                )  # fmt: skip
                sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    return run


def build_scheduler(runtime: Runtime) -> BlockingScheduler:
    """Every job once at start, then on its interval; never two runs of one job at once."""
    # Our own start and end lines replace APScheduler's "Running job"/"executed" ones.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    scheduler = BlockingScheduler(timezone="UTC")
    now = dt.datetime.now(dt.UTC)
    for name, (_, setting) in JOBS.items():
        value = getattr(runtime.settings, setting)
        function = retrying(name, scheduled(name, value))
        if isinstance(value, str):  # once a day at that time
            hour, minute = value.split(":")
            scheduler.add_job(
                function,
                "cron",
                args=[runtime],
                hour=int(hour),
                minute=int(minute),
                timezone="Europe/Amsterdam",
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
            )
            continue
        # Aligned to the epoch: every scheduler fires at the same moments, one slot each.
        start = dt.datetime.fromtimestamp(slot_of(value, now) * value, dt.UTC)
        scheduler.add_job(
            function,
            IntervalTrigger(seconds=value, start_date=start, timezone=dt.UTC),
            args=[runtime],
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
    return scheduler
