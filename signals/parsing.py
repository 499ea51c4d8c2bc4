"""Streaming reader of a batch's plaintext: CSV (``;`` or ``,``, optional BOM) or JSON Lines.

Rows are yielded one at a time as ``(row_number, values)``, with empty values dropped, so a
large batch is never held as Python objects. Rows count data rows from 1.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from signals.enums import BatchCode
from signals.errors import BatchRefused
from signals.schemas import KNOWN_COLUMNS, REQUIRED_COLUMNS

#: Marker key for a row that is malformed as a whole (too many cells, not a JSON object).
MALFORMED = "_row"
_MAX_UNKNOWN = 50


@dataclass
class Header:
    format: str
    columns: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def note_unknown(self, names: Iterable[str]) -> None:
        for name in names:
            if len(self.unknown) >= _MAX_UNKNOWN:
                return
            if name not in KNOWN_COLUMNS and name[:64] not in self.unknown:
                self.unknown.append(name[:64])


def _normalise(name: str) -> str:
    return name.strip().strip('"').lower().replace(" ", "_").replace("-", "_")


class _ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks (the decrypted batch)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _text_stream(plaintext: bytes | Iterable[bytes]) -> io.TextIOWrapper:
    chunks = [plaintext] if isinstance(plaintext, bytes) else plaintext
    raw = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 16)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _first_line(stream: io.TextIOWrapper) -> str:
    try:
        for line in stream:
            if line.strip():
                return line
    except UnicodeDecodeError:
        raise BatchRefused(BatchCode.ENCODING, "the content is not UTF-8") from None
    raise BatchRefused(BatchCode.EMPTY, "the file contains no rows")


def read_rows(
    plaintext: bytes, max_field_chars: int
) -> tuple[Header, Iterator[tuple[int, dict[str, str]]]]:
    """Inspect the header and return it with a lazy iterator over the data rows.

    ``plaintext`` is the whole content or an iterator of pieces of it (streamed decryption).

    Raises ``empty``, ``encoding``, ``missing_columns`` or ``duplicate_columns`` for the
    header; the iterator itself raises ``encoding`` when it meets bytes that are not UTF-8.
    """
    stream = _text_stream(plaintext)
    first = _first_line(stream)
    if first.lstrip().startswith("{"):
        header = Header("jsonl")
        return header, _jsonl_rows(first, stream, header)
    delimiter = ";" if first.count(";") >= first.count(",") else ","
    columns = [_normalise(c) for c in next(csv.reader([first], delimiter=delimiter))]
    named = [c for c in columns if c]
    if len(set(named)) != len(named):
        raise BatchRefused(BatchCode.DUPLICATE_COLUMNS, "the header names a column more than once")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise BatchRefused(BatchCode.MISSING_COLUMNS, "missing columns: " + ", ".join(missing))
    header = Header("csv", columns)
    header.note_unknown(named)
    return header, _csv_rows(stream, columns, delimiter, max_field_chars)


def _csv_rows(
    stream: io.TextIOWrapper, columns: list[str], delimiter: str, max_field_chars: int
) -> Iterator[tuple[int, dict[str, str]]]:
    csv.field_size_limit(max(131072, max_field_chars * 4))
    reader = csv.reader(stream, delimiter=delimiter)
    width = len(columns)
    number = 0
    try:
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            number += 1
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                yield number, {MALFORMED: "x"}
                continue
            yield (
                number,
                {
                    name: value.strip()
                    for name, value in zip(columns, cells, strict=False)
                    if name and value and not value.isspace()
                },
            )
    except UnicodeDecodeError:
        raise BatchRefused(BatchCode.ENCODING, "the content is not UTF-8") from None
    except csv.Error:
        # A field beyond the csv module's size limit or a broken quote: refuse the batch
        # rather than guess where the next row starts.
        raise BatchRefused(BatchCode.ENCODING, f"row {number + 1} cannot be read as CSV") from None


def _scalar(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return "\x00"  # a nested value fits no column: fails as invalid_value
    text = str(value).strip()
    return text or None


def _jsonl_rows(
    first: str, stream: io.TextIOWrapper, header: Header
) -> Iterator[tuple[int, dict[str, str]]]:
    number = 0
    lines = iter([first])
    try:
        for source in (lines, stream):
            for line in source:
                if not line.strip():
                    continue
                number += 1
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                    obj = None
                if not isinstance(obj, dict):
                    yield number, {MALFORMED: "x"}
                    continue
                keys = [_normalise(str(k)) for k in obj]
                if len(keys) != len(set(keys)):
                    yield number, {MALFORMED: "x"}
                    continue
                header.note_unknown(keys)
                row = {}
                for key, value in zip(keys, obj.values(), strict=True):
                    text = _scalar(value)
                    if text is not None:
                        row[key] = text
                yield number, row
    except UnicodeDecodeError:
        raise BatchRefused(BatchCode.ENCODING, "the content is not UTF-8") from None
