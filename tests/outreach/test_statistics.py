"""The dashboard's figures against a small data set counted by hand; suppression; access."""

from __future__ import annotations

import datetime as dt
import io
import random
import re
from typing import Any

from sqlalchemy import func, select

from outreach.enums import CaseResult, ContactKind
from outreach.jobs import check_residents, count_statistics, match, plan
from outreach.models import Case, StatisticsCount
from outreach.residents import import_extract
from outreach.service import close, record_attempt
from outreach.statistics import SECONDARY, Table, compute, shown, suppress
from signals.db import unit_of_work
from signals.enums import PartnerType, Role
from signals.models import Municipality, Signal, StatisticsMark, User
from signals.rules import NL, today_nl
from signals.runtime import Runtime
from signals.service import add_municipality
from signals.synthetic import make_bsn
from tests.factories import World, add_staff, login, row

BSN = [make_bsn(random.Random(i)) for i in range(10)]


def test_small_counts_are_hidden_and_cannot_be_recovered_from_the_total() -> None:
    assert suppress([12, 6, 4, 2, 0]) == ["12", "6", "<5", "<5", "0"]
    assert suppress([20, 9, 3], partition=False) == ["20", "9", "<5"]
    # One small cell alone: the next smallest is hidden too, or 12 - 9 - ... would show it.
    assert suppress([20, 9, 8, 3]) == ["20", "9", SECONDARY, "<5"]
    assert suppress([None, 5]) == ["—", "5"]


def test_the_second_hidden_cell_is_taken_from_the_same_distribution() -> None:
    # 26 + 4 = 30 signals: with Energie hidden, Huur must go too, not the smaller "young" row.
    table = Table(
        "signalen", "Signalen", ["", "aantal", "aandeel"],
        [["signalen", 30, ""], ["partner: Huur", 26, ""], ["partner: Energie", 4, ""],
         ["jongeren 18-27", 6, ""]],
        partitions=((1, 2),),
    )  # fmt: skip
    assert [r[1] for r in shown(table)] == ["30", SECONDARY, "<5", "6"]
    # Months split the period: one small month would follow from the total.
    months = Table("per_maand", "Per maand", ["maand", "signalen", "x"],
                   [["2026-01", 40, ""], ["2026-02", 3, ""], ["2026-03", 9, ""]])  # fmt: skip
    assert [r[1] for r in shown(months)] == ["40", "<5", SECONDARY]


def _attempt_moment() -> dt.datetime:
    """10:00 today (Dutch time), or now if earlier: never in the future."""
    now = dt.datetime.now(NL)
    return min(now, now.replace(hour=10, minute=0, second=0, microsecond=0))


def _data(world: World, extract: bytes | None = None) -> None:
    today = today_nl()
    day = str(today - dt.timedelta(days=1))
    young = "2005-06-01"
    world.ingest(
        [row(signaal_id=f"H{i}", bsn=BSN[i], signaaldatum=day) for i in range(6)]
        + [row(signaal_id="Z1", bsn=BSN[8], signaaldatum=day, geboortedatum=young),
           row(signaal_id="Z2", bsn=BSN[9], signaaldatum=day, geboortedatum=young)]
    )  # fmt: skip
    energie, _ = world.add_partner("Stroom", PartnerType.ENERGIE, key="rsa2")
    world.ingest(
        [
            row(signaal_id="E1", bsn=BSN[0], signaaldatum=day),
            row(signaal_id="E2", bsn=BSN[1], signaaldatum=day),
            row(signaal_id="E3", bsn=BSN[6], signaaldatum=day, eindelevering="ja"),
            row(signaal_id="E4", bsn=BSN[7], signaaldatum=day),
        ],
        partner=energie,
        key="rsa2",
    )
    match(world.runtime)
    if extract is not None:  # the resident check, before anyone is contacted
        with unit_of_work(world.runtime.sessions) as session:
            import_extract(session, world.runtime.protector, world.municipality_id, extract, today)
        check_residents(world.runtime)
    plan(world.runtime)
    user_id = add_staff(
        world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id]
    ).user.id
    with unit_of_work(world.runtime.sessions) as session:
        user = session.get(User, user_id)
        assert user is not None
        at = _attempt_moment()
        for i in range(6):
            signal = session.scalars(select(Signal).where(Signal.signal_ref == f"H{i}")).one()
            case = session.scalars(select(Case).where(Case.signals.contains(signal))).one()
            record_attempt(
                case, user, ContactKind.TELEFOON, at, i < 5, None, world.runtime.protector
            )
            if i < 5:
                close(case, CaseResult.VERVOLGHULP_FINANCIEEL, user.email, today)


