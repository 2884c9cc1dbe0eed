"""The demo clinic: two Toronto locations, five practitioners, the usual services, hours for the
next months, a few patients with appointments over the next two weeks, two staff logins, the
exercise library, and two home exercise programs with two weeks of logs (one improving; one with
rising pain, an open pain alert and its program paused by it).

Capacity contract (DESIGN.md, "Demo capacity"): five practitioners work about eight hours a day,
five days a week at the Downtown location, open-ended, so thousands of slots can be booked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service, WorkingHours
from booking_service.errors import DomainError
from booking_service.exercises.library import load_library
from booking_service.exercises.models import Alert, Exercise, FunctionScore, ProgramLog
from booking_service.exercises.programs import ItemSpec, create_program, local_today, pause_program
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import slots
from booking_service.scheduling.models import Appointment
from booking_service.staff.operations import create_user
from booking_service.usecases.booking import BookingRequest, book

DEMO_LOGINS = (
    ("admin@demo.clinic", "admin", "demo-admin-2026"),
    ("frontdesk@demo.clinic", "frontdesk", "demo-desk-2026"),
)

SERVICES = (
    # name, French name, kind, minutes, buffer, description, French description
    ("Initial assessment", "Évaluation initiale", "initial", 60, 0,
     "New to us, or a new problem: history, examination and a plan.",
     "Nouveau patient ou nouveau problème : bilan, examen et plan de traitement."),
    ("Follow-up (30 min)", "Suivi (30 min)", "follow_up", 30, 0,
     "A treatment session for patients already assessed.",
     "Une séance de traitement pour les patients déjà évalués."),
    ("Follow-up (45 min)", "Suivi (45 min)", "follow_up", 45, 0,
     "A longer treatment session for patients already assessed.",
     "Une séance de traitement plus longue pour les patients déjà évalués."),
    ("Dry needling", "Puncture sèche", "other", 30, 15,
     "For patients already assessed who agreed to it with their physiotherapist.",
     "Pour les patients déjà évalués, en accord avec leur physiothérapeute."),
    ("Massage therapy (60 min)", "Massothérapie (60 min)", "other", 60, 15,
     "With our registered massage therapist.",
     "Avec notre massothérapeute autorisée."),
)

PRACTITIONERS = (
    ("Maya", "Chen", "Physiotherapist", "Manual therapy and spine rehabilitation.", (0, 1, 2)),
    ("Daniel", "Okafor", "Physiotherapist", "Exercise progression and return to work.", (0, 1, 2, 3)),
    ("Sophie", "Tremblay", "Physiotherapist", "Bilingual (English, French); nerve mobilisation.", (0, 1, 2, 3)),
    ("Arjun", "Patel", "Physiotherapist", "Dry needling and sports injuries.", (0, 1, 2, 3)),
    ("Elena", "Rossi", "Registered Massage Therapist", "Therapeutic massage for back and hip.", (4,)),
)

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
    session.add(
        ClinicSettings(
            id=1,
            name="Lakeshore Physio",
            phone="+14165550100",
            email="hello@lakeshorephysio.example",
            country="CA",
            timezone="America/Toronto",
            default_language="en",
        )
    )
    downtown = Location(
        name="Downtown", address="120 King St W, Toronto, ON M5H 1J9", phone="+14165550100",
        timezone="America/Toronto",
    )
    midtown = Location(
        name="Midtown", address="2300 Yonge St, Toronto, ON M4P 1E4", phone="+14165550101",
        timezone="America/Toronto",
    )
    session.add_all([downtown, midtown])
    services = []
    for order, (name, name_fr, kind, minutes, buffer, description, description_fr) in enumerate(SERVICES):
        service = Service(
            name=name, name_fr=name_fr, kind=kind, duration_minutes=minutes, buffer_minutes=buffer,
            description=description, description_fr=description_fr, sort_order=order,
        )
        services.append(service)
    session.add_all(services)
    practitioners = []
    for first, last, profession, bio, service_indexes in PRACTITIONERS:
        practitioner = Practitioner(first_name=first, last_name=last, profession=profession, bio=bio)
        practitioner.services = [services[i] for i in service_indexes]
        practitioner.locations = [downtown]
        practitioners.append(practitioner)
    session.add_all(practitioners)
    session.flush()

    # Downtown: everyone, weekdays 08:30-17:00 with a half-hour lunch (eight hours).
    for practitioner in practitioners:
        for weekday in range(5):
            session.add(
                WorkingHours(
                    practitioner_id=practitioner.id, location_id=downtown.id, weekday=weekday,
                    start_time=time(8, 30), end_time=time(17, 0),
                    break_start=time(12, 30), break_end=time(13, 0),
                )
            )
    # Midtown: evenings (Tue, Thu) and Saturday mornings for three of them.
    for practitioner in (practitioners[1], practitioners[2], practitioners[4]):
        practitioner.locations.append(midtown)
        for weekday in (1, 3):
            session.add(
                WorkingHours(
                    practitioner_id=practitioner.id, location_id=midtown.id, weekday=weekday,
                    start_time=time(17, 30), end_time=time(20, 30),
                )
            )
        session.add(
            WorkingHours(
                practitioner_id=practitioner.id, location_id=midtown.id, weekday=5,
                start_time=time(9, 0), end_time=time(13, 0),
            )
        )

    logins = []
    for email, role, password in DEMO_LOGINS:
        create_user(session, email, role=role, password=password, name=role.title())
        logins.append((email, role, password))
    session.flush()

    booked = _book_demo_appointments(session, secret_key=secret_key, now=now, count=appointments)
    created, _updated = load_library(session)
    programs = _demo_programs(session, secret_key=secret_key, now=now)
    return DemoResult(
        logins=tuple(logins),
        summary=(
            f"{len(practitioners)} practitioners, {len(services)} services, 2 locations, "
            f"{booked} appointments over the next two weeks, {created} exercises, "
            f"{programs} home exercise programs with two weeks of logs"
        ),
    )


def _book_demo_appointments(session: Session, *, secret_key: str, now: datetime, count: int) -> int:
    rng = random.Random(2026)
    clinic = session.get(ClinicSettings, 1)
    downtown = session.scalars(select(Location).order_by(Location.id)).first()
    services = list(session.scalars(select(Service).order_by(Service.id)))
    today = slots.local_date(now, downtown)
    booked = 0
    for i in range(count):
        first, last, email, phone, language = PATIENTS[i % len(PATIENTS)]
        service = services[0] if i < len(PATIENTS) else services[1 + i % 2]
        practitioners = [p for p in service.practitioners if downtown in p.locations]
        day = today + timedelta(days=1 + rng.randrange(13))
        free = slots.find_slots(
            session, clinic=clinic, service=service, location=downtown, practitioners=practitioners,
            first_day=day, last_day=day + timedelta(days=2), now=now,
        )
        if not free:
            continue
        slot = free[rng.randrange(len(free))]
        request = BookingRequest(
            service_id=service.id, location_id=downtown.id, practitioner_id=slot.practitioner_id,
            start=slot.start, source="staff",
            patient=PatientDetails(
                first_name=first, last_name=last, email=email, phone=phone, language=language,
                sms_consent=phone is not None, email_consent=email is not None,
            ),
        )
        try:
            book(session, request, secret_key=secret_key, now=now, confirm=False)  # made-up patients
        except DomainError:
            continue  # the demo patient already has a visit then: skip it
        booked += 1
    return booked


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
