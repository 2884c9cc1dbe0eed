"""The waitlist that fills itself: a freed time is offered to the first in line, passes to the
next when unanswered in the clinic's time (the worker's job, once however many workers run),
and the entry becomes ``booked`` when the offered patient books it through the offer's link; the
whole chain shows on the console's waitlist page. SQLite and PostgreSQL; time frozen from
Monday 2026-11-23 08:00 in Toronto (``tests.console_fixtures``)."""

from __future__ import annotations

import html
import re
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from booking_service.clinic.models import ClinicSettings
from booking_service.clinic.operations import update_policy
from booking_service.db import Database
from booking_service.errors import ValidationFailed
from booking_service.messaging import policy
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book, cancel, reschedule, set_status
from booking_service.waitlist import offers
from booking_service.waitlist.models import WaitlistEntry, WaitlistOffer, WaitlistOpening
from booking_service.waitlist.operations import WaitlistRequest, join_waitlist
from scheduler.worker import Worker
from tests.conftest import NOW, SECRET, local
from tests.console_fixtures import login
from tests.support.environ import settings_from

pytest_plugins = ["tests.console_fixtures"]

TUESDAY = date(2026, 11, 24)
WEDNESDAY = date(2026, 11, 25)
NO_FLAGS = {f"rf_{key}": "no" for key in ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic")}


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def person(first: str, phone: str, *, consent: bool = True) -> PatientDetails:
    return PatientDetails(
        first_name=first,
        last_name="Waiting",
        email=f"{first.lower()}@example.com",
        phone=phone,
        sms_consent=consent,
        email_consent=consent,
    )


def wait(database, clinic, first: str, phone: str, *, day: date = TUESDAY, consent: bool = True) -> int:
    with database.unit_of_work() as s:
        return join_waitlist(
            s,
            WaitlistRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                earliest_date=day,
                latest_date=day,
                patient=person(first, phone, consent=consent),
            ),
            now=NOW,
        ).id


def book_visit(database, clinic, start, *, first="Alex", phone="+14165550142", now=NOW) -> int:
    with database.unit_of_work() as s:
        return book(
            s,
            BookingRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                start=start,
                patient=person(first, phone),
            ),
            secret_key=SECRET,
            now=now,
        ).appointment.id


def cancel_visit(database, appointment_id: int, *, now=NOW) -> None:
    with database.unit_of_work() as s:
        cancel(s, appointment_id, now=now, by_patient=True)


def chain(database) -> list[tuple[str, str]]:
    """(first name, offer status) of every offer, in order."""
    with database.unit_of_work() as s:
        rows = s.scalars(select(WaitlistOffer).order_by(WaitlistOffer.id)).all()
        return [(o.entry.patient.first_name, o.status) for o in rows]


def entry_statuses(database) -> dict[str, str]:
    with database.unit_of_work() as s:
        return {e.patient.first_name: e.status for e in s.scalars(select(WaitlistEntry))}


def run_job(database, now) -> int:
    with database.unit_of_work() as s:
        return offers.expire_offers(s, now=now)


def offer_link(database, first: str) -> str:
    with database.unit_of_work() as s:
        offer = s.scalars(
            select(WaitlistOffer).join(WaitlistOffer.entry).where(WaitlistOffer.status != "skipped")
        ).all()
        mine = [o for o in offer if o.entry.patient.first_name == first][-1]
        return f"/w/{mine.id}/{offers.offer_token(SECRET, mine)}"


@pytest.fixture
def line(database, clinic):
    """Alex's follow-up on Tuesday 10:00 with Maya; Sam, then Kim, wait for a Tuesday follow-up."""
    visit = book_visit(database, clinic, local("2026-11-24", "10:00"))
    wait(database, clinic, "Sam", "416 555 0150")
    wait(database, clinic, "Kim", "416 555 0151")
    return visit


# --- the whole chain ------------------------------------------------------------------------------


