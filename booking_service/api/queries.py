"""Read-only look-ups the staff API needs that the domain packages do not offer (yet).

They take a session and plain values like domain code. Patient search and opt-outs live in
``patients/queries.py``, messages of an appointment in ``messaging/queries.py`` and a patient's
appointments in ``scheduling/queries.py``, shared with the staff console.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.errors import NotFound
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment


def get_appointment(session: Session, appointment_id: int) -> Appointment:
    """Raises NotFound for an unknown id."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(errors.APPOINTMENT_NOT_FOUND)
    return appointment


def get_patient(session: Session, patient_id: int) -> Patient:
    """Raises NotFound for an unknown id."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(errors.PATIENT_NOT_FOUND)
    return patient
