"""The booking pages through the Flask test client, on SQLite and PostgreSQL.

Time is frozen at Monday 2026-11-23 08:00 in Toronto; the clinic of ``make_clinic`` opens at
09:00 and asks two hours' notice, so the first free time is 10:00 (15:00 UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select

from booking_service.patients.consent import CONSENT_WORDING_VERSION
from booking_service.patients.models import ConsentEvent, Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book
from tests.conftest import NOW, SECRET

FIRST_FREE = "2026-11-23T15:00Z"  # Monday 10:00 in Toronto
NO_FLAGS = {f"rf_{key}": "no" for key in ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic")}


def details_form(clinic, start: str = FIRST_FREE, **changes) -> dict[str, str]:
    form = {
        "service_id": str(clinic.initial_id),
        "location_id": str(clinic.location_id),
        "practitioner_id": "",
        "start": start,
        "first_name": "Alex",
        "last_name": "Martin",
        "email": "alex.martin@example.com",
        "phone": "416 555 0142",
        "language": "en",
        "sms_consent": "yes",
        "email_consent": "yes",
        "exercise_sms_consent": "yes",
        "reason": "Pain down my left leg",
        **NO_FLAGS,
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def draft_id(client) -> str:
    review = client.get("/book/review")
    assert review.status_code == 200, review.status_code
    return re.search(r'name="draft_id" value="([^"]+)"', review.get_data(as_text=True)).group(1)


def book_through_pages(client, clinic, **changes):
    response = client.post("/book/details", data=details_form(clinic, **changes))
    assert response.status_code == 302, response.get_data(as_text=True)
    if response.headers["Location"].endswith("/book/urgent"):
        assert client.post("/book/urgent", data={"acknowledge": "yes"}).status_code == 302
    return client.post("/book/confirm", data={"draft_id": draft_id(client)})


def all_appointments(database) -> list[Appointment]:
    with database.unit_of_work() as s:
        rows = list(s.scalars(select(Appointment).order_by(Appointment.id)))
        s.expunge_all()
        return rows


# --- step 1 and 2 ----------------------------------------------------------------------------------


def test_the_start_page_explains_initial_assessment_and_follow_up(pages):
    html = pages.get("/").get_data(as_text=True)
    assert "Choose an initial assessment" in html and "Choose a follow-up" in html
    assert 'name="service_id"' in html and 'name="location_id"' in html
    assert 'method="get" action="/book/time"' in html


def test_choosing_times_without_a_service_shows_step_one_again_with_the_error(pages, clinic):
    response = pages.get(f"/book/time?location_id={clinic.location_id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'href="#f-service_id"' in html and "Choose the type of appointment." in html
    assert "<title>Error:" in html


def test_the_time_picker_opens_on_the_first_day_with_free_times_in_the_location_zone(pages, clinic):
    html = pages.get(f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}").get_data(
        as_text=True
    )
    assert "Times are in Toronto time (EST)." in html
    assert re.search(r'<details class="day" open>\s*<summary><span class="day-name">Monday, November 23', html)
    values = re.findall(r'name="start" id="[^"]+" value="([^"]+)"', html)
    assert values[0] == FIRST_FREE  # 10:00: two hours' notice from 08:00
    assert "10:00\u202fa.m." in html or "10:00 a.m." in html
    assert "Saturday, November 28" in html and "No free times" in html


def test_the_time_picker_skips_ahead_to_the_next_day_with_free_times(pages, clinic, frozen):
    frozen.move_to(datetime(2026, 11, 28, 15, 0, tzinfo=UTC))  # Saturday: closed until Monday
    html = pages.get(f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}").get_data(
        as_text=True
    )
    assert re.search(r'<details class="day" open>\s*<summary><span class="day-name">Monday, November 30', html)


def test_the_time_picker_moves_by_week(pages, clinic):
    base = f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}&practitioner_id="
    html = pages.get(base + "&from=2026-11-30").get_data(as_text=True)
    assert "Mon, Nov 30 to Sun, Dec 6" in html
    assert "from=2026-11-23" in html and "from=2026-12-07" in html


def test_a_chosen_practitioner_limits_the_times_and_is_kept_for_the_booking(pages, clinic):
    maya = clinic.practitioner_ids[0]
    html = pages.get(
        f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}&practitioner_id={maya}"
    ).get_data(as_text=True)
    assert f'<option value="{maya}" selected>' in html
    response = book_through_pages(pages, clinic, practitioner_id=str(maya))
    assert response.status_code == 302
    (appointment,) = all_appointments(pages.application.extensions["database"])
    assert appointment.practitioner_id == maya


# --- details, review, confirm ------------------------------------------------------------------------


def test_a_booking_through_the_pages_records_each_consent_with_source_and_wording(pages, clinic, database):
    response = book_through_pages(pages, clinic)
    assert response.status_code == 302 and response.headers["Location"].endswith("/book/confirmed")
    confirmed = pages.get("/book/confirmed")
    html = confirmed.get_data(as_text=True)
    assert confirmed.status_code == 200
    assert "Getting ready for your first visit" in html
    assert "calendar.google.com/calendar/render?action=TEMPLATE" in html
    assert re.search(r'href="/m/[A-Za-z0-9_-]{24}"', html)
    assert confirmed.headers["Referrer-Policy"] == "no-referrer"

    (appointment,) = all_appointments(database)
    assert appointment.start_at == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert appointment.source == "online" and appointment.language == "en"
    assert appointment.intake_reason == "Pain down my left leg" and appointment.triage == "none"
    with database.unit_of_work() as s:
        events = s.scalars(select(ConsentEvent).order_by(ConsentEvent.channel)).all()
        assert [(e.channel, e.granted, e.source, e.wording_version) for e in events] == [
            ("email", True, "booking_form", CONSENT_WORDING_VERSION),
            ("exercise_sms", True, "booking_form", CONSENT_WORDING_VERSION),
            ("sms", True, "booking_form", CONSENT_WORDING_VERSION),
        ]
        assert all(e.created_at == NOW for e in events)


def test_unticked_consents_are_not_granted(pages, clinic, database):
    book_through_pages(pages, clinic, sms_consent=None, exercise_sms_consent=None)
    with database.unit_of_work() as s:
        patient = s.scalars(select(Patient)).one()
        assert (patient.sms_consent, patient.email_consent, patient.exercise_sms_consent) == (False, True, False)
        assert [e.channel for e in s.scalars(select(ConsentEvent))] == ["email"]


def test_details_errors_are_tied_to_their_fields_and_keep_what_was_typed(pages, clinic):
    response = pages.post(
        "/book/details", data=details_form(clinic, email="not an email", first_name="", rf_systemic=None)
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert '<a href="#f-first_name">Enter your first name.</a>' in html
    assert '<a href="#f-email">' in html and '<a href="#f-rf_systemic">' in html
    email_input = re.search(r'<input[^>]*id="f-email"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in email_input and "email-error" in email_input
    assert 'value="not an email"' in email_input
    assert 'id="email-error"' in html
    assert "Pain down my left leg</textarea>" in html
    assert 'id="f-rf_bladder_bowel-no" name="rf_bladder_bowel" value="no" checked' in html


def test_texts_need_a_mobile_number(pages, clinic):
    response = pages.post("/book/details", data=details_form(clinic, phone=""))
    assert response.status_code == 422
    assert "Enter a mobile number above to get texts" in response.get_data(as_text=True)


def test_a_red_flag_shows_urgent_guidance_first_and_flags_the_booking(pages, clinic, database):
    response = pages.post("/book/details", data=details_form(clinic, rf_leg_weakness="yes"))
    assert response.headers["Location"].endswith("/book/urgent")
    assert pages.get("/book/review").headers["Location"].endswith("/book/urgent")  # not before reading it
    urgent = pages.get("/book/urgent").get_data(as_text=True)
    assert "call 911" in urgent and "getting weaker" in urgent
    refused = pages.post("/book/urgent", data={})
    assert refused.status_code == 422 and 'href="#f-acknowledge"' in refused.get_data(as_text=True)
    assert pages.post("/book/urgent", data={"acknowledge": "yes"}).headers["Location"].endswith("/book/review")
    assert pages.post("/book/confirm", data={"draft_id": draft_id(pages)}).status_code == 302
    (appointment,) = all_appointments(database)
    assert appointment.triage == "urgent"
    assert appointment.red_flags == {
        "bladder_bowel": False,
        "saddle_numbness": False,
        "leg_weakness": True,
        "systemic": False,
    }


def test_no_clinical_answer_ever_appears_in_a_url(pages, clinic):
    seen: list[str] = []
    response = pages.post("/book/details", data=details_form(clinic, rf_systemic="yes"))
    seen.append(response.headers["Location"])
    for path in ("/book/urgent", "/book/review"):
        html = pages.get(path).get_data(as_text=True)
        seen.extend(re.findall(r'(?:href|action)="([^"]+)"', html))
    details = pages.get("/book/details").get_data(as_text=True)
    assert re.search(r'<form method="post" action="/book/details"', details)
    for url in seen:
        assert "rf_" not in url and "reason" not in url and "Pain" not in url, url


def test_confirming_a_review_from_another_tab_shows_the_current_details_again(pages, clinic, database):
    assert pages.post("/book/details", data=details_form(clinic)).status_code == 302
    stale = draft_id(pages)
    pages.post("/book/details", data=details_form(clinic, first_name="Sam"))  # same draft, new details
    response = pages.post("/book/confirm", data={"draft_id": stale + "x"})
    assert response.headers["Location"].endswith("/book/review")
    assert all_appointments(database) == []


def test_a_time_taken_before_confirming_offers_the_nearest_free_times_and_keeps_the_details(pages, clinic, database):
    maya = clinic.practitioner_ids[0]
    assert pages.post("/book/details", data=details_form(clinic, practitioner_id=str(maya))).status_code == 302
    current = draft_id(pages)
    with database.unit_of_work() as s:  # someone else takes it meanwhile
        book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                practitioner_id=maya,
                start=datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
                source="staff",
                patient=PatientDetails(first_name="Other", last_name="Person", email="other@example.com"),
            ),
            secret_key=SECRET,
            now=NOW,
        )
    response = pages.post("/book/confirm", data={"draft_id": current})
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "that time was just taken" in html and "Your details are kept" in html
    alternatives = re.findall(r'name="start" value="([^"]+)"', html)
    assert alternatives and FIRST_FREE not in alternatives
    assert "Alex Martin" in html
    # Choosing one goes back to the review with everything still there, and books.
    assert pages.post("/book/change-time", data={"start": alternatives[0]}).headers["Location"].endswith("/book/review")
    review = pages.get("/book/review").get_data(as_text=True)
    assert "Alex Martin" in review and "Pain down my left leg" in review
    assert pages.post("/book/confirm", data={"draft_id": draft_id(pages)}).status_code == 302
    mine = [a for a in all_appointments(database) if a.source == "online"]
    assert len(mine) == 1 and mine[0].start_at.strftime("%Y-%m-%dT%H:%MZ") == alternatives[0]


def test_a_patient_who_already_has_that_time_is_told_so(pages, clinic, database):
    assert book_through_pages(pages, clinic).status_code == 302
    response = pages.post("/book/details", data=details_form(clinic, practitioner_id=""))
    assert response.status_code == 302
    confirm = pages.post("/book/confirm", data={"draft_id": draft_id(pages)})
    assert confirm.status_code == 409
    assert "You already have an appointment at that time." in confirm.get_data(as_text=True)
    assert len(all_appointments(database)) == 1


def test_review_without_a_draft_starts_over(pages):
    assert pages.get("/book/review").headers["Location"].endswith("/")
    assert pages.get("/book/confirmed").headers["Location"].endswith("/")


# --- safety ------------------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused(app, clinic):
    client = app.test_client()
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    refused = client.post("/book/details", data=details_form(clinic))
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)  # shown again, as typed, to be sent once more
    assert "please check your answers and send the form again" in html and 'value="Alex"' in html
    assert client.get("/book/review").headers["Location"].endswith("/")  # nothing was kept
    assert client.post("/book/confirm", data={}).status_code == 400
    assert "This page has expired" in client.post("/book/urgent", data={}).get_data(as_text=True)
    page = client.get(
        f"/book/details?service_id={clinic.initial_id}&location_id={clinic.location_id}&start={FIRST_FREE}"
    )
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    accepted = client.post("/book/details", data={**details_form(clinic), "csrf_token": token})
    assert accepted.status_code == 302


def test_the_honeypot_refuses_bots_and_stores_nothing(pages, clinic, database):
    response = pages.post("/book/details", data=details_form(clinic, website="http://spam.example"))
    assert response.status_code == 400
    assert pages.get("/book/review").headers["Location"].endswith("/")
    assert all_appointments(database) == []


def test_posts_are_rate_limited(db_url, database, clinic):
    from booking_service import create_app
    from booking_service.extensions import limiter

    was_enabled = limiter.enabled  # one Limiter serves every app of the process
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": SECRET,
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    try:
        client = app.test_client()
        statuses = [client.post("/book/details", data={}).status_code for _ in range(21)]
        assert 429 not in statuses[:20]
        assert statuses[20] == 429
        assert "Too many tries" in client.post("/book/details", data={}).get_data(as_text=True)
        assert client.get("/").status_code == 200  # reading pages is not limited
    finally:
        limiter.enabled = was_enabled
        app.extensions["database"].dispose()


def test_patient_pages_send_security_headers(pages, clinic):
    response = pages.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<style nonce="{nonce}">' in response.get_data(as_text=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_clinic_colour_is_used_and_kept_readable(pages, database):
    from booking_service.clinic.models import ClinicSettings
    from booking_service.web.theme import WHITE, _rgb, contrast

    with database.unit_of_work() as s:
        s.get(ClinicSettings, 1).brand_color = "#7fd1c7"  # too pale for white text
    html = pages.get("/").get_data(as_text=True)
    assert "--brand:#7fd1c7" in html
    accent = re.search(r"--accent:(#[0-9a-f]{6})", html).group(1)
    assert contrast(_rgb(accent), WHITE) >= 4.5


# --- languages ------------------------------------------------------------------------------------


def test_french_is_chosen_with_the_switch_and_remembered(pages, clinic):
    response = pages.get("/?lang=fr")
    assert "lang=fr" in response.headers["Set-Cookie"]
    html = response.get_data(as_text=True)
    assert '<html lang="fr-CA">' in html and "Prendre rendez-vous" in html
    later = pages.get(f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}")
    html = later.get_data(as_text=True)
    assert "lundi 23 novembre" in html and "heure de Toronto (HNE)" in html
    assert "10 h 00" in html


def test_the_browser_language_is_used_when_nothing_was_chosen(pages):
    html = pages.get("/", headers={"Accept-Language": "fr-CA,fr;q=0.9"}).get_data(as_text=True)
    assert '<html lang="fr-CA">' in html
    html = pages.get("/", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    assert '<html lang="en-CA">' in html  # the clinic's default


def test_the_clinic_default_language_applies_without_any_other_signal(pages, database):
    from booking_service.clinic.models import ClinicSettings

    with database.unit_of_work() as s:
        s.get(ClinicSettings, 1).default_language = "fr"
    assert '<html lang="fr-CA">' in pages.get("/").get_data(as_text=True)


def test_a_french_booking_stores_the_patients_language(pages, clinic, database):
    pages.get("/?lang=fr")
    assert book_through_pages(pages, clinic, language="fr").status_code == 302
    confirmed = pages.get("/book/confirmed").get_data(as_text=True)
    assert "Votre rendez-vous est réservé" in confirmed and "lundi 23 novembre 2026 à 10 h 00" in confirmed
    (appointment,) = all_appointments(database)
    assert appointment.language == "fr"
    with database.unit_of_work() as s:
        assert s.scalars(select(Patient.language)).one() == "fr"


def test_the_french_catalogue_is_complete_and_compiled():
    from pathlib import Path

    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent / "translations"
    po = read_po((root / "fr/LC_MESSAGES/messages.po").open("rb"))
    mo = read_mo((root / "fr/LC_MESSAGES/messages.mo").open("rb"))
    pot = read_po((root / "messages.pot").open("rb"))
    untranslated = [m.id for m in po if m.id and (not m.string or "fuzzy" in m.flags)]
    assert untranslated == []
    assert {m.id for m in pot if m.id} <= {m.id for m in po if m.id}

    def pairs(catalog):
        return {
            (m.id if isinstance(m.id, str) else m.id[0], m.string if isinstance(m.string, str) else tuple(m.string))
            for m in catalog
            if m.id
        }

    assert pairs(po) == pairs(mo), "messages.mo is stale: run `pybabel compile -d translations`"


def test_the_language_switch_of_a_page_answering_a_post_leads_to_a_page_that_exists(pages, clinic, database):
    assert pages.post("/book/details", data=details_form(clinic)).status_code == 302
    with database.unit_of_work() as s:  # both practitioners are taken at that time
        for number, practitioner_id in enumerate(clinic.practitioner_ids):
            book(
                s,
                BookingRequest(
                    service_id=clinic.initial_id,
                    location_id=clinic.location_id,
                    practitioner_id=practitioner_id,
                    start=datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
                    source="staff",
                    patient=PatientDetails(first_name=f"Other{number}", last_name="P", email=f"o{number}@example.com"),
                ),
                secret_key=SECRET,
                now=NOW,
            )
    html = pages.post("/book/confirm", data={"draft_id": draft_id(pages)}).get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" lang="fr"', html).group(1).replace("&amp;", "&")
    assert link == "/book/review?lang=fr"
    assert pages.get(link).status_code == 200
