"""Property-based tests (hypothesis): the batch parser, the row validators and the envelope.

Whatever a partner sends, the answer is a documented refusal (a batch code or row codes),
never a crash; what is valid comes through unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from signals.cms import decrypt_stream
from signals.enums import BatchCode, BatchSource, RowCode
from signals.envelope import encrypt, sign, to_der, verify_detached
from signals.errors import BatchRefused
from signals.jobs import ingest_file
from signals.parsing import MALFORMED, read_rows
from signals.rules import bsn_valid
from signals.schemas import REQUIRED_COLUMNS, RowValidator
from tests.factories import TODAY, World, csv_bytes, key_ring, row

FAST = settings(max_examples=200, deadline=None)
ROW_CODES = {code.value for code in RowCode}
validate = RowValidator(TODAY)


def _drain(plaintext: bytes) -> list[tuple[int, dict[str, str]]]:
    """Parse a whole batch: its rows, or the documented refusal."""
    _header, rows = read_rows(plaintext, 200)
    return list(rows)


# -- the CSV / JSON Lines parser -------------------------------------------------------------


@FAST
@given(st.binary(max_size=2000))
@example(b"\xff\xfe")
@example(b'signaal_id;bedrag\n"open quote')
@example(b"{" * 3000)
def test_arbitrary_bytes_are_rows_or_a_documented_refusal(data: bytes) -> None:
    try:
        rows = _drain(data)
    except BatchRefused as refused:
        assert refused.code in BatchCode
        return
    for number, values in rows:
        assert number >= 1 and all(isinstance(v, str) for v in values.values())
        _data, errors = validate(values)  # no crash on any row the parser yields
        assert {code.value for _field, code in errors} <= ROW_CODES


_HEADER = "signaal_id;signaaldatum;ontstaansdatum;bedrag;achternaam;huisnummer;postcode\n"


@FAST
@given(
    st.lists(st.text(max_size=60), max_size=6),
    st.sampled_from([";", ",", "\t"]),
    st.booleans(),
)
def test_arbitrary_text_after_a_valid_header_never_crashes(
    lines: list[str], separator: str, jsonl: bool
) -> None:
    head = '{"signaal_id": "A"}\n' if jsonl else _HEADER
    text = head + "\n".join(separator.join([line, line]) for line in lines)
    try:
        rows = _drain(text.encode("utf-8", "surrogatepass"))
    except BatchRefused as refused:
        assert refused.code in BatchCode
        return
    for _number, values in rows:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
        assert values.get(MALFORMED, "x") == "x"
        _data, errors = validate(values)
        assert {code.value for _field, code in errors} <= ROW_CODES


# Values as partners write them: no control characters, no surrounding blanks, not empty.
_value = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")), min_size=1, max_size=30
).filter(lambda v: v == v.strip() and v.strip())
_columns = [*REQUIRED_COLUMNS, "klantnummer", "woonplaats", "straat"]
_rows = st.lists(
    st.fixed_dictionaries({c: _value for c in REQUIRED_COLUMNS}, optional={
        c: _value for c in ("klantnummer", "woonplaats", "straat")
    }),
    min_size=1, max_size=8,
)  # fmt: skip


@FAST
@given(_rows, st.sampled_from([";", ","]), st.booleans())
def test_csv_rows_round_trip(rows: list[dict[str, str]], delimiter: str, bom: bool) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, _columns, delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    data = out.getvalue().encode()
    parsed = _drain((b"\xef\xbb\xbf" if bom else b"") + data)
    assert parsed == list(enumerate(rows, start=1))


@FAST
@given(_rows)
def test_jsonl_rows_round_trip(rows: list[dict[str, str]]) -> None:
    data = "\n".join(json.dumps(r) for r in rows).encode()
    assert _drain(data) == list(enumerate(rows, start=1))


# -- the row validators ----------------------------------------------------------------------


def _check_digit(first8: str) -> int:
    return sum(int(d) * w for d, w in zip(first8, range(9, 1, -1), strict=True)) % 11


_valid_bsn = (
    st.text("0123456789", min_size=8, max_size=8)
    .filter(lambda s: _check_digit(s) < 10 and s != "00000000")
    .map(lambda s: s + str(_check_digit(s)))
)


def _field(name: str, value: str) -> tuple[Any, set[str]]:
    """Validate one value in an otherwise valid row: its converted value and its codes."""
    data, errors = validate({**row(), name: value})
    return data.get(name), {code.value for field, code in errors if field == name}


@FAST
@given(_valid_bsn)
def test_elfproef_accepts_valid_bsns(bsn: str) -> None:
    assert bsn_valid(bsn)
    assert _field("bsn", bsn) == (bsn, set())
    assert _field("bsn", f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}")[0] == bsn  # dots are formatting


@FAST
@given(_valid_bsn, st.integers(0, 8), st.integers(1, 9))
def test_elfproef_catches_every_single_digit_error(bsn: str, position: int, delta: int) -> None:
    wrong = bsn[:position] + str((int(bsn[position]) + delta) % 10) + bsn[position + 1 :]
    assert not bsn_valid(wrong)
    assert _field("bsn", wrong)[1] == {"bsn_checksum"}


@FAST
@given(_valid_bsn, st.integers(0, 7))
def test_elfproef_catches_every_swap_of_neighbours(bsn: str, position: int) -> None:
    assume(bsn[position] != bsn[position + 1])
    swapped = bsn[:position] + bsn[position + 1] + bsn[position] + bsn[position + 2 :]
    assert not bsn_valid(swapped)


@FAST
@given(
    st.text("0123456789", min_size=7, max_size=7)
    .map(lambda s: "0" + s)
    .filter(lambda s: _check_digit(s) < 10 and s != "00000000")
    .map(lambda s: s + str(_check_digit(s)))
)
def test_a_bsn_that_lost_its_leading_zero_gets_it_back(bsn: str) -> None:
    assert _field("bsn", bsn[1:]) == (bsn, set())


@FAST
@given(
    st.integers(1000, 9999),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    st.booleans(),
    st.booleans(),
)
def test_postcodes_are_normalised(digits: int, letters: str, space: bool, lower: bool) -> None:
    written = f"{digits}{' ' if space else ''}{letters.lower() if lower else letters}"
    value, codes = _field("postcode", written)
    if letters in ("SA", "SD", "SS"):  # never issued
        assert codes == {"postcode_format"}
    else:
        assert (value, codes) == (f"{digits}{letters}", set())


@FAST
@given(st.dates(dt.date(1900, 1, 1), TODAY))
def test_dates_in_both_forms_read_the_same(day: dt.date) -> None:
    iso, dutch = day.isoformat(), day.strftime("%d-%m-%Y")
    for written in (iso, dutch):
        assert _field("geboortedatum", written) == (day, set())


@FAST
@given(st.dates(TODAY + dt.timedelta(days=1), dt.date(2999, 12, 31)))
def test_dates_after_today_are_refused_where_only_the_past_fits(day: dt.date) -> None:
    assert _field("signaaldatum", day.isoformat())[1] == {"date_in_future"}
    assert _field("ontruimingsdatum", day.isoformat()) == (day, set())  # a planned eviction


@FAST
@given(st.decimals(Decimal("0.01"), Decimal("99999999.99"), places=2), st.sampled_from(".,"))
def test_amounts_round_trip(amount: Decimal, mark: str) -> None:
    assert _field("bedrag", str(amount).replace(".", mark)) == (amount, set())


@FAST
@given(st.decimals(Decimal("-99999.99"), Decimal("0"), places=2))
def test_amounts_not_above_zero_are_refused(amount: Decimal) -> None:
    assert _field("bedrag", str(amount))[1] == {"not_positive"}


@FAST
@given(
    st.sampled_from(["bsn", "postcode", "signaaldatum", "geboortedatum", "bedrag", "maandbedrag",
                     "huisnummer", "email", "telefoon", "geslacht", "crisissignaal",
                     "gemeentecode", "signaal_id", "achternaam"]),
    st.text(max_size=40),
)  # fmt: skip
def test_any_value_is_accepted_or_refused_with_a_row_code(name: str, value: str) -> None:
    _data, errors = validate({**row(), name: value})
    assert {code.value for _field, code in errors} <= ROW_CODES
    assert all(field == name for field, _code in errors)  # no other field is blamed


# -- the envelope ----------------------------------------------------------------------------

KEYS = key_ring()
PLAINTEXT = csv_bytes([row(), row(signaal_id="S-2", bsn="123456782")])
ENVELOPE = encrypt(PLAINTEXT, KEYS.recipient_cert)
SIGNATURE = sign(ENVELOPE, KEYS.partner["rsa"])
RECIPIENTS = [(KEYS.recipient_cert, KEYS.recipient_key)]


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    """The valid envelope with bytes flipped, cut off, inserted or deleted."""
    data = bytearray(ENVELOPE)
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    position = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        data[position] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        del data[position:]
    elif kind == "insert":
        data[position:position] = draw(st.binary(min_size=1, max_size=8))
    else:
        del data[position : position + draw(st.integers(1, 8))]
    assume(bytes(data) != ENVELOPE)
    return bytes(data)


def test_the_valid_envelope_opens() -> None:
    assert b"".join(decrypt_stream([to_der(ENVELOPE)], RECIPIENTS)) == PLAINTEXT
    assert verify_detached(io.BytesIO(ENVELOPE), SIGNATURE, [KEYS.partner["rsa"].public_key()])


@FAST
@given(corrupted())
def test_a_corrupted_envelope_fails_its_signature(data: bytes) -> None:
    keys = [KEYS.partner["rsa"].public_key()]
    assert not verify_detached(io.BytesIO(data), SIGNATURE, keys)


@FAST
@given(corrupted(), st.integers(1, 64))
def test_a_corrupted_envelope_decrypts_or_is_refused_by_code(data: bytes, chunk: int) -> None:
    """Past a signature (a partner signed a damaged file) the envelope still cannot crash
    decryption: a refusal with a batch code, or (a flipped byte in the middle of the
    content) plaintext that the parser then judges."""
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    try:
        plaintext = b"".join(decrypt_stream(pieces, RECIPIENTS))
    except BatchRefused as refused:
        assert refused.code in (BatchCode.NOT_CMS, BatchCode.DECRYPT_FAILED)
        return
    try:
        _drain(plaintext)
    except BatchRefused as refused:
        assert refused.code in BatchCode


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_are_not_cms(data: bytes) -> None:
    try:
        der = to_der(data)
        b"".join(decrypt_stream([der], RECIPIENTS))
    except BatchRefused as refused:
        assert refused.code in (BatchCode.NOT_CMS, BatchCode.DECRYPT_FAILED)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=corrupted())
def test_a_corrupted_upload_is_refused_never_a_500(client: Any, world: World, data: bytes) -> None:
    """Through the API: the partner's key, the original signature, a damaged file."""
    signature = sign(ENVELOPE, world.keys.partner["rsa"])  # for the undamaged file
    response = client.post(
        "/api/v1/batches",
        headers={"Authorization": f"Bearer {world.token}"},
        data={"file": (io.BytesIO(data), "a.p7m"), "signature": (io.BytesIO(signature), "a.sig")},
    )
    assert response.status_code in (413, 415, 422), response.status_code
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] in {code.value for code in BatchCode}


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=corrupted())
def test_a_signed_corrupted_batch_is_refused_by_code_not_processing_error(
    world: World, tmp_path: Path, data: bytes
) -> None:
    """A partner signs a damaged file: it passes the signature, then decryption or parsing
    refuses it with a documented code (or, with garbage in one row, rejects that row)."""
    path = tmp_path / f"{hashlib.sha256(data).hexdigest()[:16]}.p7m"
    path.write_bytes(data)
    sig = path.with_name(path.name + ".sig")
    sig.write_bytes(sign(data, world.keys.partner["rsa"]))
    report = ingest_file(world.runtime, world.partner_id, path, sig, BatchSource.CLI).report
    if report["status"] == "failed":
        assert report["code"] in {c.value for c in BatchCode} - {"processing_error"}
    else:
        assert report["status"] == "processed"
        assert {r["code"] for r in report["rejections"]} <= ROW_CODES


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
@FAST
@given(signature=st.binary(max_size=600))
def test_random_signatures_never_verify(kind: str, signature: bytes) -> None:
    keys = [key.public_key() for name, key in KEYS.partner.items() if name.startswith(kind)]
    assume(keys)
    assert not verify_detached(io.BytesIO(ENVELOPE), signature, keys)
