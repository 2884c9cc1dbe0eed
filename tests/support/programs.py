"""Building patients with home exercise programs for tests (plain functions over a session).

Programs are made with the real ``create_program``; nothing here commits.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.exercises.models import Exercise
from booking_service.exercises.programs import ItemSpec, create_program
from booking_service.patients.models import Patient
from tests.conftest import NOW, SECRET

EVERY_DAY = list(range(7))

EXERCISES = (
    dict(
        key="nerve-glide-seated",
        name_en="Seated nerve glide",
        name_fr="Glissement neural assis",
        instructions_en="Sit tall. Straighten one knee while you lift your head, then bend the knee as you look down.",
        instructions_fr="Assoyez-vous bien droit. Tendez un genou en levant la tête, puis pliez-le.",
        cautions_en="Stop if tingling spreads down the leg.",
        cautions_fr="Arrêtez si les picotements descendent dans la jambe.",
        default_reps=10,
        default_sets=2,
    ),
    dict(
        key="knee-to-chest",
        name_en="Knee to chest",
        name_fr="Genou à la poitrine",
        instructions_en="Lie on your back and pull one knee gently to your chest.",
        instructions_fr="Couché sur le dos, ramenez doucement un genou vers la poitrine.",
        default_hold_seconds=20,
        default_sets=3,
    ),
)


def add_exercises(session: Session) -> list[int]:
    """The two library exercises (added on first use)."""
    ids = []
    for values in EXERCISES:
        row = session.scalars(select(Exercise).where(Exercise.key == values["key"])).first()
        if row is None:
            row = Exercise(**values)
            session.add(row)
            session.flush()
        ids.append(row.id)
    return ids


def add_patient(session: Session, **overrides) -> Patient:
    values = {
        "first_name": "Sam",
        "last_name": "Lee",
        "phone": "+14165550123",
        "email": "sam@example.com",
        "language": "en",
        "sms_consent": True,
        "email_consent": True,
        "exercise_sms_consent": True,
    }
    values.update(overrides)
    patient = Patient(**values)
    session.add(patient)
    session.flush()
    return patient


def add_program(
    session: Session,
    clinic,
    patient_id: int,
    *,
    exercise_ids: list[int] | None = None,
    days: list[int] | None = None,
    at: time = time(9, 0),
    start: date = date(2026, 1, 1),
    end: date | None = None,
    timezone: str | None = None,
    now: datetime = NOW,
    secret_key: str = SECRET,
):
    if exercise_ids is None:
        exercise_ids = add_exercises(session)
    return create_program(
        session,
        patient_id=patient_id,
        practitioner_id=clinic.practitioner_ids[0],
        location_id=clinic.location_id,
        items=[ItemSpec(exercise_id=e, reps=12 if i == 0 else None) for i, e in enumerate(exercise_ids)],
        days=EVERY_DAY if days is None else days,
        time_of_day=at,
        start=start,
        end=end,
        timezone=timezone,
        secret_key=secret_key,
        now=now,
    )
