"""The DDAS v1.2 delivery: our own rules, the official examples and schema, the export."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from outreach.ddas import ExportRefused, export, violations, whole_euros
from outreach.enums import CaseResult, ContactKind
from outreach.jobs import match, plan
from outreach.models import Case, DdasDelivery
from outreach.service import close, record_attempt
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import Municipality, Signal, User
from signals.rules import NL, today_nl
from signals.runtime import Runtime
from tests.conftest import SHARED
from tests.factories import World, add_staff, row

DDAS = SHARED / "reference/ddas/vroegsignalering/v1.2"
EXAMPLES = ("enkelvoudigVoorbeeld.json", "meervoudigVoorbeeld.json", "uitgebreidVoorbeeld.json")


def _official(name: str) -> Any:
    path = DDAS / name
    if not path.is_file():
        pytest.skip(f"the official DDAS v1.2 files are not beside the project ({DDAS})")
    return json.loads(path.read_text())


def official_violations(document: Any) -> list[str]:
    import jsonschema

    schema = _official("json_schema_Uitwisselmodel.json")
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_official_examples_pass_our_own_rules(name: str) -> None:
    document = _official(name)
    assert violations(document, extra=False) == []
    assert official_violations(document) == []  # and the official schema agrees


def test_our_rules_refuse_what_the_standard_forbids_and_never_quote_values() -> None:
    document = _official("meervoudigVoorbeeld.json")
    bad = copy.deepcopy(document)
    first = bad["leveringen"][0]["vroegsignalen"][0]
    first["client"]["postcode"] = "1234AB"  # a BSN with an address: the identity rule
    first["status"] = "Misschien"
    first["kleur"] = "rood"
    bad["leveringen"][0]["vroegsignaalzaken"][0]["matchingsdatum"] = "12-01-2025"
    del bad["leveringen"][0]["aanleverendeOrganisatie"]
    found = violations(bad, extra=False)
    text = "\n".join(found)
    assert "leveringen[0].vroegsignalen[0].client: oneOf" in text
    assert "leveringen[0].vroegsignalen[0].status: enum" in text
    assert "leveringen[0].vroegsignalen[0]: additionalProperties not allowed: kleur" in text
    assert "leveringen[0].vroegsignaalzaken[0].matchingsdatum: format date" in text
    assert "leveringen[0]: required" in text
    assert "Misschien" not in text and "111111111" not in text and "rood" not in text
    # The official schema refuses the same document.
    assert official_violations(bad)
    # Our extra export rules: the examples' placeholder BSNs fail the elfproef.
    assert "leveringen[0].vroegsignalen[0].client.burgerservicenummer: elfproef" in violations(
        document
    )


def test_amounts_are_whole_euros_rounded_half_up() -> None:
    from decimal import Decimal

    assert [whole_euros(Decimal(v)) for v in ("450.49", "450.50", "1450.75", "0.50")] == [
        450,
        451,
        1451,
        1,
    ]


def _settings(runtime: Runtime, **extra: Any) -> Runtime:
    values = {"ddas_contact_email": "vroegsignalering@utrecht.example", **extra}
    return Runtime(runtime.settings.model_copy(update=values), runtime.engine)


def _data(world: World) -> dict[str, int]:
    today = today_nl()
    world.ingest(
        [
            row(signaal_id="D1", bsn="111222333", bedrag="450,50"),
            row(signaal_id="D2", bsn="", achternaam="Bakker", postcode="3512PH", huisnummer="3",
                huisnummertoevoeging="A", geboortedatum="1980-02-03", geslacht="M"),
        ]
    )  # fmt: skip
    match(world.runtime)
    plan(world.runtime)
    user_id = add_staff(
        world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id]
    ).user.id
    with unit_of_work(world.runtime.sessions) as session:
        user = session.get(User, user_id)
        case = session.scalars(
            select(Case).join(Case.signals).where(Signal.signal_ref == "D1")
        ).one()
        assert user is not None
        at = dt.datetime.now(NL).replace(hour=19, minute=30) - dt.timedelta(days=1)
        record_attempt(case, user, ContactKind.HUISBEZOEK, at, True, None, world.runtime.protector)
        close(case, CaseResult.ADVIES_QUICK_FIX, user.email, today)
        return {"case": case.id}


def test_the_export_passes_our_rules_and_the_official_schema(world: World, tmp_path: Path) -> None:
    ids = _data(world)
    runtime = _settings(world.runtime)
    start = today_nl() - dt.timedelta(days=40)
    out = tmp_path / "levering.json"
    with unit_of_work(runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        delivery = export(
            session, runtime.protector, runtime.settings, [municipality], start,
            today_nl(), out, by="test",
        )  # fmt: skip
    document = json.loads(out.read_text())
    assert violations(document) == []
    if (DDAS / "json_schema_Uitwisselmodel.json").is_file():
        assert official_violations(document) == []
    (levering,) = document["leveringen"]
    assert levering["teller"] == 1 and levering["gemeentecode"] == "0344"
    signals = {s["bedrag"]: s for s in levering["vroegsignalen"]}
    assert signals[451]["client"] == {"burgerservicenummer": "111222333"}  # the BSN alone
    assert signals[1451]["client"] == {
        "postcode": "3512PH",
        "huisnummer": "3",
        "huisnummertoevoeging": "A",
        "geboortedatum": "1980-02-03",
        "geslachtsaanduiding": "Man",
    }
    closed = next(c for c in levering["vroegsignaalzaken"] if "resultaat" in c)
    assert closed["resultaat"] == "(Budget)advies en/of quick fix"
    assert closed["contactpogingen"][0] == {
        "soort": "Huisbezoek",
        "bereikt": True,
        "datum": (today_nl() - dt.timedelta(days=1)).isoformat(),
        "dagdeel": "Avond",
    }
    assert closed["vroegsignalen"] == [{"ID": signals[451]["ID"]}]
    assert document["codeGegevensleverancier"].startswith("Vroegsignaal ")
    assert delivery.signals == 2 and delivery.cases == 2 and ids["case"]
    # The delivery log: counts and the payload's hash, never a BSN.
    import hashlib

    with unit_of_work(runtime.readers) as session:
        (log,) = session.scalars(select(DdasDelivery)).all()
        assert log.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
        assert (log.signals, log.cases, log.gemeenten) == (2, 2, "0344")
        assert "111222333" not in json.dumps({c.name: str(getattr(log, c.name))
                                             for c in DdasDelivery.__table__.columns})  # fmt: skip


def test_an_export_without_a_contact_email_is_refused_and_writes_nothing(
    world: World, tmp_path: Path
) -> None:
    _data(world)
    out = tmp_path / "ddas" / "levering.json"
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        with pytest.raises(ExportRefused, match="no contact e-mail configured"):
            export(session, world.runtime.protector, world.runtime.settings, [municipality],
                   dt.date(2026, 1, 1), today_nl(), out, by="test")  # fmt: skip
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # not even a temp file


def test_the_cli_exports_and_refuses(world: World, tmp_path: Path) -> None:
    from tests.test_cli import vs

    _data(world)
    out = tmp_path / "levering.json"
    today = today_nl().isoformat()
    refused = vs(world.runtime, "export", "ddas", "--from", "2026-01-01", "--to", today,
                 "--out", str(out), check=False)  # fmt: skip
    assert refused.returncode != 0 and "no contact e-mail" in refused.stderr
    assert not out.exists()
    done = vs(world.runtime, "export", "ddas", "--from", "2026-01-01", "--to", today,
              "--gemeente", "0344", "--out", str(out), "--json",
              VROEGSIGNAAL_DDAS_CONTACT_EMAIL="vs@utrecht.example")  # fmt: skip
    report = json.loads(done.stdout)
    assert report["signals"] == 2 and report["gemeenten"] == ["0344"]
    assert violations(json.loads(out.read_text())) == []


def test_bad_stored_data_refuses_the_export_with_paths_only(world: World, tmp_path: Path) -> None:
    _data(world)
    runtime = _settings(world.runtime)
    with unit_of_work(runtime.sessions) as session:
        signal = session.scalars(select(Signal).where(Signal.signal_ref == "D1")).one()
        signal.arrears_start_date = signal.signal_date + dt.timedelta(days=3)  # broken
    out = tmp_path / "ddas" / "levering.json"
    with unit_of_work(runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        with pytest.raises(ExportRefused) as refused:
            export(session, runtime.protector, runtime.settings, [municipality],
                   dt.date(2026, 1, 1), today_nl(), out, by="test")  # fmt: skip
        assert session.scalars(select(DdasDelivery)).all() == []
    assert refused.value.violations == [
        "leveringen[0].vroegsignalen[0].ontstaansdatum: after signaaldatum"
    ]
    assert "111222333" not in str(refused.value)
    assert list(out.parent.iterdir()) == []


def test_the_periodic_delivery_runs_once_per_period(world: World, tmp_path: Path) -> None:
    from outreach.ddas import deliver_periodically, last_complete_period

    assert last_complete_period(dt.date(2026, 11, 23), "quarter") == (
        dt.date(2026, 7, 1),
        dt.date(2026, 9, 30),
    )
    assert last_complete_period(dt.date(2026, 1, 5), "half-year") == (
        dt.date(2025, 7, 1),
        dt.date(2025, 12, 31),
    )
    _data(world)
    assert deliver_periodically(world.runtime) is None  # no contact e-mail: refused, logged
    runtime = _settings(world.runtime, ddas_dir=str(tmp_path / "ddas"), ddas_period="month")
    written = deliver_periodically(runtime)
    assert written is not None and violations(json.loads(Path(written).read_text())) == []
    assert deliver_periodically(runtime) is None  # the log has it: not again
    with unit_of_work(runtime.readers) as session:
        assert [d.by for d in session.scalars(select(DdasDelivery))] == ["systeem"]


@pytest.mark.parametrize(
    "change",
    [
        {"status": "Misschien"},
        {"bedrag": 450.5},
        {"signaaldatum": "2025-13-01"},
        {"ontstaansdatum": "05-01-2025"},
        {"client": {"burgerservicenummer": "111222333", "postcode": "1234AB"}},
        {"client": {"burgerservicenummer": "11122233"}},
        {"client": {"postcode": "1234AB"}},
        {"signaalpartner": {"type": "Bank"}},
        {"kleur": "rood"},
        {"crisissignaal": "ja"},
    ],
)
def test_the_fast_and_the_full_check_agree(change: dict[str, Any]) -> None:
    from outreach.ddas_rules import schema_violations

    good = _official("uitgebreidVoorbeeld.json")["leveringen"][0]["vroegsignalen"][0]
    assert schema_violations("signal", good) == []
    bad = {**good, **change}
    found = schema_violations("signal", bad)  # the fast check refuses, the full one names
    assert found and all(isinstance(v, str) for v in found)


def test_signals_outside_the_period_come_along_with_their_active_case(
    world: World, tmp_path: Path
) -> None:
    _data(world)  # signals dated two days ago; cases matched today, one still open
    runtime = _settings(world.runtime)
    today = today_nl()
    out = tmp_path / "vandaag.json"
    with unit_of_work(runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        delivery = export(session, runtime.protector, runtime.settings, [municipality],
                          today, today, out, by="test")  # fmt: skip
    document = json.loads(out.read_text())
    (levering,) = document["leveringen"]
    assert delivery.cases == 2 and delivery.signals == 2  # only via their cases
    assert all(s["signaaldatum"] < today.isoformat() for s in levering["vroegsignalen"])
    assert violations(document) == []  # every reference resolves inside the levering


# -- pages (the pull API for CBS) --------------------------------------------------------------
def paged_data(world: World) -> None:
    """A case with two signals, a case with one, and two signals that no case holds yet."""
    world.ingest(
        [
            row(signaal_id="P1", bsn="111222333"),
            row(signaal_id="P2", bsn="111222333", bedrag="99"),
            row(signaal_id="P3", bsn="", achternaam="Bakker", postcode="3512PH", huisnummer="3"),
        ],
        name="a.csv.p7m",
    )
    match(world.runtime)
    world.ingest(
        [
            row(signaal_id="P4", bsn="123456782"),
            row(signaal_id="P5", bsn="", achternaam="Smit", postcode="3511AB", huisnummer="8"),
        ],
        name="b.csv.p7m",
    )


def write_page(runtime: Runtime, municipality_id: int, size: int, number: int) -> Any:
    """One page as the API builds it: the document and its pagination."""
    import io

    from outreach.ddas import Writer, paginate, write_document

    start, end = today_nl() - dt.timedelta(days=40), today_nl()
    with unit_of_work(runtime.sessions) as session:
        municipality = session.get(Municipality, municipality_id)
        assert municipality is not None
        pagination = paginate(session, municipality.id, start, end, size, number)
        buffer = io.BytesIO()
        part = [(municipality, pagination.part)]
        write_document(session, runtime.protector, runtime.settings, part, start, end,
                       Writer(buffer))  # fmt: skip
    return json.loads(buffer.getvalue()), pagination


def test_pages_hold_whole_cases_every_signal_once_and_are_valid_alone(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outreach import ddas
    from outreach.ddas import PageNotFound, PageSizeTooSmall

    monkeypatch.setattr(ddas, "CHUNK", 1)  # streamed ids and the queries between them
    paged_data(world)
    runtime = _settings(world.runtime)
    whole, _ = write_page(runtime, world.municipality_id, 50_000, 1)
    (levering,) = whole["leveringen"]
    assert len(levering["vroegsignalen"]) == 5 and len(levering["vroegsignaalzaken"]) == 2
    assert sorted(len(c["vroegsignalen"]) for c in levering["vroegsignaalzaken"]) == [1, 2]
    # The one page is the file export's levering.
    out = tmp_path / "levering.json"
    with unit_of_work(runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        start = today_nl() - dt.timedelta(days=40)
        export(session, runtime.protector, runtime.settings, [municipality], start,
               today_nl(), out, by="test")  # fmt: skip
    assert json.loads(out.read_text())["leveringen"] == whole["leveringen"]

    # Greedy: size 2 -> [case of 2], [case of 1, P4], [P5]; size 4 -> [both cases, P4], [P5]
    for size, expected in ((2, [2, 2, 1]), (3, [3, 2]), (4, [4, 1]), (5, [5])):
        signals: list[str] = []
        cases: list[Any] = []
        counts = []
        for number in range(1, len(expected) + 1):
            document, pagination = write_page(runtime, world.municipality_id, size, number)
            assert violations(document) == []  # every reference inside the page
            if (DDAS / "json_schema_Uitwisselmodel.json").is_file():
                assert official_violations(document) == []
            assert pagination.as_dict() == {
                "pageSize": size, "currentPage": number, "totalPages": len(expected),
                "totalRecords": 5,
            }  # fmt: skip
            (part,) = document["leveringen"]
            counts.append(len(part["vroegsignalen"]))
            signals += [s["ID"] for s in part["vroegsignalen"]]
            cases += part["vroegsignaalzaken"]
        assert counts == expected, size
        assert sorted(signals) == sorted(s["ID"] for s in levering["vroegsignalen"])  # once each
        assert sorted(map(json.dumps, cases)) == sorted(
            map(json.dumps, levering["vroegsignaalzaken"])
        )
        with pytest.raises(PageNotFound) as beyond:
            write_page(runtime, world.municipality_id, size, len(expected) + 1)
        assert beyond.value.pages == len(expected)
    with pytest.raises(PageSizeTooSmall) as small:
        write_page(runtime, world.municipality_id, 1, 1)
    assert small.value.minimum == 2


def test_an_empty_period_is_one_empty_valid_page(world: World) -> None:
    runtime = _settings(world.runtime)
    document, pagination = write_page(runtime, world.municipality_id, 10, 1)
    assert pagination.as_dict() == {"pageSize": 10, "currentPage": 1, "totalPages": 1,
                                    "totalRecords": 0}  # fmt: skip
    assert violations(document) == []
    assert document["leveringen"][0]["vroegsignalen"] == []


def test_a_download_or_a_cbs_page_does_not_stand_for_the_scheduled_delivery(
    world: World, tmp_path: Path
) -> None:
    from outreach.ddas import Tally, deliver_periodically, last_complete_period, log_delivery
    from signals.rules import today_nl

    runtime = _settings(world.runtime, ddas_dir=str(tmp_path / "ddas"), ddas_period="month")
    start, end = last_complete_period(today_nl(), "month")
    with unit_of_work(runtime.sessions) as session:
        for by in ("cbs:cbs-client", "beheer@example.nl"):
            log_delivery(session, start, end, ["0344"], Tally(), "0" * 64, by)
    written = deliver_periodically(runtime)
    assert written is not None and Path(written).is_file()
