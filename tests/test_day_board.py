"""The live day board, moves and the day sheet, as the front desk meets them.

- The board's fragment answers 304 while nothing changed and the new board when anything did:
  a booking through the API, a patient confirming by text, a change whose ``updated_at`` is
  older than the last one seen; the day page embeds the same ETag, so its first poll is a 304.
- The board is a time grid that shows gaps; free rows open the booking page for that time.
- Moves to another practitioner and location send the normal reschedule message; a time
  outside the free times needs a reason (recorded, audited) and is never over another visit,
  also when the database has to say no.
- The day sheet: one page per practitioner with the staff-only notes; its reading is audited.
- A practitioner sees only their own column; polling does not keep a sign-in alive.
- The statement count of the day view does not grow with its appointments.

Time is frozen at Monday 2026-11-23 08:00 in Toronto (``tests.console_fixtures``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import event, insert, select, update

from booking_service.audit.models import AuditEvent
from booking_service.clinic.models import Location, Practitioner, Service, WorkingHours
from booking_service.clinic.queries import get_clinic
from booking_service.config import Settings
from booking_service.errors import SlotTaken
from booking_service.messaging.rendering import render
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from booking_service.scheduling import tokens
from booking_service.scheduling.board import day_change_token
from booking_service.scheduling.models import Appointment
from booking_service.usecases import booking
from booking_service.usecases.replies import handle_inbound
from tests.conftest import NOW, SECRET, local
from tests.console_fixtures import TUESDAY_10, appointment, login, text
from tests.test_api_public import booking_body

pytest_plugins = ["tests.console_fixtures"]

TUESDAY = "2026-11-24"


def fragment_url(clinic, day: str = TUESDAY) -> str:
    return f"/staff/day/fragment?date={day}&location_id={clinic.location_id}"


def etag_of(response) -> str:
    return response.headers["ETag"].strip('"')


def flash_after(client, response) -> str:
    return text(client.get(response.headers["Location"]))


# --- live updates: ETag and 304 ---------------------------------------------------------------------


def test_the_fragment_is_a_304_until_a_booking_made_through_the_api_changes_it(desk, console_app, clinic, booked):
    booked(TUESDAY_10)
    first = desk.get(fragment_url(clinic))
    assert first.status_code == 200
    assert "Ana Silva" in text(first) and "<html" not in text(first)  # the board alone
    tag = etag_of(first)

    unchanged = desk.get(fragment_url(clinic), headers={"If-None-Match": f'"{tag}"'})
    assert unchanged.status_code == 304 and unchanged.get_data() == b""
    assert etag_of(unchanged) == tag

    api = console_app.test_client()
    made = api.post(
        "/api/v1/appointments",
        json=booking_body(
            clinic,
            local(TUESDAY, "14:00"),
            practitioner_id=clinic.practitioner_ids[1],
            first_name="Zoe",
            email="zoe@example.com",
            phone="+14165550111",
        ),
    )
    assert made.status_code == 201

    changed = desk.get(fragment_url(clinic), headers={"If-None-Match": f'"{tag}"'})
    assert changed.status_code == 200
    assert etag_of(changed) != tag
    assert "Zoe Silva" in text(changed)


def test_the_day_page_carries_the_fragments_etag_so_its_first_poll_is_a_304(desk, clinic, booked):
    booked(TUESDAY_10)
    page = text(desk.get(f"/staff/?date={TUESDAY}"))
    tag = re.search(r'data-etag="([0-9a-f]+)"', page).group(1)
    live_url = re.search(r'data-live-url="([^"]+)"', page).group(1).replace("&amp;", "&")

    assert live_url == fragment_url(clinic)
    assert desk.get(live_url, headers={"If-None-Match": f'"{tag}"'}).status_code == 304


def test_a_patient_confirming_by_text_changes_the_board(desk, database, clinic, booked):
    booked(TUESDAY_10)
    tag = etag_of(desk.get(fragment_url(clinic)))

    with database.unit_of_work() as s:
        handle_inbound(s, from_phone="+14165550142", body="C", provider_id="SMc1", now=NOW)

    changed = desk.get(fragment_url(clinic), headers={"If-None-Match": f'"{tag}"'})
    assert changed.status_code == 200
    board = text(changed)
    assert "✓ confirmed" in board and "? unconfirmed</span>" not in board.split("<table", 1)[1]


def test_a_change_carrying_an_older_updated_at_still_changes_the_token(database, clinic, booked):
    """Two transactions may commit out of the order of their ``now``: the revision sum sees it."""
    appointment_id = booked(TUESDAY_10)
    booked(local(TUESDAY, "14:00"), first_name="Ben", email="ben@example.com", phone="+14165550199")
    with database.unit_of_work() as s:
        location = s.get(Location, clinic.location_id)
        before = day_change_token(s, datetime(2026, 11, 24).date(), location=location)
        s.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(status="confirmed", updated_at=NOW - timedelta(hours=1))
        )
        after = day_change_token(s, datetime(2026, 11, 24).date(), location=location)
    assert before != after
    assert after[1] == before[1] + 1  # the revision sum


def test_hours_time_off_and_closures_change_the_token(desk, admin, clinic):
    tag = etag_of(desk.get(fragment_url(clinic)))
    form = {
        "practitioner": str(clinic.practitioner_ids[0]),
        "location": str(clinic.location_id),
        "start_date": TUESDAY,
        "start_time": "13:00",
        "end_date": TUESDAY,
        "end_time": "17:00",
        "reason": "Course",
    }
    assert desk.post("/staff/time-off", data=form).status_code == 302

    changed = desk.get(fragment_url(clinic), headers={"If-None-Match": f'"{tag}"'})
    assert changed.status_code == 200
    assert "Time off" in text(changed)


# --- the grid ----------------------------------------------------------------------------------------


def test_the_board_is_a_time_grid_with_gaps_breaks_service_colours_and_marks(desk, database, clinic, booked):
    urgent = booked(TUESDAY_10, red_flags={"leg_weakness": True})
    booked(
        local(TUESDAY, "14:00"),
        practitioner=1,
        service=clinic.follow_up_id,
        first_name="Ben",
        email="ben@example.com",
        phone="+14165550199",
    )
    board = text(desk.get(fragment_url(clinic)))

    rows = re.findall(r'<th scope="row" class="time"><time datetime="[^"]+">(\d\d:\d\d)</time>', board)
    assert rows[0] == "09:00" and rows[-1] == "16:45" and len(rows) == 32  # every 15 minutes
    assert '<th scope="col" id="prac-' in board and "Maya Chen" in board and "Daniel Okafor" in board
    # Maya's 10:00-11:00 assessment spans four rows, in the service's colour, named in the legend.
    assert re.search(r'<td rowspan="4" class="cell cell-visits svc-\d"', board)
    assert '<li><span class="swatch svc-' in board and ">Initial assessment</li>" in board
    assert board.count("Urgent triage") == 1 and "? unconfirmed" in board
    # Gaps: 09:00-10:00 is an hour free before Maya's visit; lunch is a break; the follow-up's buffer.
    assert "60 min free" in board
    assert board.count('class="cell cell-break"') == 2
    assert "Buffer" in board
    assert appointment(database, urgent).triage == "urgent"


def test_a_free_row_opens_the_booking_page_for_that_practitioner_place_and_time(desk, clinic):
    board = text(desk.get(fragment_url(clinic)))
    maya = clinic.practitioner_ids[0]
    link = re.search(rf'href="(/staff/book\?[^"]*practitioner={maya}&amp;start=2026-11-24T14:00Z)"', board)
    assert link is not None, "a link for Maya at 09:00"
    assert "Book 09:00 with Maya Chen" in board

    page = text(desk.get(link.group(1).replace("&amp;", "&")))
    assert re.search(r'value="2026-11-24T14:00Z" checked', page)
    assert f'<option value="{maya}" selected>' in page


def test_a_free_row_that_is_no_free_time_for_the_service_fills_in_the_typed_time(desk, clinic):
    # 16:30: a 60-minute assessment does not fit before 17:00, so it is typed in, not chosen.
    maya = clinic.practitioner_ids[0]
    page = text(
        desk.get(
            f"/staff/book?location={clinic.location_id}&date={TUESDAY}&practitioner={maya}&start=2026-11-24T21:30Z"
        )
    )
    assert 'name="custom_time" type="time" step="300" value="16:30"' in page
    assert 'name="custom_date" type="date" value="2026-11-24"' in page


def test_late_cancellations_stay_listed_under_the_board(desk, database, clinic, booked, frozen):
    appointment_id = booked(TUESDAY_10)
    frozen.move_to(TUESDAY_10 - timedelta(hours=3))
    login(desk)
    with database.unit_of_work() as s:
        booking.cancel(s, appointment_id, now=TUESDAY_10 - timedelta(hours=3), by_patient=True)

    board = text(desk.get(fragment_url(clinic)))
    assert "Late cancellations" in board and "Late cancellation</span>" in board
    assert "Ana Silva" in board.split('id="cancelled-title"', 1)[1]


def test_check_in_from_the_board_returns_to_the_board(desk, database, clinic, booked, frozen):
    appointment_id = booked(TUESDAY_10)
    frozen.move_to(TUESDAY_10 - timedelta(minutes=30))
    login(desk)
    board = text(desk.get(fragment_url(clinic)))
    assert f'id="checkin-{appointment_id}"' in board
    here = re.search(r'name="next" value="([^"]+)"', board).group(1).replace("&amp;", "&")

    response = desk.post(f"/staff/appointments/{appointment_id}/status", data={"status": "checked_in", "next": here})
    assert response.headers["Location"] == here
    assert appointment(database, appointment_id).status == "checked_in"


# --- moves --------------------------------------------------------------------------------------------


@pytest.fixture
def uptown(database, clinic):
    """A second location where Daniel works on Saturdays 09:00-13:00."""
    with database.unit_of_work() as s:
        place = Location(name="Uptown", address="2300 Yonge St", timezone="America/Toronto")
        s.add(place)
        daniel = s.get(Practitioner, clinic.practitioner_ids[1])
        daniel.locations.append(place)
        s.flush()
        s.add(
            WorkingHours(
                practitioner_id=daniel.id, location_id=place.id, weekday=5, start_time=time(9), end_time=time(13)
            )
        )
        return place.id


def reschedule_sms(database, appointment_id) -> str:
    with database.unit_of_work() as s:
        row = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.appointment_id == appointment_id,
                OutboxMessage.kind == "reschedule",
                OutboxMessage.channel == "sms",
            )
        ).one()
        settings = Settings(PUBLIC_BASE_URL="http://testserver.local", SECRET_KEY=SECRET)
        return render(s, row, settings=settings, clinic=get_clinic(s), now=NOW).body


def audit_detail(database, action: str, resource_id: int) -> dict:
    with database.unit_of_work() as s:
        event_row = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.resource_id == resource_id)
            .order_by(AuditEvent.id.desc())
        ).first()
        return dict(event_row.detail)


def test_moving_to_a_colleague_at_another_location_tells_the_patient(desk, database, clinic, booked, uptown):
    appointment_id = booked(TUESDAY_10)
    daniel = clinic.practitioner_ids[1]
    page = text(desk.get(f"/staff/appointments/{appointment_id}/reschedule?location={uptown}&practitioner={daniel}"))
    assert "Free times with Daniel Okafor at Uptown" in page
    assert 'value="2026-11-28T14:00Z"' in page  # Saturday 09:00

    response = desk.post(
        f"/staff/appointments/{appointment_id}/reschedule",
        data={"location": uptown, "practitioner": daniel, "start": "2026-11-28T14:00Z"},
    )

    assert response.headers["Location"] == f"/staff/appointments/{appointment_id}"
    assert "Moved to Sat 28 Nov 2026, 09:00. Now with Daniel Okafor at Uptown." in flash_after(desk, response)
    moved = appointment(database, appointment_id)
    assert (moved.practitioner_id, moved.location_id) == (daniel, uptown)
    assert moved.start_at == datetime(2026, 11, 28, 14, 0, tzinfo=UTC) and moved.outside_hours_reason is None
    sms = reschedule_sms(database, appointment_id)
    assert "moved to" in sms and "Uptown" in sms
    detail = audit_detail(database, "appointment.reschedule", appointment_id)
    assert detail["from_practitioner_id"] == clinic.practitioner_ids[0] and detail["to_practitioner_id"] == daniel
    assert (detail["from_location_id"], detail["to_location_id"]) == (clinic.location_id, uptown)
    # The move shows on both boards: gone from Downtown's Tuesday, on Uptown's Saturday.
    assert "Ana Silva" not in text(desk.get(fragment_url(clinic)))
    assert "Ana Silva" in text(desk.get(f"/staff/day/fragment?date=2026-11-28&location_id={uptown}"))


def test_a_practitioners_visit_can_be_handed_to_a_colleague_at_the_same_time(desk, database, clinic, booked):
    """A practitioner off for the afternoon: their patients keep their times with a colleague."""
    appointment_id = booked(TUESDAY_10)
    daniel = clinic.practitioner_ids[1]
    own = text(desk.get(f"/staff/appointments/{appointment_id}/reschedule?date={TUESDAY}"))
    assert 'value="2026-11-24T15:00Z"' not in own  # its own time with its own practitioner: no move
    page = text(desk.get(f"/staff/appointments/{appointment_id}/reschedule?practitioner={daniel}&date={TUESDAY}"))
    assert "Free times with Daniel Okafor at Downtown" in page
    assert 'value="2026-11-24T15:00Z"' in page  # the same 10:00, with Daniel

    response = desk.post(
        f"/staff/appointments/{appointment_id}/reschedule",
        data={"practitioner": daniel, "start": "2026-11-24T15:00Z"},
    )

    assert "Moved to Tue 24 Nov 2026, 10:00. Now with Daniel Okafor at Downtown." in flash_after(desk, response)
    moved = appointment(database, appointment_id)
    assert (moved.practitioner_id, moved.start_at) == (daniel, TUESDAY_10)
    assert "moved to" in reschedule_sms(database, appointment_id)


def test_a_colleague_who_does_not_offer_the_service_there_is_refused(desk, database, clinic, booked, uptown):
    appointment_id = booked(TUESDAY_10)
    response = desk.post(
        f"/staff/appointments/{appointment_id}/reschedule",
        data={"location": uptown, "practitioner": clinic.practitioner_ids[0], "start": "2026-11-28T14:00Z"},
    )
    assert "does not offer this service at this location" in flash_after(desk, response)
    assert appointment(database, appointment_id).location_id == clinic.location_id


def test_a_time_outside_working_hours_needs_a_reason_then_is_recorded_and_audited(desk, database, clinic, booked):
    appointment_id = booked(TUESDAY_10)
    typed = {"custom_date": TUESDAY, "custom_time": "07:30"}

    refused = desk.post(f"/staff/appointments/{appointment_id}/reschedule", data=typed)
    words = flash_after(desk, refused)
    assert "This time is not one of Maya Chen&#39;s free times. To book it anyway, say why" in words
    assert appointment(database, appointment_id).start_at == TUESDAY_10

    moved = desk.post(
        f"/staff/appointments/{appointment_id}/reschedule",
        data={**typed, "outside_hours_reason": "Can only come before work"},
    )
    assert "Moved to Tue 24 Nov 2026, 07:30." in flash_after(desk, moved)
    row = appointment(database, appointment_id)
    assert row.start_at == local(TUESDAY, "07:30") and row.outside_hours_reason == "Can only come before work"
    assert audit_detail(database, "appointment.reschedule", appointment_id)["outside_hours"] is True
    assert "moved to" in reschedule_sms(database, appointment_id)
    board = text(desk.get(fragment_url(clinic)))
    assert "Outside hours</span>" in board and ">07:00</time>" in board  # the grid grows to show it
    assert "Can only come before work" in text(desk.get(f"/staff/appointments/{appointment_id}"))


def test_outside_hours_is_never_over_another_appointment(desk, database, clinic, booked):
    appointment_id = booked(TUESDAY_10)
    booked(local(TUESDAY, "16:00"), practitioner=1, first_name="Ben", email="ben@example.com", phone=None)
    # 16:30 with Daniel: an hour that runs past his hours (so only with a reason) and over Ben.
    refused = desk.post(
        f"/staff/appointments/{appointment_id}/reschedule",
        data={
            "practitioner": clinic.practitioner_ids[1],
            "custom_date": TUESDAY,
            "custom_time": "16:30",
            "outside_hours_reason": "Evening only",
        },
    )
    assert "Daniel Okafor already has an appointment or time off then" in flash_after(desk, refused)
    assert appointment(database, appointment_id).practitioner_id == clinic.practitioner_ids[0]


def test_the_database_still_refuses_an_overlap_that_lands_after_the_check(database, clinic, booked):
    """What the Python check cannot see: a colleague's booking written between the move's check
    and its write. The row is written in the move's own transaction just before its flush (the
    same state a concurrent commit would leave); the overlap guard refuses the move (an
    exclusion constraint on PostgreSQL, a trigger on SQLite) and the move is SlotTaken."""
    appointment_id = booked(TUESDAY_10)
    cy = booked(local("2026-11-25", "09:00"), first_name="Cy", email="cy@example.com", phone=None)
    daniel = clinic.practitioner_ids[1]
    evening = local(TUESDAY, "18:00")
    with database.unit_of_work() as s:
        cy_patient = s.get(Appointment, cy).patient_id

    session = database.session()
    fired = []

    def colleague_books_first(flushing, _context, _instances):
        if fired or not any(isinstance(o, Appointment) for o in flushing.dirty):
            return
        fired.append(True)
        nonce = tokens.new_nonce()
        flushing.connection().execute(
            insert(Appointment.__table__).values(
                patient_id=cy_patient,
                practitioner_id=daniel,
                location_id=clinic.location_id,
                service_id=clinic.initial_id,
                start_at=evening,
                end_at=evening + timedelta(hours=1),
                busy_until=evening + timedelta(hours=1),
                status="booked",
                source="staff",
                language="en",
                triage="none",
                late_cancellation=False,
                ics_sequence=0,
                manage_nonce=nonce,
                manage_token_hash=tokens.token_hash(tokens.manage_token(SECRET, nonce)),
                created_at=NOW,
                updated_at=NOW,
            )
        )

    event.listen(session, "before_flush", colleague_books_first)
    try:
        with pytest.raises(SlotTaken):
            booking.reschedule(
                session,
                appointment_id,
                evening,
                now=NOW,
                by_patient=False,
                practitioner_id=daniel,
                outside_hours_reason="Evening only",
            )
    finally:
        session.rollback()
        session.close()
    assert fired == [True]
    moved = appointment(database, appointment_id)
    assert (moved.practitioner_id, moved.start_at) == (clinic.practitioner_ids[0], TUESDAY_10)


def test_staff_book_outside_the_free_times_with_a_reason_and_one_practitioner(desk, database, clinic):
    form = {
        "service": str(clinic.follow_up_id),
        "location": str(clinic.location_id),
        "practitioner": str(clinic.practitioner_ids[0]),
        "date": TUESDAY,
        "custom_date": TUESDAY,
        "custom_time": "18:00",
        "first_name": "Gus",
        "last_name": "Moreau",
        "phone": "(416) 555-0177",
        "language": "en",
    }
    refused = desk.post("/staff/book", data=form)
    assert refused.status_code == 422
    assert "This time is not one of Maya Chen&#39;s free times" in text(refused)

    anyone = desk.post("/staff/book", data={**form, "practitioner": "", "outside_hours_reason": "Late shift"})
    assert anyone.status_code == 422
    assert "Choose a practitioner: a time outside the free times is booked with one person." in text(anyone)

    booked_response = desk.post("/staff/book", data={**form, "outside_hours_reason": "Late shift worker"})
    assert booked_response.status_code == 302
    with database.unit_of_work() as s:
        row = s.scalars(select(Appointment).join(Patient).where(Patient.first_name == "Gus")).one()
        assert row.start_at == local(TUESDAY, "18:00") and row.outside_hours_reason == "Late shift worker"
    assert audit_detail(database, "appointment.book", row.id)["outside_hours"] is True


# --- the day sheet ------------------------------------------------------------------------------------


def test_the_day_sheet_prints_one_page_per_practitioner_with_notes_and_flags(desk, database, clinic, booked):
    urgent = booked(TUESDAY_10, red_flags={"saddle_numbness": True})
    booked(local(TUESDAY, "14:00"), practitioner=1, first_name="Ben", email="ben@example.com", phone=None)
    with database.unit_of_work() as s:
        s.get(Appointment, urgent).intake_reason = "Low back pain after lifting"
        s.get(Appointment, urgent).staff_notes = "Bring the MRI report"

    response = desk.get(f"/staff/day/sheet?date={TUESDAY}&location_id={clinic.location_id}")
    page = text(response)

    assert response.status_code == 200
    pages = page.split('<section class="sheet-page"')[1:]
    assert len(pages) == 2
    maya, daniel = pages
    assert "Maya Chen" in maya and "Ana Silva" in maya and "Ben Silva" not in maya
    assert ">10:00</time>–<time" in maya and "Initial assessment" in maya and "Not confirmed" in maya
    assert "URGENT triage" in maya and "Numbness in the groin" in maya
    assert "Low back pain after lifting" in maya and "Bring the MRI report" in maya
    assert "Daniel Okafor" in daniel and "Ben Silva" in daniel
    stylesheet = desk.application.static_folder + "/staff.css"
    with open(stylesheet, encoding="utf-8") as css:
        print_rules = css.read().split("@media print", 1)[1]
    assert ".sheet-page { break-after: page;" in print_rules
    with database.unit_of_work() as s:
        read = s.scalars(select(AuditEvent).where(AuditEvent.action == "schedule.print")).one()
        assert read.detail == {"date": TUESDAY, "appointments": 2}


# --- who sees what ------------------------------------------------------------------------------------


def test_a_practitioner_sees_only_their_own_column_live_and_on_the_sheet(physio, clinic, booked):
    booked(TUESDAY_10, practitioner=0)
    booked(local(TUESDAY, "14:00"), practitioner=1, first_name="Ben", email="ben@example.com", phone=None)

    for path in (fragment_url(clinic), f"/staff/day/sheet?date={TUESDAY}&location_id={clinic.location_id}"):
        page = text(physio.get(path))
        assert "Ana Silva" in page and "Maya Chen" in page
        assert "Ben Silva" not in page and "Daniel Okafor" not in page


def test_a_practitioner_cannot_hand_their_appointment_to_a_colleague(physio, database, clinic, booked):
    mine = booked(TUESDAY_10, practitioner=0)
    response = physio.post(
        f"/staff/appointments/{mine}/reschedule",
        data={"practitioner": clinic.practitioner_ids[1], "start": "2026-11-25T14:00Z"},
    )
    assert response.status_code == 404
    assert appointment(database, mine).practitioner_id == clinic.practitioner_ids[0]


def test_an_unknown_location_is_a_404_for_the_fragment_and_the_sheet(desk, clinic):
    assert desk.get("/staff/day/fragment?date=2026-11-24&location_id=999").status_code == 404
    assert desk.get("/staff/day/sheet?date=2026-11-24&location_id=999").status_code == 404


def test_polling_does_not_keep_a_sign_in_alive(desk, clinic, frozen):
    frozen.move_to(NOW + timedelta(minutes=20))
    assert desk.get(fragment_url(clinic)).status_code == 200  # polls, but is not activity
    frozen.move_to(NOW + timedelta(minutes=31))

    signed_out = desk.get(fragment_url(clinic))
    assert signed_out.status_code == 302 and "/staff/login" in signed_out.headers["Location"]


def test_a_real_page_view_does_keep_it_alive(desk, clinic, frozen):
    frozen.move_to(NOW + timedelta(minutes=20))
    assert desk.get(f"/staff/?date={TUESDAY}").status_code == 200
    frozen.move_to(NOW + timedelta(minutes=45))
    assert desk.get(fragment_url(clinic)).status_code == 200


# --- cost: statements do not grow with rows -----------------------------------------------------------


def _fill_day(database, clinic, count: int, first_index: int = 0) -> None:
    """``count`` 30-minute visits on Tuesday over eight practitioners (09:00-12:00, 13:00-17:00),
    written directly: this test is about reading them."""
    with database.unit_of_work() as s:
        people = list(s.scalars(select(Practitioner).order_by(Practitioner.id)))
        service = s.get(Service, clinic.follow_up_id)
        starts = [local(TUESDAY, f"{h:02d}:{m:02d}") for h in (9, 10, 11, 13, 14, 15, 16) for m in (0, 30)]
        places = [(p, start) for start in starts for p in people]
        for index in range(first_index, first_index + count):
            practitioner, start = places[index]
            patient = Patient(first_name=f"P{index}", last_name="Count", email=f"p{index}@example.com")
            s.add(patient)
            s.flush()
            nonce = tokens.new_nonce()
            s.add(
                Appointment(
                    patient_id=patient.id,
                    practitioner_id=practitioner.id,
                    location_id=clinic.location_id,
                    service_id=service.id,
                    start_at=start,
                    end_at=start + timedelta(minutes=30),
                    busy_until=start + timedelta(minutes=30),
                    status="booked",
                    source="staff",
                    manage_nonce=nonce,
                    manage_token_hash=tokens.token_hash(tokens.manage_token(SECRET, nonce)),
                )
            )


def _statements(app, client, path: str, **headers) -> tuple[int, object]:
    engine = app.extensions["database"].engine
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if statement != "BEGIN":  # SQLite's explicit BEGIN (db.py), not a query
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(path, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(seen), response


def test_the_day_view_runs_as_many_statements_for_100_appointments_as_for_10(desk, console_app, database, clinic):
    with database.unit_of_work() as s:
        location = s.get(Location, clinic.location_id)
        for n in range(6):
            extra = Practitioner(first_name=f"Extra{n}", last_name="Physio", profession="Physiotherapist")
            extra.locations = [location]
            s.add(extra)
            s.flush()
            s.add(
                WorkingHours(
                    practitioner_id=extra.id,
                    location_id=location.id,
                    weekday=1,
                    start_time=time(9),
                    end_time=time(17),
                    break_start=time(12),
                    break_end=time(13),
                )
            )
    pages = {"day": f"/staff/?date={TUESDAY}", "fragment": fragment_url(clinic)}

    _fill_day(database, clinic, 10)
    desk.get(pages["day"])  # the first request after a catalogue change reloads the catalogue (clinic.cache)
    ten = {name: _statements(console_app, desk, path) for name, path in pages.items()}
    _fill_day(database, clinic, 90, first_index=10)
    hundred = {name: _statements(console_app, desk, path) for name, path in pages.items()}

    for name in pages:
        (few, small), (many, big) = ten[name], hundred[name]
        assert small.status_code == big.status_code == 200
        assert text(big).count('class="appt-link"') == 100
        assert many == few, (name, few, many)
    tag = etag_of(hundred["fragment"][1])
    unchanged, response = _statements(console_app, desk, fragment_url(clinic), **{"If-None-Match": f'"{tag}"'})
    assert response.status_code == 304
    # The sign-in (session, user, practitioner link), the location, the clinic, the change token.
    assert unchanged <= 6, unchanged
