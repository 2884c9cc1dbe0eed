"""Planning the outbox rows of a booking change (being written: see the messaging work)."""

from __future__ import annotations


def booked(session, appointment, *, clinic, now, by_patient) -> None:
    pass


def rescheduled(session, appointment, *, clinic, now, by_patient, old_start) -> None:
    pass


def cancelled(session, appointment, *, clinic, now, by_patient) -> None:
    pass


def status_changed(session, appointment, *, clinic, now, old_status) -> None:
    pass
