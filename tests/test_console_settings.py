"""Schedule and settings in the staff console (weekly hours, time off, closures, clinic policy)
and the operations behind them, on SQLite and PostgreSQL.

Time is frozen at Monday 2026-11-23 08:00 in Toronto (13:00 UTC). The clinic of ``make_clinic``
has Maya Chen (practitioner 0, with a practitioner login) and Daniel Okafor working Monday to
Friday 09:00-17:00 with lunch 12:00-13:00 at Downtown. Slot checks go through the same code
the API uses (``find_slots``) or the API itself.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from booking_service.clinic import operations
from booking_service.clinic.models import ClinicSettings, Closure, Location, Practitioner, Service, TimeOff
from booking_service.clinic.models import WorkingHours as Hours
from booking_service.errors import ValidationFailed
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.queries import outside_weekly_hours
from booking_service.scheduling.slots import find_slots
from tests.conftest import local
from tests.console_fixtures import TUESDAY_10, appointment, flashed, login, text

pytest_plugins = ["tests.console_fixtures"]

TUESDAY = date(2026, 11, 24)
WEDNESDAY = date(2026, 11, 25)


def slot_starts(database, clinic, day, *, practitioner=0, service=None) -> list[str]:
    """Local HH:MM starts of one practitioner's free slots on a day (Downtown)."""
    with database.session() as s:
        found = find_slots(
            s,
            clinic=s.get(ClinicSettings, 1),
            service=s.get(Service, service or clinic.initial_id),
            location=s.get(Location, clinic.location_id),
            practitioners=[s.get(Practitioner, clinic.practitioner_ids[practitioner])],
            first_day=day,
            last_day=day,
            now=datetime.now(UTC),
        )
        return [slot.start.astimezone(local("2026-11-24", "00:00").tzinfo).strftime("%H:%M") for slot in found]


def hours_form(practitioner_id, location_id, days: dict[int, tuple]) -> dict:
    """The hours form as a browser posts it: one row per weekday, blank when not in ``days``
    (weekday -> (start, end) or (start, end, break_start, break_end))."""
    data = {"practitioner": practitioner_id, "location": location_id}
    for weekday in range(7):
        values = (*days.get(weekday, ()), "", "", "", "")[:4]
        data[f"rows.{weekday}.weekday"] = weekday
        for name, value in zip(("start", "end", "break_start", "break_end"), values, strict=True):
            data[f"rows.{weekday}.{name}"] = value
        data[f"rows.{weekday}.valid_from"] = data[f"rows.{weekday}.valid_until"] = ""
    return data


def policy_form(**overrides) -> dict:
    data = {
        "min_notice_minutes": "120",
        "horizon_days": "90",
        "slot_step_minutes": "15",
        "cancellation_window_hours": "24",
        "late_cancellation_policy": "record",
        "quiet_hours_start": "08:00",
        "quiet_hours_end": "20:00",
        "sms_daily_cap": "1",
        "sms_weekly_cap": "3",
        "brand_color": "#0f6e6e",
        "follow_up_prompt": "yes",
        "rule.0.channel": "email",
        "rule.0.kind": "days",
        "rule.0.amount": "2",
        "rule.0.at": "09:00",
        "rule.1.channel": "sms",
        "rule.1.kind": "hours",
        "rule.1.amount": "24",
        "rule.1.at": "",
        "rule.2.channel": "sms",
        "rule.2.kind": "hours",
        "rule.2.amount": "",
        "rule.2.at": "",
    }
    return {**data, **overrides}


def clinic_settings(database) -> ClinicSettings:
    with database.session() as s:
        return s.get(ClinicSettings, 1)


def hours_of(database, practitioner_id) -> list[tuple]:
    with database.session() as s:
        rows = s.scalars(select(Hours).where(Hours.practitioner_id == practitioner_id).order_by(Hours.weekday))
        return [(r.location_id, r.weekday, r.start_time, r.end_time, r.break_start, r.break_end) for r in rows]


@pytest.fixture
def uptown(database, clinic):
    """A second location in the same zone where Maya also works (no hours there yet)."""
    with database.unit_of_work() as s:
        location = Location(name="Uptown", address="2300 Yonge St", timezone="America/Toronto")
        s.add(location)
        maya = s.get(Practitioner, clinic.practitioner_ids[0])
        maya.locations.append(location)
        s.flush()
        return location.id


# --- weekly hours ------------------------------------------------------------------------------------


