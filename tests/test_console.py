"""The front-desk staff console under /staff, through the Flask test client, on SQLite and
PostgreSQL.

Time is frozen at Monday 2026-11-23 08:00 in Toronto (13:00 UTC) unless a test moves it. The
clinic of ``make_clinic`` has two physiotherapists, Maya Chen and Daniel Okafor, working 09:00-17:00;
Maya's user account is a practitioner login. Most tests use a client with CSRF checks off; one
test proves the checks are on by default.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from booking_service.clinic.models import Service
from booking_service.messaging.models import InboundMessage
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import ConsentEvent, SmsOptOut
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.staff.operations import create_user
from booking_service.usecases.booking import BookingRequest, book
from booking_service.usecases.replies import handle_inbound
from booking_service.waitlist.models import WaitlistEntry
from tests.conftest import NOW, SECRET, local
from tests.console_fixtures import PASSWORD, TUESDAY_10, _create_app, appointment, flashed, login, text

# The console's fixtures (clinic, users, desk, physio, booked, ...), shared with test_console_settings.py.
pytest_plugins = ["tests.console_fixtures"]


# --- signing in -------------------------------------------------------------------------------------


CONSOLE_PAGES = [
    "/staff/",
    "/staff/week",
    "/staff/appointments/1",
    "/staff/book",
    "/staff/patients?q=ana",
    "/staff/patients/1",
    "/staff/inbox",
    "/staff/waitlist",
]


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_every_console_page_sends_a_signed_out_visitor_to_the_login_page(console_app, clinic, path):
    response = console_app.test_client().get(path)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login?next=")


def test_actions_need_a_login_too(console_app, booked, database):
    appointment_id = booked()

    response = console_app.test_client().post(
        f"/staff/appointments/{appointment_id}/status", data={"status": "no_show"}
    )

    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    assert appointment(database, appointment_id).status == "booked"


def test_a_wrong_password_and_an_unknown_email_get_the_same_message(console_app, users):
    client = console_app.test_client()

    wrong_password = login(client, password="not-the-password")
    unknown_email = login(client, email="nobody@example.com")

    for response in (wrong_password, unknown_email):
        assert response.status_code == 200
        assert "Email or password is wrong" in text(response)
    assert client.get("/staff/").status_code == 302


def test_an_inactive_user_cannot_sign_in(console_app, users, database):
    from booking_service.staff.models import User

    with database.unit_of_work() as s:
        s.execute(update(User).where(User.email == "desk@example.com").values(active=False))

    response = login(console_app.test_client())

    assert "Email or password is wrong" in text(response)


def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(console_app, users):
    client = console_app.test_client()
    assert login(client, next="/staff/week?date=2026-11-30").headers["Location"] == "/staff/week?date=2026-11-30"
    client.post("/staff/logout")

    for target in ("https://evil.example/staff/", "//evil.example/staff/", "/\\evil.example", "/api/v1/services"):
        assert login(client, next=target).headers["Location"] == "/staff/", target
        client.post("/staff/logout")


def test_logging_out_ends_the_session(desk):
    assert desk.get("/staff/").status_code == 200

    response = desk.post("/staff/logout")

    assert response.status_code == 302
    assert desk.get("/staff/").status_code == 302


def test_a_changed_password_signs_out_sessions_opened_with_the_old_one(desk, database):
    with database.unit_of_work() as s:
        create_user(s, "desk@example.com", role="frontdesk", password="a-brand-new-password", update=True)

    assert desk.get("/staff/").status_code == 302


def test_a_post_without_the_csrf_token_is_refused(app, users, booked, database):
    appointment_id = booked()
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', text(client.get("/staff/login"))).group(1)
    assert login(client, csrf_token=token).status_code == 302

    response = client.post(f"/staff/appointments/{appointment_id}/status", data={"status": "confirmed"})

    assert response.status_code == 400
    assert "The form had expired" in text(response)
    assert appointment(database, appointment_id).status == "booked"


def test_login_attempts_are_rate_limited_per_address(db_url, database, users):
    app = _create_app(db_url, WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=True)
    client = app.test_client()
    try:
        statuses = [login(client, f"guess{i}@example.com", password=f"guess-number-{i}").status_code for i in range(11)]
    finally:
        app.extensions["database"].dispose()

    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429


def test_failed_logins_lock_the_account_whatever_address_they_come_from(db_url, database, users):
    app = _create_app(db_url, WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=True, TRUSTED_PROXIES=1)
    client = app.test_client()

    def attempt(i, password):
        return client.post(
            "/staff/login",
            data={"email": "Desk@Example.com ", "password": password},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )

    try:
        ok = attempt(200, PASSWORD)  # a successful sign-in does not count against the account
        client.post("/staff/logout")
        statuses = [attempt(i, f"guess-number-{i}").status_code for i in range(5)]
        locked = attempt(99, PASSWORD)
        someone_else = client.post(
            "/staff/login",
            data={"email": "admin@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.98"},
        )
    finally:
        app.extensions["database"].dispose()

    assert ok.status_code == 302
    assert statuses == [200] * 5
    assert locked.status_code == 429
    assert "Too many failed sign-ins for this account" in text(locked)
    assert someone_else.status_code == 302


# --- the day and the week -----------------------------------------------------------------------------


def test_the_day_view_shows_each_appointment_at_its_local_time_with_patient_and_service(desk, booked):
    booked(TUESDAY_10)

    page = text(desk.get("/staff/?date=2026-11-24"))

    assert "Tuesday 24 November 2026" in page
    assert "America/Toronto (EST)" in page
    assert ">10:00</time>–<time" in page and ">11:00</time>" in page
    visit = page[page.index('id="visit-') : page.index("</li>", page.index('id="visit-'))]
    assert "15:00" not in visit  # the UTC time never shows (15:00 is a row of the local grid)
    assert "Ana Silva" in page and "Initial assessment" in page
    assert "Maya Chen" in page and "Daniel Okafor" in page  # a column for each practitioner working


def test_the_day_view_defaults_to_today_in_the_location_zone(desk, booked, frozen):
    frozen.move_to(datetime(2026, 11, 24, 2, 0, tzinfo=UTC))  # Monday 21:00 in Toronto, Tuesday in UTC
    login(desk)  # hours later: the console signed out after 30 idle minutes

    assert "Monday 23 November 2026" in text(desk.get("/staff/"))


def test_the_day_view_marks_urgent_triage_confirmation_and_failed_messages(desk, booked, database):
    urgent = booked(TUESDAY_10, red_flags={"saddle_numbness": True})
    confirmed = booked(local("2026-11-24", "14:00"), first_name="Ben", email="ben@example.com", phone="+14165550199")
    with database.unit_of_work() as s:
        s.execute(update(Appointment).where(Appointment.id == confirmed).values(status="confirmed", confirmed_at=NOW))
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.appointment_id == urgent, OutboxMessage.kind == "confirmation")
            .values(status="failed", error="invalid number")
        )

    page = text(desk.get("/staff/?date=2026-11-24"))
    board = page[page.index('id="triage-title"') :]  # past the triage queue, which lists Ana too
    board = board[board.index("</section>") :]

    assert board.count("Urgent triage") == 1
    assert board.count("✓ confirmed") == 1
    assert board.count("Message failed") == 1
    urgent_item = board[board.index("Ana Silva") : board.index("</li>", board.index("Ana Silva"))]
    assert "Urgent triage" in urgent_item and "Message failed" in urgent_item


def count_queries(app, request):
    """How many SQL statements one request runs."""
    from sqlalchemy import event

    statements = []
    engine = app.extensions["database"].engine

    def record(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = request()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    return len(statements)


def test_the_day_view_costs_the_same_queries_for_one_appointment_or_many(desk, console_app, booked, database):
    first = booked(TUESDAY_10)
    with database.unit_of_work() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.appointment_id == first).values(status="failed"))
    desk.get("/staff/?date=2026-11-24")  # the first request loads the catalogue cache (clinic.cache)
    one = count_queries(console_app, lambda: desk.get("/staff/?date=2026-11-24"))
    for i, hhmm in enumerate(["13:00", "14:00", "15:00", "16:00"]):
        booked(local("2026-11-24", hhmm), practitioner=i % 2, first_name=f"P{i}", email=f"p{i}@example.com", phone=None)

    many = count_queries(console_app, lambda: desk.get("/staff/?date=2026-11-24"))

    assert many == one, (one, many)


def test_cancelled_appointments_are_left_off_the_day_unless_asked_for(desk, booked, database):
    appointment_id = booked(TUESDAY_10)
    desk.post(f"/staff/appointments/{appointment_id}/cancel", data={"reason": "patient phoned"})

    assert "Ana Silva" not in text(desk.get("/staff/?date=2026-11-24"))
    assert "Ana Silva" in text(desk.get("/staff/?date=2026-11-24&cancelled=1"))


def test_a_nonsense_date_shows_today_instead_of_failing(desk):
    for raw in ("yesterday", "9999-12-31", "2026-13-45"):
        response = desk.get(f"/staff/?date={raw}")
        assert response.status_code == 200
        assert "Monday 23 November 2026" in text(response)


def test_the_week_view_counts_and_lists_the_times_per_practitioner_and_day(desk, booked):
    booked(TUESDAY_10)
    booked(local("2026-11-26", "09:00"), first_name="Ben", email="ben@example.com", phone="+14165550199")
    booked(local("2026-11-26", "14:00"), practitioner=1, first_name="Cy", email="cy@example.com", phone=None)

    page = text(desk.get("/staff/week?date=2026-11-25"))

    assert "Week of Monday 23 November 2026" in page
    maya_row = page[page.index("Maya Chen</th>") : page.index("</tr>", page.index("Maya Chen</th>"))]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", maya_row, re.S)
    assert len(cells) == 8  # seven days and the total
    assert ">10:00<" in cells[1] and '<span class="cell-count">1</span>' in cells[1]
    assert ">09:00<" in cells[3]
    assert cells[7].strip() == "2"
    assert ">14:00<" in page


# --- one appointment ----------------------------------------------------------------------------------


def test_the_appointment_page_shows_contact_intake_and_urgent_care_guidance(desk, database, clinic):
    with database.unit_of_work() as s:
        appointment_id = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                start=TUESDAY_10,
                patient=PatientDetails("Ana", "Silva", "ana@example.com", "+14165550142", sms_consent=True),
                intake_reason="Pain down my left leg",
                red_flags={"leg_weakness": True},
            ),
            secret_key=SECRET,
            now=NOW,
        ).appointment.id

    page = text(desk.get(f"/staff/appointments/{appointment_id}"))

    assert "(416) 555-0142" in page and "ana@example.com" in page
    assert "Pain down my left leg" in page
    assert "Urgent triage: red-flag answers" in page
    assert "emergency department or call 911" in page
    assert re.search(r"<strong>Yes</strong> – Leg weakness", page)


def test_check_in_and_no_show_change_the_status(desk, booked, database, frozen):
    monday = booked(local("2026-11-23", "10:00"))
    other = booked(local("2026-11-23", "10:00"), practitioner=1, first_name="Ben", email="ben@example.com", phone=None)

    response = desk.post(f"/staff/appointments/{monday}/status", data={"status": "checked_in"})
    assert response.status_code == 302 and response.headers["Location"] == f"/staff/appointments/{monday}"
    assert appointment(database, monday).status == "checked_in"
    assert "Checked in." in text(desk.get(response.headers["Location"]))

    frozen.move_to(local("2026-11-23", "10:20"))
    login(desk)  # hours later: the console signed out after 30 idle minutes
    desk.post(f"/staff/appointments/{other}/status", data={"status": "no_show"})
    assert appointment(database, other).status == "no_show"
    assert "Marked as a no-show." in flashed(desk)


def test_the_appointment_page_offers_only_the_status_changes_possible_now(desk, booked, frozen):
    appointment_id = booked(TUESDAY_10)  # tomorrow at 10:00
    page = text(desk.get(f"/staff/appointments/{appointment_id}"))
    assert 'value="confirmed"' in page
    for later in ("checked_in", "completed", "no_show"):
        assert f'value="{later}"' not in page

    frozen.move_to(local("2026-11-24", "10:05"))
    login(desk)  # hours later: the console signed out after 30 idle minutes
    page = text(desk.get(f"/staff/appointments/{appointment_id}"))
    for now_possible in ("checked_in", "completed", "no_show"):
        assert f'value="{now_possible}"' in page


def test_a_disallowed_status_change_is_shown_as_an_error_not_a_crash(desk, booked, database):
    appointment_id = booked(TUESDAY_10)

    response = desk.post(f"/staff/appointments/{appointment_id}/status", data={"status": "no_show"})

    assert response.status_code == 302
    page = text(desk.get(response.headers["Location"]))
    assert "An appointment can be marked no show once it has started." in page
    assert 'class="flash flash-error" role="alert"' in page
    assert appointment(database, appointment_id).status == "booked"


def test_a_finished_appointment_cannot_be_checked_in_again(desk, booked, database, frozen):
    appointment_id = booked(local("2026-11-23", "10:00"))
    frozen.move_to(local("2026-11-23", "11:30"))
    login(desk)  # hours later: the console signed out after 30 idle minutes
    desk.post(f"/staff/appointments/{appointment_id}/status", data={"status": "completed"})

    desk.post(f"/staff/appointments/{appointment_id}/status", data={"status": "checked_in"})

    assert "An appointment that is completed cannot become checked in." in flashed(desk)
    assert appointment(database, appointment_id).status == "completed"


def test_cancelling_needs_a_reason_and_frees_the_time(desk, booked, database, clinic):
    appointment_id = booked(TUESDAY_10)
    slots_page = (
        f"/staff/book?service={clinic.initial_id}&location={clinic.location_id}"
        f"&practitioner={clinic.practitioner_ids[0]}&date=2026-11-24"
    )
    assert 'value="2026-11-24T15:00Z"' not in text(desk.get(slots_page))

    desk.post(f"/staff/appointments/{appointment_id}/cancel", data={"reason": "  "})
    assert appointment(database, appointment_id).status == "booked"
    assert "Give a reason" in flashed(desk)

    desk.post(f"/staff/appointments/{appointment_id}/cancel", data={"reason": "Patient phoned: unwell"})

    cancelled = appointment(database, appointment_id)
    assert (cancelled.status, cancelled.cancelled_by, cancelled.cancel_reason) == (
        "cancelled",
        "staff",
        "Patient phoned: unwell",
    )
    assert 'value="2026-11-24T15:00Z"' in text(desk.get(slots_page))


def test_the_messages_table_lists_every_outbox_row_with_its_error(desk, booked, database):
    appointment_id = booked(local("2026-11-26", "10:00"))
    with database.unit_of_work() as s:
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.appointment_id == appointment_id)))
        failed = next(r for r in rows if r.channel == "sms")
        failed.status, failed.error_code = "failed", "21211"
        failed.error = "The 'To' number is not a valid phone number."
        failed.provider_id = "SM0123456789abcdef0123456789abcdef"
    assert len(rows) >= 3, [(r.kind, r.channel) for r in rows]  # confirmations and reminders

    page = text(desk.get(f"/staff/appointments/{appointment_id}"))

    table = page[page.index('<table class="data messages">') : page.index("</table>", page.index("data messages"))]
    body_rows = re.findall(r"<tr class=\"msg-(\w+)\">(.*?)</tr>", table, re.S)
    assert len(body_rows) == len(rows)
    assert sorted(status for status, _ in body_rows) == sorted(r.status for r in rows)
    failed_row = next(cells for status, cells in body_rows if status == "failed")
    assert "21211" in failed_row and "not a valid phone number" in failed_row
    assert "SM0123456789abcdef0123456789abcdef" in failed_row
    assert "(416) 555-0142" in failed_row
    for row in rows:
        assert row.kind in table


def test_an_unknown_appointment_is_a_404_page(desk):
    response = desk.get("/staff/appointments/999999")

    assert response.status_code == 404
    assert "Not found" in text(response)


def test_staff_reschedule_lists_free_times_and_moves_the_appointment(desk, booked, database):
    appointment_id = booked(TUESDAY_10)
    page = text(desk.get(f"/staff/appointments/{appointment_id}/reschedule"))
    assert 'value="2026-11-24T15:00Z"' not in page  # its own time is not offered
    assert 'value="2026-11-25T14:00Z"' in page  # Wednesday 09:00

    response = desk.post(f"/staff/appointments/{appointment_id}/reschedule", data={"start": "2026-11-25T14:00Z"})

    assert response.headers["Location"] == f"/staff/appointments/{appointment_id}"
    assert appointment(database, appointment_id).start_at == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert "Moved to Wed 25 Nov 2026, 09:00." in text(desk.get(response.headers["Location"]))


def test_a_reschedule_to_a_time_that_is_not_free_is_an_error_message(desk, booked, database):
    appointment_id = booked(TUESDAY_10)

    response = desk.post(f"/staff/appointments/{appointment_id}/reschedule", data={"start": "2026-11-25T03:00Z"})

    assert response.headers["Location"] == f"/staff/appointments/{appointment_id}/reschedule"
    assert "That time is not available for booking." in text(desk.get(response.headers["Location"]))
    assert appointment(database, appointment_id).start_at == TUESDAY_10


# --- practitioners see only their own -------------------------------------------------------------


def test_a_practitioner_cannot_see_or_change_another_practitioners_appointment(physio, booked, database):
    daniels = booked(TUESDAY_10, practitioner=1)

    assert physio.get(f"/staff/appointments/{daniels}").status_code == 404
    assert physio.post(f"/staff/appointments/{daniels}/status", data={"status": "confirmed"}).status_code == 404
    assert physio.post(f"/staff/appointments/{daniels}/cancel", data={"reason": "x"}).status_code == 404
    assert appointment(database, daniels).status == "booked"


def test_a_practitioner_sees_and_manages_only_their_own_day(physio, booked, database):
    mine = booked(TUESDAY_10, practitioner=0)
    booked(TUESDAY_10, practitioner=1, first_name="Ben", email="ben@example.com", phone=None)

    page = text(physio.get("/staff/?date=2026-11-24"))
    assert "Ana Silva" in page and "Ben Silva" not in page
    assert "Daniel Okafor" not in page

    physio.post(f"/staff/appointments/{mine}/status", data={"status": "confirmed"})
    assert appointment(database, mine).status == "confirmed"


def test_a_practitioner_finds_only_their_own_patients(physio, booked):
    booked(TUESDAY_10, practitioner=1, first_name="Ben", email="ben@example.com", phone="+14165550199")

    assert "Ben Silva" not in text(physio.get("/staff/patients?q=Silva"))


@pytest.mark.parametrize("path", ["/staff/inbox", "/staff/waitlist"])
def test_the_inbox_and_waitlist_are_for_the_desk_only(physio, path):
    assert physio.get(path).status_code == 403


# --- booking for a caller ---------------------------------------------------------------------------


def book_form(clinic, **changes) -> dict[str, str]:
    form = {
        "service": str(clinic.initial_id),
        "location": str(clinic.location_id),
        "practitioner": "",
        "date": "2026-11-24",
        "start": "2026-11-24T15:00Z",
        "first_name": "Gus",
        "last_name": "Moreau",
        "phone": "(416) 555-0177",
        "email": "",
        "language": "fr",
        "sms_consent": "yes",
        "reason": "Low back pain",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def test_staff_booking_creates_a_booking_with_source_staff(desk, database, clinic):
    page = text(desk.get(f"/staff/book?service={clinic.initial_id}&location={clinic.location_id}&date=2026-11-24"))
    assert 'value="2026-11-24T15:00Z"' in page

    response = desk.post("/staff/book", data=book_form(clinic))

    assert response.status_code == 302, text(response)
    with database.unit_of_work() as s:
        made = s.scalars(select(Appointment)).one()
        assert response.headers["Location"] == f"/staff/appointments/{made.id}"
        assert (made.source, made.start_at, made.language) == ("staff", TUESDAY_10, "fr")
        assert made.intake_reason == "Low back pain" and made.triage == "none"
        assert made.patient.phone == "+14165550177" and made.patient.sms_consent
        consent = s.scalars(select(ConsentEvent)).one()
        assert (consent.channel, consent.source) == ("sms", "staff")
    assert "Booked Gus Moreau on Tue 24 Nov 2026, 10:00" in text(desk.get(response.headers["Location"]))


def test_staff_booking_can_use_a_service_patients_cannot_book_online(desk, database, clinic):
    with database.unit_of_work() as s:
        s.get(Service, clinic.follow_up_id).online_bookable = False

    page = text(desk.get("/staff/book"))
    assert "Follow-up (30 min) – staff only" in page
    response = desk.post("/staff/book", data=book_form(clinic, service=str(clinic.follow_up_id)))

    assert response.status_code == 302
    with database.unit_of_work() as s:
        assert s.scalars(select(Appointment.service_id)).one() == clinic.follow_up_id


def test_staff_booking_with_a_red_flag_marks_the_booking_urgent(desk, database, clinic):
    desk.post("/staff/book", data=book_form(clinic, rf_bladder_bowel="yes"))

    with database.unit_of_work() as s:
        made = s.scalars(select(Appointment)).one()
        assert made.triage == "urgent" and made.red_flags["bladder_bowel"] is True


def test_staff_booking_names_every_field_to_fix_and_keeps_the_answers(desk, database, clinic):
    response = desk.post("/staff/book", data=book_form(clinic, first_name="", phone="12"))

    assert response.status_code == 422
    page = text(response)
    assert 'id="first_name-error"' in page and 'id="phone-error"' in page
    assert 'value="Moreau"' in page
    assert 'value="2026-11-24T15:00Z" checked' in page
    with database.unit_of_work() as s:
        assert s.scalars(select(Appointment)).first() is None


def test_staff_booking_of_a_just_taken_time_says_so(desk, booked, clinic):
    booked(TUESDAY_10, practitioner=0)
    booked(TUESDAY_10, practitioner=1, first_name="Ben", email="ben@example.com", phone=None)

    response = desk.post("/staff/book", data=book_form(clinic))

    assert response.status_code == 409
    assert "That time was just taken" in text(response)


def test_staff_booking_a_patient_who_is_already_booked_then_says_so_in_staff_words(desk, booked, clinic):
    booked(TUESDAY_10, practitioner=0)

    response = desk.post(
        "/staff/book",
        data=book_form(
            clinic,
            practitioner=str(clinic.practitioner_ids[1]),
            first_name="Ana",
            last_name="Silva",
            phone="416 555 0142",
        ),
    )

    assert response.status_code == 409
    assert "The patient already has another appointment at that time." in text(response)


def test_staff_booking_without_a_time_asks_for_one(desk, clinic):
    response = desk.post("/staff/book", data=book_form(clinic, start=None))

    assert response.status_code == 422
    assert "Choose a time." in text(response)


# --- patients ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["416 555 0142", "(416) 555-0142", "4165550142", "+1 416-555-0142"])
def test_patient_search_finds_a_phone_in_national_format(desk, booked, query):
    booked(TUESDAY_10)

    page = text(desk.get("/staff/patients", query_string={"q": query}))

    assert "Silva, Ana" in page


def test_patient_search_by_name_and_email(desk, booked):
    booked(TUESDAY_10)

    assert "Silva, Ana" in text(desk.get("/staff/patients?q=ana silva"))
    assert "Silva, Ana" in text(desk.get("/staff/patients?q=ANA@EXAMPLE"))
    assert "No patient matches" in text(desk.get("/staff/patients?q=zebra"))


def test_the_patient_page_shows_appointments_consent_history_and_opt_out(desk, booked, database):
    appointment_id = booked(TUESDAY_10)
    with database.unit_of_work() as s:
        patient_id = s.get(Appointment, appointment_id).patient_id
        handle_inbound(s, from_phone="+14165550142", body="STOP", provider_id="SMstop", now=NOW)

    page = text(desk.get(f"/staff/patients/{patient_id}"))

    assert "Opted out</span> since Mon 23 Nov 2026, 08:00" in page
    assert "Tue 24 Nov 2026, 10:00" in page
    ledger = page[page.index("Consent history") :]
    assert ledger.count("<tr>") == 4  # sms and email granted at booking, sms withdrawn by STOP
    assert "<strong>Withdrawn</strong>" in ledger and "sms reply" in ledger


# --- inbox and failed messages ------------------------------------------------------------------------


def test_the_inbox_lists_replies_needing_staff_likely_opt_outs_first_and_marks_them_handled(
    desk, booked, database, frozen
):
    booked(TUESDAY_10)
    frozen.move_to(NOW + timedelta(minutes=10))
    later = NOW + timedelta(minutes=5)
    with database.unit_of_work() as s:
        handle_inbound(s, from_phone="+14165550111", body="please stop texting me", provider_id="SM1", now=NOW)
        question = handle_inbound(
            s, from_phone="+14165550142", body="Can I bring my daughter?", provider_id="SM2", now=later
        )
        handle_inbound(s, from_phone="+14165550142", body="C", provider_id="SM3", now=later)  # handled by itself
        question_id = question.id

    page = text(desk.get("/staff/inbox"))

    assert page.index("please stop texting me") < page.index("Can I bring my daughter?")
    assert "Likely opt-out" in page
    assert ">C<" not in page
    assert re.search(r'class="count">2<', page)
    assert "Ana Silva" in page and "Tue 24 Nov 2026, 10:00" in page  # the matched patient and appointment

    desk.post(f"/staff/inbox/{question_id}/handled")

    page = text(desk.get("/staff/inbox"))
    assert "Can I bring my daughter?" not in page
    assert "Marked as handled." in page
    assert re.search(r'class="count">1<', page)
    with database.unit_of_work() as s:
        assert s.get(InboundMessage, question_id).handled_at == NOW + timedelta(minutes=10)


def test_staff_can_record_the_opt_out_a_free_text_reply_asks_for(desk, database):
    with database.unit_of_work() as s:
        reply_id = handle_inbound(
            s, from_phone="+14165550111", body="no more texts please", provider_id="SM9", now=NOW
        ).id

    desk.post(f"/staff/inbox/{reply_id}/opt-out")

    with database.unit_of_work() as s:
        assert s.get(SmsOptOut, "+14165550111").source == "staff"
        assert s.get(InboundMessage, reply_id).handled_at is not None


def test_marking_an_unknown_reply_handled_is_an_error_message(desk):
    desk.post("/staff/inbox/999999/handled")

    assert "There is no such message." in text(desk.get("/staff/inbox"))


def test_failed_messages_of_the_last_two_weeks_are_listed_newest_first(desk, booked, database):
    appointment_id = booked(TUESDAY_10)
    with database.unit_of_work() as s:
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.appointment_id == appointment_id)))
        for row, (when, error) in zip(
            rows,
            [(NOW - timedelta(days=1), "older failure"), (NOW, "newest failure"), (NOW - timedelta(days=20), "stale")],
            strict=False,
        ):
            row.status, row.error, row.updated_at = "failed", error, when

    page = text(desk.get("/staff/inbox"))

    failed = page[page.index("Failed messages") :]
    assert failed.index("newest failure") < failed.index("older failure")
    assert "stale" not in failed
    assert "Ana Silva" in failed


# --- waitlist -----------------------------------------------------------------------------------------------


def test_the_waitlist_lists_entries_and_staff_mark_offered_and_remove(desk, booked, database, clinic):
    appointment_id = booked(TUESDAY_10)
    with database.unit_of_work() as s:
        patient_id = s.get(Appointment, appointment_id).patient_id
        entry = WaitlistEntry(
            patient_id=patient_id,
            service_id=clinic.initial_id,
            location_id=clinic.location_id,
            earliest_date=NOW.date(),
            latest_date=NOW.date() + timedelta(days=7),
            notes="Mornings only",
        )
        s.add(entry)
        s.flush()
        entry_id = entry.id

    page = text(desk.get("/staff/waitlist"))
    assert "Ana Silva" in page and "Mornings only" in page and "Waiting" in page

    desk.post(f"/staff/waitlist/{entry_id}/offered")
    assert "Marked as offered to Ana Silva." in text(desk.get("/staff/waitlist"))
    desk.post(f"/staff/waitlist/{entry_id}/offered")
    assert "This waitlist entry is offered, not waiting." in text(desk.get("/staff/waitlist"))

    desk.post(f"/staff/waitlist/{entry_id}/remove")

    with database.unit_of_work() as s:
        assert s.get(WaitlistEntry, entry_id).status == "removed"
    assert "Nobody is waiting." in text(desk.get("/staff/waitlist"))


# --- the pages themselves -------------------------------------------------------------------------------


def test_console_pages_are_private_and_run_only_the_sites_own_script_files(desk):
    response = desk.get("/staff/")

    assert response.headers["Cache-Control"] == "no-store"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", text(response), re.S)
    assert scripts and all('src="/static/js/' in attributes and not body.strip() for attributes, body in scripts)


def test_every_form_of_the_console_carries_a_csrf_token(desk, booked, database):
    appointment_id = booked(TUESDAY_10)
    with database.unit_of_work() as s:
        handle_inbound(s, from_phone="+14165550142", body="Question?", provider_id="SMq", now=NOW)

    for path in ("/staff/", f"/staff/appointments/{appointment_id}", "/staff/book", "/staff/inbox"):
        page = text(desk.get(path))
        for form in re.findall(r'<form method="post".*?</form>', page, re.S):
            assert 'name="csrf_token"' in form, (path, form[:120])
