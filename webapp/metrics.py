"""``GET /metrics``: what operations watch, in the Prometheus text format.

Every figure is read from the database at scrape time, so the answer is the same whichever
web worker serves it (a per-process counter would only see that worker's requests). The
figures are counts, ages and durations: no personal data, nothing per person. Prometheus
authenticates with the bearer token ``metrics_token``; without one configured the endpoint
does not exist (404). The queries use the queue's partial index and the batches' and tasks'
indexes, so a scrape stays cheap with hundreds of thousands of open cases.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outreach.enums import Priority
from outreach.models import Case, Task, is_open
from signals.db import utcnow
from signals.enums import BatchStatus
from signals.models import Batch, JobState, Municipality, StatisticsMark
from signals.rules import today_nl
from signals.runtime import Runtime
from webapp.db import get_session

bp = Blueprint("metrics", __name__)


class DatabaseCollector(Collector):
    """The batch, job and queue figures of one scrape."""

    def __init__(self, session: Session, job_names: list[str]) -> None:
        self.session = session
        self.job_names = job_names

    def collect(self) -> Iterator[Metric]:
        yield from self._batches()
        yield from self._jobs()
        yield from self._queue()

    def _batches(self) -> Iterator[Metric]:
        session, now = self.session, utcnow()
        batches = GaugeMetricFamily(
            "vroegsignaal_batches",
            "Batches by state (received, processing, ...)",
            labels=["status"],
        )
        counts = dict(
            session.execute(select(Batch.status, func.count()).group_by(Batch.status)).all()
        )
        for status in BatchStatus:
            batches.add_metric([status.value], counts.get(status, 0))
        yield batches
        oldest = session.scalar(
            select(func.min(Batch.received_at)).where(
                Batch.status.in_([BatchStatus.RECEIVED, BatchStatus.PROCESSING])
            )
        )
        yield GaugeMetricFamily(
            "vroegsignaal_batch_backlog_oldest_seconds",
            "Age of the oldest batch still waiting or in processing (0: none)",
            value=(now - _aware(oldest)).total_seconds() if oldest else 0.0,
        )
        accepted, rejected = session.execute(
            select(
                func.coalesce(func.sum(Batch.rows_accepted), 0),
                func.coalesce(func.sum(Batch.rows_rejected), 0),
            ).where(
                Batch.status == BatchStatus.PROCESSED,
                Batch.received_at >= now - dt.timedelta(days=1),
            )
        ).one()
        rows = GaugeMetricFamily(
            "vroegsignaal_batch_rows_last_24h",
            "Rows of the batches received in the last 24 hours and processed, by outcome",
            labels=["outcome"],
        )
        rows.add_metric(["accepted"], int(accepted))
        rows.add_metric(["rejected"], int(rejected))
        yield rows

    def _jobs(self) -> Iterator[Metric]:
        states = {s.name: s for s in self.session.scalars(select(JobState))}
        runs = CounterMetricFamily(
            "vroegsignaal_job_runs", "Finished runs of each periodic job", labels=["job"]
        )
        failures = CounterMetricFamily(
            "vroegsignaal_job_failures", "Runs that ended in an error", labels=["job"]
        )
        success = GaugeMetricFamily(
            "vroegsignaal_job_last_success_timestamp_seconds",
            "When the last successful run ended (Unix time; 0: never)",
            labels=["job"],
        )
        duration = GaugeMetricFamily(
            "vroegsignaal_job_last_duration_seconds", "How long the last run took", labels=["job"]
        )
        running = GaugeMetricFamily(
            "vroegsignaal_job_running", "1 while a run is under way", labels=["job"]
        )
        for name in self.job_names:
            state = states.get(name)
            runs.add_metric([name], state.runs if state else 0)
            failures.add_metric([name], state.failures if state else 0)
            last = state.last_success_at if state else None
            success.add_metric([name], _aware(last).timestamp() if last else 0.0)
            duration.add_metric([name], (state.last_duration_seconds or 0.0) if state else 0.0)
            running.add_metric([name], 1 if state and state.last_outcome == "running" else 0)
        yield from (runs, failures, success, duration, running)

    def _queue(self) -> Iterator[Metric]:
        session = self.session
        today = today_nl()
        codes = dict(session.execute(select(Municipality.id, Municipality.code)).all())
        open_cases = GaugeMetricFamily(
            "vroegsignaal_queue_open_cases",
            "Open cases (nieuw, opgepakt) by municipality and priority",
            labels=["gemeente", "prioriteit"],
        )
        for municipality_id, priority, count in session.execute(
            select(Case.municipality_id, Case.priority, func.count())
            .where(is_open())
            .group_by(Case.municipality_id, Case.priority)
        ):
            name = Priority(priority).name.lower()
            open_cases.add_metric([codes.get(municipality_id, "?"), name], count)
        yield open_cases
        overdue = GaugeMetricFamily(
            "vroegsignaal_queue_first_attempt_overdue",
            "Open cases whose first contact attempt is past its due date, by municipality",
            labels=["gemeente"],
        )
        for municipality_id, count in session.execute(
            select(Case.municipality_id, func.count())
            .where(is_open(), Case.first_attempt_due < today, Case.picked_up_on.is_(None))
            .group_by(Case.municipality_id)
        ):
            overdue.add_metric([codes.get(municipality_id, "?")], count)
        yield overdue
        yield GaugeMetricFamily(
            "vroegsignaal_tasks_overdue",
            "Planned contact attempts not done by their due date",
            value=session.scalar(
                select(func.count()).where(Task.done_at.is_(None), Task.due_on < today)
            )
            or 0,
        )
        yield GaugeMetricFamily(
            "vroegsignaal_statistics_months_waiting",
            "Months of a municipality whose statistics wait to be counted again",
            value=session.scalar(
                select(func.count()).select_from(
                    select(StatisticsMark.municipality_id, StatisticsMark.month)
                    .distinct()
                    .subquery()
                )
            )
            or 0,
        )


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _authorised(expected: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        hmac.compare_digest(b"", b"-")
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


@bp.get("/metrics")
def metrics() -> Any:
    runtime: Runtime = current_app.extensions["vroegsignaal"]
    expected = runtime.settings.metrics_token
    if not expected:
        abort(404)
    if not _authorised(expected):
        return Response(
            "bearer token required\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    from webapp.scheduler import JOBS

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(get_session(), list(JOBS)))
    response = Response(generate_latest(registry), mimetype=None)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response
