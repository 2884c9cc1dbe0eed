"""Moving a visit on the day board by dragging it, in Chromium, as the front desk does.

A follow-up with Maya Chen is dragged onto Daniel Okafor's free 11:00 on the same day: a dialog
asks to confirm ("Keep it where it is" changes nothing), "Move" posts the move as the
appointment's Reschedule page does, and the board comes back with the visit in its new place and
the patient's reschedule message planned. A Wednesday ten weeks ahead, which no other browser
test books. Every state is checked with axe-core and for script or CSP errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from booking_service.clinic.models import Location, Practitioner, Service
from booking_service.db import utcnow
from booking_service.form_values import slot_value
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 900}
WEDNESDAY = 2
DAYS_AHEAD = 70


def the_day(live_server) -> tuple[date, ZoneInfo, int]:
    """(the first Wednesday DAYS_AHEAD days from now, Downtown's zone, Downtown's id)."""
    with live_server.database.unit_of_work() as s:
        downtown = s.scalars(select(Location).where(Location.key == "downtown")).one()
        zone, location_id = ZoneInfo(downtown.timezone), downtown.id
    day = datetime.now(zone).date() + timedelta(days=DAYS_AHEAD)
    return day + timedelta(days=(WEDNESDAY - day.weekday()) % 7), zone, location_id


def book_maya(live_server, start: datetime, location_id: int) -> tuple[int, int]:
    """A follow-up with Maya Chen at ``start``; (its id, Daniel Okafor's id)."""
    with live_server.database.unit_of_work() as s:
        people = {p.key: p.id for p in s.scalars(select(Practitioner))}
        follow_up = s.scalars(select(Service).where(Service.key == "follow-up-30")).one()
        booked = book(
            s,
            BookingRequest(
                service_id=follow_up.id,
                location_id=location_id,
                practitioner_id=people["maya-chen"],
                start=start,
                patient=PatientDetails(
                    first_name="Dina",
                    last_name="Draggable",
                    email="dina.draggable@example.com",
                    phone="+14165550177",
                    sms_consent=True,
                    email_consent=True,
                ),
                source="staff",
            ),
            secret_key=live_server.secret,
            now=utcnow(),
        )
        return booked.appointment.id, people["daniel-okafor"]


def stored(live_server, appointment_id: int) -> Appointment:
    with live_server.database.unit_of_work() as s:
        return s.get(Appointment, appointment_id)


def test_a_visit_dragged_onto_a_free_time_moves_there_once_confirmed(visit, live_server):
    day, zone, location_id = the_day(live_server)
    nine, eleven = (datetime.combine(day, time(hour), zone) for hour in (9, 11))
    appointment_id, daniel = book_maya(live_server, nine, location_id)
    v = visit(DESKTOP, name="drag-move")
    page = v.page
    sign_in(v)
    v.goto(f"/staff/?date={day.isoformat()}&location={location_id}")
    dragged = page.locator(f'li.appt[data-move$="/{appointment_id}/reschedule"]')
    free = page.locator(f'a.free-link[data-drop-practitioner="{daniel}"][data-drop="{slot_value(eleven)}"]')
    dialog = page.locator("#move-dialog")

    # Dropped, then kept where it is: nothing changes.
    dragged.drag_to(free)
    dialog.wait_for(state="visible")
    assert dialog.locator("[data-move-text]").inner_text() == "Dina Draggable to 11:00 with Daniel Okafor?"
    v.check("dialog")
    dialog.get_by_role("button", name="Keep it where it is").click()
    dialog.wait_for(state="hidden")
    assert stored(live_server, appointment_id).start_at == nine.astimezone(UTC)

    # Dropped and moved.
    dragged.drag_to(free)
    dialog.get_by_role("button", name="Move", exact=True).click()
    page.get_by_text(re.compile(r"^Moved to ")).wait_for()

    assert re.search(r"/staff/\?date=", page.url)  # back on the board
    moved = stored(live_server, appointment_id)
    assert (moved.start_at, moved.practitioner_id) == (eleven.astimezone(UTC), daniel)
    assert "Now with Daniel Okafor" in page.locator(".flash").first.inner_text()
    assert page.locator(f"#visit-{appointment_id}").inner_text().startswith("11:00")
    with live_server.database.unit_of_work() as s:
        kinds = s.scalars(select(OutboxMessage.kind).where(OutboxMessage.appointment_id == appointment_id)).all()
    assert "reschedule" in kinds  # the patient is told, as from the Reschedule page
    v.check("moved")
