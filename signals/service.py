"""Actions on municipalities, partners, keys and users. Take a Session first; add and flush."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from signals import totp
from signals.crypto import DataProtector, token_hash
from signals.db import utcnow
from signals.enums import PartnerType, Role
from signals.envelope import (
    certificate_fingerprint,
    load_certificate,
    load_public_key,
    new_recipient_key,
)
from signals.errors import Conflict, KeyFormatError, NotFound
from signals.models import Municipality, Partner, PartnerKey, RecipientKey, User

_PRIVATE_KEY_CONTEXT = b"recipient-key.private"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,63}")
password_hasher = PasswordHasher()


# -- municipalities ----------------------------------------------------------------------------
def add_municipality(session: Session, code: str, name: str) -> Municipality:
    if not re.fullmatch(r"[0-9]{4}", code):
        raise ValueError("a municipality code is 4 digits (CBS gemeentecode)")
    if session.scalar(select(Municipality).where(Municipality.code == code)):
        raise Conflict(f"municipality {code} already exists")
    municipality = Municipality(code=code, name=name.strip())
    session.add(municipality)
    session.flush()
    return municipality


def get_municipality(session: Session, code: str) -> Municipality:
    municipality = session.scalar(select(Municipality).where(Municipality.code == code))
    if municipality is None:
        raise NotFound(f"no municipality with code {code}")
    return municipality


# -- recipient keys ----------------------------------------------------------------------------
def create_recipient_key(
    session: Session, protector: DataProtector, municipality: Municipality | None
) -> RecipientKey:
    """A new key pair partners encrypt to; the private key is stored encrypted."""
    label = f"Vroegsignaal {municipality.code}" if municipality else "Vroegsignaal"
    cert, key = new_recipient_key(label)
    return add_recipient_key(session, protector, municipality, cert, key)


def add_recipient_key(
    session: Session,
    protector: DataProtector,
    municipality: Municipality | None,
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
) -> RecipientKey:
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    record = RecipientKey(
        municipality=municipality,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_encrypted=protector.encrypt(pkcs8, _PRIVATE_KEY_CONTEXT),
        fingerprint=certificate_fingerprint(cert),
        not_after=cert.not_valid_after_utc,
    )
    session.add(record)
    session.flush()
    return record


def active_recipient_keys(session: Session, municipality_id: int) -> list[RecipientKey]:
    """The municipality's keys not yet retired (two during rotation), then service-wide keys."""
    rows = session.scalars(
        select(RecipientKey)
        .where(
            (RecipientKey.municipality_id == municipality_id)
            | RecipientKey.municipality_id.is_(None),
            RecipientKey.retired_at.is_(None),
        )
        .order_by(RecipientKey.municipality_id.is_(None), RecipientKey.id.desc())
    )
    return list(rows)