def test_saved_hours_change_the_slots_offered(desk, database, clinic):
    maya = clinic.practitioner_ids[0]

    response = desk.post("/staff/hours", data=hours_form(maya, clinic.location_id, {1: ("13:00", "15:00")}))

    assert response.status_code == 302
    assert "Saved the weekly hours of Maya Chen" in text(desk.get(response.headers["Location"]))
    assert hours_of(database, maya) == [(clinic.location_id, 1, time(13), time(15), None, None)]
    assert slot_starts(database, clinic, TUESDAY) == ["13:00", "13:15", "13:30", "13:45", "14:00"]
    assert slot_starts(database, clinic, WEDNESDAY) == []
    assert slot_starts(database, clinic, WEDNESDAY, practitioner=1) != []  # Daniel's hours are untouched


def test_booked_visits_the_new_hours_leave_out_are_listed_to_move_and_kept(desk, database, clinic, booked):
    morning = booked(TUESDAY_10)  # 10:00-11:00
    afternoon = booked(local("2026-11-24", "15:00"))  # 15:00-16:00
    maya = clinic.practitioner_ids[0]

    response = desk.post("/staff/hours", data=hours_form(maya, clinic.location_id, {1: ("13:00", "17:00")}))

    assert response.status_code == 302
    page = text(desk.get(response.headers["Location"]))
    assert "1 booked visit is now outside them" in page
    assert "Booked visits outside these hours (1)" in page
    assert f'href="/staff/appointments/{morning}"' in page
    assert f'href="/staff/appointments/{afternoon}"' not in page
    assert appointment(database, morning).status == "booked"  # kept: the desk moves it

    desk.post("/staff/hours", data=hours_form(maya, clinic.location_id, {1: ("09:00", "17:00")}))

    page = text(desk.get(f"/staff/hours?practitioner={maya}"))
    assert "Every booked visit there is within them" in page
    assert "Booked visits outside these hours" not in page


def _visit(session, clinic, start: datetime, *, minutes: int = 60, reason: str | None = None) -> int:
    """A booked visit of Maya at Downtown written directly (beyond the booking horizon)."""
    patient = Patient(first_name="Ana", last_name="Silva", email=f"ana{start:%m%d%H%M}@example.com")
    session.add(patient)
    session.flush()
    visit = Appointment(
        patient_id=patient.id,
        practitioner_id=clinic.practitioner_ids[0],
        location_id=clinic.location_id,
        service_id=clinic.initial_id,
        start_at=start,
        end_at=start + timedelta(minutes=minutes),
        busy_until=start + timedelta(minutes=minutes),
        outside_hours_reason=reason,
        manage_nonce=secrets.token_hex(16),
        manage_token_hash=secrets.token_hex(32),
    )
    session.add(visit)
    session.flush()
    return visit.id


def test_visits_outside_the_weekly_hours_are_found_in_local_time_across_a_dst_change(session, clinic):
    """Maya works Monday 09:00-17:00 (lunch 12:00-13:00). Toronto springs forward on 2027-03-14:
    09:00 is 14:00 UTC on the Monday before and 13:00 UTC on the Monday after."""
    inside_before = _visit(session, clinic, local("2027-03-08", "09:00"))
    inside_after = _visit(session, clinic, local("2027-03-15", "09:00"))
    too_early = _visit(session, clinic, local("2027-03-15", "08:00"), minutes=30)
    over_lunch = _visit(session, clinic, local("2027-03-15", "11:30"))
    on_sunday = _visit(session, clinic, local("2027-03-14", "10:00"))
    placed_on_purpose = _visit(session, clinic, local("2027-03-15", "18:00"), reason="Only time she can")

    found = outside_weekly_hours(session, clinic.practitioner_ids[0], clinic.location_id, now=datetime.now(UTC))

    assert [a.id for a in found] == [on_sunday, too_early, over_lunch]
    assert {inside_before, inside_after, placed_on_purpose}.isdisjoint(a.id for a in found)
    assert outside_weekly_hours(session, clinic.practitioner_ids[1], clinic.location_id, now=datetime.now(UTC)) == []


def test_the_hours_page_shows_each_weekday_with_the_stored_times(desk, clinic):
    page = text(desk.get(f"/staff/hours?practitioner={clinic.practitioner_ids[1]}"))

    assert "Weekly hours of Daniel Okafor" in page
    assert 'name="rows.0.start" value="09:00"' in page and 'name="rows.0.break_end" value="13:00"' in page
    assert 'name="rows.6.start" value=""' in page  # Sunday: not working, a blank row to fill in


