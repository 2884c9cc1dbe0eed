"""One rule, one code, each surface's own words.

The rule that a phone number must be a valid number lives once, in the domain
(``patients.operations.clean_details``), and answers with the field code ``phone_invalid``. The
API, the patient pages (English and French) and the console each word that code themselves.
"""

from __future__ import annotations

from datetime import time

import pytest
from flask_babel import force_locale

from booking_service import errors
from booking_service.api.messages import FIELD_MESSAGES, MESSAGES, error_message, field_messages
from booking_service.clinic.operations import HoursRow, add_closure, add_time_off, set_weekly_hours
from booking_service.console.common import STAFF_FIELD_MESSAGES, STAFF_MESSAGES, staff_field_errors, staff_message
from booking_service.errors import DomainError, LateCancellationBlocked, ValidationFailed
from booking_service.patients.operations import PatientDetails, clean_details
from booking_service.usecases.booking import BookingRequest, book, cancel
from booking_service.web.common import PAGE_FIELD_MESSAGES, PAGE_MESSAGES, field_errors, page_message
from tests.conftest import NOW, SECRET, local
from tests.test_api_public import booking_body, error_of


def _bad_phone() -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        clean_details(PatientDetails("Ana", "Silva", phone="12345"), country="CA", default_language="en")
    return caught.value


def test_a_bad_phone_is_one_field_code_in_the_domain():
    assert _bad_phone().fields == {"phone": "phone_invalid"}


@pytest.mark.usefixtures("frozen")
def test_the_same_bad_phone_reads_in_each_surfaces_own_words(app, client, make_clinic):
    clinic = make_clinic()
    body = booking_body(clinic, local("2026-11-24", "09:00"), phone="12345")
    response = client.post("/api/v1/appointments", json=body)
    api_words = error_of(response)["fields"]["patient.phone"]

    exc = _bad_phone()
    with app.test_request_context("/"):
        with force_locale("en"):
            page_english = field_errors(exc)["phone"]
        with force_locale("fr"):
            page_french = field_errors(exc)["phone"]
    console_words = staff_field_errors(exc)["phone"]

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid"
    assert api_words == "Enter a mobile number such as 416 555 0123 or +1 416 555 0123."
    assert page_english == "Enter a mobile number like 416 555 0123."
    assert page_french == "Entrez un numéro de cellulaire comme 416 555 0123."
    assert console_words.startswith("This is not a valid phone number")
    assert "phone_invalid" not in {api_words, page_english, page_french, console_words}


def test_a_name_with_control_characters_is_worded_in_french_on_the_pages(app):
    with pytest.raises(ValidationFailed) as caught:
        clean_details(PatientDetails("An\x07a", "Silva", email="ana@example.com"), country="CA", default_language="fr")
    assert caught.value.fields == {"first_name": "name_invalid"}
    with app.test_request_context("/"), force_locale("fr"):
        assert field_errors(caught.value)["first_name"].startswith("Utilisez seulement des lettres")


# --- every code has words on every surface -------------------------------------------------------


def test_every_code_has_words_on_each_surface(app):
    assert errors.REASONS and errors.FIELD_CODES and not errors.REASONS & errors.FIELD_CODES - {"invalid"}
    for surface in (MESSAGES, STAFF_MESSAGES):
        assert set(surface) == errors.REASONS | errors.STAFF_REASONS
    assert set(PAGE_MESSAGES) == errors.REASONS
    for surface in (FIELD_MESSAGES, STAFF_FIELD_MESSAGES):
        assert set(surface) == errors.FIELD_CODES | errors.STAFF_FIELD_CODES
    assert set(PAGE_FIELD_MESSAGES) == errors.FIELD_CODES
    with app.test_request_context("/"), force_locale("fr"):
        untranslated = [
            str(words)
            for words in (*PAGE_MESSAGES.values(), *PAGE_FIELD_MESSAGES.values())
            if str(words) == words._args[0]  # a lazy string: its msgid
        ]
    assert untranslated == []


def test_every_error_code_of_the_api_contract_is_a_reason():
    codes = {cls.code for cls in DomainError.__subclasses__() if cls.__module__ == errors.__name__}
    assert codes <= errors.REASONS


