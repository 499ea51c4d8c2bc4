"""The one scheduler process (APScheduler 3.x): jobs registered by name, run nowhere else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from outreach import jobs as outreach_jobs
from scoring import jobs as scoring_jobs
from signals import jobs as signal_jobs
from signals.runtime import Runtime

#: name -> (function, interval setting name)
JOBS: dict[str, tuple[Callable[[Runtime], Any], str]] = {
    "process_batches": (signal_jobs.process_pending_batches, "ingest_poll_seconds"),
    "poll_inbox": (signal_jobs.poll_inbox, "inbox_poll_seconds"),
    "score_households": (scoring_jobs.score_households, "scoring_poll_seconds"),
    "match_signals": (outreach_jobs.match, "matching_poll_seconds"),
    "check_residents": (outreach_jobs.check_residents, "matching_poll_seconds"),
    "plan_cases": (outreach_jobs.plan, "matching_poll_seconds"),
    "escalate_overdue": (outreach_jobs.escalate, "matching_poll_seconds"),
}


def run_job(runtime: Runtime, name: str) -> Any:
    function, _ = JOBS[name]
    return function(runtime)


def build_scheduler(runtime: Runtime) -> BlockingScheduler:
    """Every job once at start, then on its interval; never two runs of one job at once."""
    scheduler = BlockingScheduler(timezone="UTC")
    now = dt.datetime.now(dt.UTC)
    for name, (function, interval_setting) in JOBS.items():
        scheduler.add_job(
            function,
            "interval",
            args=[runtime],
            seconds=getattr(runtime.settings, interval_setting),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
    return scheduler