def test_hours_overlapping_the_same_persons_hours_at_another_location_are_refused_with_a_field_error(
    desk, database, clinic, uptown
):
    maya = clinic.practitioner_ids[0]
    before = hours_of(database, maya)

    response = desk.post("/staff/hours", data=hours_form(maya, uptown, {0: ("16:00", "18:00")}))

    assert response.status_code == 422
    page = text(response)
    assert 'id="rows.0.start-error"' in page
    assert "Overlaps their hours at Downtown (09:00-17:00)" in page
    assert 'name="rows.0.start" value="16:00"' in page  # the answer is kept
    assert hours_of(database, maya) == before

    assert desk.post("/staff/hours", data=hours_form(maya, uptown, {0: ("17:00", "19:00")})).status_code == 302
    assert (uptown, 0, time(17), time(19), None, None) in hours_of(database, maya)


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([operations.HoursRow(0, time(17), time(9))], "rows.0.end"),
        ([operations.HoursRow(0, time(9), time(17), time(8), time(10))], "rows.0.break_start"),
        ([operations.HoursRow(0, time(9), time(17), time(12), None)], "rows.0.break_end"),
        ([operations.HoursRow(0, time(9), time(17), time(13), time(12))], "rows.0.break_end"),
        ([operations.HoursRow(2, time(9), time(12)), operations.HoursRow(2, time(11), time(15))], "rows.1.start"),
        (
            [operations.HoursRow(0, time(9), time(17), valid_from=date(2027, 2, 1), valid_until=date(2027, 1, 1))],
            "rows.0.valid_until",
        ),
    ],
    ids=["ends-before-start", "break-outside", "half-a-break", "break-backwards", "rows-overlap", "dates-reversed"],
)
def test_set_weekly_hours_names_the_bad_field(session, clinic, rows, field):
    with pytest.raises(ValidationFailed) as refused:
        operations.set_weekly_hours(session, clinic.practitioner_ids[0], clinic.location_id, rows)

    assert field in refused.value.fields


def test_rows_at_other_locations_with_separate_dates_do_not_clash(session, clinic, uptown):
    """Hours at two places on the same weekday are fine when their dates do not overlap."""
    maya = clinic.practitioner_ids[0]
    operations.set_weekly_hours(
        session,
        maya,
        clinic.location_id,
        [operations.HoursRow(0, time(9), time(17), valid_until=date(2026, 12, 31))],
    )

    saved = operations.set_weekly_hours(
        session, maya, uptown, [operations.HoursRow(0, time(9), time(17), valid_from=date(2027, 1, 1))]
    )

    assert [row.valid_from for row in saved] == [date(2027, 1, 1)]


def test_a_practitioner_sees_their_own_hours_but_cannot_change_anyones(physio, database, clinic):
    maya, daniel = clinic.practitioner_ids
    before = hours_of(database, daniel)

    own = physio.get("/staff/hours")
    assert own.status_code == 200
    assert "Weekly hours of Maya Chen" in text(own) and " disabled" in text(own)
    assert physio.get(f"/staff/hours?practitioner={daniel}").status_code == 404

    for practitioner in (daniel, maya):
        response = physio.post("/staff/hours", data=hours_form(practitioner, clinic.location_id, {}))
        assert response.status_code == 403
    assert hours_of(database, daniel) == before
    assert hours_of(database, maya) != []


# --- time off and closures ---------------------------------------------------------------------------


def test_time_off_removes_its_slots_and_lists_the_appointment_it_overlaps(desk, database, clinic, booked):
    appointment_id = booked(TUESDAY_10)
    assert "09:00" in slot_starts(database, clinic, TUESDAY, service=clinic.follow_up_id)

    response = desk.post(
        "/staff/time-off",
        data={
            "practitioner": clinic.practitioner_ids[0],
            "location": clinic.location_id,
            "start_date": "2026-11-24",
            "start_time": "09:00",
            "end_date": "",
            "end_time": "12:00",
            "reason": "Course",
        },
    )

    assert response.status_code == 302
    page = text(desk.get("/staff/time-off"))
    assert "1 appointment overlaps it" in page
    assert f'href="/staff/appointments/{appointment_id}"' in page
    with database.session() as s:
        (stored,) = s.scalars(select(TimeOff)).all()
        assert (stored.start_at, stored.end_at) == (
            datetime(2026, 11, 24, 14, tzinfo=UTC),  # 09:00 EST
            datetime(2026, 11, 24, 17, tzinfo=UTC),
        )
        assert s.get(Appointment, appointment_id).status == "booked"  # left for the desk to move
    starts = slot_starts(database, clinic, TUESDAY, service=clinic.follow_up_id)
    assert starts and all(start >= "13:00" for start in starts)

    desk.post(f"/staff/time-off/{stored.id}/remove")

    assert "09:00" in slot_starts(database, clinic, TUESDAY, service=clinic.follow_up_id)


