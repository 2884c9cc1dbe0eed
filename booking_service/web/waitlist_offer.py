"""A waitlist offer's link (``/w/<offer id>/<token>``): a booking already set to the freed time.

The link opens a fresh booking draft for the offered patient (service, location, practitioner
and the very time), then the details step, which shows the contacts on file masked and books
with them unless the visitor types others (the rule of the manage link's "book again": the
link may have been forwarded, so the draft carries no name or contact). Booking that time
marks the waitlist entry ``booked`` (``waitlist.offers.time_taken``). When the time is gone
(booked by someone else, no longer free) the link shows the other free times instead.
"""

from __future__ import annotations

from flask import g, redirect, url_for

from booking_service.context import db_session, settings
from booking_service.errors import SLOT_TAKEN
from booking_service.form_values import slot_value
from booking_service.waitlist.offers import find_offer
from booking_service.web import draft as drafts
from booking_service.web.booking import Selection, _render_time
from booking_service.web.common import domain_message, page, private


def open_offer(offer_id: int, token: str):
    session = db_session()
    offer = find_offer(session, offer_id, token, secret_key=settings().SECRET_KEY)
    if offer is None:
        return private(page("pages/not_found.html", 404))
    opening, patient = offer.opening, offer.entry.patient
    g.subject_language = patient.language
    selection = Selection(opening.service_id, opening.location_id, opening.practitioner_id, opening.start_at)
    if selection.resolve():
        return redirect(url_for("web.start"))
    if offer.status == "booked":  # booked already: nothing more to do with this link
        return redirect(url_for("web.start"))
    if opening.status != "open":
        # The first to book won, or the time can no longer be booked: the other free times.
        selection.start = None
        return private(_render_time(selection, from_day=None, error=domain_message(SLOT_TAKEN), status=409))
    drafts.save(
        {
            "service_id": opening.service_id,
            "location_id": opening.location_id,
            "practitioner_id": opening.practitioner_id,
            "start": slot_value(opening.start_at),
            "returning_patient_id": patient.id,
            "language": patient.language,
            "sms_consent": patient.sms_consent,
            "email_consent": patient.email_consent,
            "exercise_sms_consent": patient.exercise_sms_consent,
        },
        fresh=True,
    )
    return redirect(url_for("web.details"))
