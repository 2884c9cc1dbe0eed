"""What a new receptionist hit at the desk, each fixed and pinned here: staff bookings confirm
like online ones (or not, for a patient at the desk), walk-ins can be booked now, a practitioner's
login shows their own day, and the staff screens' wording.

Time is frozen at Monday 2026-11-23 08:00 in Toronto (13:00 UTC) unless a test moves it; the
clinic of ``make_clinic`` has Maya Chen and Daniel Okafor working 09:00-17:00 (see
``tests/console_fixtures.py``).
"""

from __future__ import annotations

import re
from datetime import time

from sqlalchemy import select

from booking_service.clinic.models import ClinicSettings, Location, Practitioner, WorkingHours
from booking_service.messaging import rendering
from booking_service.outbox.models import OutboxMessage
from booking_service.scheduling.models import Appointment
from tests.conftest import NOW, SECRET, local
from tests.console_fixtures import PASSWORD, TUESDAY_10, appointment, login, text

pytest_plugins = ["tests.console_fixtures"]


def book_form(clinic, **changes) -> dict[str, str]:
    form = {
        "service": str(clinic.initial_id),
        "location": str(clinic.location_id),
        "practitioner": "",
        "date": "2026-11-26",
        "start": "2026-11-26T15:00Z",  # Thursday 10:00: both default reminders still ahead
        "first_name": "Gus",
        "last_name": "Moreau",
        "phone": "(416) 555-0177",
        "email": "gus@example.com",
        "language": "en",
        "sms_consent": "yes",
        "email_consent": "yes",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def outbox(database, kind: str | None = None) -> list[OutboxMessage]:
    with database.unit_of_work() as s:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        rows = [r for r in s.scalars(query) if kind is None or r.kind == kind]
        for r in rows:
            s.expunge(r)
        return rows


# --- staff bookings confirm like online ones ----------------------------------------------------------


def test_a_staff_booking_sends_the_confirmation_with_the_manage_link_and_the_calendar_invitation(
    desk, database, clinic
):
    page = text(desk.get("/staff/book"))
    assert "Don’t send a confirmation" in page and 'name="no_confirmation"' in page

    response = desk.post("/staff/book", data=book_form(clinic))

    assert response.status_code == 302, text(response)
    assert "A confirmation with the manage link goes by email and text." in text(desk.get(response.headers["Location"]))
    confirmations = outbox(database, "confirmation")
    assert {(r.channel, r.to) for r in confirmations} == {("email", "gus@example.com"), ("sms", "+14165550177")}
    assert {r.kind for r in outbox(database)} == {"confirmation", "reminder"}
    with database.unit_of_work() as s:
        clinic_row = s.get(ClinicSettings, 1)
        sent = {}
        for row in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "confirmation")):
            sent[row.channel] = rendering.render(
                s,
                row,
                settings={"PUBLIC_BASE_URL": "http://testserver.local", "SECRET_KEY": SECRET},
                clinic=clinic_row,
                now=row.due_at,
            )
    assert "http://testserver.local/m/" in sent["sms"].body
    assert "http://testserver.local/m/" in sent["email"].text
    assert sent["email"].ics is not None and b"METHOD:REQUEST" in sent["email"].ics


def test_dont_send_a_confirmation_for_a_patient_at_the_desk_still_plans_the_reminders(desk, database, clinic):
    response = desk.post("/staff/book", data=book_form(clinic, no_confirmation="yes"))

    assert response.status_code == 302, text(response)
    assert "No confirmation sent, as asked; reminders as usual." in text(desk.get(response.headers["Location"]))
    assert outbox(database, "confirmation") == []
    assert {r.channel for r in outbox(database, "reminder")} == {"email", "sms"}


def test_a_staff_booking_for_a_patient_with_no_way_to_reach_them_says_no_confirmation_could_go(desk, database, clinic):
    response = desk.post("/staff/book", data=book_form(clinic, email="", sms_consent=None, email_consent=None))

    assert response.status_code == 302, text(response)
    assert "No confirmation could be sent" in text(desk.get(response.headers["Location"]))
    assert outbox(database) == []


# --- walk-ins: the minimum notice binds online booking only -------------------------------------------


def signed_in(console_app, email="desk@example.com"):
    """A client signed in now (after a test moved the clock: sessions time out)."""
    client = console_app.test_client()
    assert login(client, email).status_code == 302
    return client


