"""Value lists. DDAS values are verbatim Dutch strings (DDAS Vroegsignalering v1.2)."""

from __future__ import annotations

import enum


class PartnerType(enum.StrEnum):
    """DDAS ``EnumSignaalpartner``."""

    BELASTINGDIENST = "Belastingdienst"
    CAK_EIGEN_BIJDRAGE = "CAK Eigen bijdrage"
    CAK_ZORGVERZEKERINGEN = "CAK Zorgverzekeringen"
    DIENST_TOESLAGEN = "Dienst Toeslagen"
    DUO = "DUO"
    ENERGIE = "Energie"
    HUUR = "Huur"
    HYPOTHEEK = "Hypotheek"
    OVERIGE = "Overige"
    WATER = "Water"
    ZORG = "Zorg"


class SignalStatus(enum.StrEnum):
    """DDAS ``EnumSignaalstatus``; a new signal is ``Nog niet opgepakt``."""

    AL_BEKEND = "Inwoner al bekend bij schuldhulpverlening"
    OVERLEDEN = "Inwoner is overleden"
    NIET_OPGEPAKT_ANDERE_REDEN = "Niet opgepakt: andere reden"
    NIET_OPGEPAKT_HERHAALD = "Niet opgepakt: herhaalde melding"
    NIET_OPGEPAKT_ONTERECHT = "Niet opgepakt: onterecht signaal"
    NOG_NIET_OPGEPAKT = "Nog niet opgepakt"
    OPGEPAKT = "Opgepakt"
    GEEN_INWONER = "Persoon is geen inwoner (meer) in de gemeente"


class Gender(enum.StrEnum):
    """DDAS ``geslacht``."""

    MAN = "Man"
    VROUW = "Vrouw"
    ONBEKEND = "Onbekend"
    LEEG = "Leeg"


class BatchStatus(enum.StrEnum):
    RECEIVED = "received"
    PROCESSING = "processing"
    PROCESSED = "processed"
    FAILED = "failed"


class BatchCode(enum.StrEnum):
    """Why a whole batch was refused (CONTRACT §3.3)."""

    SIGNATURE_INVALID = "signature_invalid"
    UNKNOWN_PARTNER = "unknown_partner"
    NOT_CMS = "not_cms"
    DECRYPT_FAILED = "decrypt_failed"
    ENCODING = "encoding"
    EMPTY = "empty"
    MISSING_COLUMNS = "missing_columns"
    TOO_LARGE = "too_large"
    #: Not in CONTRACT §3.3's list (which is silent on it): the header names a column twice,
    #: so which value is meant cannot be known. Documented in the README.
    DUPLICATE_COLUMNS = "duplicate_columns"
    #: Not in CONTRACT §3.3's list: processing failed unexpectedly on every allowed attempt
    #: (a fault of ours, not of the file); operations investigate, the partner may resend.
    PROCESSING_ERROR = "processing_error"


class RowCode(enum.StrEnum):
    """Why one row was refused (CONTRACT §3.3)."""

    REQUIRED = "required"
    INVALID_DATE = "invalid_date"
    DATE_ORDER = "date_order"
    DATE_IN_FUTURE = "date_in_future"
    BSN_CHECKSUM = "bsn_checksum"
    POSTCODE_FORMAT = "postcode_format"
    INVALID_NUMBER = "invalid_number"
    NOT_POSITIVE = "not_positive"
    TOO_LONG = "too_long"
    INVALID_EMAIL = "invalid_email"
    UNKNOWN_GEMEENTE = "unknown_gemeente"
    DUPLICATE_SIGNAL = "duplicate_signal"
    #: Not in CONTRACT §3.3's list: a value outside its list (``geslacht``, a yes/no flag) or
    #: a malformed row (more cells than the header, a JSON line that is not an object).
    INVALID_VALUE = "invalid_value"


class BatchSource(enum.StrEnum):
    API = "api"
    PORTAL = "portal"
    CLI = "cli"
    INBOX = "inbox"


class WindowFlag(enum.StrEnum):
    """Where a signal stands against its partner type's convenant window (DOMAIN.md)."""

    INSIDE = "inside"
    TOO_EARLY = "too_early"
    TOO_LATE = "too_late"
    NO_WINDOW = "no_window"


class Role(enum.StrEnum):
    ADMIN = "admin"
    COUNSELLOR = "counsellor"
    ANALYST = "analyst"
    PARTNER = "partner"