def test_every_figure_matches_a_count_by_hand(world: World) -> None:
    _data(world)
    today = today_nl()
    with unit_of_work(world.runtime.readers) as session:
        data = compute(
            session, [world.municipality_id], today - dt.timedelta(days=30), today,
            {"0344": 10_000},
        )  # fmt: skip
    signals = {r[0]: r[1] for r in data.table("signalen").rows}
    assert signals["signalen"] == 12
    partners = {r[0]: r[1] for r in data.table("partners").rows}
    assert partners == {"Huur": 8, "Energie": 4}  # Z1 and Z2 came through the Huur partner
    assert signals["eindelevering (van energie)"] == 1
    assert signals["jongeren 18-27"] == 2
    assert signals["in een zaak opgenomen"] == 12
    assert "Signalen per 1.000 inwoners per maand: 0.60" in data.table("signalen").note
    cases = {r[0]: r[1] for r in data.table("zaken").rows}
    assert cases == {
        "zaken": 10,  # ten households
        "meervoudig": 2,  # two households got rent and energy
        "opeenvolgend": 0,
        "bereikt": 5,
        "hulp aanvaard (van bereikt)": 5,
    }
    results = {r[0]: r[1] for r in data.table("resultaten").rows}
    assert results == {"Vervolghulp en/of verwijzing financieel": 5}
    attempts = data.table("pogingen").rows
    assert attempts == [["Telefoon", 6, 5, "83.3%", "0.60"]]
    speed = {r[0]: r[1:] for r in data.table("snelheid").rows}
    # Six cases, signalled yesterday, attempted today: a median of one day, counted up to
    # the attempt's UTC date (zero days for an attempt just after midnight, Dutch time).
    days = (_attempt_moment().astimezone(dt.UTC).date() - (today - dt.timedelta(days=1))).days
    assert speed["signaal → eerste poging"][:2] == [6, str(days)]
    bands = {r[0]: r[1] for r in data.table("risicoband").rows}
    assert sum(bands.values()) == 10
    # As shown: the small counts are hidden.
    visible = {r[0]: r[1:] for r in shown(data.table("signalen"))}
    assert visible["jongeren 18-27"] == ["<5", "—"]  # and no share to work it back from
    assert visible["eindelevering (van energie)"] == ["<5", "—"]
    # In a distribution one hidden cell would follow from the total: a second one is hidden.
    assert {r[0]: r[1] for r in shown(data.table("partners"))} == {
        "Energie": "<5",
        "Huur": SECONDARY,
    }


def _login(
    client: Any,
    world: World,
    role: Role,
    email: str,
    codes: tuple[str, ...] = (),
    extra: tuple[Role, ...] = (),
) -> None:
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        others = session.scalars(select(Municipality).where(Municipality.code.in_(codes)))
        places = [municipality.id, *(m.id for m in others)]
    user = add_staff(world.runtime, email, role, places, extra_roles=extra)
    login(client, email, user.password, user.totp_secret)


