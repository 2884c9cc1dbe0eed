"""The clinic's exercise library as staff see it: finding exercises, adding and editing one.

Domain functions: a session and plain values, no commit.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from booking_service.errors import NotFound
from booking_service.exercises.models import Exercise
from booking_service.exercises.validation import check_exercise

EDITABLE = (
    "key",
    "name_en",
    "name_fr",
    "instructions_en",
    "instructions_fr",
    "cautions_en",
    "cautions_fr",
    "default_reps",
    "default_sets",
    "default_hold_seconds",
    "default_times_per_day",
    "media_url",
    "active",
)


def list_exercises(session: Session, query: str = "", *, include_inactive: bool = False) -> list[Exercise]:
    """Exercises by English name; ``query`` matches part of either name or the key."""
    select_ = select(Exercise)
    if not include_inactive:
        select_ = select_.where(Exercise.active.is_(True))
    words = " ".join(query.split())
    if words:
        pattern = f"%{words.lower()}%"
        select_ = select_.where(
            or_(
                Exercise.name_en.ilike(pattern),
                Exercise.name_fr.ilike(pattern),
                Exercise.key.ilike(pattern),
            )
        )
    return list(session.scalars(select_.order_by(Exercise.name_en, Exercise.id)))


def get_exercise(session: Session, exercise_id: int) -> Exercise:
    exercise = session.get(Exercise, exercise_id)
    if exercise is None:
        raise NotFound("There is no such exercise.")
    return exercise


def save_exercise(session: Session, values: dict, *, exercise_id: int | None = None) -> Exercise:
    """Add an exercise (``exercise_id`` None) or change one. ``values`` holds the
    :data:`EDITABLE` columns (text stripped; empty optional text and doses as None). Raises
    ValidationFailed naming each field that breaks a rule, NotFound for an unknown id."""
    exercise = get_exercise(session, exercise_id) if exercise_id is not None else None
    check_exercise(session, values, exercise_id=exercise_id)
    if exercise is None:
        exercise = Exercise()
        session.add(exercise)
    for column in EDITABLE:
        if column in values:
            value = values[column]
            if column.startswith("cautions_"):
                value = value or ""
            if column == "default_times_per_day":
                value = value or 1
            if column == "active":
                value = bool(value)
            setattr(exercise, column, value)
    session.flush()
    return exercise