def test_cancel_offer_expire_pass_on_book_and_the_chain_is_visible(console_app, database, clinic, users, line, frozen):
    cancel_visit(database, line)
    assert chain(database) == [("Sam", "offered")]
    assert entry_statuses(database) == {"Sam": "offered", "Kim": "waiting"}
    with database.unit_of_work() as s:
        offer = s.scalars(select(WaitlistOffer)).one()
        assert offer.sends_at == NOW and offer.expires_at == NOW + timedelta(hours=2) and offer.messages == 2
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "waitlist_offer")).all()
        assert {r.to for r in rows} == {"sam@example.com", "+14165550150"}

    # Not yet: the job leaves an offer still within its time alone.
    assert run_job(database, NOW + timedelta(minutes=119)) == 0
    later = NOW + timedelta(hours=2, minutes=1)
    assert run_job(database, later) == 1
    assert chain(database) == [("Sam", "expired"), ("Kim", "offered")]
    assert entry_statuses(database) == {"Sam": "waiting", "Kim": "offered"}
    with database.unit_of_work() as s:
        kims = s.scalars(select(OutboxMessage).where(OutboxMessage.to == "+14165550151")).one()
        assert kims.kind == "waitlist_offer" and kims.due_at == later

    # Kim opens her link: a booking of that very time, her contacts on file (masked).
    frozen.move_to(later + timedelta(minutes=4))
    patient = console_app.test_client()
    opened = patient.get(offer_link(database, "Kim"))
    assert opened.status_code == 302 and opened.headers["Location"].endswith("/book/details")
    details = text(patient.get("/book/details"))
    assert "10:00" in details
    assert "0151" in details and "+14165550151" not in details  # the hint, not the number
    form = {
        "service_id": str(clinic.follow_up_id),
        "location_id": str(clinic.location_id),
        "practitioner_id": str(clinic.practitioner_ids[0]),
        "start": "2026-11-24T15:00Z",
        "first_name": "Kim",
        "last_name": "Waiting",
        "email": "",
        "phone": "",
        "language": "en",
        "reason": "",
        **NO_FLAGS,
    }
    assert patient.post("/book/details", data=form).headers["Location"].endswith("/book/review")
    draft = re.search(r'name="draft_id" value="([^"]+)"', text(patient.get("/book/review"))).group(1)
    assert patient.post("/book/confirm", data={"draft_id": draft}).headers["Location"].endswith("/book/confirmed")

    assert chain(database) == [("Sam", "expired"), ("Kim", "booked")]
    assert entry_statuses(database) == {"Sam": "waiting", "Kim": "booked"}
    with database.unit_of_work() as s:
        opening = s.scalars(select(WaitlistOpening)).one()
        booked = s.get(Appointment, opening.booked_appointment_id)
        assert opening.status == "booked" and booked.patient.first_name == "Kim" and booked.status == "booked"
        assert (
            s.scalars(select(WaitlistOffer).where(WaitlistOffer.status == "booked")).one().appointment_id == booked.id
        )

    desk = console_app.test_client()
    assert login(desk).status_code == 302
    page = text(desk.get("/staff/waitlist"))
    assert "Booked from the waitlist" in page
    sam_line = page.split("Sam Waiting</a>:")[1].split("</li>")[0]
    kim_line = page.split("Kim Waiting</a>:")[1].split("</li>")[0]
    assert "offered Mon 23 Nov 2026, 08:00" in sam_line and "No answer in time" in sam_line
    assert "offered Mon 23 Nov 2026, 10:01" in kim_line and "Booked" in kim_line


def test_two_workers_running_the_job_at_once_offer_the_next_person_once(db_url, database, clinic, line):
    cancel_visit(database, line)
    later = NOW + timedelta(hours=2, minutes=1)
    settings = settings_from(DATABASE_URL=db_url, SECRET_KEY=SECRET)
    workers = [Worker(settings, database=Database(db_url), now_fn=lambda: later) for _ in range(2)]
    barrier = threading.Barrier(2)
    passed: list[int] = []

    def run(worker: Worker) -> None:
        barrier.wait()
        passed.append(worker.pass_on_waitlist_offers())

    try:
        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for worker in workers:
            worker.drain()
    assert sorted(passed) == [0, 1]
    assert chain(database) == [("Sam", "expired"), ("Kim", "offered")]
    with database.unit_of_work() as s:
        to_kim = s.scalars(select(OutboxMessage).where(OutboxMessage.to.in_(["+14165550151", "kim@example.com"])))
        assert len(to_kim.all()) == 2  # one text, one e-mail: offered once


