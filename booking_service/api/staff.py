"""Staff endpoints (Bearer token): the day's appointments, one appointment with the patient's
contact details and intake, status changes, the messages of an appointment, patients.

Access is the policy's (``booking_service.access``, applied by ``staff_required``): a token acts
with its user's role; a practitioner's lists hold only their own appointments and patients.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from booking_service import access, audit
from booking_service.api import queries, serializers
from booking_service.api.auth import actor, staff_required
from booking_service.api.blueprint import bp, documented_errors
from booking_service.api.schemas import (
    MAX_ID,
    MessageListSchema,
    PatientDetailSchema,
    PatientListSchema,
    PatientPatchSchema,
    PatientQuerySchema,
    StaffAppointmentDetailSchema,
    StaffAppointmentListSchema,
    StaffAppointmentQuerySchema,
    StatusInSchema,
)
from booking_service.clinic.models import Location
from booking_service.clinic.queries import get_clinic
from booking_service.context import db_session
from booking_service.db import utcnow
from booking_service.errors import NotFound
from booking_service.messaging.queries import messages_of
from booking_service.patients import desk
from booking_service.patients.queries import opted_out_phones, search_patients
from booking_service.scheduling.operations import appointments_on
from booking_service.scheduling.queries import appointments_of, patients_of
from booking_service.usecases.booking import set_status

_ID = f"int(max={MAX_ID})"


def _detail(appointment):
    opted_out = opted_out_phones(db_session(), [appointment.patient.phone])
    return serializers.staff_appointment_detail(appointment, opted_out=appointment.patient.phone in opted_out)


@bp.route("/appointments", methods=["GET"], tags=["Staff"])
@staff_required(bp)
@bp.arguments(StaffAppointmentQuerySchema, location="query")
@bp.response(200, StaffAppointmentListSchema)
@documented_errors(404)
def staff_appointments(args):
    """Appointments starting on one local day, every status, in time order

    The day is read in the location's time zone (the clinic's without location_id); it
    defaults to today there.
    """
    session = db_session()
    zone_name = get_clinic(session).timezone
    if args.get("location_id") is not None:
        location = session.get(Location, args["location_id"])
        if location is None:
            raise NotFound(
                "There is no such location.", fields={"location_id": "Choose a location from /api/v1/locations."}
            )
        zone_name = location.timezone
    day = args.get("date") or utcnow().astimezone(ZoneInfo(zone_name)).date()
    practitioner_id = args.get("practitioner_id")
    scope = access.practitioner_scope(actor(), "schedule", "read")
    found = []
    if scope is None or practitioner_id in (None, scope):  # another practitioner's day: nothing
        found = appointments_on(
            session,
            day,
            location_id=args.get("location_id"),
            practitioner_id=practitioner_id if scope is None else scope,
            tz_name=zone_name,
        )
    return {"date": day, "timezone": zone_name, "appointments": [serializers.staff_appointment(a) for a in found]}


@bp.route(f"/appointments/<{_ID}:appointment_id>", methods=["GET"], tags=["Staff"])
@staff_required(bp)
@bp.response(200, StaffAppointmentDetailSchema)
@documented_errors(404)
def staff_appointment(appointment_id):
    """One appointment, with the patient's contact details, the intake and the triage"""
    appointment = queries.get_appointment(db_session(), appointment_id)
    audit.record(
        db_session(),
        "appointment.view",
        "appointment",
        appointment.id,
        {"surface": "api"},
        patient_id=appointment.patient_id,
    )
    return _detail(appointment)


@bp.route(f"/appointments/<{_ID}:appointment_id>/status", methods=["POST"], tags=["Staff"])
@staff_required(bp)
@bp.arguments(StatusInSchema)
@bp.response(200, StaffAppointmentDetailSchema)
@documented_errors(400, 404, 409)
def staff_set_status(args, appointment_id):
    """Check in, complete, mark no-show, confirm or cancel

    A change the current status does not allow is a 409 `invalid_transition`: check-in opens
    two hours before the start; completed and no-show need the appointment to have started;
    completed, no-show and cancelled are final (a no-show can still be checked in).
    """
    return _detail(set_status(db_session(), appointment_id, args["status"], now=utcnow()))


@bp.route(f"/appointments/<{_ID}:appointment_id>/messages", methods=["GET"], tags=["Staff"])
@staff_required(bp)
@bp.response(200, MessageListSchema)
@documented_errors(404)
def staff_messages(appointment_id):
    """Every message planned, sent, skipped or failed for the appointment, by due time"""
    session = db_session()
    appointment = queries.get_appointment(session, appointment_id)
    audit.record(
        session,
        "appointment.messages",
        "appointment",
        appointment.id,
        {"surface": "api"},
        patient_id=appointment.patient_id,
    )
    zone = serializers.zone_of(appointment.location)
    return {"messages": [serializers.message(m, zone) for m in messages_of(session, appointment.id)]}


@bp.route("/patients", methods=["GET"], tags=["Staff"])
@staff_required(bp)
@bp.arguments(PatientQuerySchema, location="query")
@bp.response(200, PatientListSchema)
def staff_patients(args):
    """Search patients by part of a name, an email or a phone number (any format)"""
    session = db_session()
    scope = access.practitioner_scope(actor(), "patient", "read")
    found = search_patients(
        session,
        args["q"],
        country=get_clinic(session).country,
        limit=args["limit"],
        among=patients_of(scope) if scope is not None else None,
    )
    opted_out = opted_out_phones(session, [p.phone for p in found])
    audit.record(session, "patient.search", "patient", None, {"surface": "api", "listed": [p.id for p in found]})
    return {"patients": [serializers.patient(p, opted_out=p.phone in opted_out) for p in found]}


@bp.route(f"/patients/<{_ID}:patient_id>", methods=["GET"], tags=["Staff"])
@staff_required(bp)
@bp.response(200, PatientDetailSchema)
@documented_errors(404)
def staff_patient(patient_id):
    """One patient with every appointment, newest first"""
    session = db_session()
    patient = queries.get_patient(session, patient_id)
    audit.record(session, "patient.view", "patient", patient.id, {"surface": "api"})
    return _patient_detail(patient)


@bp.route(f"/patients/<{_ID}:patient_id>", methods=["PATCH"], tags=["Staff"])
@staff_required(bp)
@bp.arguments(PatientPatchSchema)
@bp.response(200, PatientDetailSchema)
@documented_errors(404, 409, 422)
def staff_update_patient(args, patient_id):
    """Change a patient's name, contacts, language, date of birth or consents

    Only the fields given change. Each change is recorded in the audit trail (which fields, not
    their values) and each consent change in the consent history (source `staff`). A consent to
    texts cannot be granted for a number that replied STOP: only a START text from that phone
    lifts it (422, field `sms_consent`: `sms_opted_out`). A patient whose data was erased is a
    409.
    """
    session = db_session()
    clinic = get_clinic(session)
    updated = desk.patch_details(
        session,
        patient_id,
        dict(args),
        country=clinic.country,
        default_language=clinic.default_language,
        now=utcnow(),
    )
    return _patient_detail(updated.patient)


def _patient_detail(patient):
    session = db_session()
    opted_out = opted_out_phones(session, [patient.phone])
    return {
        **serializers.patient(patient, opted_out=patient.phone in opted_out),
        "appointments": [
            serializers.staff_appointment(a)
            for a in appointments_of(
                session, patient.id, practitioner_id=access.practitioner_scope(actor(), "appointment", "read")
            )
        ],
    }
