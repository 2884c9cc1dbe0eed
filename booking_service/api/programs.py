"""Home exercise programs for staff (Bearer token): the exercise library, assigning a program to
a patient, and one program with its versions, logs and adherence.

Scoped like the console: the desk (admin, front desk) sees every patient; a practitioner's token
sees only their own patients and programs, and anything else is a 404 (not told apart from an
unknown id).
"""

from __future__ import annotations

from flask import g

from booking_service import access
from booking_service.api import queries, serializers
from booking_service.api.auth import actor, staff_required
from booking_service.api.blueprint import bp, documented_errors
from booking_service.api.schemas import (
    MAX_ID,
    WEEKDAY_NAMES,
    ExerciseListSchema,
    ProgramDetailSchema,
    ProgramInSchema,
    ProgramSchema,
)
from booking_service.context import db_session, settings
from booking_service.db import utcnow
from booking_service.errors import PRACTITIONER_NOT_YOURS, NotFound, ValidationFailed
from booking_service.exercises import progress
from booking_service.exercises.catalogue import list_exercises
from booking_service.exercises.programs import (
    ItemSpec,
    create_program,
    default_location,
    get_program,
    local_today,
    program_url,
)
from booking_service.scheduling.queries import is_patient_of

_ID = f"int(max={MAX_ID})"


def _practitioner_scope() -> int | None:
    """None when the token's user sees every program; else the one practitioner they act as
    (the access policy's rule, as in the console)."""
    return access.practitioner_scope(actor(), "program", "read")


def _url(program) -> str:
    return program_url(program, secret_key=settings().SECRET_KEY, base_url=settings().PUBLIC_BASE_URL)


@bp.route("/exercises", methods=["GET"], tags=["Programs"])
@staff_required(bp)
@bp.response(200, ExerciseListSchema)
def exercises():
    """The clinic's exercise library (exercises still offered), by name, in English and French"""
    return {"exercises": [serializers.exercise(e) for e in list_exercises(db_session())]}


@bp.route(f"/patients/<{_ID}:patient_id>/programs", methods=["POST"], tags=["Programs"])
@staff_required(bp)
@bp.arguments(ProgramInSchema)
@bp.response(201, ProgramSchema)
@documented_errors(404, 422)
def assign_program(args, patient_id):
    """Assign a home exercise program to a patient

    Doses left out take the exercise's default. The time is the local time of the nudge in the
    patient's zone (their clinic location's). A 422 names each field to fix: `exercises`
    (none), `exercises.N.exercise_id` (not in the library, or twice), `exercises.N.reps` (out
    of bounds), `days` (none), `end` (before `start`), `practitioner_id` (unknown, or not your
    own with a practitioner's token). Texts (nudges) need the patient's `exercise_sms_consent`;
    without it the program exists and its `program_url` can be given by hand.
    """
    session = db_session()
    scope = _practitioner_scope()
    queries.get_patient(session, patient_id)
    if scope is not None and not is_patient_of(session, patient_id, scope):
        raise NotFound("There is no such patient.")
    if scope is not None and args["practitioner_id"] != scope:
        raise ValidationFailed(
            "Assign programs under your own practitioner id.", fields={"practitioner_id": PRACTITIONER_NOT_YOURS}
        )
    now = utcnow()
    program = create_program(
        session,
        patient_id=patient_id,
        practitioner_id=args["practitioner_id"],
        location_id=default_location(session, patient_id, args["practitioner_id"]) or 0,
        items=[
            ItemSpec(
                exercise_id=item["exercise_id"],
                reps=item.get("reps"),
                sets=item.get("sets"),
                hold_seconds=item.get("hold_seconds"),
                times_per_day=item.get("times_per_day"),
            )
            for item in args["exercises"]
        ],
        days=[WEEKDAY_NAMES.index(day) for day in args["days"]],
        time_of_day=args["time"],
        start=args["start"],
        end=args.get("end"),
        user_id=g.staff_user.id,
        secret_key=settings().SECRET_KEY,
        now=now,
    )
    return serializers.program(program, url=_url(program))


@bp.route(f"/programs/<{_ID}:program_id>", methods=["GET"], tags=["Programs"])
@staff_required(bp)
@bp.response(200, ProgramDetailSchema)
@documented_errors(404)
def program_detail(program_id):
    """One program: status, current exercises, every version, the patient's logs and adherence

    Adherence counts program days (the prescribed days within the program's dates, up to
    today in the patient's zone) and how many of them were logged as done, per week and
    overall.
    """
    session = db_session()
    program = get_program(session, program_id)
    scope = _practitioner_scope()
    if scope is not None and program.practitioner_id != scope:
        raise NotFound("There is no such program.")
    logs = progress.logs(session, program.id)
    weeks = progress.weekly_adherence(program, logs, today=local_today(program, utcnow()))
    return serializers.program_detail(
        program, url=_url(program), logs=logs, weeks=weeks, overall=progress.overall_adherence(weeks)
    )
