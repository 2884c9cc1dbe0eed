"""Is this person already on file? The desk's duplicate warning, before a new record is made.

A record is a candidate when it has the same mobile number, the same e-mail address, or a
similar name and the same date of birth (when one was given). Names are compared folded:
accents and case dropped, punctuation read as a space ("Hélène St-Pierre" = "helene st pierre"),
first and last name also tried swapped (a caller spelling out "Chen Maya"), and similar when
:func:`difflib.SequenceMatcher` finds them at least :data:`NAME_SIMILARITY` alike, or the last
names are equal and one first name starts the other ("Alex" and "Alexandra").

Read-only: a session and plain values. The console's booking form and new-patient form and the
staff API's checks call :func:`find_duplicates`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from difflib import SequenceMatcher

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.errors import ValidationFailed
from booking_service.patients.models import Patient
from booking_service.patients.operations import normalise_email, normalise_phone

# 0.85 tells "Jon Smith" from "John Smith" apart from "Jane Smith" (0.8): a warning, not a merge.
NAME_SIMILARITY = 0.85
LIMIT = 10

# Why a record is a candidate, strongest first.
SAME_PHONE = "same_phone"
SAME_EMAIL = "same_email"
NAME_AND_BIRTH_DATE = "name_and_birth_date"
REASON_ORDER = (SAME_PHONE, SAME_EMAIL, NAME_AND_BIRTH_DATE)


@dataclass(frozen=True)
class Candidate:
    patient: Patient
    reasons: tuple[str, ...]  # of REASON_ORDER


def fold_name(text: str) -> str:
    """Lower case, no accents, letters and digits only, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[^\w]+|_", " ", plain).split())


def names_similar(first_a: str, last_a: str, first_b: str, last_b: str) -> bool:
    """Whether two names may be the same person's (see the module's docstring). Pure."""
    fa, la, fb, lb = (fold_name(x) for x in (first_a, last_a, first_b, last_b))
    if not (fa or la) or not (fb or lb):
        return False
    if la == lb and fa and fb and (fa.startswith(fb) or fb.startswith(fa)):
        return True
    a = f"{fa} {la}"
    ratio = max(SequenceMatcher(None, a, f"{fb} {lb}").ratio(), SequenceMatcher(None, a, f"{lb} {fb}").ratio())
    return ratio >= NAME_SIMILARITY


def _quietly(normalise, raw: str | None, *args) -> str | None:
    """The normalised contact, or None when absent or not valid (the form says so itself)."""
    if not raw or not raw.strip():
        return None
    try:
        return normalise(raw, *args)
    except ValidationFailed:
        return None


def find_duplicates(
    session: Session,
    *,
    first_name: str,
    last_name: str,
    email: str | None = None,
    phone: str | None = None,
    birth_date: date | None = None,
    country: str = "CA",
    exclude_id: int | None = None,
    limit: int = LIMIT,
) -> list[Candidate]:
    """Records that may be this person, strongest first (more reasons, then the reason's rank),
    then oldest. ``email`` and ``phone`` are as typed (normalised here; invalid ones ignored).
    Erased records and ``exclude_id`` are never candidates."""
    email_value = _quietly(normalise_email, email)
    phone_value = _quietly(normalise_phone, phone, country)
    found: dict[int, tuple[Patient, set[str]]] = {}

    def add(rows, reason: str) -> None:
        for patient in rows:
            if patient.id == exclude_id or patient.erased_at is not None:
                continue
            found.setdefault(patient.id, (patient, set()))[1].add(reason)

    if phone_value:
        add(session.scalars(select(Patient).where(Patient.phone == phone_value)), SAME_PHONE)
    if email_value:
        add(session.scalars(select(Patient).where(Patient.email == email_value)), SAME_EMAIL)
    if birth_date is not None:
        same_day = session.scalars(select(Patient).where(Patient.birth_date == birth_date))
        add(
            (p for p in same_day if names_similar(first_name, last_name, p.first_name, p.last_name)),
            NAME_AND_BIRTH_DATE,
        )
    ranked = sorted(
        found.values(),
        key=lambda item: (-len(item[1]), min(REASON_ORDER.index(r) for r in item[1]), item[0].id),
    )
    return [Candidate(patient, tuple(r for r in REASON_ORDER if r in reasons)) for patient, reasons in ranked[:limit]]


def exact_match(candidates: list[Candidate], *, first_name: str, last_name: str) -> Patient | None:
    """The candidate that is plainly this person: the same first and last name (case aside, as
    ``operations.find_or_create_patient`` compares them) and a shared contact, so the booking
    finds this returning patient anyway and no warning is needed."""
    first, last = first_name.strip().lower(), last_name.strip().lower()
    for candidate in candidates:
        p = candidate.patient
        if {SAME_PHONE, SAME_EMAIL} & set(candidate.reasons) and (p.first_name.lower(), p.last_name.lower()) == (
            first,
            last,
        ):
            return p
    return None
