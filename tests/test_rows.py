"""Row validation (CONTRACT §3.2/§3.3) and the streaming reader: every row and header code."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from signals.enums import BatchCode, PartnerType, RowCode, WindowFlag
from signals.errors import BatchRefused
from signals.parsing import MALFORMED, read_rows
from signals.rules import bsn_valid, window_flag
from signals.schemas import RowValidator, SignalRowSchema, row_errors
from tests.factories import TODAY, csv_bytes, row


def _errors(**overrides: str) -> dict[str, str]:
    data = {k: v for k, v in row(**overrides).items() if v != ""}
    try:
        SignalRowSchema(TODAY).load(data)
    except ValidationError as exc:
        return {field: code.value for field, code in row_errors(exc.messages)}  # type: ignore[arg-type]
    return {}


def test_valid_row_is_normalised() -> None:
    data = SignalRowSchema(TODAY).load(
        row(postcode="3511 ab", bedrag="1450,75", ontstaansdatum="01-02-2026", bsn="12345611")
    )
    assert data["postcode"] == "3511AB"
    assert str(data["bedrag"]) == "1450.75"
    assert data["ontstaansdatum"] == dt.date(2026, 2, 1)
    assert data["bsn"] == "012345611"  # the leading zero a spreadsheet dropped


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"achternaam": ""}, "achternaam", "required"),
        ({"signaal_id": ""}, "signaal_id", "required"),
        ({"signaaldatum": "2026-02-30"}, "signaaldatum", "invalid_date"),
        ({"signaaldatum": "12/01/2026"}, "signaaldatum", "invalid_date"),
        ({"signaaldatum": "2024-W05-1"}, "signaaldatum", "invalid_date"),
        ({"signaaldatum": "0\u0661-02-2024"}, "signaaldatum", "invalid_date"),
        ({"signaaldatum": "01-02-+024"}, "signaaldatum", "invalid_date"),
        ({"achternaam": "Vries\x00"}, "achternaam", "invalid_value"),
        (
            {
                "ontstaansdatum": (TODAY - dt.timedelta(days=1)).isoformat(),
                "signaaldatum": (TODAY - dt.timedelta(days=3)).isoformat(),
            },
            "ontstaansdatum",
            "date_order",
        ),
        (
            {"signaaldatum": (TODAY + dt.timedelta(days=1)).isoformat()},
            "signaaldatum",
            "date_in_future",
        ),
        ({"bsn": "123456789"}, "bsn", "bsn_checksum"),
        ({"bsn": "000000000"}, "bsn", "bsn_checksum"),
        ({"postcode": "0123AB"}, "postcode", "postcode_format"),
        ({"postcode": "1234SS"}, "postcode", "postcode_format"),
        ({"bedrag": "1.234,50"}, "bedrag", "invalid_number"),
        ({"bedrag": "12,345"}, "bedrag", "invalid_number"),
        ({"bedrag": "abc"}, "bedrag", "invalid_number"),
        ({"bedrag": "0"}, "bedrag", "not_positive"),
        ({"bedrag": "-12,50"}, "bedrag", "not_positive"),
        ({"signaal_id": "x" * 65}, "signaal_id", "too_long"),
        ({"achternaam": "x" * 10_000}, "achternaam", "too_long"),
        ({"huisnummertoevoeging": "ABCDE"}, "huisnummertoevoeging", "too_long"),
        ({"huisnummer": "12a"}, "huisnummer", "invalid_number"),
        ({"huisnummer": "123456"}, "huisnummer", "too_long"),
        ({"email": "niet-een-adres"}, "email", "invalid_email"),
        ({"geslacht": "X"}, "geslacht", "invalid_value"),
        ({"crisissignaal": "misschien"}, "crisissignaal", "invalid_value"),
    ],
)
def test_row_codes(overrides: dict[str, str], field: str, code: str) -> None:
    assert _errors(**overrides) == {field: code}


def test_several_bad_fields_are_all_named() -> None:
    assert _errors(bsn="123456789", postcode="x", bedrag="0") == {
        "bsn": "bsn_checksum",
        "postcode": "postcode_format",
        "bedrag": "not_positive",
    }


@pytest.mark.parametrize("value", ["ja", "JA", "true", "1"])
def test_flags_accept_dutch_and_english(value: str) -> None:
    assert SignalRowSchema(TODAY).load(row(crisissignaal=value))["crisissignaal"] is True


def test_elfproef() -> None:
    assert bsn_valid("111222333")
    assert bsn_valid("123456782")
    assert not bsn_valid("123456789")
    assert not bsn_valid("12345678")


@pytest.mark.parametrize(
    ("partner_type", "days", "amount", "end_of_supply", "expected"),
    [
        (PartnerType.HUUR, 31, "900", False, WindowFlag.INSIDE),
        (PartnerType.HUUR, 20, "900", False, WindowFlag.TOO_EARLY),
        (PartnerType.ENERGIE, 10, "200", True, WindowFlag.INSIDE),
        (PartnerType.ZORG, 29, "300", False, WindowFlag.TOO_EARLY),
        (PartnerType.ZORG, 100, "300", False, WindowFlag.INSIDE),
        (PartnerType.ZORG, 101, "300", False, WindowFlag.TOO_LATE),
        (PartnerType.CAK_ZORGVERZEKERINGEN, 150, "300", False, WindowFlag.TOO_EARLY),
        (PartnerType.CAK_ZORGVERZEKERINGEN, 190, "300", False, WindowFlag.INSIDE),
        (PartnerType.CAK_EIGEN_BIJDRAGE, 160, "99", False, WindowFlag.TOO_EARLY),
        (PartnerType.CAK_EIGEN_BIJDRAGE, 160, "100", False, WindowFlag.INSIDE),
        (PartnerType.DUO, 10, "269.99", False, WindowFlag.TOO_EARLY),
        (PartnerType.DUO, 10, "270", False, WindowFlag.INSIDE),
        (PartnerType.BELASTINGDIENST, 1, "5", False, WindowFlag.NO_WINDOW),
    ],
)
def test_convenant_windows(
    partner_type: PartnerType, days: int, amount: str, end_of_supply: bool, expected: WindowFlag
) -> None:
    from decimal import Decimal

    signal = dt.date(2026, 10, 1)
    assert (
        window_flag(
            partner_type,
            signal - dt.timedelta(days=days),
            signal,
            Decimal(amount),
            None,
            end_of_supply,
        )
        is expected
    )


# -- the reader -------------------------------------------------------------------------------
def _read(data: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    header, rows = read_rows(data, 500)
    return header.unknown, list(rows)


@pytest.mark.parametrize("delimiter", [";", ","])
@pytest.mark.parametrize("bom", [False, True])
def test_csv_delimiters_and_bom(delimiter: str, bom: bool) -> None:
    rows = [row(bedrag="12.50"), row(signaal_id="S-2", bedrag="7")]
    unknown, parsed = _read(csv_bytes(rows, delimiter, bom))
    assert unknown == []
    assert [n for n, _ in parsed] == [1, 2]
    assert parsed[0][1]["signaal_id"] == "S-1"
    assert parsed[1][1]["bedrag"] == "7"


def test_unknown_columns_reported_once() -> None:
    rows = [row(extra_info="a", Opmerking="b"), row(signaal_id="S-2", extra_info="c")]
    unknown, parsed = _read(csv_bytes(rows))
    assert unknown == ["extra_info", "opmerking"]
    assert len(parsed) == 2


def test_jsonl_with_the_same_keys() -> None:
    lines = [
        json.dumps({**row(), "bedrag": 12.5, "crisissignaal": True}),
        "",
        json.dumps(row(signaal_id="S-2")),
        "[1, 2]",
    ]
    _, parsed = _read("\n".join(lines).encode())
    assert [n for n, _ in parsed] == [1, 2, 3]
    assert parsed[0][1]["bedrag"] == "12.5"
    assert parsed[0][1]["crisissignaal"] == "true"
    assert parsed[2][1] == {MALFORMED: "x"}


def test_row_with_more_cells_than_header_is_malformed() -> None:
    data = csv_bytes([row()]) + b"S-2;2026-01-01;2025-01-01;12,50;9;9;9;9;9;9;9;9;9;9;9;9;9;9;9\n"
    _, parsed = _read(data)
    assert parsed[1][1] == {MALFORMED: "x"}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", BatchCode.EMPTY),
        (b"\n\n  \n", BatchCode.EMPTY),
        (b"signaal_id;bedrag\n", BatchCode.MISSING_COLUMNS),
        (csv_bytes([row()]).replace(b"achternaam", b"bedrag", 1), BatchCode.DUPLICATE_COLUMNS),
        ("signaal_id;achternaam\n1;Müller\n".encode("latin-1"), BatchCode.ENCODING),
        (b"\xff\xfe" + "signaal_id".encode("utf-16-le"), BatchCode.ENCODING),
    ],
)
def test_header_refusals(data: bytes, code: BatchCode) -> None:
    with pytest.raises(BatchRefused) as caught:
        _read(data)
    assert caught.value.code is code


def test_non_utf8_in_a_later_row_refuses_the_batch() -> None:
    data = csv_bytes([row()]) + "S-2;x;Müller\n".encode("latin-1")
    with pytest.raises(BatchRefused) as caught:
        _read(data)
    assert caught.value.code is BatchCode.ENCODING


def test_row_codes_are_codes_never_values() -> None:
    secret = "999999999"
    errors = _errors(bsn=secret, achternaam='=HYPERLINK("http://x")' * 400)
    assert secret not in json.dumps(errors)
    assert set(errors.values()) <= {c.value for c in RowCode}


_CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "ja",
            "nee",
            "V",
            "M",
            "X",
            "12,50",
            "1.234,50",
            "-3",
            "111222333",
            "123456789",
            "3511 AB",
            "3511AB",
            "0123AB",
            "2026-01-31",
            "31-01-2026",
            "2026-02-30",
            "2999-01-01",
            "a@b.nl",
            "geen",
            "0344",
            "12a",
        ]
    ),
    st.text(max_size=12),
    st.text(min_size=60, max_size=300),
)


@given(st.dictionaries(st.sampled_from(sorted(SignalRowSchema._declared_fields)), _CELLS))
@settings(max_examples=400, deadline=None)
def test_fast_validator_agrees_with_marshmallow(cells: dict[str, str]) -> None:
    """The ingest's fast path gives exactly what the marshmallow schema's ``load`` gives."""
    row_data = {**row(), **cells}
    row_data = {k: v for k, v in row_data.items() if v}
    data, errors = RowValidator(TODAY)(row_data)
    try:
        loaded = SignalRowSchema(TODAY).load(row_data)
    except ValidationError as exc:
        assert errors == row_errors(exc.messages)  # type: ignore[arg-type]
    else:
        assert errors == []
        assert data == loaded
