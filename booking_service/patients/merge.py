"""Merging two records of one person: staff's answer to a possible duplicate.

A visitor's details that match a patient on one contact but conflict on another make a new
record marked ``possible_duplicate_of`` (``patients.operations.find_or_create_patient``). The
desk compares the two and, when they are one person, merges: everything keyed by the merged
record moves to the kept one, the kept record's contacts stay unless staff pick the other's,
and the merged record is removed. Like every operation it takes a session and plain values and
does not commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from booking_service import audit, errors
from booking_service.db import Base, write_transaction
from booking_service.errors import Conflict, NotFound, ValidationFailed
from booking_service.patients.models import Patient

# What staff may take from the merged record; each consent follows the contact it is about.
CHOOSABLE = ("name", "email", "phone", "language", "birth_date")
_CONSENTS_OF = {"email": ("email_consent",), "phone": ("sms_consent", "exercise_sms_consent")}


class MergeRefused(Conflict):
    """409: the two records cannot be merged as they stand (overlapping visits)."""

    code = "merge_overlap"


@dataclass(frozen=True)
class Merged:
    kept: Patient
    moved: dict[str, int]  # table name -> rows moved


def merge_patients(
    session: Session, *, keep_id: int, merge_id: int, take: frozenset[str] = frozenset(), now: datetime
) -> Merged:
    """Merge patient ``merge_id`` into ``keep_id`` and delete it.

    ``take`` names what to copy from the merged record (``CHOOSABLE``); everything else of the
    kept record stays. Every row of any table keyed by ``patients.id`` moves to the kept record,
    and pending messages addressed to a contact the merged record had are re-addressed to the
    kept record's contact on that channel.

    Raises NotFound (either patient unknown), ValidationFailed (the same patient twice, an
    unknown choice) and MergeRefused when the two have active visits that overlap: one person
    cannot be in two visits at once, so staff cancel or move one first. The database's
    patient-overlap guard (PostgreSQL exclusion constraint, SQLite trigger) has the last word.
    """
    write_transaction(session)
    if keep_id == merge_id:
        raise ValidationFailed(errors.INVALID, fields={"merge_id": errors.SAME_PATIENT})
    unknown = set(take) - set(CHOOSABLE)
    if unknown:
        raise ValidationFailed("Unknown detail to take.", fields={"take": ", ".join(sorted(unknown))})
    kept, merged = session.get(Patient, keep_id), session.get(Patient, merge_id)
    if kept is None or merged is None:
        raise NotFound("That patient does not exist.", fields={"patient_id": "not_found"})
    overlaps = _overlapping_visits(session, kept.id, merged.id)
    if overlaps:
        raise MergeRefused(
            "These two records have visits at the same time. Cancel or move one of them, then merge.",
            appointments=overlaps,
        )
    old_contacts = {"email": merged.email, "phone": merged.phone}
    _take_details(kept, merged, take)
    try:
        with session.begin_nested():
            session.flush()  # the details taken, before the bulk updates below expire the objects
            moved = _move_rows(session, kept.id, merged.id)
            readdress_pending(session, kept, old_contacts)
            session.delete(merged)
            kept.updated_at = now
            session.flush()
    except (IntegrityError, OperationalError) as exc:
        if "patient_overlap" in str(exc.orig):
            raise MergeRefused(
                "These two records have visits at the same time. Cancel or move one of them, then merge."
            ) from None
        raise
    detail = {"merged_id": merge_id, "took": sorted(take), "moved": [f"{t}:{n}" for t, n in sorted(moved.items())]}
    audit.record(session, "patient.merge", "patient", keep_id, detail, patient_id=keep_id, now=now)
    return Merged(kept=kept, moved=moved)


def _overlapping_visits(session: Session, keep_id: int, merge_id: int) -> list[tuple[int, int]]:
    from booking_service.scheduling.models import Appointment  # a read across the layer, for a friendly error

    mine, theirs = Appointment.__table__.alias("mine"), Appointment.__table__.alias("theirs")
    query = select(mine.c.id, theirs.c.id).where(
        mine.c.patient_id == keep_id,
        theirs.c.patient_id == merge_id,
        mine.c.status != "cancelled",
        theirs.c.status != "cancelled",
        mine.c.start_at < theirs.c.end_at,
        mine.c.end_at > theirs.c.start_at,
    )
    return [tuple(row) for row in session.execute(query)]


def _take_details(kept: Patient, merged: Patient, take: frozenset[str]) -> None:
    if "name" in take:
        kept.first_name, kept.last_name = merged.first_name, merged.last_name
    if "language" in take:
        kept.language = merged.language
    if "birth_date" in take or kept.birth_date is None:  # a date the kept record lacks is simply filled
        kept.birth_date = merged.birth_date or kept.birth_date
    if "email" in take:
        kept.email = merged.email
    if "phone" in take:
        kept.phone, kept.phone_invalid_at = merged.phone, merged.phone_invalid_at
    for contact, flags in _CONSENTS_OF.items():
        if contact in take:
            for flag in flags:
                setattr(kept, flag, getattr(merged, flag))
    if kept.possible_duplicate_of_id == merged.id:
        kept.possible_duplicate_of_id = None


def rows_keyed_by(session: Session, patient_id: int) -> dict[str, int]:
    """How many rows of each table point at the patient: what a merge would move (the desk's
    side-by-side comparison). Tables with none are left out."""
    import booking_service.models  # noqa: F401  (completes Base.metadata)

    counts: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if table.name == "patients":
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == "patients" and fk.column.name == "id":
                found = session.scalar(select(func.count()).select_from(table).where(fk.parent == patient_id))
                if found:
                    counts[table.name] = counts.get(table.name, 0) + found
    return counts


def _move_rows(session: Session, keep_id: int, merge_id: int) -> dict[str, int]:
    """Point every foreign key to ``patients.id`` (any table, present or future) at the kept
    record. Base.metadata must know every model: ``booking_service.models`` imports them all."""
    import booking_service.models  # noqa: F401  (completes Base.metadata)

    moved: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != "patients" or fk.column.name != "id":
                continue
            column = fk.parent
            if table.name == "patients":  # other duplicates of the merged record now point here
                session.execute(
                    update(table).where(column == merge_id, table.c.id != keep_id).values({column.name: keep_id})
                )
                continue
            result = session.execute(update(table).where(column == merge_id).values({column.name: keep_id}))
            if result.rowcount:
                moved[table.name] = moved.get(table.name, 0) + result.rowcount
    session.expire_all()
    return moved


def readdress_pending(session: Session, kept: Patient, old: dict[str, str | None]) -> None:
    """Pending messages of ``kept`` to an old email or phone (``old``: the merged record's, or
    the record's own before staff changed it) go to its current one on that channel."""
    from booking_service.outbox.models import OutboxMessage  # the outbox row's address, nothing more

    for channel, contact, new in (("email", old["email"], kept.email), ("sms", old["phone"], kept.phone)):
        if contact and new and contact != new:
            session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.patient_id == kept.id,
                    OutboxMessage.channel == channel,
                    OutboxMessage.to == contact,
                    OutboxMessage.status == "pending",
                )
                .values(to=new)
            )
