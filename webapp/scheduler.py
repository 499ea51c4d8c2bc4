"""The one scheduler process (APScheduler 3.x): jobs registered by name, run nowhere else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from signals import jobs as signal_jobs
from signals.runtime import Runtime

log = logging.getLogger(__name__)

#: name -> (function, interval setting name)
JOBS: dict[str, tuple[Callable[[Runtime], Any], str]] = {
    "process_batches": (signal_jobs.process_pending_batches, "ingest_poll_seconds"),
    "poll_inbox": (signal_jobs.poll_inbox, "inbox_poll_seconds"),
}


def run_job(runtime: Runtime, name: str) -> Any:
    function, _ = JOBS[name]
    return function(runtime)


def build_scheduler(runtime: Runtime) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone="UTC")
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
            next_run_time=None,
        )
        # run once at start, then on the interval
        scheduler.modify_job(name, next_run_time=_now())
    return scheduler


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)