def test_a_walk_in_can_be_booked_by_staff_for_now_but_not_online(console_app, users, database, clinic, frozen):
    frozen.move_to(local("2026-11-23", "10:05"))  # Monday; the 10:00 slot began five minutes ago
    desk = signed_in(console_app)
    ten = "2026-11-23T15:00Z"
    page = text(desk.get(f"/staff/book?service={clinic.initial_id}&location={clinic.location_id}"))
    assert f'value="{ten}"' in page  # the slot that just began is offered to the desk

    online = (
        console_app.test_client()
        .get(
            f"/api/v1/availability?service_id={clinic.initial_id}&location_id={clinic.location_id}"
            "&start=2026-11-23&end=2026-11-23"
        )
        .get_json()
    )
    assert online["slots"] and all(s["start"] >= "2026-11-23T12:05" for s in online["slots"])  # 120 min notice

    response = desk.post("/staff/book", data=book_form(clinic, date="2026-11-23", start=ten))
    assert response.status_code == 302, text(response)
    with database.unit_of_work() as s:
        made = s.scalars(select(Appointment)).one()
        assert made.start_at == local("2026-11-23", "10:00")


def test_staff_cannot_book_a_time_past_the_grace_of_a_few_minutes(console_app, users, database, clinic, frozen):
    frozen.move_to(local("2026-11-23", "10:11"))  # the 10:00 slot began eleven minutes ago
    desk = signed_in(console_app)

    page = text(desk.get(f"/staff/book?service={clinic.initial_id}&location={clinic.location_id}"))
    assert 'value="2026-11-23T15:00Z"' not in page and 'value="2026-11-23T15:15Z"' in page
    response = desk.post("/staff/book", data=book_form(clinic, date="2026-11-23", start="2026-11-23T15:00Z"))

    assert response.status_code == 422
    assert "not available" in text(response)
    with database.unit_of_work() as s:
        assert s.scalars(select(Appointment)).first() is None


def test_staff_can_move_an_appointment_to_a_time_inside_the_minimum_notice(console_app, users, booked, frozen):
    appointment_id = booked(TUESDAY_10)
    frozen.move_to(local("2026-11-23", "09:50"))
    desk = signed_in(console_app)

    page = text(desk.get(f"/staff/appointments/{appointment_id}/reschedule"))
    assert 'value="2026-11-23T15:00Z"' in page  # 10:00 today: ten minutes away
    response = desk.post(f"/staff/appointments/{appointment_id}/reschedule", data={"start": "2026-11-23T15:00Z"})

    assert response.status_code == 302
    assert appointment(console_app.extensions["database"], appointment_id).start_at == local("2026-11-23", "10:00")


# --- a practitioner's own day ---------------------------------------------------------------------------


def _midtown_on_mondays_for_maya(database, clinic) -> int:
    """A second location, first in no list, where Maya works on Mondays (and only there)."""
    with database.unit_of_work() as s:
        midtown = Location(name="Midtown", address="2300 Yonge St", timezone="America/Toronto")
        s.add(midtown)
        maya = s.get(Practitioner, clinic.practitioner_ids[0])
        maya.locations.append(midtown)
        for hours in s.scalars(select(WorkingHours).where(WorkingHours.practitioner_id == maya.id)):
            if hours.weekday == 0:
                s.delete(hours)
        s.flush()
        s.add(
            WorkingHours(
                practitioner_id=maya.id, location_id=midtown.id, weekday=0, start_time=time(9), end_time=time(17)
            )
        )
        return midtown.id


def test_a_practitioner_opens_on_their_own_day_where_they_work_and_their_appointments_open(
    physio, desk, booked, database, clinic
):
    midtown = _midtown_on_mondays_for_maya(database, clinic)
    with database.unit_of_work() as s:
        from booking_service.patients.operations import PatientDetails
        from booking_service.usecases.booking import BookingRequest, book

        mine = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=midtown,
                practitioner_id=clinic.practitioner_ids[0],
                start=local("2026-11-23", "11:00"),
                patient=PatientDetails(first_name="Ana", last_name="Silva", email="ana@example.com"),
                source="staff",
            ),
            secret_key=SECRET,
            now=NOW,
        ).appointment.id
    theirs = booked(TUESDAY_10, practitioner=1, first_name="Ben", email="ben@example.com", phone=None)

    day = text(physio.get("/staff/"))
    assert "Midtown · times in" in day  # where Maya works today, not the first location
    assert "Ana Silva" in day and "Maya Chen" in day and "Daniel Okafor" not in day
    assert f"/staff/appointments/{mine}" in day
    assert physio.get(f"/staff/appointments/{mine}").status_code == 200
    assert physio.get(f"/staff/appointments/{theirs}").status_code == 404
    tuesday = text(physio.get("/staff/?date=2026-11-24"))
    assert "Downtown · times in" in tuesday  # Tuesdays she works Downtown
    # The desk keeps the first (or remembered) location; asking for one still wins for anyone.
    assert "Downtown · times in" in text(desk.get("/staff/"))
    assert "Downtown · times in" in text(physio.get(f"/staff/?location={clinic.location_id}"))