def unlock_recipient_key(
    protector: DataProtector, record: RecipientKey
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    der = protector.decrypt(record.private_key_encrypted, _PRIVATE_KEY_CONTEXT)
    key = serialization.load_der_private_key(der, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return load_certificate(record.certificate_pem.encode()), key


def retire_recipient_key(session: Session, record: RecipientKey) -> None:
    record.retired_at = utcnow()
    session.flush()


# -- partners ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewPartner:
    partner: Partner
    token: str


def new_token() -> str:
    return "vs_" + secrets.token_urlsafe(32)


def add_partner(
    session: Session,
    name: str,
    partner_type: PartnerType,
    municipalities: list[Municipality],
    public_key: bytes | None = None,
) -> NewPartner:
    """Register a partner; the API token is returned once and stored only as a hash."""
    if not name.strip():
        raise ValueError("a partner needs a name")
    if not municipalities:
        raise ValueError("a partner belongs to at least one municipality")
    token = new_token()
    partner = Partner(
        name=name.strip(),
        partner_type=partner_type,
        token_hash=token_hash(token),
        municipalities=list(municipalities),
    )
    session.add(partner)
    session.flush()
    if public_key is not None:
        add_partner_key(session, partner, public_key)
    return NewPartner(partner, token)


def add_partner_key(
    session: Session,
    partner: Partner,
    public_key: bytes,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
) -> PartnerKey:
    loaded = load_public_key(public_key)
    exists = session.scalar(
        select(PartnerKey).where(
            PartnerKey.partner_id == partner.id, PartnerKey.fingerprint == loaded.fingerprint
        )
    )
    if exists is not None:
        raise Conflict("this key is already registered for the partner")
    key = PartnerKey(
        partner=partner,
        public_key_pem=loaded.pem,
        fingerprint=loaded.fingerprint,
        key_type=loaded.key_type,
        valid_from=valid_from or loaded.valid_from,
        valid_until=valid_until or loaded.valid_until,
    )
    session.add(key)
    session.flush()
    return key


def revoke_partner_key(session: Session, key: PartnerKey, when: dt.datetime | None = None) -> None:
    key.revoked_at = when or utcnow()
    session.flush()


def rotate_partner_token(session: Session, partner: Partner) -> str:
    token = new_token()
    partner.token_hash = token_hash(token)
    session.flush()
    return token


def partner_by_token(session: Session, token: str) -> Partner | None:
    if not token or len(token) > 200:
        return None
    partner = session.scalar(select(Partner).where(Partner.token_hash == token_hash(token)))
    return partner if partner is not None and partner.active else None


def get_partner(session: Session, partner_id: str) -> Partner:
    partner = session.get(Partner, partner_id) if len(partner_id) <= 36 else None
    if partner is None:
        raise NotFound("no partner with that id")
    return partner


def usable_public_keys(partner: Partner, moment: dt.datetime) -> list[object]:
    keys = []
    for record in partner.keys:
        if record.usable_at(moment):
            try:
                keys.append(load_public_key(record.public_key_pem.encode()).key)
            except KeyFormatError:
                continue
    return keys


# -- users -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewUser:
    user: User
    password: str
    #: The second-factor secret (base32), when the user's roles need one and it was made.
    totp_secret: str | None = None


def add_user(
    session: Session,
    email: str,
    role: Role,
    municipalities: list[Municipality],
    partner: Partner | None = None,
    password: str | None = None,
    extra_roles: Iterable[Role] = (),
    *,
    protector: DataProtector | None = None,
    totp_roles: Collection[str] = (),
) -> NewUser:
    """Add a user with a one-time password (returned once, stored as an argon2id hash).

    Staff may hold several roles (``extra_roles``: a counsellor who is also an analyst); a
    partner's portal user holds that role alone. When one of the roles is in ``totp_roles``
    and a ``protector`` is given, the user also gets a second-factor secret, returned once
    for scripted set-up; without one the secret is made at the first log-in. Either way the
    user enrols at the first log-in by confirming a code.
    """
    email = email.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise ValueError("not a valid e-mail address")
    if role is Role.PARTNER and partner is None:
        raise ValueError("a partner user belongs to a partner")
    extra = sorted({r for r in extra_roles if r is not role}, key=lambda r: r.value)
    if extra and Role.PARTNER in (role, *extra):
        raise ValueError("a partner user cannot hold another role")
    if session.scalar(select(User).where(User.email == email)):
        raise Conflict("a user with this e-mail address already exists")
    password = password or secrets.token_urlsafe(12)
    user = User(
        email=email,
        password_hash=password_hasher.hash(password),
        role=role,
        extra_roles=",".join(r.value for r in extra),
        partner=partner,
        municipalities=list(municipalities or (partner.municipalities if partner else [])),
    )
    secret = None
    if protector is not None and totp.requires_second_factor(user, totp_roles):
        secret = totp.new_secret(user, protector)
    session.add(user)
    session.flush()
    return NewUser(user, password, secret)


def user_for_update(session: Session, user_id: int) -> User | None:
    """The user, with the row locked until the transaction ends (PostgreSQL; SQLite's writing
    transactions are serial anyway), so counters and used codes cannot race."""
    return session.scalar(select(User).where(User.id == user_id).with_for_update())


def is_locked(user: User, now: dt.datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def authenticate(
    session: Session,
    email: str,
    password: str,
    *,
    max_failures: int = 5,
    lockout: dt.timedelta = dt.timedelta(minutes=15),
) -> User | None:
    """The user whose password this is, or None: unknown, inactive, wrong or locked out.

    Every refusal costs the same argon2 work, so timing does not tell who exists. A wrong
    password counts towards the lock-out (:func:`record_failure`). A right one does not
    reset the count: that happens when the whole log-in, second factor included, succeeds
    (:func:`login_succeeded`), so guessing codes cannot be spread over fresh passwords.
    """
    user = session.scalar(select(User).where(User.email == email.strip().lower()).with_for_update())
    if user is None or not user.active or is_locked(user):
        with contextlib.suppress(VerificationError, InvalidHashError):
            password_hasher.verify(_dummy_hash(), password)
        return None
    try:
        password_hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        record_failure(session, user, max_failures=max_failures, lockout=lockout)
        return None
    if password_hasher.check_needs_rehash(user.password_hash):
        user.password_hash = password_hasher.hash(password)
    session.flush()
    return user


def record_failure(
    session: Session,
    user: User,
    *,
    max_failures: int = 5,
    lockout: dt.timedelta = dt.timedelta(minutes=15),
) -> bool:
    """Count a wrong password or code; the ``max_failures``-th in a row locks the account
    for ``lockout``. Returns whether the account is now locked."""
    now = utcnow()
    if user.locked_until is not None and user.locked_until <= now:
        user.locked_until = None  # an expired lock-out starts a fresh count
        user.failed_logins = 0
    user.failed_logins = (user.failed_logins or 0) + 1
    locked = user.failed_logins >= max_failures
    if locked:
        user.locked_until = now + lockout
        user.failed_logins = 0
    session.flush()
    return locked


def login_succeeded(session: Session, user: User) -> None:
    """The whole log-in passed: the failure count starts again."""
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = utcnow()
    session.flush()


@functools.cache
def _dummy_hash() -> str:
    return password_hasher.hash("not-a-real-password")
