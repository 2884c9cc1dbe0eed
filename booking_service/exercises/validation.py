"""The rules of a program's schedule and doses, and of a library exercise: each written once,
each broken rule one field code (``booking_service.errors``), all of them reported together.

Field paths follow the API's body: ``exercises.0.exercise_id``, ``exercises.1.reps``, ``days``,
``time``, ``start``, ``end``, ``practitioner_id``; for an exercise ``key``, ``name_en`` ...
The console words the same codes for its own form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, time
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.clinic.models import Practitioner
from booking_service.errors import ValidationFailed
from booking_service.exercises.models import WEEKDAYS, Exercise

if TYPE_CHECKING:
    from booking_service.exercises.programs import ItemSpec

# The bounds of the database's check constraints (exercises.models.ProgramItem).
DOSE_BOUNDS = {
    "reps": (1, 200, errors.REPS_INVALID),
    "sets": (1, 20, errors.SETS_INVALID),
    "hold_seconds": (1, 600, errors.HOLD_INVALID),
    "times_per_day": (1, 10, errors.TIMES_PER_DAY_INVALID),
}
MAX_ITEMS = 20
KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_]{1,63}")
NAME_MAX = 120
TEXT_MAX = 4000
MEDIA_URL_MAX = 500


def dose_problems(values: dict[str, int | None], prefix: str = "") -> dict[str, str]:
    """Field -> code for each dose outside its bounds (None is allowed: no such dose)."""
    problems = {}
    for name, (low, high, code) in DOSE_BOUNDS.items():
        value = values.get(name)
        if value is not None and not low <= value <= high:
            problems[prefix + name] = code
    return problems


def check_program(
    session: Session,
    *,
    items: Sequence[ItemSpec],
    days: Iterable[int],
    time_of_day: time | None,
    start: date | None,
    end: date | None,
    practitioner_id: int | None = None,
) -> None:
    """Raises ValidationFailed (422) naming every field that breaks a rule: no exercises, an
    exercise that is not in the library (or no longer offered), the same exercise twice, a
    dose out of bounds, no days or a day that is not 0-6, no time, no start, an end before the
    start, an unknown practitioner."""
    problems: dict[str, str] = {}
    if not items:
        problems["exercises"] = errors.EXERCISES_MISSING
    elif len(items) > MAX_ITEMS:
        problems["exercises"] = errors.EXERCISES_TOO_MANY
    wanted = {spec.exercise_id for spec in items}
    offered = set(session.scalars(select(Exercise.id).where(Exercise.id.in_(wanted), Exercise.active.is_(True))))
    seen: set[int] = set()
    for index, spec in enumerate(items):
        prefix = f"exercises.{index}."
        if spec.exercise_id not in offered:
            problems[prefix + "exercise_id"] = errors.EXERCISE_UNKNOWN
        elif spec.exercise_id in seen:
            problems[prefix + "exercise_id"] = errors.EXERCISE_REPEATED
        seen.add(spec.exercise_id)
        problems.update(
            dose_problems(
                {
                    "reps": spec.reps,
                    "sets": spec.sets,
                    "hold_seconds": spec.hold_seconds,
                    "times_per_day": spec.times_per_day,
                },
                prefix,
            )
        )
    days = list(days)
    if not days:
        problems["days"] = errors.DAYS_MISSING
    elif any(not isinstance(d, int) or not 0 <= d < len(WEEKDAYS) for d in days):
        problems["days"] = errors.WEEKDAY_INVALID
    if time_of_day is None:
        problems["time"] = errors.TIME_MISSING
    if start is None:
        problems["start"] = errors.START_MISSING
    elif end is not None and end < start:
        problems["end"] = errors.END_BEFORE_START
    if practitioner_id is not None and session.get(Practitioner, practitioner_id) is None:
        problems["practitioner_id"] = errors.PRACTITIONER_UNKNOWN
    if problems:
        raise ValidationFailed("Some details of the program need fixing.", fields=problems)


def check_exercise(session: Session, values: dict, *, exercise_id: int | None = None) -> None:
    """Raises ValidationFailed naming every field of a library exercise that breaks a rule: a
    key that is not lower-case letters, digits and underscores (2-64) or is taken by another
    exercise, a missing name or instructions (in either language), text too long, a dose out of
    bounds, a media link that is not an http(s) address."""
    problems: dict[str, str] = {}
    key = values.get("key") or ""
    if not KEY_PATTERN.fullmatch(key):
        problems["key"] = errors.EXERCISE_KEY_INVALID
    else:
        other = session.scalar(select(Exercise.id).where(Exercise.key == key))
        if other is not None and other != exercise_id:
            problems["key"] = errors.EXERCISE_KEY_TAKEN
    for language in ("en", "fr"):
        name = values.get(f"name_{language}") or ""
        if not name.strip():
            problems[f"name_{language}"] = errors.EXERCISE_NAME_MISSING
        elif len(name) > NAME_MAX:
            problems[f"name_{language}"] = errors.TEXT_TOO_LONG
        instructions = values.get(f"instructions_{language}") or ""
        if not instructions.strip():
            problems[f"instructions_{language}"] = errors.EXERCISE_INSTRUCTIONS_MISSING
        elif len(instructions) > TEXT_MAX:
            problems[f"instructions_{language}"] = errors.TEXT_TOO_LONG
        if len(values.get(f"cautions_{language}") or "") > TEXT_MAX:
            problems[f"cautions_{language}"] = errors.TEXT_TOO_LONG
    problems.update(
        dose_problems(
            {
                "reps": values.get("default_reps"),
                "sets": values.get("default_sets"),
                "hold_seconds": values.get("default_hold_seconds"),
                "times_per_day": values.get("default_times_per_day"),
            },
            "default_",
        )
    )
    url = values.get("media_url")
    if url and (len(url) > MEDIA_URL_MAX or not re.fullmatch(r"https?://[^\s<>\"']+\.[^\s<>\"']+", url)):
        problems["media_url"] = errors.MEDIA_URL_INVALID
    if problems:
        raise ValidationFailed("Some details of the exercise need fixing.", fields=problems)