def test_a_practitioner_login_linked_by_the_cli_sees_its_own_appointment(console_app, booked, database, clinic):
    appointment_id = booked(TUESDAY_10, practitioner=1)
    runner = console_app.test_cli_runner()
    result = runner.invoke(
        args=[
            "create-user",
            "dan@example.com",
            "--role",
            "practitioner",
            "--password",
            PASSWORD,
            "--practitioner-id",
            str(clinic.practitioner_ids[1]),
        ]
    )
    assert result.exit_code == 0, result.output
    dan = console_app.test_client()
    assert login(dan, "dan@example.com").status_code == 302

    assert dan.get(f"/staff/appointments/{appointment_id}").status_code == 200
    assert "Ana Silva" in text(dan.get("/staff/?date=2026-11-24"))


def test_a_practitioner_login_not_linked_yet_is_told_why_the_day_is_empty(console_app, users, admin):
    admin.post("/staff/users", data={"email": "new@example.com", "role": "practitioner", "password": PASSWORD})
    newcomer = console_app.test_client()
    login(newcomer, "new@example.com")

    assert "not linked to a practitioner yet" in text(newcomer.get("/staff/"))
    assert "not linked to a practitioner yet" not in text(admin.get("/staff/"))


# --- the staff screens' words ------------------------------------------------------------------------------


def test_the_appointment_page_says_what_the_patient_gave_without_doubled_words(desk, database, clinic):
    with database.unit_of_work() as s:
        from booking_service.clinic.models import Service

        s.get(Service, clinic.follow_up_id).name = "Follow-up (30 min)"
    desk.post(
        "/staff/book",
        data=book_form(clinic, service=str(clinic.follow_up_id), phone="", sms_consent=None, email_consent=None),
    )
    with database.unit_of_work() as s:
        made = s.scalars(select(Appointment)).one()
        made.patient.email = None  # a patient with no address at all
        appointment_id = made.id

    page = re.sub(r"\s+", " ", text(desk.get(f"/staff/appointments/{appointment_id}")))

    assert "Follow-up (30 min)" in page and "(30 min) (30 min)" not in page
    assert '<dt>Emails</dt><dd><span class="muted">No address</span>' in page
    assert "Booking emails only" not in page
    assert "No number" in page and "No consent" not in page
    assert "((" not in page and "))" not in page  # "(America/Toronto (EST))": no brackets in brackets
    assert "America/Toronto (EST)" in page
    booking = text(desk.get(f"/staff/book?service={clinic.follow_up_id}"))
    assert "Follow-up (30 min)</option>" in booking and "(30 min) (30 min)" not in booking
    assert "((" not in booking and "))" not in booking


def test_the_series_form_and_the_move_page_say_each_length_and_zone_once(desk, database, clinic, booked):
    with database.unit_of_work() as s:
        from booking_service.clinic.models import Service

        s.get(Service, clinic.follow_up_id).name = "Follow-up (30 min)"
    appointment_id = booked(TUESDAY_10)
    patient_id = appointment(database, appointment_id).patient_id

    series = re.sub(r"\s+", " ", text(desk.get(f"/staff/patients/{patient_id}/plans/new")))
    assert "Follow-up (30 min)</option>" in series and "(30 min) (30 min)" not in series
    assert "America/Toronto (EST)" in series and "((" not in series and "))" not in series
    move = re.sub(r"\s+", " ", text(desk.get(f"/staff/appointments/{appointment_id}/reschedule")))
    assert "times in America/Toronto (EST)" in move
    assert "((" not in move and "))" not in move


def test_red_flags_left_unticked_by_staff_read_none_reported_not_not_asked(desk, database, clinic):
    desk.post("/staff/book", data=book_form(clinic))
    with database.unit_of_work() as s:
        made = s.scalars(select(Appointment)).one()
        assert made.red_flags == {key: False for key in made.red_flags} and len(made.red_flags) == 4

    page = re.sub(r"\s+", " ", text(desk.get(f"/staff/appointments/{made.id}")))

    assert "None reported" in page and "the caller was asked at booking" in page
    assert "Not asked" not in page


def test_red_flags_of_a_booking_that_never_asked_still_read_not_asked(desk, booked):
    appointment_id = booked(TUESDAY_10)  # an online booking through the API's shape: no intake

    assert "Not asked" in text(desk.get(f"/staff/appointments/{appointment_id}"))