def test_two_jobs_racing_without_the_workers_lock_still_offer_once(database, clinic, line):
    """The row-level guards alone (conditional update, one live offer per opening) are enough."""
    cancel_visit(database, line)
    later = NOW + timedelta(hours=2, minutes=1)
    barrier = threading.Barrier(2)
    passed: list[int] = []
    failures: list[BaseException] = []

    def run() -> None:
        session = database.session()
        try:
            barrier.wait()
            passed.append(offers.expire_offers(session, now=later))
            session.commit()
        except BaseException as exc:
            failures.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert sorted(passed) == [0, 1]
    assert chain(database) == [("Sam", "expired"), ("Kim", "offered")]


# --- what frees a time, and what takes it ---------------------------------------------------------------


def test_a_visit_moved_away_frees_its_time_and_a_no_show_does_not(database, clinic, line, frozen):
    with database.unit_of_work() as s:
        reschedule(s, line, local("2026-11-24", "15:00"), now=NOW, by_patient=False)
    assert chain(database) == [("Sam", "offered")]
    with database.unit_of_work() as s:
        assert s.scalars(select(WaitlistOpening.reason)).one() == "rescheduled"

    late = book_visit(database, clinic, local("2026-11-24", "11:00"), first="Lee", phone="+14165550160")
    frozen.move_to(local("2026-11-24", "11:20"))
    with database.unit_of_work() as s:
        set_status(s, late, "no_show", now=local("2026-11-24", "11:20"))
    with database.unit_of_work() as s:
        assert len(s.scalars(select(WaitlistOpening)).all()) == 1


def test_a_visit_handed_to_a_colleague_frees_the_time_it_left_with_its_practitioner(database, clinic, line):
    """Moved from Maya at 10:00 to Daniel at 15:00: Maya's 10:00 is free, not Daniel's."""
    maya, daniel = clinic.practitioner_ids[:2]
    with database.unit_of_work() as s:
        reschedule(s, line, local("2026-11-24", "15:00"), now=NOW, by_patient=False, practitioner_id=daniel)
    assert chain(database) == [("Sam", "offered")]
    with database.unit_of_work() as s:
        opening = s.scalars(select(WaitlistOpening)).one()
        assert (opening.practitioner_id, opening.start_at) == (maya, local("2026-11-24", "10:00"))

    # The same time with a colleague frees the first practitioner's time too.
    other = book_visit(database, clinic, local("2026-11-24", "11:00"), first="Lee", phone="+14165550160")
    with database.unit_of_work() as s:
        reschedule(s, other, local("2026-11-24", "11:00"), now=NOW, by_patient=False, practitioner_id=daniel)
    with database.unit_of_work() as s:
        freed = s.scalars(select(WaitlistOpening).order_by(WaitlistOpening.id)).all()[-1]
        assert (freed.practitioner_id, freed.start_at) == (maya, local("2026-11-24", "11:00"))
    assert chain(database) == [("Sam", "offered"), ("Kim", "offered")]


def test_someone_else_booking_the_time_closes_the_chain_and_the_link_shows_other_times(
    console_app, database, clinic, line
):
    cancel_visit(database, line)
    book_visit(database, clinic, local("2026-11-24", "10:00"), first="Zed", phone="+14165550170")
    assert chain(database) == [("Sam", "withdrawn")]
    assert entry_statuses(database) == {"Sam": "waiting", "Kim": "waiting"}
    with database.unit_of_work() as s:
        assert s.scalars(select(WaitlistOpening.status)).one() == "taken"
    gone = console_app.test_client().get(offer_link(database, "Sam"))
    assert gone.status_code == 409 and "just taken" in text(gone)
    assert console_app.test_client().get(offer_link(database, "Sam") + "x").status_code == 404


def test_a_waiting_patient_who_agreed_to_no_messages_is_skipped(database, clinic):
    visit = book_visit(database, clinic, local("2026-11-24", "10:00"))
    wait(database, clinic, "Sam", "416 555 0150", consent=False)
    wait(database, clinic, "Kim", "416 555 0151")
    cancel_visit(database, visit)
    assert chain(database) == [("Sam", "skipped"), ("Kim", "offered")]
    assert entry_statuses(database) == {"Sam": "waiting", "Kim": "offered"}


