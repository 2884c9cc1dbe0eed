"""The desk's changes to a patient's record: contact details and consents as the patient gives
them, a new patient registered without a booking, and staff notes.

Every change is audited (``patient.update``, ``patient.create``, ``patient.note_add``,
``patient.note_edit``) with the names of the fields changed, never their values, and never a
note's text. Consents go through the consent ledger (``consent.set_consent``, source
``staff``). The opt-out rule holds here too: after a STOP only a START text from that phone
lifts it, so staff can record that a patient withdrew consent to texts, but cannot record a
new consent to texts for a number that replied STOP (``errors.SMS_OPTED_OUT``).

Operations take a session and plain values and do not commit; the edge commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import audit, errors
from booking_service.db import write_transaction
from booking_service.errors import Conflict, NotFound, ValidationFailed
from booking_service.patients.consent import is_opted_out, set_consent
from booking_service.patients.merge import readdress_pending
from booking_service.patients.models import Patient, PatientNote
from booking_service.patients.operations import PatientDetails, clean_details

MAX_NOTE = 4000
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
SMS_CHANNELS = ("sms", "exercise_sms")


@dataclass(frozen=True)
class Updated:
    patient: Patient
    changed: tuple[str, ...]  # field names, for the flash message and the audit trail


def read_birth_date(raw: str | None) -> date | str | None:
    """A form's date of birth: None when left empty, the date (``YYYY-MM-DD``), else the text
    as typed, which :func:`update_details` and :func:`create_patient` refuse by name."""
    text = (raw or "").strip()[:32]
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def birth_date_problem(value: date | str | None, today: date) -> str | None:
    """The field code for a birth date that cannot be right; ``value`` is a date, None (not
    given) or the text typed when it did not read as a date."""
    if value is None:
        return None
    if not isinstance(value, date) or not EARLIEST_BIRTH_DATE <= value <= today:
        return errors.BIRTH_DATE_INVALID
    return None


def _opt_out_problems(session: Session, clean: PatientDetails, patient: Patient | None) -> dict[str, str]:
    """Field codes for consents to texts that the number's STOP forbids recording: a consent the
    record did not already hold for this same number."""
    if clean.phone is None or not is_opted_out(session, clean.phone):
        return {}
    problems = {}
    for channel in SMS_CHANNELS:
        wanted = getattr(clean, f"{channel}_consent")
        held = patient is not None and patient.phone == clean.phone and getattr(patient, f"{channel}_consent")
        if wanted and not held:
            problems[f"{channel}_consent"] = errors.SMS_OPTED_OUT
    return problems


def _checked(
    session: Session,
    details: PatientDetails,
    birth_date: date | str | None,
    *,
    patient: Patient | None,
    country: str,
    default_language: str,
    now: datetime,
) -> PatientDetails:
    fields: dict[str, str] = {}
    clean = None
    try:
        clean = clean_details(details, country=country, default_language=default_language)
    except ValidationFailed as exc:
        fields.update(exc.fields)
    problem = birth_date_problem(birth_date, now.date())
    if problem:
        fields["birth_date"] = problem
    if clean is not None:
        fields.update(_opt_out_problems(session, clean, patient))
    if fields or clean is None:
        raise ValidationFailed(errors.INVALID, fields=fields)
    return clean


def _get(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(errors.PATIENT_NOT_FOUND)
    return patient


def update_details(
    session: Session,
    patient_id: int,
    details: PatientDetails,
    *,
    birth_date: date | str | None,
    country: str,
    default_language: str,
    now: datetime,
) -> Updated:
    """Set the patient's name, contacts, language, date of birth and consents to ``details``
    (the whole set, as the desk's form shows it; the API fills what its PATCH leaves out).

    Consents follow the contact they are about (no phone: no texts). A changed phone clears the
    provider's "cannot get texts" mark; pending messages to the old phone or e-mail go to the new
    one. Raises NotFound, Conflict (an erased record) or ValidationFailed naming every bad
    field: the rules of ``operations.clean_details``, ``birth_date_invalid`` (not a past date
    after 1900), ``sms_opted_out`` (see the module's docstring). Nothing is changed then.
    """
    write_transaction(session)
    patient = _get(session, patient_id)
    if patient.erased_at is not None:
        raise Conflict(errors.CONFLICT)
    clean = _checked(
        session,
        details,
        birth_date,
        patient=patient,
        country=country,
        default_language=default_language,
        now=now,
    )
    old = {"email": patient.email, "phone": patient.phone}
    changed = []
    for name, value in (
        ("first_name", clean.first_name),
        ("last_name", clean.last_name),
        ("email", clean.email),
        ("phone", clean.phone),
        ("language", clean.language),
        ("birth_date", birth_date),
    ):
        if getattr(patient, name) != value:
            setattr(patient, name, value)
            changed.append(name)
    if "phone" in changed:
        patient.phone_invalid_at = None
    for channel in ("sms", "email", "exercise_sms"):
        wanted = getattr(clean, f"{channel}_consent")
        if getattr(patient, f"{channel}_consent") != wanted:
            set_consent(session, patient, channel, wanted, source="staff", now=now)
            changed.append(f"{channel}_consent")
    if changed:
        patient.updated_at = now
        session.flush()
        readdress_pending(session, patient, old)
        contact_fields = [name for name in changed if not name.endswith("_consent")]
        if contact_fields:  # consents are audited by the ledger itself (patient.consent)
            audit.record(session, "patient.update", "patient", patient.id, {"changed": contact_fields}, now=now)
    return Updated(patient=patient, changed=tuple(changed))


PATCHABLE = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "language",
    "birth_date",
    "sms_consent",
    "email_consent",
    "exercise_sms_consent",
)


def patch_details(
    session: Session, patient_id: int, changes: dict, *, country: str, default_language: str, now: datetime
) -> Updated:
    """:func:`update_details` with only the fields in ``changes`` (keys of :data:`PATCHABLE`);
    the others keep the record's values (the staff API's PATCH). Raises as it does."""
    unknown = set(changes) - set(PATCHABLE)
    if unknown:
        raise TypeError(f"not patient fields: {', '.join(sorted(unknown))}")
    write_transaction(session)
    patient = _get(session, patient_id)
    current = {name: getattr(patient, name) for name in PATCHABLE}
    merged = {**current, **changes}
    details = PatientDetails(**{name: merged[name] for name in PATCHABLE if name != "birth_date"})
    return update_details(
        session,
        patient_id,
        details,
        birth_date=merged["birth_date"],
        country=country,
        default_language=default_language,
        now=now,
    )


def create_patient(
    session: Session,
    details: PatientDetails,
    *,
    birth_date: date | str | None,
    country: str,
    default_language: str,
    now: datetime,
) -> Patient:
    """A new patient record from the desk (the caller has chosen "new patient" over the possible
    duplicates shown: ``patients.duplicates``), with the consents they gave. Raises
    ValidationFailed as :func:`update_details` does; nothing is written then."""
    write_transaction(session)
    clean = _checked(
        session, details, birth_date, patient=None, country=country, default_language=default_language, now=now
    )
    patient = Patient(
        first_name=clean.first_name,
        last_name=clean.last_name,
        email=clean.email,
        phone=clean.phone,
        language=clean.language or default_language,
        birth_date=birth_date if isinstance(birth_date, date) else None,
        created_at=now,
        updated_at=now,
    )
    session.add(patient)
    session.flush()
    for channel in ("sms", "email", "exercise_sms"):
        if getattr(clean, f"{channel}_consent"):
            set_consent(session, patient, channel, True, source="staff", now=now)
    audit.record(session, "patient.create", "patient", patient.id, {"surface": "desk"}, now=now)
    return patient


def set_birth_date_if_missing(session: Session, patient: Patient, birth_date: date | None, *, now: datetime) -> bool:
    """Record the date of birth given at the desk on a patient who has none (a booking for a
    returning patient). Returns whether it was set."""
    if birth_date is None or patient.birth_date is not None or birth_date_problem(birth_date, now.date()):
        return False
    patient.birth_date = birth_date
    patient.updated_at = now
    audit.record(session, "patient.update", "patient", patient.id, {"changed": ["birth_date"]}, now=now)
    return True


# --- staff notes -------------------------------------------------------------------------------


def _note_text(body: str) -> str:
    text = (body or "").strip()
    if not text:
        raise ValidationFailed(errors.INVALID, fields={"body": errors.NOTE_MISSING})
    if len(text) > MAX_NOTE:
        raise ValidationFailed(
            errors.INVALID, fields={"body": errors.NOTE_TOO_LONG}, field_params={"body": {"limit": MAX_NOTE}}
        )
    return text


def add_note(session: Session, patient_id: int, body: str, *, user_id: int | None, now: datetime) -> PatientNote:
    """A staff note on the patient's record. Raises NotFound, ValidationFailed (empty, longer
    than :data:`MAX_NOTE`)."""
    text = _note_text(body)
    patient = _get(session, patient_id)
    note = PatientNote(patient_id=patient.id, body=text, created_by_user_id=user_id, created_at=now)
    session.add(note)
    session.flush()
    audit.record(session, "patient.note_add", "patient", patient.id, {"note_id": note.id, "length": len(text)}, now=now)
    return note


def edit_note(
    session: Session, patient_id: int, note_id: int, body: str, *, user_id: int | None, now: datetime
) -> PatientNote:
    """Replace a note's text (who and when are kept). Raises NotFound (no such note on this
    patient), ValidationFailed as :func:`add_note`."""
    text = _note_text(body)
    note = session.scalars(
        select(PatientNote).where(PatientNote.id == note_id, PatientNote.patient_id == patient_id)
    ).first()
    if note is None:
        raise NotFound(errors.NOT_FOUND)
    if note.body != text:
        note.body = text
        note.updated_by_user_id = user_id
        note.updated_at = now
        session.flush()
        audit.record(
            session, "patient.note_edit", "patient", patient_id, {"note_id": note.id, "length": len(text)}, now=now
        )
    return note


def notes_of(session: Session, patient_id: int) -> list[PatientNote]:
    """The patient's staff notes, newest first."""
    return list(
        session.scalars(
            select(PatientNote)
            .where(PatientNote.patient_id == patient_id)
            .order_by(PatientNote.created_at.desc(), PatientNote.id.desc())
        )
    )
