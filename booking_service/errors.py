"""Domain errors. Each carries the HTTP status and the error code of the API contract, so the web
layer turns any of them into ``{"error": {"code", "message", "fields"}}`` without a lookup table,
and the CLI and pages show the same message."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra


class NotFound(DomainError):
    status = 404
    code = "not_found"


class ValidationFailed(DomainError):
    """Input that is well-formed but not acceptable (a phone that is not a phone)."""

    status = 422
    code = "invalid"


class SlotUnavailable(DomainError):
    """The requested start is not a slot at all: off the grid, outside hours, past, too far."""

    status = 422
    code = "slot_unavailable"


class SlotTaken(DomainError):
    """The requested start was a valid slot but someone else just took it."""

    status = 409
    code = "slot_taken"


class PatientBusy(DomainError):
    """The patient already has an appointment overlapping the requested time."""

    status = 409
    code = "patient_overlap"


class InvalidTransition(DomainError):
    """The appointment's status does not allow the requested change (cancelled, finished ...)."""

    status = 409
    code = "invalid_transition"


class LateCancellationBlocked(DomainError):
    """Inside the cancellation window, with the clinic's policy asking the patient to phone."""

    status = 409
    code = "late_cancellation"


class Conflict(DomainError):
    status = 409
    code = "conflict"