def test_whole_day_time_off_runs_from_local_midnight_to_midnight(desk, database, clinic):
    desk.post(
        "/staff/time-off",
        data={
            "practitioner": clinic.practitioner_ids[1],
            "location": clinic.location_id,
            "start_date": "2026-11-25",
            "end_date": "2026-11-26",
            "whole_day": "yes",
        },
    )

    with database.session() as s:
        (stored,) = s.scalars(select(TimeOff)).all()
        assert (stored.start_at, stored.end_at) == (
            datetime(2026, 11, 25, 5, tzinfo=UTC),
            datetime(2026, 11, 27, 5, tzinfo=UTC),
        )
    assert slot_starts(database, clinic, WEDNESDAY, practitioner=1) == []
    assert slot_starts(database, clinic, date(2026, 11, 27), practitioner=1) != []


def test_time_off_that_ends_before_it_starts_is_an_error_message(desk, database, clinic):
    desk.post(
        "/staff/time-off",
        data={
            "practitioner": clinic.practitioner_ids[0],
            "location": clinic.location_id,
            "start_date": "2026-11-24",
            "start_time": "12:00",
            "end_time": "09:00",
        },
    )

    assert "The time off needs fixing" in text(desk.get("/staff/time-off"))
    with database.session() as s:
        assert s.scalars(select(TimeOff)).all() == []


def test_the_console_flashes_a_closure_day_that_does_not_parse_in_its_own_words(desk):
    desk.post("/staff/closures", data={"day": "24/11/2026", "location": "", "name": "Staff training"})

    assert "The closure needs fixing. Give the day as a date (YYYY-MM-DD)." in flashed(desk)


def test_a_closure_removes_that_days_slots_and_lists_its_appointments(desk, database, clinic, booked):
    appointment_id = booked(TUESDAY_10)

    response = desk.post("/staff/closures", data={"day": "2026-11-24", "location": "", "name": "Staff training"})

    assert response.status_code == 302
    page = text(desk.get("/staff/time-off"))
    assert "Staff training" in page and "All locations" in page and "1 appointment overlaps it" in page
    assert f'href="/staff/appointments/{appointment_id}"' in page
    assert slot_starts(database, clinic, TUESDAY) == [] == slot_starts(database, clinic, TUESDAY, practitioner=1)
    assert slot_starts(database, clinic, WEDNESDAY) != []

    with database.session() as s:
        closure_id = s.scalar(select(Closure.id))
    desk.post(f"/staff/closures/{closure_id}/remove")

    assert slot_starts(database, clinic, TUESDAY) != []


def test_time_off_and_closures_are_for_the_desk(physio):
    assert physio.get("/staff/time-off").status_code == 403
    assert physio.post("/staff/closures", data={"day": "2026-11-24", "name": "x"}).status_code == 403


# --- clinic policy -----------------------------------------------------------------------------------


def test_a_slot_step_change_shows_in_availability(admin, console_app, database, clinic):
    response = admin.post("/staff/settings", data=policy_form(slot_step_minutes="30"))

    assert response.status_code == 302
    assert clinic_settings(database).slot_step_minutes == 30
    body = console_app.test_client().get(
        "/api/v1/availability",
        query_string={
            "service_id": clinic.initial_id,
            "location_id": clinic.location_id,
            "start": "2026-11-24",
            "end": "2026-11-24",
        },
    )
    minutes = {slot["start"][14:16] for slot in body.get_json()["slots"]}
    assert minutes == {"00", "30"}