def test_offers_are_held_for_quiet_hours_and_their_time_counts_from_the_morning(database, clinic, frozen):
    visit = book_visit(database, clinic, local("2026-11-25", "10:00"))
    wait(database, clinic, "Sam", "416 555 0150", day=WEDNESDAY)
    wait(database, clinic, "Kim", "416 555 0151", day=WEDNESDAY)
    evening = local("2026-11-23", "21:00")
    cancel_visit(database, visit, now=evening)
    morning = local("2026-11-24", "08:00")
    with database.unit_of_work() as s:
        offer = s.scalars(select(WaitlistOffer)).one()
        assert (offer.sends_at, offer.expires_at) == (morning, morning + timedelta(hours=2))
        row = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "waitlist_offer", OutboxMessage.channel == "sms")
        ).one()
        held = policy.check(s, row, clinic=s.get(ClinicSettings, 1), now=evening)
        assert (held.action, held.until) == ("defer", morning)
    assert run_job(database, local("2026-11-24", "09:30")) == 0
    assert run_job(database, local("2026-11-24", "10:01")) == 1
    assert chain(database) == [("Sam", "expired"), ("Kim", "offered")]


def test_the_time_to_answer_is_the_clinics_setting(console_app, admin, database, clinic, line):
    assert "Time to answer an offer" in text(admin.get("/staff/settings"))
    with database.unit_of_work() as s:
        update_policy(s, waitlist_offer_minutes=30)
    cancel_visit(database, line)
    with database.unit_of_work() as s:
        assert s.scalars(select(WaitlistOffer.expires_at)).one() == NOW + timedelta(minutes=30)
    with database.unit_of_work() as s, pytest.raises(ValidationFailed) as refused:
        update_policy(s, waitlist_offer_minutes=5)
    assert refused.value.fields == {"waitlist_offer_minutes": "number_out_of_range"}


def test_the_desk_passes_an_offer_on_at_once_and_stops_offering(desk, database, clinic, line):
    cancel_visit(database, line)
    with database.unit_of_work() as s:
        opening_id = s.scalars(select(WaitlistOpening.id)).one()
    page = text(desk.get("/staff/waitlist"))
    assert "Being offered" in page and "Next in line: " in page and "Kim Waiting" in page
    assert desk.post(f"/staff/waitlist/openings/{opening_id}/next").status_code == 302
    assert chain(database) == [("Sam", "passed"), ("Kim", "offered")]
    assert desk.post(f"/staff/waitlist/openings/{opening_id}/close").status_code == 302
    assert chain(database) == [("Sam", "passed"), ("Kim", "withdrawn")]
    assert entry_statuses(database) == {"Sam": "waiting", "Kim": "waiting"}
    desk.post(f"/staff/waitlist/openings/{opening_id}/close")
    assert "conflicts with a change made meanwhile" in text(desk.get("/staff/waitlist"))


def test_removing_the_offered_entry_passes_the_time_on(desk, database, clinic, line):
    cancel_visit(database, line)
    with database.unit_of_work() as s:
        sams = s.scalars(select(WaitlistEntry.id).join(WaitlistEntry.patient).where(WaitlistEntry.status == "offered"))
        sam_entry = sams.one()
    assert desk.post(f"/staff/waitlist/{sam_entry}/remove").status_code == 302
    assert chain(database) == [("Sam", "withdrawn"), ("Kim", "offered")]
    assert entry_statuses(database) == {"Sam": "removed", "Kim": "offered"}


def test_the_front_desk_books_a_proposed_patient_and_their_entry_is_booked(desk, database, clinic, line):
    cancel_visit(database, line)
    with database.unit_of_work() as s:
        kim = s.scalars(select(WaitlistEntry).join(WaitlistEntry.patient).where(WaitlistEntry.status == "waiting"))
        kim_patient = kim.one().patient_id
    form = {
        "service": str(clinic.follow_up_id),
        "location": str(clinic.location_id),
        "practitioner": str(clinic.practitioner_ids[0]),
        "date": "2026-11-24",
        "start": "2026-11-24T15:00Z",
        "patient_choice": str(kim_patient),
        "first_name": "Kim",
        "last_name": "Waiting",
        "phone": "416 555 0151",
        "language": "en",
    }
    assert desk.post("/staff/book", data=form).status_code == 302
    assert entry_statuses(database) == {"Sam": "waiting", "Kim": "booked"}
    assert chain(database) == [("Sam", "withdrawn")]
    assert "Booked from the waitlist" in text(desk.get("/staff/waitlist"))