# --- one rule, one code, three surfaces: non-patient rules ---------------------------------------


def _words(app, exc) -> dict[str, object]:
    """What each surface says for one domain error: (message, fields)."""
    with app.test_request_context("/"):
        with force_locale("en"):
            page_english = (page_message(exc), field_errors(exc))
        with force_locale("fr"):
            page_french = (page_message(exc), field_errors(exc))
        console = (staff_message(exc), staff_field_errors(exc))
        api = (error_message(exc), field_messages(exc))
    return {"api": api, "console": console, "page_en": page_english, "page_fr": page_french}


def test_a_closure_on_a_day_that_does_not_parse_is_one_code_worded_by_each_surface(app, session, make_clinic):
    make_clinic()
    with pytest.raises(ValidationFailed) as caught:
        add_closure(session, None, "Boxing Day")
    assert (caught.value.reason, caught.value.fields) == (errors.CLOSURE_INVALID, {"day": errors.DAY_INVALID})

    words = _words(app, caught.value)
    assert words["api"] == ("The closure needs fixing.", {"day": "Use a date as YYYY-MM-DD."})
    assert words["console"] == ("The closure needs fixing.", {"day": "Give the day as a date (YYYY-MM-DD)."})
    assert words["page_en"][1] == {"day": "Enter a date like 2026-11-24."}
    assert words["page_fr"][1] == {"day": "Entrez une date comme 2026-11-24."}


def test_time_off_ending_before_it_starts_names_the_end_with_one_code(app, session, make_clinic):
    clinic = make_clinic()
    with pytest.raises(ValidationFailed) as caught:
        add_time_off(session, clinic.practitioner_ids[0], local("2026-11-24", "12:00"), local("2026-11-24", "09:00"))
    assert caught.value.fields == {"end_at": errors.END_NOT_AFTER_START}

    words = _words(app, caught.value)
    assert words["api"][1] == {"end_at": "Use an end after the start."}
    assert words["console"] == ("The time off needs fixing.", {"end_at": "The end must be after the start."})
    assert words["page_fr"][1] == {"end_at": "Choisissez une fin postérieure au début."}


def test_a_late_cancellation_carries_the_window_and_phone_as_values(app, database, make_clinic):
    clinic = make_clinic(late_cancellation_policy="block", cancellation_window_hours=24)
    with database.unit_of_work() as s:
        request = BookingRequest(
            service_id=clinic.initial_id,
            location_id=clinic.location_id,
            start=local("2026-11-23", "10:00"),
            patient=PatientDetails("Alex", "Martin", email="alex@example.com"),
        )
        appointment_id = book(s, request, secret_key=SECRET, now=NOW).appointment.id
    with database.unit_of_work() as s, pytest.raises(LateCancellationBlocked) as caught:
        cancel(s, appointment_id, now=NOW, by_patient=True)
    exc = caught.value
    assert (exc.code, exc.reason, exc.params, exc.extra) == (
        "late_cancellation",
        errors.LATE_CANCELLATION,
        {"hours": 24},
        {"phone": "+14165550100"},
    )

    words = _words(app, exc)
    assert words["api"][0] == (
        "Cancellations within 24 hours of the visit are made by phone: please call +14165550100."
    )
    assert words["console"][0] == "Inside the 24-hour window the clinic's policy asks patients to phone."
    assert words["page_en"][0] == "Please call the clinic at +14165550100 to change this appointment."
    assert "+14165550100" in words["page_fr"][0] and words["page_fr"][0] != words["page_en"][0]


def test_hours_overlapping_elsewhere_carry_the_place_and_times_as_values(app, session, make_clinic):
    clinic = make_clinic()
    rows = [HoursRow(weekday=0, start=time(9), end=time(12)), HoursRow(weekday=0, start=time(11), end=time(13))]
    with pytest.raises(ValidationFailed) as caught:
        set_weekly_hours(session, clinic.practitioner_ids[0], clinic.location_id, rows)
    assert caught.value.fields == {"rows.1.start": errors.HOURS_OVERLAP}
    assert caught.value.field_params["rows.1.start"] == {"start": time(9), "end": time(12)}
    assert staff_field_errors(caught.value) == {"rows.1.start": "Overlaps the hours 09:00-12:00 of the same day."}
