"""The sealed file a DDAS export waits in (outreach/exports.py): what goes in comes out, and a
file changed, swapped, cut off or extended is refused, never half-read as a valid document."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from outreach import exports
from signals.crypto import DataProtector, DecryptionError

PROTECTOR = DataProtector(b"s" * 32)
DOCUMENT = b'{"leveringen":[' + b",".join(b'{"ID":"%d"}' % n for n in range(500)) + b"]}"


def sealed(tmp_path: Path, document: bytes, export_id: str = "e1") -> Path:
    path = tmp_path / f"{export_id}.ddas"
    with path.open("wb") as handle:
        sink = exports.SealedFile(handle, PROTECTOR, export_id)
        for start in range(0, len(document), 777):  # written in pieces, as the export does
            sink.write(document[start : start + 777])
        sink.finish()
        assert sink.size == len(document)
    return path


def read(path: Path, export_id: str = "e1") -> bytes:
    return b"".join(exports.unsealed(path.open("rb"), PROTECTOR, export_id))


def frames(path: Path) -> tuple[bytes, list[bytes]]:
    data = path.read_bytes()
    head, rest, out = data[: len(exports.MAGIC)], data[len(exports.MAGIC) :], []
    while rest:
        (length,) = struct.unpack(">I", rest[:4])
        out.append(rest[: 4 + length])
        rest = rest[4 + length :]
    return head, out


@pytest.fixture(autouse=True)
def small_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "FRAME", 1000)  # several frames from a small document


@pytest.mark.parametrize("document", [DOCUMENT, b"", b"{}"])
def test_what_goes_in_comes_out(tmp_path: Path, document: bytes) -> None:
    path = sealed(tmp_path, document)
    assert read(path) == document
    if document:
        assert document[:20] not in path.read_bytes()


def test_a_changed_swapped_cut_or_extended_file_is_refused(tmp_path: Path) -> None:
    path = sealed(tmp_path, DOCUMENT)
    head, parts = frames(path)
    assert len(parts) > 5
    flipped = bytearray(path.read_bytes())
    flipped[len(head) + 40] ^= 1
    variants = {
        "cut after a frame": head + b"".join(parts[:-1]),
        "cut inside a frame": path.read_bytes()[:-10],
        "frames swapped": head + parts[1] + parts[0] + b"".join(parts[2:]),
        "a frame dropped": head + parts[0] + b"".join(parts[2:]),
        "extended": path.read_bytes() + parts[0],
        "a byte changed": bytes(flipped),
        "not sealed": b'{"leveringen":[]}',
    }
    for what, data in variants.items():
        target = tmp_path / "changed.ddas"
        target.write_bytes(data)
        with pytest.raises(DecryptionError):
            read(target)
            pytest.fail(f"{what}: read as a valid document")
    # Another export's file under this export's name.
    other = sealed(tmp_path, DOCUMENT, "e2")
    with pytest.raises(DecryptionError):
        read(other, "e1")


def test_reading_stops_early_and_closes(tmp_path: Path) -> None:
    handle = sealed(tmp_path, DOCUMENT).open("rb")
    reader = exports.unsealed(handle, PROTECTOR, "e1")
    assert next(reader)
    reader.close()
    assert handle.closed
