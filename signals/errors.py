"""Errors of the intake stage. Messages name codes and IDs, never personal data."""

from __future__ import annotations

from signals.enums import BatchCode


class IntakeError(Exception):
    """Base class of intake errors."""


class BatchRefused(IntakeError):
    """A whole batch is refused; ``code`` is one of the batch codes of CONTRACT §3.3."""

    def __init__(self, code: BatchCode, detail: str = "") -> None:
        self.code = code
        self.detail = detail or code.value
        super().__init__(f"{code.value}: {self.detail}")


class NotFound(IntakeError):
    """A referenced object does not exist (or is not visible to the caller)."""


class Conflict(IntakeError):
    """The request conflicts with the current state."""


class KeyFormatError(IntakeError):
    """A key or certificate could not be read or is of an unsupported kind."""
