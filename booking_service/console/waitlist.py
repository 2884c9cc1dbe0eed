"""The waitlist: who is waiting for which service, place and dates; offer and remove. Above it,
the freed times (openings) being offered down the list, each with its chain of offers (offered
to whom and when, expired, passed on, booked) and who is next in line."""

from __future__ import annotations

from datetime import timedelta

from flask import render_template, url_for
from flask_login import current_user

from booking_service.console.common import clinic_or_none, run
from booking_service.context import db_session, utcnow
from booking_service.waitlist import offers
from booking_service.waitlist.queries import open_entries, openings

HISTORY_DAYS = 14
OFFER_LABELS = {
    "offered": "Offered",
    "expired": "No answer in time",
    "passed": "Passed on by staff",
    "booked": "Booked",
    "withdrawn": "Withdrawn (time gone)",
    "skipped": "Skipped: agreed to no texts or emails",
}
OPENING_LABELS = {
    "open": "Being offered",
    "booked": "Booked from the waitlist",
    "taken": "Booked by someone else",
    "lapsed": "Not filled (too late, or nobody left)",
    "closed": "Closed by staff",
}


def index():
    clinic = clinic_or_none()
    session = db_session()
    freed = openings(session, since=utcnow() - timedelta(days=HISTORY_DAYS))
    return render_template(
        "staff/waitlist.html",
        nav="waitlist",
        rows=open_entries(session),
        openings=freed,
        next_in_line={
            row.opening.id: offers.proposals(session, row.opening) for row in freed if row.opening.status == "open"
        },
        offer_labels=OFFER_LABELS,
        opening_labels=OPENING_LABELS,
        answer_minutes=clinic.waitlist_offer_minutes if clinic else 120,
        history_days=HISTORY_DAYS,
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
        entry = offers.remove_entry(db_session(), entry_id, now=utcnow())
        return f"Removed {entry.patient.display_name} from the waitlist."

    return run(operation, then=url_for("console.waitlist"))


def pass_on(opening_id: int):
    def operation() -> str:
        made = offers.pass_on(db_session(), opening_id, now=utcnow(), user_id=current_user.user_id)
        if made is None:
            return "Nobody else is waiting for this time: it is no longer offered."
        return f"Offered to {made.entry.patient.display_name} now."

    return run(operation, then=url_for("console.waitlist"))


def close(opening_id: int):
    def operation() -> str:
        offers.close_opening(db_session(), opening_id, now=utcnow())
        return "This time is no longer offered."

    return run(operation, then=url_for("console.waitlist"))
