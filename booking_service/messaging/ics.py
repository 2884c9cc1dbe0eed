"""iCalendar (RFC 5545 / iTIP RFC 5546) invitations for appointment e-mails.

One appointment is one calendar event for its whole life: the caller passes a stable ``uid``
(derived from the appointment, never random) and a ``sequence`` that rises on every reschedule,
so a mail client updates the event it already has instead of adding a second one. A
cancellation is ``METHOD:CANCEL`` with ``STATUS:CANCELLED`` and the same UID, which removes it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//physio-booking//booking_service//EN"
METHODS = ("REQUEST", "CANCEL")


def _utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def build_ics(
    *,
    uid: str,
    sequence: int,
    method: str,
    start: datetime,
    end: datetime,
    summary: str,
    location: str,
    description: str = "",
    organizer_name: str = "",
    organizer_email: str | None = None,
    attendee_email: str | None = None,
    stamp: datetime,
) -> bytes:
    """The bytes of a VCALENDAR holding one VEVENT for an appointment.

    ``method`` is ``REQUEST`` (new or changed appointment) or ``CANCEL``. ``start``, ``end`` and
    ``stamp`` must be timezone-aware; they are written in UTC (``...Z``), which every client
    reads without needing a VTIMEZONE. Raises ValueError for a naive datetime, an unknown
    method, a negative sequence, an empty uid, or an end not after start.
    """
    if method not in METHODS:
        raise ValueError(f"method must be REQUEST or CANCEL, not {method!r}")
    if not uid:
        raise ValueError("uid is required")
    if sequence < 0:
        raise ValueError("sequence must be >= 0")
    start_utc, end_utc, stamp_utc = _utc("start", start), _utc("end", end), _utc("stamp", stamp)
    if end_utc <= start_utc:
        raise ValueError("end must be after start")

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)

    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", stamp_utc)
    event.add("dtstart", start_utc)
    event.add("dtend", end_utc)
    event.add("summary", summary)
    event.add("location", location)
    if description:
        event.add("description", description)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    if organizer_email:
        # RFC 5546 requires an ORGANIZER on REQUEST and CANCEL; without an address the file is
        # still a valid event, which clients import instead of treating as an invitation.
        organizer = vCalAddress(f"mailto:{organizer_email}")
        if organizer_name:
            organizer.params["cn"] = vText(organizer_name)
        event.add("organizer", organizer, encode=False)
    if attendee_email:
        attendee = vCalAddress(f"mailto:{attendee_email}")
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = vText("NEEDS-ACTION")
        # Nobody reads RSVP replies; the patient confirms by link or by text instead.
        attendee.params["rsvp"] = vText("FALSE")
        event.add("attendee", attendee, encode=False)
    cal.add_component(event)
    return cal.to_ical()
