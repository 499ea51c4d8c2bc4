"""The second factor: TOTP secrets (RFC 6238), codes that cannot be replayed, recovery codes.

The secret is stored encrypted with the data key, like personal data. A code is accepted for
the current 30-second step or one step either side (clock drift), and only for a step later
than the last one used, so a code seen over a shoulder or in a log cannot be used again.
Recovery codes are stored as argon2id hashes and each works once. The caller loads the user
with a row lock (:func:`signals.service.user_for_update`), so two requests with the same
code cannot both pass.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import secrets
from collections.abc import Collection

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from signals.crypto import DataProtector
from signals.db import utcnow
from signals.models import User

SECRET_CONTEXT = b"user.totp-secret"
ISSUER = "Vroegsignaal"
STEP_SECONDS = 30
DIGITS = 6
#: Steps either side of now that are still accepted (RFC 6238 §5.2: allow for drift).
WINDOW = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_RECOVERY_LENGTH = 12  # about 59 bits of randomness each
#: Recovery codes are long random strings, not chosen passwords: argon2id with the OWASP
#: minimum (19 MiB, 2 passes) is ample and keeps checking ten of them quick.
recovery_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def requires_second_factor(user: User, totp_roles: Collection[str]) -> bool:
    """Whether one of the user's roles must log in with a second factor."""
    return any(role.value in totp_roles for role in user.roles)


def new_secret(user: User, protector: DataProtector) -> str:
    """Give the user a fresh secret (base32), not yet enrolled; returns it once."""
    secret = pyotp.random_base32()
    user.totp_secret = protector.encrypt(secret.encode(), SECRET_CONTEXT)
    user.totp_enrolled_at = None
    user.totp_last_step = None
    user.recovery_codes = []
    return secret


def secret_of(user: User, protector: DataProtector) -> str:
    if user.totp_secret is None:
        raise ValueError("the user has no second-factor secret")
    return protector.decrypt(user.totp_secret, SECRET_CONTEXT).decode()


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (from the QR code)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=user.email, issuer_name=ISSUER
    )


def is_totp_code(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def verify_code(
    user: User, protector: DataProtector, code: str, now: dt.datetime | None = None
) -> bool:
    """Check a 6-digit code; a step at or before the last one used is refused (replay)."""
    code = code.strip().replace(" ", "")
    if user.totp_secret is None or not is_totp_code(code):
        return False
    totp = pyotp.TOTP(secret_of(user, protector), digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now or utcnow())
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False
            user.totp_last_step = step
            return True
    return False


def confirm_enrolment(
    user: User, protector: DataProtector, code: str, now: dt.datetime | None = None
) -> list[str] | None:
    """The first valid code enrols the user; returns the new recovery codes (shown once)."""
    if not verify_code(user, protector, code, now):
        return None
    user.totp_enrolled_at = now or utcnow()
    return new_recovery_codes(user)


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with ten fresh ones; only their hashes are kept."""
    codes = [
        "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        for _ in range(RECOVERY_CODES)
    ]
    user.recovery_codes = [recovery_hasher.hash(code) for code in codes]
    return [f"{c[:4]}-{c[4:8]}-{c[8:]}" for c in codes]


def use_recovery_code(user: User, code: str) -> bool:
    """Accept one unused recovery code in place of a TOTP code; it is struck off."""
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    if len(normalised) != _RECOVERY_LENGTH or not set(normalised) <= set(_RECOVERY_ALPHABET):
        return False
    for stored in user.recovery_codes:
        with contextlib.suppress(VerificationError, InvalidHashError):
            if recovery_hasher.verify(stored, normalised):
                user.recovery_codes = [h for h in user.recovery_codes if h != stored]
                return True
    return False
