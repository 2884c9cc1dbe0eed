"""One rule, one code, each surface's own words.

The rule that a phone number must be a valid number lives once, in the domain
(``patients.operations.clean_details``), and answers with the field code ``phone_invalid``. The
API, the patient pages (English and French) and the console each word that code themselves.
"""

from __future__ import annotations

import pytest
from flask_babel import force_locale

from booking_service.console.common import staff_field_errors
from booking_service.errors import ValidationFailed
from booking_service.patients.operations import PatientDetails, clean_details
from booking_service.web.common import field_errors
from tests.conftest import local
from tests.test_api_public import booking_body, error_of, frozen  # noqa: F401  (frozen: a fixture)


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
