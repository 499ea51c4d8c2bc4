"""Settings, migrations, the DDAS vocabulary and the demo."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select, text

from config import ConfigError, load_settings
from scoring.models import HouseholdScore
from signals.db import Base, unit_of_work
from signals.enums import Gender, PartnerType, SignalStatus
from signals.models import Batch, Partner, PartnerKey, Signal, User
from signals.rules import today_nl
from signals.runtime import Runtime
from tests.conftest import SHARED

DDAS_SCHEMA = SHARED / "reference/ddas/vroegsignalering/v1.2/json_schema_Uitwisselmodel.json"
KEY = base64.b64encode(b"k" * 32).decode()


def test_settings_from_environment_and_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("SECRET_KEY", "DATA_KEY", "DATABASE_URL", "CONFIG"):
        monkeypatch.delenv(f"VROEGSIGNAAL_{name}", raising=False)
    with pytest.raises(ConfigError, match="VROEGSIGNAAL_SECRET_KEY is required"):
        load_settings()
    toml = tmp_path / "settings.toml"
    toml.write_text(f'secret_key = "{"s" * 20}"\ndata_key = "{KEY}"\nmax_batch_bytes = 1000\n')
    monkeypatch.setenv("VROEGSIGNAAL_CONFIG", str(toml))
    settings = load_settings()
    assert settings.max_batch_bytes == 1000
    assert settings.database_url == "sqlite:///instance/vroegsignaal.db"
    monkeypatch.setenv("VROEGSIGNAAL_MAX_BATCH_BYTES", "2000")  # the environment wins
    assert load_settings().max_batch_bytes == 2000
    monkeypatch.setenv("VROEGSIGNAAL_DATA_KEY", "bm90IDMyIGJ5dGVz")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == "VROEGSIGNAAL_DATA_KEY must be 32 bytes, base64-encoded"
    monkeypatch.setenv("VROEGSIGNAAL_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="VROEGSIGNAAL_CONFIG"):
        load_settings()


#: Expression indexes SQLAlchemy cannot reflect on every database: checked by name instead.
EXPRESSION_INDEXES = {"ix_cases_queue"}


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection, warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*expression-based index")
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, *_: name not in EXPRESSION_INDEXES,
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            names = set(
                connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
            )
        else:
            names = set(
                connection.scalars(
                    text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
                )
            )
    assert names >= EXPRESSION_INDEXES


def test_ddas_value_lists_are_verbatim() -> None:
    if not DDAS_SCHEMA.exists():
        pytest.skip(f"the official DDAS schema is not beside the project ({DDAS_SCHEMA})")
    defs = json.loads(DDAS_SCHEMA.read_text())["$defs"]
    assert sorted(m.value for m in PartnerType) == sorted(defs["EnumSignaalpartner"]["enum"])
    assert sorted(m.value for m in SignalStatus) == sorted(defs["EnumSignaalstatus"]["enum"])
    assert sorted(m.value for m in Gender) == sorted(defs["geslacht"]["enum"])


def test_demo_is_real_and_idempotent(runtime: Runtime, passing_artifact: Path) -> None:
    from webapp.demo import load_demo

    # A stored model that passes the gates is used instead of training the demo's own.
    shutil.copytree(passing_artifact, Path(runtime.settings.models_dir) / passing_artifact.name)
    first = load_demo(runtime, n_signals=400)
    # Six months (the current one partly) from four partners: one batch per partner-month
    # with signals, every partner every complete month.
    assert first["loaded"] and 20 <= first["batches"] <= 24
    assert {u["role"] for u in first["users"]} == {"admin", "counsellor", "analyst", "partner"}
    # Staff log in with a second factor: the demo prints their TOTP secrets with the passwords.
    assert {u["role"] for u in first["users"] if u.get("totp_secret")} == {"admin", "counsellor"}
    with unit_of_work(runtime.readers) as session:
        partners = session.scalars(select(Partner)).all()
        assert sorted(p.partner_type.value for p in partners) == [
            "Energie",
            "Huur",
            "Water",
            "Zorg",
        ]
        kinds = {k.key_type for k in session.scalars(select(PartnerKey))}
        assert kinds == {"rsa", "ec-p256", "ed25519"}
        signals = session.scalar(select(func.count()).select_from(Signal))
        batches = session.scalar(select(func.count()).select_from(Batch))
        shares = dict(
            session.execute(
                select(Signal.partner_type, func.count()).group_by(Signal.partner_type)
            ).all()
        )
    assert signals == first["rows_accepted"] > 350
    # The active model scored every household, each with a band and Dutch reasons.
    assert first["model_version"] == passing_artifact.name
    with unit_of_work(runtime.readers) as session:
        scores = session.scalars(select(HouseholdScore)).all()
        households = session.scalar(
            select(func.count(func.distinct(func.coalesce(Signal.bsn_hash, Signal.address_hash))))
        )
    assert first["households_scored"] == len(scores) > 0
    assert len(scores) <= households
    assert {s.band for s in scores} <= {"hoog", "midden", "laag"}
    assert all(s.reasons and s.model_version_id for s in scores)
    # The demo's BRP extract is checked: most are residents, those who moved away are not.
    checked = first["resident_check"]
    assert checked["inwoner"] > 10 * checked["geen_inwoner"] > 0
    # ... and tells which households have a minor child at home (a third in the demo).
    from outreach.models import Case

    with unit_of_work(runtime.readers) as session:
        children = dict(
            session.execute(select(Case.children, func.count()).group_by(Case.children)).all()
        )
    assert children[False] > children[True] > 0
    assert first["statistics"]["gemeenten"] == 1  # the dashboard's figures are pre-counted
    # The demo's DDAS export passes our rules and the official schema.
    from outreach.ddas import export, violations
    from signals.models import Municipality
    from tests.outreach.test_ddas import DDAS, official_violations

    out = Path(runtime.settings.inbox_dir).parent / "levering.json"
    settings = runtime.settings.model_copy(update={"ddas_contact_email": "vs@utrecht.example"})
    with unit_of_work(runtime.sessions) as session:
        municipalities = list(session.scalars(select(Municipality)))
        since = today_nl() - dt.timedelta(days=200)
        delivery = export(
            session, runtime.protector, settings, municipalities, since, today_nl(), out, "t"
        )
    document = json.loads(out.read_text())
    assert delivery.signals == first["rows_accepted"] and violations(document) == []
    if (DDAS / "json_schema_Uitwisselmodel.json").is_file():
        assert official_violations(document) == []
    assert shares[PartnerType.ZORG] > shares[PartnerType.WATER]
    again = load_demo(runtime, n_signals=400)
    assert not again["loaded"]
    assert again["users"] == first["users"]
    with unit_of_work(runtime.readers) as session:
        assert session.scalar(select(func.count()).select_from(Signal)) == signals
        assert session.scalar(select(func.count()).select_from(Batch)) == batches
        assert session.scalar(select(func.count()).select_from(User)) == 4