def test_pages_and_downloads_carry_no_personal_data_and_only_for_analysts(
    client: Any, world: World
) -> None:
    _data(world)
    _login(client, world, Role.ANALYST, "analist@example.nl")
    page = client.get("/dashboard?periode=kwartaal")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Trends per maand" in html and html.count("<svg") == 4  # drawn on the server
    assert "<script" not in html and 'src="http' not in html and "cdn" not in html.lower()
    assert "&lt;5" in html
    download = client.get("/dashboard.csv?periode=kwartaal")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    text = download.get_data(as_text=True)
    assert "Zaken en bereik;bereikt;aantal;5" in text
    for secret in [*BSN, "Vries", "Oudegracht", "3511"]:
        assert secret not in html and secret not in text
    workbook = client.get("/dashboard.xlsx?periode=kwartaal")
    assert workbook.status_code == 200
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(workbook.data))
    sheet = book["Zaken en bereik"]
    values = {r[0]: r[1] for r in sheet.iter_rows(min_row=2, values_only=True) if r and r[0]}
    assert values["bereikt"] == 5 and values["meervoudig"] == "<5"
    cells = [str(c) for ws in book for r in ws.iter_rows(values_only=True) for c in r if c]
    assert not any(secret in c for c in cells for secret in [*BSN, "Vries", "Oudegracht"])
    assert client.get("/dashboard?periode=eigen&van=2026-02-01&tot=2026-01-01").status_code == 400
    assert client.get("/dashboard?gemeente=0363").status_code == 404  # not theirs
    client.post("/logout", data={"csrf_token": re.search(
        r'name="csrf_token" value="([^"]+)"', html)[1]})  # fmt: skip
    _login(client, world, Role.COUNSELLOR, "consulent@example.nl")
    assert client.get("/dashboard").status_code == 403
    assert client.get("/dashboard.csv").status_code == 403
    queue = client.get("/queue").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": re.search(
        r'name="csrf_token" value="([^"]+)"', queue)[1]})  # fmt: skip
    # A counsellor who is also an analyst sees both the queue and the statistics.
    _login(client, world, Role.COUNSELLOR, "beide@example.nl", extra=(Role.ANALYST,))
    assert client.get("/dashboard").status_code == 200
    assert client.get("/queue").status_code == 200


def test_csv_cells_cannot_start_a_formula() -> None:
    from webapp.dashboard import _safe

    assert _safe('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert _safe("+1") == "'+1" and _safe("-5") == "'-5" and _safe("@A1") == "'@A1"
    assert _safe("<5") == "<5" and _safe("12") == "12"


def _extract(minors_at: set[int]) -> bytes:
    """A BRP extract of the ten people of ``_data``, each at their own house number, with a
    child of 10 living with those in ``minors_at``."""
    lines = ["bsn;voornamen;voorvoegsel;geslachtsnaam;geboortedatum;straat;huisnummer;"
             "huisnummertoevoeging;postcode;woonplaats"]  # fmt: skip
    child = today_nl() - dt.timedelta(days=10 * 365)
    for i, bsn in enumerate(BSN):
        lines.append(f"{bsn};Jan;de;Vries;1990-04-12;Oudegracht;{i + 1};;3511AB;Utrecht")
        if i in minors_at:
            kid = make_bsn(random.Random(100 + i))
            lines.append(f"{kid};Sem;de;Vries;{child};Oudegracht;{i + 1};;3511AB;Utrecht")
    return "\n".join(lines).encode()


def _tables(data: Any) -> dict[str, list[list[Any]]]:
    return {t.key: t.rows for t in data.tables}


def test_young_people_children_help_kinds_and_trend_counted_by_hand(world: World) -> None:
    _data(world, _extract({0, 1, 8}))
    today = today_nl()
    with unit_of_work(world.runtime.readers) as session:
        data = compute(session, [world.municipality_id], today - dt.timedelta(days=30), today, {})
    groups = {r[0]: r[1:4] for r in data.table("groepen").rows}
    # zaken, bereikt, hulp aanvaard: H0-H4 were reached and accepted, H5 not reached.
    assert groups["alle zaken"] == [10, 5, 5]
    assert groups["jongeren 18-27"] == [2, 0, 0]  # Z1 and Z2 (BSN 8 and 9)
    assert groups["huishoudens met minderjarige kinderen"] == [3, 2, 2]  # BSN 0, 1 and 8
    assert groups["huishoudens zonder minderjarige kinderen"] == [7, 3, 3]
    assert groups["kinderen onbekend (nog geen inwonercheck)"] == [0, 0, 0]
    kinds = {r[0]: r[1] for r in data.table("hulpsoort").rows}
    assert kinds["vervolghulp financieel"] == 5 and kinds["quick fix: (budget)advies"] == 0
    assert data.table("pogingen_per_zaak").rows == [["alle soorten", 6, "0.60"]]
    trend = {r[0]: r for r in data.table("per_maand").rows}
    this_month = trend[f"{today.year}-{today.month:02d}"]
    assert this_month[1] + trend.get(_previous_month(today), [0, 0])[1] == 12


def _previous_month(day: dt.date) -> str:
    first = day.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year}-{first.month:02d}"


