"""Streaming decryption of CMS EnvelopedData (RFC 5652) with ``cryptography``'s primitives.

``cryptography``'s own ``pkcs7_decrypt_der`` needs the whole file and returns the whole
plaintext; a batch of a million rows would then sit in memory twice. This module reads the
small header (recipient infos, algorithm, IV), unwraps the content-encryption key with the
matching recipient's RSA key (PKCS#1 v1.5 key transport) and decrypts AES-CBC chunk by
chunk, so memory stays flat however large the batch. It reads DER and BER (the indefinite
lengths ``openssl cms -stream`` writes). The tests check it against openssl and against
``pkcs7_decrypt_der``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from signals.enums import BatchCode
from signals.errors import BatchRefused

_OID_ENVELOPED_DATA = bytes.fromhex("2a864886f70d010703")
_OID_RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")
_AES_CBC = {  # OID -> key length in bytes
    bytes.fromhex("608648016503040102"): 16,
    bytes.fromhex("608648016503040116"): 24,
    bytes.fromhex("60864801650304012a"): 32,
}
_INDEFINITE = -1
_MAX_HEADER = 1 << 20  # recipient infos larger than 1 MiB are not a batch envelope
_MAX_DEPTH = 32  # real envelopes nest a handful of levels; hostile ones, thousands


class _Malformed(Exception):
    pass


class _Source:
    """Exact reads over an iterator of byte chunks, counting the position."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self.position = 0

    def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise _Malformed("truncated")
            self._buffer += chunk

    def read(self, size: int) -> bytes:
        self._fill(size)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self.position += size
        return data

    def read_upto(self, size: int) -> bytes:
        """Up to ``size`` bytes, at least one (streaming the encrypted content)."""
        if not self._buffer:
            self._fill(1)
        data = bytes(self._buffer[:size])
        del self._buffer[: len(data)]
        self.position += len(data)
        return data

    def peek(self, size: int) -> bytes:
        self._fill(size)
        return bytes(self._buffer[:size])


def _header(source: _Source) -> tuple[int, int]:
    """Read a tag and length; the length is ``_INDEFINITE`` for BER's ``0x80``."""
    tag = source.read(1)[0]
    if tag & 0x1F == 0x1F:
        raise _Malformed("multi-byte tags are not used in CMS")
    first = source.read(1)[0]
    if first < 0x80:
        return tag, first
    if first == 0x80:
        if not tag & 0x20:
            raise _Malformed("indefinite length on a primitive value")
        return tag, _INDEFINITE
    count = first & 0x7F
    if count > 8:
        raise _Malformed("length too long")
    return tag, int.from_bytes(source.read(count), "big")


def _expect(source: _Source, tag: int) -> int:
    actual, length = _header(source)
    if actual != tag:
        raise _Malformed(f"expected tag {tag:#x}, found {actual:#x}")
    return length


def _end_of_contents(source: _Source) -> bool:
    if source.peek(2) == b"\x00\x00":
        source.read(2)
        return True
    return False


def _value(source: _Source, length: int) -> bytes:
    if length == _INDEFINITE or length > _MAX_HEADER:
        raise _Malformed("header value too large or of indefinite length")
    return source.read(length)


