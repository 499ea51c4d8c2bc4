"""Test fixtures: real SQLite and real PostgreSQL, keys made once, synthetic data only.

Every test that uses the database runs on SQLite and on PostgreSQL (``TEST_DATABASE_URL``).
In CI (``CI=true``) the PostgreSQL tests must run: a missing URL fails them instead of
skipping.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import outreach.models  # noqa: F401  (every table, for the wipe)
from config import Settings
from scoring.artifacts import save
from scoring.evaluation import evaluate_model, time_split
from scoring.features import raw_matrix
from scoring.model import fit_model
from scoring.synthetic import Cohort, generate
from signals.db import Base, make_engine
from signals.runtime import Runtime
from tests import factories
from webapp.cli import upgrade_database

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _settings(tmp: Path, database_url: str, **extra: object) -> Settings:
    values = {
        "secret_key": "test-secret-key-0123456789",
        "data_key": base64.b64encode(b"k" * 32).decode(),
        "database_url": database_url,
        "inbox_dir": str(tmp / "inbox"),
        "models_dir": str(tmp / "models"),
        "ddas_dir": str(tmp / "ddas"),
        "ddas_exports_dir": str(tmp / "ddas-exports"),
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL (CI sets it)")
    # A schema of our own per test session, so parallel runs never collide.
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


def _wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def runtime(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose jobs commit for real; the tables are emptied afterwards."""
    yield Runtime(_settings(tmp_path, database_url, batch_lease_seconds=900), engine)
    _wipe(engine)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test."""
    connection = engine.connect()
    transaction = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield db
    db.close()
    transaction.rollback()
    connection.close()


@pytest.fixture
def keys() -> factories.KeyRing:
    return factories.key_ring()


@pytest.fixture
def world(runtime: Runtime, keys: factories.KeyRing, tmp_path: Path) -> factories.World:
    """A municipality with a recipient key and a Huur partner with an RSA key, committed."""
    return factories.make_world(runtime, keys, tmp_path)


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    from webapp import create_app

    application = create_app(runtime=runtime, TESTING=True)
    return application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


# One synthetic cohort, split in time, and one model trained on it: made once per run.
N_HOUSEHOLDS = 60_000
SEED = 7


@pytest.fixture(scope="session")
def cohort() -> Cohort:
    return generate(N_HOUSEHOLDS, seed=SEED)


@pytest.fixture(scope="session")
def split(cohort: Cohort) -> tuple[Cohort, Cohort]:
    train, test = time_split(cohort, test_months=6)
    return cohort.subset(train), cohort.subset(test)


@pytest.fixture(scope="session")
def model(split: tuple[Cohort, Cohort]) -> Pipeline:
    train, _ = split
    return fit_model(raw_matrix(train), train.outcome, order=train.scoring_day)


@pytest.fixture(scope="session")
def report(model: Pipeline, split: tuple[Cohort, Cohort]) -> dict[str, Any]:
    return evaluate_model(model, split[1])


@pytest.fixture(scope="session")
def passing_artifact(
    model: Pipeline, split: tuple[Cohort, Cohort], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The session model stored with a report that passes the gates (list size 10%).

    The 60,000-household test cohort is small for the default list size; the gates
    themselves are tested on their own.
    """
    report = evaluate_model(model, split[1], k_fraction=0.10)
    return save(model, tmp_path_factory.mktemp("models"), {"evaluation": report})
