"""The one scheduler process (APScheduler 3.x): jobs registered by name, run nowhere else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from outreach import ddas
from outreach import jobs as outreach_jobs
from scoring import jobs as scoring_jobs
from signals import jobs as signal_jobs
from signals.runtime import Runtime

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
}


def run_job(runtime: Runtime, name: str) -> Any:
    function, _ = JOBS[name]
    return function(runtime)


def build_scheduler(runtime: Runtime) -> BlockingScheduler:
    """Every job once at start, then on its interval; never two runs of one job at once."""
    scheduler = BlockingScheduler(timezone="UTC")
    now = dt.datetime.now(dt.UTC)
    for name, (function, setting) in JOBS.items():
        value = getattr(runtime.settings, setting)
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