def _skip(source: _Source, length: int, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise _Malformed("nested too deeply")
    if length != _INDEFINITE:
        _value(source, length)
        return
    while not _end_of_contents(source):
        _, inner = _header(source)
        _skip(source, inner, depth + 1)


def _tlvs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The definite-length elements inside a small DER value."""
    source = _Source([data])
    while source.position < len(data):
        tag, length = _header(source)
        yield tag, _value(source, length)


@dataclass(frozen=True)
class _Recipient:
    issuer_and_serial: tuple[bytes, int] | None
    key_identifier: bytes | None
    encrypted_key: bytes


def _recipients(recipient_set: bytes) -> list[_Recipient]:
    found = []
    for tag, body in _tlvs(recipient_set):
        if tag != 0x30:  # KeyAgree, KEK, password and other recipient kinds: not ours
            continue
        parts = list(_tlvs(body))
        if len(parts) != 4 or parts[2][0] != 0x30 or parts[3][0] != 0x04:
            continue
        algorithm = dict(_tlvs(parts[2][1])).get(0x06)
        if algorithm != _OID_RSA_ENCRYPTION:
            continue
        rid_tag, rid = parts[1]
        if rid_tag == 0x30:
            issuer_serial = list(_tlvs(rid))
            issuer_der = _reencode(0x30, issuer_serial[0][1])
            serial = int.from_bytes(issuer_serial[1][1], "big", signed=True)
            found.append(_Recipient((issuer_der, serial), None, parts[3][1]))
        elif rid_tag == 0x80:
            found.append(_Recipient(None, rid, parts[3][1]))
    return found


def _reencode(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        return bytes([tag, length]) + value
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + value


def _matches(recipient: _Recipient, certificate: x509.Certificate) -> bool:
    if recipient.issuer_and_serial is not None:
        issuer, serial = recipient.issuer_and_serial
        return serial == certificate.serial_number and issuer == certificate.issuer.public_bytes()
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return False
    return recipient.key_identifier == ski.value.digest


def decrypt_stream(
    chunks: Iterable[bytes],
    keys: Iterable[tuple[x509.Certificate, rsa.RSAPrivateKey]],
    chunk_size: int = 1 << 16,
) -> Iterator[bytes]:
    """Yield the plaintext of CMS EnvelopedData read from ``chunks``, piece by piece.

    Raises ``not_cms`` for what is no EnvelopedData, ``decrypt_failed`` when no key fits,
    the content is truncated or its padding is wrong (also after earlier pieces were
    yielded: the caller must treat everything it received as void).
    """
    source = _Source(chunks)
    try:
        outer = _expect(source, 0x30)
        oid = _value(source, _expect(source, 0x06))
    except _Malformed:
        raise BatchRefused(BatchCode.NOT_CMS, "the file is not CMS EnvelopedData") from None
    if oid != _OID_ENVELOPED_DATA:
        raise BatchRefused(BatchCode.NOT_CMS, "the file is not CMS EnvelopedData")
    try:
        explicit = _expect(source, 0xA0)
        enveloped = _expect(source, 0x30)
        _value(source, _expect(source, 0x02))  # version
        tag, length = _header(source)
        if tag == 0xA0:  # originatorInfo
            _skip(source, length)
            tag, length = _header(source)
        if tag != 0x31:
            raise _Malformed("no recipientInfos")
        recipients = _recipients(_value(source, length))
        info = _expect(source, 0x30)
        _value(source, _expect(source, 0x06))  # content type
        algorithm = list(_tlvs(_value(source, _expect(source, 0x30))))
    except (_Malformed, IndexError, ValueError):
        # Hostile or broken structure anywhere in the header: one answer, never a crash.
        raise BatchRefused(BatchCode.DECRYPT_FAILED, "the envelope cannot be read") from None
    key_size = _AES_CBC.get(algorithm[0][1]) if algorithm and algorithm[0][0] == 0x06 else None
    if key_size is None or len(algorithm) != 2 or len(algorithm[1][1]) != 16:
        raise BatchRefused(BatchCode.DECRYPT_FAILED, "content encryption must be AES-CBC")
    iv = algorithm[1][1]
    content_key = _unwrap(recipients, keys, key_size)
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).decryptor()
    unpadder = sym_padding.PKCS7(128).unpadder()
    try:
        for piece in _encrypted_content(source, chunk_size):
            plain = unpadder.update(decryptor.update(piece))
            if plain:
                yield plain
        yield unpadder.update(decryptor.finalize()) + unpadder.finalize()
        for length in (info, enveloped, explicit, outer):
            if length == _INDEFINITE:
                _end_of_contents(source)
    except (_Malformed, ValueError):
        raise BatchRefused(BatchCode.DECRYPT_FAILED, "the encrypted content is damaged") from None


def _unwrap(
    recipients: list[_Recipient],
    keys: Iterable[tuple[x509.Certificate, rsa.RSAPrivateKey]],
    key_size: int,
) -> bytes:
    for certificate, private_key in keys:
        for recipient in recipients:
            if not _matches(recipient, certificate):
                continue
            try:
                content_key = private_key.decrypt(recipient.encrypted_key, padding.PKCS1v15())
            except ValueError:
                continue
            if len(content_key) == key_size:
                return content_key
    raise BatchRefused(
        BatchCode.DECRYPT_FAILED,
        "the file could not be decrypted with the recipient keys of this municipality",
    )


def _encrypted_content(source: _Source, chunk_size: int) -> Iterator[bytes]:
    tag, length = _header(source)
    if tag == 0x80:  # primitive [0] IMPLICIT OCTET STRING
        yield from _stream(source, length, chunk_size)
    elif tag == 0xA0:  # constructed: a series of OCTET STRINGs
        end = None if length == _INDEFINITE else source.position + length
        while (source.position < end) if end is not None else not _end_of_contents(source):
            inner = _expect(source, 0x04)
            yield from _stream(source, inner, chunk_size)
    else:
        raise _Malformed("no encrypted content")


def _stream(source: _Source, length: int, chunk_size: int) -> Iterator[bytes]:
    if length == _INDEFINITE:
        raise _Malformed("indefinite primitive")
    remaining = length
    while remaining:
        piece = source.read_upto(min(remaining, chunk_size))
        remaining -= len(piece)
        yield piece
