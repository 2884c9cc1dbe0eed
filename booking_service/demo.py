"""The demo clinic: the clinic file ``demo_clinic.yaml`` (two Toronto locations, five
practitioners, the usual services and their weekly hours), loaded by the same loader as
``load-clinic``; then what is not the catalogue: a few patients with appointments over the next
two weeks, two staff logins, the exercise library, and two home exercise programs with two weeks
of logs (one improving; one with rising pain, an open pain alert and its program paused by it).

Capacity contract (DESIGN.md, "Demo capacity"): five practitioners work about eight hours a day,
five days a week at the Downtown location, open-ended, so thousands of slots can be booked (the
hours are in the file).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from booking_service.clinic.files import read_document
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.errors import DomainError, PlanConflicts
from booking_service.exercises.library import load_library
from booking_service.exercises.models import Alert, Exercise, FunctionScore, ProgramLog
from booking_service.exercises.programs import ItemSpec, create_program, local_today, pause_program
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import slots
from booking_service.scheduling.models import Appointment
from booking_service.staff.operations import create_user
from booking_service.usecases.booking import BookingRequest, book
from booking_service.usecases.clinic_file import load_clinic
from booking_service.usecases.plans import PlanRequest, book_plan

DEMO_CLINIC_FILE = Path(__file__).with_name("demo_clinic.yaml")

DEMO_LOGINS = (
    ("admin@demo.clinic", "admin", "demo-admin-2026"),
    ("frontdesk@demo.clinic", "frontdesk", "demo-desk-2026"),
)

# The demo appointments: at this location, a first visit for each patient, then follow-ups.
DEMO_LOCATION = "downtown"
FIRST_VISIT = "initial-assessment"
FOLLOW_UPS = ("follow-up-30", "follow-up-45")

PATIENTS = (
    ("Alex", "Martin", "alex.martin@example.com", "416 555 0142", "en"),
    ("Jordan", "Singh", "jordan.singh@example.com", "647 555 0178", "en"),
    ("Camille", "Gagnon", "camille.gagnon@example.com", "438 555 0190", "fr"),
    ("Priya", "Raman", None, "416 555 0111", "en"),
    ("Marc", "Lefebvre", "marc.lefebvre@example.com", None, "fr"),
    ("Taylor", "Brooks", "taylor.brooks@example.com", "905 555 0165", "en"),
)


class DemoExists(Exception):
    """The database already holds a clinic; the demo is only loaded into an empty one."""


@dataclass(frozen=True)
class DemoResult:
    logins: tuple[tuple[str, str, str], ...]
    summary: str


def seed(session: Session, *, secret_key: str, now: datetime, appointments: int = 12) -> DemoResult:
    """Load the demo clinic into an empty database (raises DemoExists otherwise)."""
    if session.get(ClinicSettings, 1) is not None:
        raise DemoExists()
    load_clinic(session, read_document(DEMO_CLINIC_FILE.read_text(encoding="utf-8")), now=now)

    logins = []
    for email, role, password in DEMO_LOGINS:
        create_user(session, email, role=role, password=password, name=role.title())
        logins.append((email, role, password))
    session.flush()

    booked = _book_demo_appointments(session, secret_key=secret_key, now=now, count=appointments)
    created, _updated = load_library(session)
    programs = _demo_programs(session, secret_key=secret_key, now=now)
    plans = _demo_plan(session, secret_key=secret_key, now=now)
    return DemoResult(
        logins=tuple(logins),
        summary=(
            f"{_count(session, Practitioner)} practitioners, {_count(session, Service)} services, "
            f"{_count(session, Location)} locations, "
            f"{booked} appointments over the next two weeks, {created} exercises, "
            f"{programs} home exercise programs with two weeks of logs, {plans} treatment plan"
        ),
    )


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


def _book_demo_appointments(session: Session, *, secret_key: str, now: datetime, count: int) -> int:
    rng = random.Random(2026)
    clinic = session.get(ClinicSettings, 1)
    downtown = session.scalar(select(Location).where(Location.key == DEMO_LOCATION))
    services = {service.key: service for service in session.scalars(select(Service))}
    today = slots.local_date(now, downtown)
    booked = 0
    for i in range(count):
        first, last, email, phone, language = PATIENTS[i % len(PATIENTS)]
        service = services[FIRST_VISIT if i < len(PATIENTS) else FOLLOW_UPS[i % 2]]
        practitioners = [p for p in service.practitioners if downtown in p.locations]
        day = today + timedelta(days=1 + rng.randrange(13))
        free = slots.find_slots(
            session,
            clinic=clinic,
            service=service,
            location=downtown,
            practitioners=practitioners,
            first_day=day,
            last_day=day + timedelta(days=2),
            now=now,
        )
        if not free:
            continue
        slot = free[rng.randrange(len(free))]
        request = BookingRequest(
            service_id=service.id,
            location_id=downtown.id,
            practitioner_id=slot.practitioner_id,
            start=slot.start,
            source="staff",
            patient=PatientDetails(
                first_name=first,
                last_name=last,
                email=email,
                phone=phone,
                language=language,
                sms_consent=phone is not None,
                email_consent=email is not None,
            ),
        )
        try:
            book(session, request, secret_key=secret_key, now=now, confirm=False)  # made-up patients
        except DomainError:
            continue  # the demo patient already has a visit then: skip it
        booked += 1
    return booked


def _demo_plan(session: Session, *, secret_key: str, now: datetime) -> int:
    """Alex's treatment plan: six weekly 30-minute follow-ups with the practitioner of their first
    visit, from three weeks ahead (after the demo's two weeks of appointments). Returns 1, or 0
    when the demo could not book Alex or that practitioner has no free run of six weeks."""
    patient = session.scalar(select(Patient).where(Patient.email == PATIENTS[0][2]))
    visit = patient and session.scalar(
        select(Appointment).where(Appointment.patient_id == patient.id).order_by(Appointment.start_at).limit(1)
    )
    if visit is None:
        return 0
    clinic = session.get(ClinicSettings, 1)
    service = session.scalar(select(Service).where(Service.key == FOLLOW_UPS[0]))
    day = slots.local_date(now, visit.location) + timedelta(days=21)
    free = slots.find_slots(
        session,
        clinic=clinic,
        service=service,
        location=visit.location,
        practitioners=[visit.practitioner],
        first_day=day,
        last_day=day + timedelta(days=4),
        now=now,
    )
    for slot in free[:12]:
        request = PlanRequest(
            patient_id=patient.id,
            service_id=service.id,
            location_id=visit.location_id,
            practitioner_id=visit.practitioner_id,
            first_start=slot.start,
            count=6,
            every_days=7,
        )
        try:
            book_plan(session, request, secret_key=secret_key, now=now, confirm=False)  # made-up patients
        except PlanConflicts:
            continue  # a week of the run is taken: try the next free time
        return 1
    return 0


# Two programs, started two weeks ago, Mon/Wed/Fri/Sat at 18:30 (eight program days): (patient email, exercises with
# doses, pain on each program day oldest first, PSFS activity and its weekly scores, a done
# pattern). Alex improves: pain falls, function rises. Camille's pain climbs to 8: an open pain
# alert, and her program paused by it until a practitioner acknowledges.
DEMO_PROGRAMS = (
    (
        "alex.martin@example.com",
        (
            ("nerve_glide_seated", 10, 2, None),
            ("knee_to_chest", 5, 1, 20),
            ("bridge", 10, 2, 5),
            ("walking", None, 1, 600),
        ),
        (7, 7, 6, 5, 5, 4, 4, 3),
        ("Sitting through a work meeting", (3, 5, 7)),
        (True, True, False, True, True, True, True, True),
    ),
    (
        "camille.gagnon@example.com",
        (("nerve_glide_lying", 10, 2, None), ("piriformis_stretch", 3, 1, 30), ("abdominal_bracing", 10, 1, 10)),
        (4, 4, 5, 5, 6, 6, 7, 8),
        ("Mettre mes chaussettes", (5, 5, 4)),
        (True, False, True, False, True, False, False, True),
    ),
)
DEMO_DAYS = [0, 2, 4, 5]


def _demo_programs(session: Session, *, secret_key: str, now: datetime) -> int:
    """The two demo programs with two weeks of logs (see :data:`DEMO_PROGRAMS`)."""
    exercises = {e.key: e.id for e in session.scalars(select(Exercise))}
    made = 0
    for email, doses, pains, (activity, scores), done in DEMO_PROGRAMS:
        patient = session.scalar(select(Patient).where(Patient.email == email))
        visit = patient and session.scalar(
            select(Appointment).where(Appointment.patient_id == patient.id).order_by(Appointment.start_at).limit(1)
        )
        if visit is None:
            continue  # the demo could not book this patient: no program either
        patient.exercise_sms_consent = True
        today = slots.local_date(now, visit.location)
        start = today - timedelta(days=14)
        program = create_program(
            session,
            patient_id=patient.id,
            practitioner_id=visit.practitioner_id,
            location_id=visit.location_id,
            items=[ItemSpec(exercises[key], reps=r, sets=s, hold_seconds=h) for key, r, s, h in doses],
            days=DEMO_DAYS,
            time_of_day=time(18, 30),
            start=start,
            secret_key=secret_key,
            now=now - timedelta(days=14),
        )
        days = [start + timedelta(days=n) for n in range(14) if (start + timedelta(days=n)).weekday() in DEMO_DAYS]
        for day, pain, was_done in zip(days, pains, done, strict=True):
            session.add(
                ProgramLog(
                    program_id=program.id,
                    patient_id=patient.id,
                    local_date=day,
                    done=was_done,
                    pain=pain,
                    source="sms" if day.day % 2 else "page",
                )
            )
        for week, score in enumerate(scores):
            session.add(
                FunctionScore(
                    program_id=program.id,
                    patient_id=patient.id,
                    local_date=start + timedelta(days=7 * week),
                    position=1,
                    activity=activity,
                    score=score,
                )
            )
        if pains[-1] >= 8:
            session.add(
                Alert(
                    patient_id=patient.id,
                    program_id=program.id,
                    practitioner_id=visit.practitioner_id,
                    kind="pain",
                    status="open",
                    source="sms",
                    created_at=now - timedelta(hours=3),
                    text=f'Replied "douleur {pains[-1]}": pain {pains[-1]}/10, up from about {pains[0]} two weeks ago.',
                )
            )
            pause_program(session, program.id, reason="alert", now=now - timedelta(hours=3))
        assert local_today(program, now) == today
        made += 1
    session.flush()
    return made
