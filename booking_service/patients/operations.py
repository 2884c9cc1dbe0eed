"""Patients: normalising contact details and matching returning patients (consent and opt-out:
:mod:`booking_service.patients.consent`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, and_, bindparam, case, func, literal, or_, select
from sqlalchemy.orm import Session

from booking_service import audit
from booking_service.audit.models import AuditEvent
from booking_service.db import attach_written, insert_with_children
from booking_service.errors import (
    CONTACT_MISSING,
    EMAIL_INVALID,
    FIRST_NAME_MISSING,
    LANGUAGE_INVALID,
    LAST_NAME_MISSING,
    NAME_INVALID,
    NAME_TOO_LONG,
    PHONE_INVALID,
    ValidationFailed,
)
from booking_service.patients.consent import CONSENT_WORDING_VERSION, remember_opt_out, set_consent
from booking_service.patients.models import ConsentEvent, Patient, SmsOptOut

LANGUAGES = ("en", "fr")
MAX_NAME_LENGTH = 80  # the column's size


def normalise_phone(raw: str, country: str) -> str:
    """E.164 for ``raw`` (E.164 or the clinic country's national format).

    Raises ValidationFailed (field ``phone``) when it is not a valid number.
    """
    try:
        number = phonenumbers.parse(raw[:64], country)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationFailed("That phone number does not look right.", fields={"phone": PHONE_INVALID})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    """The address, lower-cased, checked by syntax only (no DNS). Raises ValidationFailed."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
        if len(result.normalized) > 254:
            raise EmailNotValidError("too long")
    except EmailNotValidError:
        raise ValidationFailed("That email address does not look right.", fields={"email": EMAIL_INVALID}) from None
    return result.normalized.lower()


@dataclass(frozen=True)
class PatientDetails:
    first_name: str
    last_name: str
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    sms_consent: bool = False
    email_consent: bool = False
    exercise_sms_consent: bool = False


def clean_details(details: PatientDetails, *, country: str, default_language: str) -> PatientDetails:
    """Checked and normalised details; raises ValidationFailed naming every bad field at once,
    each with its field code (``errors.PHONE_INVALID`` ...). The one place these rules live: the
    API, the pages and the console word the codes."""
    fields: dict[str, str] = {}
    first, last = details.first_name.strip(), details.last_name.strip()
    for name, value, missing in (("first_name", first, FIRST_NAME_MISSING), ("last_name", last, LAST_NAME_MISSING)):
        if not value:
            fields[name] = missing
        elif len(value) > MAX_NAME_LENGTH:
            fields[name] = NAME_TOO_LONG
        elif any(ord(ch) < 32 for ch in value):
            fields[name] = NAME_INVALID
    email = phone = None
    if details.email and details.email.strip():
        try:
            email = normalise_email(details.email)
        except ValidationFailed as exc:
            fields.update(exc.fields)
    if details.phone and details.phone.strip():
        try:
            phone = normalise_phone(details.phone, country)
        except ValidationFailed as exc:
            fields.update(exc.fields)
    if not details.email and not details.phone:
        fields["email"] = CONTACT_MISSING
    language = details.language or default_language
    if language not in LANGUAGES:
        fields["language"] = LANGUAGE_INVALID
    if fields:
        raise ValidationFailed("Some details need fixing.", fields=fields)
    return PatientDetails(
        first_name=first,
        last_name=last,
        email=email,
        phone=phone,
        language=language,
        sms_consent=details.sms_consent and phone is not None,
        email_consent=details.email_consent and email is not None,
        exercise_sms_consent=details.exercise_sms_consent and phone is not None,
    )


def find_or_create_patient(
    session: Session, details: PatientDetails, *, source: str, now: datetime, from_staff: bool = False
) -> Patient:
    """The returning patient with these (clean) details, or a new one.

    A patient matches on the same normalised email, or else the same phone, together with the
    same first name (families often share one phone or one address).

    ``from_staff`` (the console booking for a caller, the staff API): the details given update
    the matched record, as staff speak with the patient.

    Otherwise the details come from an unauthenticated visitor (patient pages, public API,
    waitlist), who could be anyone who knows a patient's email and first name, so they never
    change an existing record's name or contacts:

    - a record that every given detail agrees with (:func:`agrees_with`) is reused;
    - a record matched on one contact but conflicting on another (another phone, another
      email, a contact the record lacks, another last name) is left untouched, and a new
      patient with exactly the given details is made, marked ``possible_duplicate_of`` the
      matched one for staff to compare and merge. Its messages then go only to what the visitor
      gave.

    Consents given now are only ever granted (never withdrawn here); each change is written to
    the consent ledger. The lookup also reads the phone's opt-out for the rest of the
    transaction (``consent.is_opted_out``). On PostgreSQL a new patient costs three
    statements: the identity lock, the lookup, and one insert of the patient with its consents.
    """
    _lock_identity(session, details)
    candidates = _candidates(session, details)
    patient = next((p for p in candidates if agrees_with(p, details)), None)
    if patient is None and from_staff and candidates:
        patient = candidates[0]
    if patient is None:
        duplicate_of = None
        if candidates:
            duplicate_of = next((p for p in candidates if p.possible_duplicate_of_id is None), candidates[0]).id
        return new_patient(session, details, duplicate_of=duplicate_of, source=source, now=now)
    if from_staff:
        patient.last_name = details.last_name
        if details.email:
            patient.email = details.email
        if details.phone and details.phone != patient.phone:
            patient.phone = details.phone
            patient.phone_invalid_at = None
        patient.language = details.language or patient.language or "en"
    for channel, wanted in _consents(details):
        set_consent(session, patient, channel, wanted, source=source, now=now, only_grant=True)
    return patient


def _consents(details: PatientDetails) -> tuple[tuple[str, bool], ...]:
    return (
        ("sms", details.sms_consent),
        ("email", details.email_consent),
        ("exercise_sms", details.exercise_sms_consent),
    )


def new_patient(
    session: Session, details: PatientDetails, *, duplicate_of: int | None, source: str, now: datetime
) -> Patient:
    """Insert a patient with these (clean) details and the consents they grant, with each
    consent's ledger event and audit event, and return it attached to ``session``.

    PostgreSQL: one statement (the patient's INSERT ... RETURNING feeding the other two in
    data-modifying CTEs); SQLite: three. The instance is made persistent from the values
    written, so reading it sends no query.
    """
    row = {
        "first_name": details.first_name,
        "last_name": details.last_name,
        "email": details.email,
        "phone": details.phone,
        "language": details.language or "en",
        "sms_consent": details.sms_consent,
        "email_consent": details.email_consent,
        "exercise_sms_consent": details.exercise_sms_consent,
        "birth_date": None,
        "phone_invalid_at": None,
        "possible_duplicate_of_id": duplicate_of,
        "erased_at": None,
        "created_at": now,
        "updated_at": now,
    }
    granted = [channel for channel, wanted in _consents(details) if wanted]
    ledger = [
        {
            "phone": details.phone if channel != "email" else None,
            "channel": channel,
            "granted": True,
            "source": source,
            "wording_version": CONSENT_WORDING_VERSION,
            "detail": "",
            "created_at": now,
        }
        for channel in granted
    ]
    trail = [
        audit.values(
            session,
            "patient.consent",
            "patient",
            None,
            {"channel": channel, "granted": True, "source": source},
            now=now,
        )
        for channel in granted
    ]
    patient_id = insert_with_children(
        session,
        Patient.__table__,
        row,
        children=[
            (ConsentEvent.__table__, ("patient_id",), ledger),
            (AuditEvent.__table__, ("patient_id", "resource_id"), trail),
        ],
    )
    return attach_written(session, Patient, {"id": patient_id, **row})


def agrees_with(patient: Patient, details: PatientDetails) -> bool:
    """Whether every detail given agrees with the record: the same first and last name (case
    aside), and each contact given is the record's own. A contact not given says nothing; a
    contact the record lacks is a disagreement (adding it would change the record)."""
    if patient.first_name.lower() != details.first_name.lower():
        return False
    if patient.last_name.lower() != details.last_name.lower():
        return False
    return all(
        given is None or given == held
        for given, held in ((details.email, patient.email), (details.phone, patient.phone))
    )


def _candidates(session: Session, details: PatientDetails) -> list[Patient]:
    """Patients with the same first name and the given email, then those with the given phone,
    each group oldest first; one statement, which also reads the phone's opt-out
    (``consent.remember_opt_out``): a row even when nobody matches."""
    query = _candidates_query(details.email is not None, details.phone is not None)
    params = {"first_name": details.first_name.lower(), "email": details.email, "phone": details.phone}
    rows = session.execute(query, params).all()
    if details.phone:
        remember_opt_out(session, details.phone, bool(rows[0].opted_out))
    return [row.Patient for row in rows if row.Patient is not None]


@functools.cache
def _candidates_query(email: bool, phone: bool) -> Select:
    """The statement of :func:`_candidates` for details with an email and/or a phone, built once:
    the returning patients outer-joined to a one-row anchor holding the opt-out."""
    email_value, phone_value = (
        bindparam("email", type_=Patient.email.type),
        bindparam("phone", type_=Patient.phone.type),
    )
    same_contact = [
        column == value
        for column, value, given in ((Patient.email, email_value, email), (Patient.phone, phone_value, phone))
        if given
    ]
    opted_out = select(SmsOptOut.phone).where(SmsOptOut.phone == phone_value).exists() if phone else literal(False)
    anchor = select(opted_out.label("opted_out")).subquery("anchor")
    match = and_(func.lower(Patient.first_name) == bindparam("first_name"), or_(*same_contact))
    email_first = case((Patient.email == email_value, 0), else_=1) if email else literal(0)
    return (
        select(anchor.c.opted_out, Patient)
        .select_from(anchor)
        .outerjoin(Patient, match)
        .order_by(email_first, Patient.id)
    )


def _lock_identity(session: Session, details: PatientDetails) -> None:
    """Serialise concurrent bookings by the same person (PostgreSQL).

    Without it, two transactions booking a first-time patient at once (two browser tabs) would
    each create the patient, and the patient-overlap constraint would see two people. A
    transaction-scoped advisory lock per normalised email and phone makes the second wait for the
    first to commit, then find its patient. SQLite needs nothing: ``BEGIN IMMEDIATE`` already
    serialises booking transactions.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({f"patient:{value}" for value in (details.email, details.phone) if value})
    # One statement; sorted, so two transactions take them in the same order (PostgreSQL
    # evaluates a select list left to right).
    session.execute(_lock_statement(len(keys)), {f"key{n}": key for n, key in enumerate(keys)})


@functools.cache
def _lock_statement(keys: int) -> Select:
    """The one statement taking ``keys`` advisory locks, left to right."""
    return select(*(func.pg_advisory_xact_lock(func.hashtextextended(bindparam(f"key{n}"), 0)) for n in range(keys)))
