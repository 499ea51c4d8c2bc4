"""Matching: cases per household and month, meervoudig and opeenvolgend, repeats, review."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from outreach.enums import CaseResult, CaseState
from outreach.jobs import match, plan
from outreach.models import Case
from signals.db import unit_of_work
from signals.enums import PartnerType, SignalStatus
from signals.models import Signal
from tests.factories import TODAY, World, row, synthetic_csv


def _day(days_ago: int) -> str:
    return (TODAY - dt.timedelta(days=days_ago)).isoformat()


def _cases(world: World) -> list[Case]:
    with unit_of_work(world.runtime.readers) as session:
        cases = session.scalars(
            select(Case)
            .order_by(Case.id)
            .options(selectinload(Case.signals), selectinload(Case.tasks))
        ).all()
        for case in cases:
            session.expunge(case)
        return list(cases)


def test_signals_of_one_household_and_month_become_one_case(world: World) -> None:
    energie, _ = world.add_partner("Stroom BV", PartnerType.ENERGIE, key="rsa2")
    first_of_month = TODAY.replace(day=1)
    same_month = [str(first_of_month), str(TODAY)]
    world.ingest([row(signaal_id="H1", signaaldatum=same_month[0])], "huur.p7m")
    world.ingest(
        [
            row(signaal_id="E1", signaaldatum=same_month[1]),  # same BSN, same month
            row(signaal_id="E2", bsn="123456782", signaaldatum=same_month[1]),
        ],
        "energie.p7m",
        partner=energie,
        key="rsa2",
    )
    assert match(world.runtime)["cases_created"] == 2
    assert match(world.runtime)["signals"] == 0  # idempotent: nothing left to match
    cases = _cases(world)
    together = next(c for c in cases if len(c.signals) == 2)
    alone = next(c for c in cases if len(c.signals) == 1)
    assert together.meervoudig and not alone.meervoudig
    assert together.period == f"{TODAY:%Y-%m}"
    assert not together.opeenvolgend
    assert {c.state for c in cases} == {CaseState.NIEUW}


def test_repeats_unchanged_are_closed_grown_ones_are_picked_up(world: World) -> None:
    earlier = _day(75)
    world.ingest(
        [
            row(
                signaal_id="A1",
                bsn="111222333",
                signaaldatum=earlier,
                ontstaansdatum=_day(120),
                bedrag="1000",
            ),
            row(
                signaal_id="B1",
                bsn="123456782",
                signaaldatum=earlier,
                ontstaansdatum=_day(120),
                bedrag="1000",
            ),
        ],
        "earlier.p7m",
    )
    match(world.runtime)
    world.ingest(
        [
            row(signaal_id="A2", bsn="111222333", signaaldatum=_day(1), bedrag="1000"),  # same
            row(signaal_id="B2", bsn="123456782", signaaldatum=_day(1), bedrag="1600"),  # grown
        ],
        "now.p7m",
    )
    result = match(world.runtime)
    assert result["repeats_closed"] == 1
    with unit_of_work(world.runtime.readers) as session:
        a2 = session.scalars(select(Signal).where(Signal.signal_ref == "A2")).one()
        b2 = session.scalars(select(Signal).where(Signal.signal_ref == "B2")).one()
        assert a2.status is SignalStatus.NIET_OPGEPAKT_HERHAALD
        assert b2.status is SignalStatus.NOG_NIET_OPGEPAKT
    later = [c for c in _cases(world) if c.period == f"{TODAY - dt.timedelta(days=1):%Y-%m}"]
    closed = next(c for c in later if c.state is CaseState.AFGESLOTEN)
    picked = next(c for c in later if c.state is CaseState.NIEUW)
    assert closed.result is CaseResult.NIET_OPGEPAKT_HERHAALD
    assert closed.opeenvolgend and picked.opeenvolgend


def test_a_household_known_by_its_address_only_is_a_repeat_too(world: World) -> None:
    """Without a BSN the household is its address: an earlier signal there without a BSN
    makes the new one a repeat; one there with a BSN belongs to that person, not to it."""
    address = {"bsn": "", "postcode": "3512PH", "huisnummer": "3", "achternaam": "Bakker"}
    elsewhere = {"bsn": "", "postcode": "3511AB", "huisnummer": "8", "achternaam": "Smit"}
    earlier = {"signaaldatum": _day(75), "ontstaansdatum": _day(120), "bedrag": "1000"}
    world.ingest(
        [
            row(signaal_id="H1", **address, **earlier),
            row(signaal_id="P1", **{**elsewhere, "bsn": "111222333"}, **earlier),
        ],
        "earlier.p7m",
    )
    match(world.runtime)
    world.ingest(
        [
            row(signaal_id="H2", **address, signaaldatum=_day(1), bedrag="1000"),
            row(signaal_id="S2", **elsewhere, signaaldatum=_day(1), bedrag="1000"),
        ],
        "now.p7m",
    )
    assert match(world.runtime)["repeats_closed"] == 1
    with unit_of_work(world.runtime.readers) as session:
        h2 = session.scalars(select(Signal).where(Signal.signal_ref == "H2")).one()
        s2 = session.scalars(select(Signal).where(Signal.signal_ref == "S2")).one()
        assert h2.status is SignalStatus.NIET_OPGEPAKT_HERHAALD
        assert s2.status is SignalStatus.NOG_NIET_OPGEPAKT
    later = [c for c in _cases(world) if c.period == f"{TODAY - dt.timedelta(days=1):%Y-%m}"]
    assert sorted(c.opeenvolgend for c in later) == [False, True]


def test_outside_the_window_goes_to_review_not_away(world: World) -> None:
    zorg, _ = world.add_partner("Zorgverzekeraar", PartnerType.ZORG, key="rsa2")
    world.ingest(
        [row(signaal_id="Z1", ontstaansdatum=_day(160), signaaldatum=_day(2))],
        "zorg.p7m",
        partner=zorg,
        key="rsa2",
    )
    match(world.runtime)
    plan(world.runtime)
    (case,) = _cases(world)
    assert case.state is CaseState.TE_BEOORDELEN
    assert case.review_reason == "signaal buiten het convenantvenster (Zorg)"
    assert case.tasks == []  # not planned until a person decides


def test_one_run_matches_and_plans_everything_in_chunks(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A month larger than a chunk is done in one run of each job, a commit per chunk, and
    a household split over two chunks still ends in one case."""
    from outreach import jobs
    from outreach.models import Task

    monkeypatch.setattr(jobs, "MATCH_CHUNK", 7)
    monkeypatch.setattr(jobs, "PLAN_CHUNK", 4)
    world.ingest(synthetic_csv(40, prefix="CHUNK"))
    with unit_of_work(world.runtime.readers) as session:
        signals = session.scalar(select(func.count()).select_from(Signal))
    assert match(world.runtime)["signals"] == signals == 40
    assert match(world.runtime)["signals"] == 0
    planned = plan(world.runtime)
    assert plan(world.runtime) == 0
    with unit_of_work(world.runtime.readers) as session:
        cases = session.scalars(select(Case).options(selectinload(Case.tasks))).all()
        open_cases = [c for c in cases if c.state in (CaseState.NIEUW, CaseState.OPGEPAKT)]
        # One case per household and month, however the chunks cut them.
        assert len({(c.household_key, c.period) for c in cases}) == len(cases) > 7
        assert planned == len(open_cases) > 4
        assert all(c.first_attempt_due is not None and len(c.tasks) >= 4 for c in open_cases)
        assert session.scalar(select(func.count()).select_from(Task)) == sum(
            len(c.tasks) for c in cases
        )