def _all_figures(session: Any, ids: list[int], start: dt.date, end: dt.date, stored: bool) -> Any:
    return _tables(compute(session, ids, start, end, {"0344": 50_000}, stored=stored))


def test_pre_counted_figures_equal_a_direct_count_before_and_after_changes(world: World) -> None:
    _data(world)
    today = today_nl()
    periods = [
        (today - dt.timedelta(days=400), today),  # a year and more: whole months
        (today - dt.timedelta(days=10), today - dt.timedelta(days=1)),  # part of a month
        (today.replace(day=1), today),  # this month up to today
    ]
    ids = [world.municipality_id]

    def same() -> None:
        with unit_of_work(world.runtime.readers) as session:
            for start, end in periods:
                assert _all_figures(session, ids, start, end, True) == _all_figures(
                    session, ids, start, end, False
                )

    same()  # nothing counted yet: everything is counted directly
    assert count_statistics(world.runtime) == {"gemeenten": 1, "maanden": 0}
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalar(select(func.count()).select_from(StatisticsCount)) > 20
        assert session.scalar(select(func.count()).select_from(StatisticsMark)) == 0
    same()
    # Work goes on: an attempt, a closed case, a new batch. The marks make the dashboard
    # count those months directly until the job has recounted them.
    with unit_of_work(world.runtime.sessions) as session:
        user = session.scalars(select(User)).first()
        assert user is not None
        case = session.scalars(select(Case).where(Case.result.is_(None))).first()
        assert case is not None
        now = dt.datetime.now(NL)  # 14:00 today, or now if earlier: never in the future
        at = min(now, now.replace(hour=14, minute=0, second=0, microsecond=0))
        record_attempt(case, user, ContactKind.HUISBEZOEK, at, True, None, world.runtime.protector)
        close(case, CaseResult.ADVIES_QUICK_FIX, user.email, today)
    world.ingest([row(signaal_id="N1", bsn=make_bsn(random.Random(77)))], name="nieuw.csv")
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalar(select(func.count()).select_from(StatisticsMark)) > 0
        stale = _tables(compute(session, ids, *periods[0], {}, stored=True))
    assert {r[0]: r[1] for r in stale["resultaten"]}["(Budget)advies en/of quick fix"] == 1
    same()
    done = count_statistics(world.runtime)
    assert done["gemeenten"] == 0 and done["maanden"] >= 1
    same()
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalar(select(func.count()).select_from(StatisticsMark)) == 0


def test_regions_are_offered_only_whole(world: World) -> None:
    from webapp import create_app

    _data(world)
    with unit_of_work(world.runtime.sessions) as session:
        add_municipality(session, "0307", "Amersfoort")
    regions = {"Eemland": ["0344", "0307"], "Groot": ["0344", "0599"]}
    runtime = Runtime(world.runtime.settings.model_copy(update={"regions": regions}),
                      world.runtime.engine)  # fmt: skip
    client = create_app(runtime=runtime, TESTING=True).test_client()
    _login(client, world, Role.ANALYST, "analist@example.nl")  # sees 0344 only
    html = client.get("/dashboard").get_data(as_text=True)
    assert "regio:Eemland" not in html and "regio:Groot" not in html
    assert client.get("/dashboard?gemeente=regio:Eemland").status_code == 404
    client.post("/logout", data={"csrf_token": re.search(
        r'name="csrf_token" value="([^"]+)"', html)[1]})  # fmt: skip
    _login(client, world, Role.ANALYST, "regio@example.nl", codes=("0307",))
    html = client.get("/dashboard").get_data(as_text=True)
    assert 'value="regio:Eemland"' in html and "regio:Groot" not in html
    region = client.get("/dashboard.csv?gemeente=regio:Eemland&periode=kwartaal")
    assert region.status_code == 200 and "0307-0344" in region.headers["Content-Disposition"]
    # The region's figures are its members' together: here all of 0344's, none of 0307.
    assert "Signalen;signalen;aantal;12" in region.get_data(as_text=True)
