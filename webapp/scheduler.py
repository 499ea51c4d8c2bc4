"""The one scheduler process (APScheduler 3.x): jobs registered by name, run nowhere else."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from outreach import ddas
from outreach import jobs as outreach_jobs
from scoring import jobs as scoring_jobs
from signals import jobs as signal_jobs
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
    "purge_expired": (outreach_jobs.purge_expired, "retention_time"),
}


def run_job(runtime: Runtime, name: str) -> Any:
    function, _ = JOBS[name]
    return function(runtime)


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
    scheduler = BlockingScheduler(timezone="UTC")
    now = dt.datetime.now(dt.UTC)
    for name, (function, setting) in JOBS.items():
        value = getattr(runtime.settings, setting)
        function = retrying(name, function)
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
        scheduler.add_job(
            function,
            "interval",
            args=[runtime],
            seconds=value,
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
    return scheduler
