"""What a patient reports about a program day: exercises done, pain, a note, and the PSFS.

Shared by the program page (``source="page"``), SMS replies (``"sms"``: ``DONE``/``FAIT``, a
pain score) and staff (``"staff"``). Domain functions: plain values and a session; they flush,
never commit. Every "day" is a local date in ``Program.timezone``
(:func:`booking_service.exercises.programs.local_today`).

Pain jumps: a pain score of :data:`PAIN_ALERT_AT` or more, or :data:`PAIN_JUMP_ABOVE_BASELINE`
above the patient's baseline, must reach a clinician. :func:`log_day` detects it, reports it
in :attr:`LoggedDay.pain_jump`, and calls :func:`on_pain_jump` -- the one place where the
clinical alert is raised (``exercises/alerts.py``, built separately).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from booking_service.errors import Conflict, NotFound, ValidationFailed
from booking_service.exercises.models import LOG_SOURCES, FunctionScore, Program, ProgramLog, ProgramLogItem
from booking_service.exercises.programs import local_today
from booking_service.patients.models import Patient

logger = logging.getLogger("booking_service.exercises")

PAIN_MIN, PAIN_MAX = 0, 10
PAIN_ALERT_AT = 8  # a score this high always alerts
PAIN_JUMP_ABOVE_BASELINE = 3  # points above the baseline that alert
BASELINE_SCORES = 7  # the baseline is the median of this many latest earlier scores
NOTE_MAX = 500
PSFS_ACTIVITIES = 3
PSFS_ACTIVITY_MAX = 120
PSFS_EVERY = timedelta(days=7)

# Field codes (the page words them; the API may too).
PAIN_INVALID = "pain_invalid"
NOTE_TOO_LONG = "note_too_long"
SCORE_INVALID = "score_invalid"
ACTIVITY_MISSING = "activity_missing"
ACTIVITY_TOO_LONG = "activity_too_long"


class ProgramNotActive(Conflict):
    """The program is paused or ended: nothing can be logged on it."""

    code = "program_not_active"


@dataclass(frozen=True)
class PainJump:
    """A pain score that must alert a clinician: ``pain`` >= 8, or ``baseline`` + 3 or more."""

    pain: int
    baseline: float | None


@dataclass(frozen=True)
class LoggedDay:
    """What :func:`log_day` did: the day's log (flushed) and, when the pain just logged must
    alert a clinician, the :class:`PainJump` (None otherwise)."""

    log: ProgramLog
    pain_jump: PainJump | None = None
    newly_done: bool = False  # this call made the day done


def parse_pain(value: object) -> int:
    """A pain score 0-10 from a form or a reply (``"7"``, ``7``); raises :class:`ValidationFailed`
    (field ``pain``: ``pain_invalid``) for anything else."""
    text = str(value).strip() if value is not None else ""
    if not (text.isascii() and text.isdigit()) or not PAIN_MIN <= int(text) <= PAIN_MAX:
        raise ValidationFailed("Pain is a whole number from 0 to 10.", fields={"pain": PAIN_INVALID})
    return int(text)


def log_day(
    session: Session,
    program: Program,
    day: date,
    *,
    done: bool | None = None,
    pain: int | None = None,
    note: str | None = None,
    item_id: int | None = None,
    source: str,
    now: datetime,
    reply_to: str | None = None,
    inbound_message_id: int | None = None,
    language: str | None = None,
) -> LoggedDay:
    """Record what the patient reports for local ``day`` of ``program``; returns :class:`LoggedDay`.

    Creates the day's :class:`ProgramLog` on first use (race-safe: the unique
    ``(program_id, local_date)`` decides) and changes only what is given:

    * ``item_id``: that exercise of the current version is done (a :class:`ProgramLogItem`,
      idempotent); once every exercise of the day is done, the day is ``done``.
    * ``done=True``: the whole day is done (``DONE`` by SMS, "I did them all" on the page);
      ``done=False`` reopens it (staff corrections).
    * ``pain``: 0-10 (anything else: :class:`ValidationFailed`, field ``pain``). A new score of
      8+, or 3+ above the baseline (the median of the patient's latest 7 earlier scores on this
      program), is a pain jump: returned, and passed to :func:`on_pain_jump` once (not again
      when the same score is sent twice).
    * ``note``: replaces the day's note (stripped, at most 500 characters, else
      :class:`ValidationFailed`, field ``note``).

    ``source`` (``page``, ``sms``, ``staff``) becomes the log's source; ``reply_to``,
    ``inbound_message_id`` and ``language`` (a score sent by text) go to the alert a pain jump
    raises, so its safety reply answers that phone. Raises
    :class:`ProgramNotActive` (409) when the program is paused or ended, except for staff;
    :class:`ValidationFailed` for a day after today (local) or before the program's start, and
    :class:`NotFound` for an ``item_id`` not in the current version. Flushes, never commits.
    """
    if source not in LOG_SOURCES:
        raise ValueError(f"unknown log source {source!r}")
    if program.status != "active" and source != "staff":
        raise ProgramNotActive("This program is not active.")
    if day > local_today(program, now) or day < program.start_date:
        raise ValidationFailed("That day cannot be logged.", fields={"day": "day_invalid"})
    if pain is not None:
        pain = parse_pain(pain)
    if note is not None:
        note = note.strip()
        if len(note) > NOTE_MAX:
            raise ValidationFailed("The note is too long.", fields={"note": NOTE_TOO_LONG})
    item_ids = [item.id for item in program.current.items]
    if item_id is not None and item_id not in item_ids:
        raise NotFound("There is no such exercise in this program.")

    log = _get_or_create(session, program, day, source=source, now=now)
    was_done, old_pain = log.done, log.pain
    log.source = source
    log.updated_at = now
    if item_id is not None:
        _insert_ignore(
            session, ProgramLogItem.__table__, {"log_id": log.id, "program_item_id": item_id, "done_at": now}
        )
        marked = set(session.scalars(select(ProgramLogItem.program_item_id).where(ProgramLogItem.log_id == log.id)))
        if set(item_ids) <= marked:
            log.done = True
    if done is not None:
        log.done = done
    if note is not None:
        log.note = note
    jump = None
    if pain is not None:
        log.pain = pain
        if pain != old_pain:
            jump = pain_jump(pain, baseline(session, program, before=day))
    session.flush()
    if jump is not None:
        on_pain_jump(
            session,
            program,
            log,
            jump,
            now=now,
            reply_to=reply_to,
            inbound_message_id=inbound_message_id,
            language=language,
        )
    return LoggedDay(log, jump, newly_done=log.done and not was_done)


def on_pain_jump(
    session: Session,
    program: Program,
    log: ProgramLog,
    jump: PainJump,
    *,
    now: datetime,
    reply_to: str | None = None,
    inbound_message_id: int | None = None,
    language: str | None = None,
) -> None:
    """Called by :func:`log_day` once per new alarming score: a ``pain`` alert
    (:func:`booking_service.exercises.alerts.raise_alert`: the dashboard, the clinic's e-mail,
    the safety reply to ``reply_to`` if given, nudges paused until a practitioner acknowledges)."""
    from booking_service.exercises import alerts  # alerts reads the pain rule from here

    if jump.pain >= PAIN_ALERT_AT or jump.baseline is None:
        why = f"pain {jump.pain}/10 ({PAIN_ALERT_AT} or more)"
    else:
        why = f"pain {jump.pain}/10, {jump.pain - jump.baseline:g} above the usual {jump.baseline:g}"
    by = {"sms": "by text", "page": "on the program page", "staff": "by staff"}.get(log.source, log.source)
    alerts.raise_alert(
        session,
        patient=session.get(Patient, program.patient_id),
        kind="pain",
        text=f"Pain jump {by}: {why}.",
        source="sms" if log.source == "sms" else "page",
        now=now,
        program=program,
        inbound_message_id=inbound_message_id,
        reply_to=reply_to,
        language=language,
    )


def pain_jump(pain: int, baseline_score: float | None) -> PainJump | None:
    """A :class:`PainJump` when ``pain`` is 8+ or at least 3 above ``baseline_score``."""
    if pain >= PAIN_ALERT_AT or (baseline_score is not None and pain - baseline_score >= PAIN_JUMP_ABOVE_BASELINE):
        return PainJump(pain, baseline_score)
    return None


def baseline(session: Session, program: Program, *, before: date) -> float | None:
    """The patient's usual pain on this program: the median of the latest
    :data:`BASELINE_SCORES` scores logged before ``before``; None without any."""
    scores = list(
        session.scalars(
            select(ProgramLog.pain)
            .where(ProgramLog.program_id == program.id, ProgramLog.local_date < before, ProgramLog.pain.is_not(None))
            .order_by(ProgramLog.local_date.desc())
            .limit(BASELINE_SCORES)
        )
    )
    return float(statistics.median(scores)) if scores else None


def _insert_ignore(session: Session, table, values: dict) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(table).values(values).on_conflict_do_nothing())


def _get_or_create(session: Session, program: Program, day: date, *, source: str, now: datetime) -> ProgramLog:
    query = select(ProgramLog).where(ProgramLog.program_id == program.id, ProgramLog.local_date == day)
    log = session.scalars(query).first()
    if log is None:
        session.flush()
        _insert_ignore(
            session,
            ProgramLog.__table__,
            {
                "program_id": program.id,
                "patient_id": program.patient_id,
                "local_date": day,
                "done": False,
                "note": "",
                "source": source,
                "created_at": now,
                "updated_at": now,
            },
        )
        log = session.scalars(query).one()
    return log


def done_items(session: Session, log: ProgramLog | None) -> set[int]:
    """The program items marked done in ``log`` (all of them once the day is done)."""
    if log is None:
        return set()
    return set(session.scalars(select(ProgramLogItem.program_item_id).where(ProgramLogItem.log_id == log.id)))


# --------------------------------------------------------------------------- PSFS


def record_function_scores(
    session: Session, program: Program, day: date, scores: list[tuple[str, object]], *, now: datetime
) -> list[FunctionScore]:
    """Record the Patient-Specific Functional Scale for local ``day``: up to three
    ``(activity, score)`` pairs, each activity named by the patient (1-120 characters) and
    rated 0 (unable) to 10 (as before the problem). Pairs with an empty activity are ignored;
    the day's earlier scores are replaced. Raises :class:`ValidationFailed` with fields
    ``activity_{n}`` / ``score_{n}`` (n = 1..3), or when no activity is given
    (``activity_1``); :class:`ProgramNotActive` for a paused or ended program. Flushes.
    """
    if program.status != "active":
        raise ProgramNotActive("This program is not active.")
    if day > local_today(program, now) or day < program.start_date:
        raise ValidationFailed("That day cannot be logged.", fields={"day": "day_invalid"})
    fields: dict[str, str] = {}
    rows = []
    for position, (activity, score) in enumerate(scores[:PSFS_ACTIVITIES], start=1):
        activity = " ".join((activity or "").split())
        if not activity:
            continue
        if len(activity) > PSFS_ACTIVITY_MAX:
            fields[f"activity_{position}"] = ACTIVITY_TOO_LONG
        text = str(score).strip() if score is not None else ""
        if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 10:
            fields[f"score_{position}"] = SCORE_INVALID
            continue
        rows.append(
            FunctionScore(
                program_id=program.id,
                patient_id=program.patient_id,
                local_date=day,
                position=position,
                activity=activity,
                score=int(text),
                created_at=now,
            )
        )
    if not rows and not fields:
        fields["activity_1"] = ACTIVITY_MISSING
    if fields:
        raise ValidationFailed("Some answers need checking.", fields=fields)
    session.execute(
        delete(FunctionScore).where(FunctionScore.program_id == program.id, FunctionScore.local_date == day)
    )
    session.add_all(rows)
    session.flush()
    return rows


def latest_function_scores(session: Session, program: Program) -> tuple[date | None, list[FunctionScore]]:
    """The most recent day's PSFS scores (by position), with that day; ``(None, [])`` if none."""
    last = session.scalar(
        select(FunctionScore.local_date)
        .where(FunctionScore.program_id == program.id)
        .order_by(FunctionScore.local_date.desc())
        .limit(1)
    )
    if last is None:
        return None, []
    rows = session.scalars(
        select(FunctionScore)
        .where(FunctionScore.program_id == program.id, FunctionScore.local_date == last)
        .order_by(FunctionScore.position)
    )
    return last, list(rows)


def function_scores_due(program: Program, last: date | None, today: date) -> bool:
    """Whether the page asks the PSFS today: on the first program day it is opened (no scores
    yet), then once a week (7 days after the latest)."""
    if today < program.start_date:
        return False
    return last is None or today - last >= PSFS_EVERY
