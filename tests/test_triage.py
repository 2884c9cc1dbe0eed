"""The triage queue on the console's front page: every booking flagged urgent at intake and every
clinical alert, oldest first, until a clinician marks it handled (who and when recorded,
audited). The front desk sees it and cannot take anything off it. SQLite and PostgreSQL; time
frozen on Monday 2026-11-23 08:00 in Toronto (``tests.console_fixtures``)."""

from __future__ import annotations

import html
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from booking_service.audit.models import AuditEvent
from booking_service.errors import Conflict
from booking_service.exercises.models import Alert
from booking_service.scheduling.models import Appointment
from booking_service.triage.models import TriageReview
from booking_service.triage.operations import mark_handled
from booking_service.triage.queries import queue
from tests.conftest import NOW, local
from tests.console_fixtures import TUESDAY_10

pytest_plugins = ["tests.console_fixtures"]

URGENT = {"saddle_numbness": True}


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def items(database, clinic, booked, frozen):
    """Maya's urgent booking (08:00, raising its urgent_booking alert), then a red flag by text
    from another patient of hers (08:05), then an urgent booking with Daniel (08:10)."""
    urgent = booked(TUESDAY_10, practitioner=0, red_flags=URGENT)
    frozen.shift(timedelta(minutes=5))
    other = booked(
        local("2026-11-25", "10:00"), practitioner=0, first_name="Ben", email="ben@example.com", phone="+14165550111"
    )
    with database.unit_of_work() as s:
        ben = s.get(Appointment, other).patient_id
        s.add(
            Alert(
                patient_id=ben,
                practitioner_id=clinic.practitioner_ids[0],
                kind="red_flag",
                source="sms",
                text="Reported by text: bladder or bowel",
                created_at=NOW + timedelta(minutes=5),
            )
        )
    frozen.shift(timedelta(minutes=5))
    daniels = booked(
        local("2026-11-24", "14:00"),
        practitioner=1,
        red_flags={"leg_weakness": True},
        first_name="Cy",
        email="cy@example.com",
        phone="+14165550122",
    )
    with database.unit_of_work() as s:
        red_flag = s.scalars(select(Alert.id).where(Alert.kind == "red_flag")).one()
    return {"urgent": urgent, "red_flag": red_flag, "daniels": daniels}


def test_the_queue_lists_urgent_bookings_and_alerts_oldest_first_each_once(database, items):
    with database.unit_of_work() as s:
        found = queue(s)
        assert [(i.kind, i.appointment.id if i.appointment else i.alert.id) for i in found] == [
            ("urgent_booking", items["urgent"]),
            ("red_flag", items["red_flag"]),
            ("urgent_booking", items["daniels"]),
        ]
        # The urgent booking and the alert it raised are one item.
        assert found[0].alert is not None and found[0].alert.kind == "urgent_booking"
        mine = queue(s, practitioner_id=s.get(Appointment, items["urgent"]).practitioner_id)
        assert [i.kind for i in mine] == ["urgent_booking", "red_flag"]


def test_the_front_desk_sees_the_queue_on_the_day_view_but_cannot_mark_anything_handled(desk, database, items):
    page = text(desk.get("/staff/"))
    assert "Triage queue" in page and "(3; oldest first)" in page
    assert "Numbness in the groin, buttocks or inner thighs" in page  # the red flag answered, for staff
    assert "Reported by text: bladder or bowel" in page
    assert "Mark handled" not in page and "For a clinician" in page
    assert desk.post(f"/staff/triage/appointments/{items['urgent']}/handled").status_code == 403
    assert desk.post(f"/staff/triage/alerts/{items['red_flag']}/handled").status_code == 403
    with database.unit_of_work() as s:
        assert s.scalars(select(TriageReview)).all() == []


def test_a_clinician_marks_an_item_handled_with_who_and_when_recorded(physio, database, items, frozen):
    frozen.shift(timedelta(minutes=5))  # signed in at 08:00; sessions end after 30 idle minutes
    page = text(physio.get("/staff/"))
    assert page.count("Mark handled<") == 2  # Maya's two items; Daniel's is not hers
    done = physio.post(f"/staff/triage/appointments/{items['urgent']}/handled")
    assert done.status_code == 302
    page = text(physio.get("/staff/"))
    assert "Marked handled" in page and "(1; oldest first)" in page
    with database.unit_of_work() as s:
        review = s.scalars(select(TriageReview).where(TriageReview.appointment_id == items["urgent"])).one()
        maya = s.get(Appointment, items["urgent"]).practitioner.user_id
        assert review.handled_by_user_id == maya and review.handled_at == NOW + timedelta(minutes=15)
        # The urgent booking's own alert was handled with it, and acknowledged.
        alert = s.scalars(select(Alert).where(Alert.appointment_id == items["urgent"])).one()
        assert alert.status == "acknowledged" and alert.acknowledged_by_user_id == maya
        assert s.scalars(select(TriageReview).where(TriageReview.alert_id == alert.id)).one()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "triage.handle")).one()
        assert (event.resource_type, event.resource_id, event.actor_user_id) == ("appointment", items["urgent"], maya)
        assert event.detail == {"appointment_id": items["urgent"], "alert_ids": [alert.id]}
    again = physio.post(f"/staff/triage/appointments/{items['urgent']}/handled")
    assert again.status_code == 302 and "conflicts with a change made meanwhile" in text(physio.get("/staff/"))


def test_a_practitioner_cannot_handle_another_practitioners_item(physio, admin, database, items):
    assert physio.post(f"/staff/triage/appointments/{items['daniels']}/handled").status_code == 404
    assert admin.post(f"/staff/triage/appointments/{items['daniels']}/handled").status_code == 302
    with database.unit_of_work() as s:
        reviewed = s.scalars(select(TriageReview.appointment_id).where(TriageReview.appointment_id.is_not(None)))
        assert reviewed.all() == [items["daniels"]]  # with its alert


def test_an_alert_acknowledged_at_the_desk_stays_until_a_clinician_handles_it(desk, admin, database, items):
    assert desk.post(f"/staff/alerts/{items['red_flag']}/acknowledge").status_code == 302
    page = text(desk.get("/staff/"))
    assert "Acknowledged at the desk" in page and "(3; oldest first)" in page
    # A clinician acknowledging it on the alerts page also takes it off the queue.
    assert admin.post(f"/staff/alerts/{items['red_flag']}/acknowledge").status_code == 302
    assert "(2; oldest first)" in text(admin.get("/staff/"))


def test_a_clinicians_token_acknowledging_an_alert_takes_it_off_the_queue(client, database, items, users):
    from booking_service.staff.operations import create_api_token

    with database.unit_of_work() as s:
        token = create_api_token(s, "admin@example.com", now=NOW)
    answer = client.post(
        f"/api/v1/alerts/{items['red_flag']}/acknowledge", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200
    with database.unit_of_work() as s:
        assert s.scalars(select(TriageReview.alert_id)).all() == [items["red_flag"]]


def test_two_clinicians_pressing_at_once_record_one_review(database, items, users):
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def press() -> None:
        session = database.session()
        try:
            barrier.wait()
            try:
                mark_handled(session, alert_id=items["red_flag"], user_id=None, now=NOW)
                session.commit()
                outcomes.append("handled")
            except Conflict:
                session.rollback()
                outcomes.append("conflict")
        finally:
            session.close()

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict", "handled"]
    with database.unit_of_work() as s:
        assert len(s.scalars(select(TriageReview).where(TriageReview.alert_id == items["red_flag"])).all()) == 1
