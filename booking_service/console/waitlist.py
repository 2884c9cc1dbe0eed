"""The waitlist: who is waiting for which service, place and dates; offer and remove."""

from __future__ import annotations

from flask import render_template, url_for

from booking_service.console.common import clinic_or_none, run
from booking_service.context import db_session, utcnow
from booking_service.waitlist import offers
from booking_service.waitlist.queries import open_entries


def index():
    clinic = clinic_or_none()
    return render_template(
        "staff/waitlist.html",
        nav="waitlist",
        rows=open_entries(db_session()),
        clinic_tz=clinic.timezone if clinic else "UTC",
    )


def offered(entry_id: int):
    def operation() -> str:
        entry = offers.mark_offered(db_session(), entry_id, now=utcnow())
        return f"Marked as offered to {entry.patient.display_name}."

    return run(operation, then=url_for("console.waitlist"))


def send_offer(entry_id: int):
    def operation() -> str:
        entry, sent = offers.offer(db_session(), entry_id, now=utcnow())
        if not sent:
            return f"{entry.patient.display_name} agreed to no texts or emails: please phone them."
        return f"Offer sent to {entry.patient.display_name} ({sent} message{'s' if sent > 1 else ''})."

    return run(operation, then=url_for("console.waitlist"))


def remove(entry_id: int):
    def operation() -> str:
        entry = offers.remove_entry(db_session(), entry_id)
        return f"Removed {entry.patient.display_name} from the waitlist."

    return run(operation, then=url_for("console.waitlist"))
