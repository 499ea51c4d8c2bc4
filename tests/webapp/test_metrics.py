"""``/metrics``: batch, job and queue figures for Prometheus, read from the database."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from outreach.models import Case, is_open
from signals.db import unit_of_work
from signals.runtime import Runtime
from tests.webapp.conftest import PEOPLE_A, PEOPLE_B, Two, personal_strings
from webapp import create_app
from webapp.scheduler import JOBS

TOKEN = "metrics-token-0123456789-0123456789"


def _client(runtime: Runtime, token: str | None = TOKEN):  # type: ignore[no-untyped-def]
    settings = runtime.settings.model_copy(update={"metrics_token": token})
    return create_app(runtime=Runtime(settings, runtime.engine), TESTING=True).test_client()


def test_metrics_report_batches_jobs_and_the_queue_without_personal_data(two: Two) -> None:
    runtime = two.world.runtime
    answer = _client(runtime).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    body = answer.get_data(as_text=True)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples["vroegsignaal_batches", (("status", "processed"),)] == 2
    assert samples["vroegsignaal_batches", (("status", "received"),)] == 0
    assert samples["vroegsignaal_batch_backlog_oldest_seconds", ()] == 0
    assert samples["vroegsignaal_batch_rows_last_24h", (("outcome", "accepted"),)] == 3
    # The fixture ran every job once through the runner that keeps their state.
    for job in JOBS:
        assert samples["vroegsignaal_job_runs_total", (("job", job),)] == 1, job
        assert samples["vroegsignaal_job_failures_total", (("job", job),)] == 0, job
        assert samples["vroegsignaal_job_last_success_timestamp_seconds", (("job", job),)] > 0
        assert samples["vroegsignaal_job_running", (("job", job),)] == 0
    with unit_of_work(runtime.readers) as session:
        for side in (two.a, two.b):
            open_cases = session.scalar(
                select(func.count()).where(Case.municipality_id == side.municipality_id, is_open())
            )
            reported = sum(
                value
                for (name, labels), value in samples.items()
                if name == "vroegsignaal_queue_open_cases" and ("gemeente", side.code) in labels
            )
            assert reported == open_cases > 0, side.code
    for text in personal_strings(PEOPLE_A + PEOPLE_B):
        assert text not in body


def test_metrics_need_the_bearer_token_and_are_off_without_one(two: Two) -> None:
    runtime = two.world.runtime
    client = _client(runtime)
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert "vroegsignaal_" not in wrong.get_data(as_text=True)
    off = _client(runtime, token=None)
    assert off.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
