"""The desk's inbox: patients' texts that need a person, and messages that failed for good."""

from __future__ import annotations

from datetime import timedelta

from flask import render_template, url_for

from booking_service.console.common import clinic_or_none, run
from booking_service.context import db_session, utcnow
from booking_service.messaging import inbox
from booking_service.messaging.queries import failed_messages, replies_needing_staff

FAILED_DAYS = 14


def index():
    session = db_session()
    clinic = clinic_or_none()
    return render_template(
        "staff/inbox.html",
        nav="inbox",
        items=replies_needing_staff(session),
        failed=failed_messages(session, since=utcnow() - timedelta(days=FAILED_DAYS)),
        failed_days=FAILED_DAYS,
        clinic_tz=clinic.timezone if clinic else "UTC",
    )


def handled(message_id: int):
    def operation() -> str:
        inbox.mark_handled(db_session(), message_id, now=utcnow())
        return "Marked as handled."

    return run(operation, then=url_for("console.inbox"))


def opt_out(message_id: int):
    def operation() -> str:
        if inbox.record_opt_out(db_session(), message_id, now=utcnow()):
            return "Opt-out recorded: this number gets no more texts. Marked as handled."
        return "This number had already opted out. Marked as handled."

    return run(operation, then=url_for("console.inbox"))