def test_the_policy_form_saves_reminder_rules_quiet_hours_and_caps(admin, database, clinic):
    form = policy_form(
        quiet_hours_start="09:30",
        sms_weekly_cap="5",
        late_cancellation_policy="block",
        brand_color="#1F4E79",
        **{"rule.2.amount": "1.5", "rule.2.channel": "sms"},
    )

    assert admin.post("/staff/settings", data=form).status_code == 302

    saved = clinic_settings(database)
    assert saved.reminder_rules == [
        {"channel": "email", "days_before": 2, "at": "09:00"},
        {"channel": "sms", "hours_before": 24},
        {"channel": "sms", "hours_before": 1.5},
    ]
    assert (saved.quiet_hours_start, saved.sms_weekly_cap, saved.late_cancellation_policy) == (time(9, 30), 5, "block")
    assert saved.brand_color == "#1f4e79"
    page = text(admin.get("/staff/settings"))
    assert 'name="rule.2.amount" inputmode="decimal" size="5" value="1.5"' in page


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"brand_color": "#ffcc00"}, "brand_color", "needs at least 4.5:1"),
        ({"brand_color": "teal"}, "brand_color", "#rrggbb"),
        ({"rule.1.amount": "soon"}, "reminder_rules", "hours_before must be a number"),
        ({"rule.0.at": ""}, "reminder_rules", "must be a local time HH:MM"),
        ({"quiet_hours_start": "21:00"}, "quiet_hours_end", "stop sending after they start"),
        ({"slot_step_minutes": "7"}, "slot_step_minutes", "Choose one of 5, 10, 15, 20, 30, 60"),
        ({"horizon_days": "0"}, "horizon_days", "from 1 to 365"),
        ({"min_notice_minutes": "10081"}, "min_notice_minutes", "from 0 to 10080"),
        ({"cancellation_window_hours": "two"}, "cancellation_window_hours", "from 0 to 168"),
        ({"sms_daily_cap": "11"}, "sms_daily_cap", "from 0 to 10"),
    ],
)
def test_a_bad_policy_is_refused_field_by_field_and_nothing_changes(admin, database, clinic, change, field, message):
    response = admin.post("/staff/settings", data=policy_form(**{"slot_step_minutes": "30", **change}))

    assert response.status_code == 422
    page = text(response)
    assert f'id="{field}-error"' in page
    assert message in page
    assert clinic_settings(database).slot_step_minutes == 15


def test_brand_colour_contrast_is_measured_as_wcag_defines_it():
    assert operations.contrast_with_white("#ffffff") == pytest.approx(1.0)
    assert operations.contrast_with_white("#000000") == pytest.approx(21.0)
    assert operations.contrast_with_white("#767676") >= 4.5 > operations.contrast_with_white("#777777")


def test_the_front_desk_and_practitioners_cannot_open_the_clinic_settings(desk, physio, admin, database, clinic):
    for client in (desk, physio):
        assert client.get("/staff/settings").status_code == 403
        assert client.post("/staff/settings", data=policy_form(slot_step_minutes="30")).status_code == 403
        assert 'href="/staff/setup/clinic"' not in text(client.get("/staff/"))
    assert clinic_settings(database).slot_step_minutes == 15
    assert 'href="/staff/setup/clinic"' in text(admin.get("/staff/"))  # the "Clinic setup" menu group
    assert 'href="/staff/settings"' in text(admin.get("/staff/setup/clinic"))


# --- forms and CSRF ---------------------------------------------------------------------------------


def test_every_new_form_carries_a_csrf_token(admin, booked, clinic):
    booked(TUESDAY_10)
    admin.post("/staff/closures", data={"day": "2026-11-24", "name": "Training"})
    admin.post(
        "/staff/time-off",
        data={
            "practitioner": clinic.practitioner_ids[0],
            "location": clinic.location_id,
            "start_date": "2026-11-24",
            "whole_day": "yes",
        },
    )
    for path in ("/staff/hours", "/staff/time-off", "/staff/settings"):
        page = text(admin.get(path))
        forms = re.findall(r'<form method="post".*?</form>', page, flags=re.S)
        assert forms, path
        for form in forms:
            assert 'name="csrf_token"' in form, (path, form[:120])


def test_a_settings_post_without_the_csrf_token_is_refused(app, users, database, clinic):
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', text(client.get("/staff/login"))).group(1)
    assert login(client, "admin@example.com", csrf_token=token).status_code == 302

    settings = client.post("/staff/settings", data=policy_form(slot_step_minutes="30"))
    closure = client.post("/staff/closures", data={"day": "2026-11-24", "name": "Training"})

    assert settings.status_code == closure.status_code == 400
    assert "The form had expired" in text(settings)
    assert clinic_settings(database).slot_step_minutes == 15
    with database.session() as s:
        assert s.scalars(select(Closure)).all() == []
