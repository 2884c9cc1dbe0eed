"""Public endpoints: the catalogue, free slots, and booking."""

from __future__ import annotations

from flask import g

from booking_service.api import conditional, serializers
from booking_service.api.blueprint import bp, documented_errors
from booking_service.api.errors import nest_fields
from booking_service.api.schemas import (
    AvailabilityQuerySchema,
    AvailabilitySchema,
    BookingInSchema,
    BookingSchema,
    LocationListSchema,
    PractitionerListSchema,
    PractitionerQuerySchema,
    ServiceListSchema,
)
from booking_service.clinic.queries import active_locations, active_services, bookable, get_clinic, practitioners_for
from booking_service.context import db_session, settings
from booking_service.db import utcnow
from booking_service.errors import ValidationFailed
from booking_service.extensions import PUBLIC_WRITE_LIMIT, limiter
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.slots import find_slots
from booking_service.usecases.booking import BookingRequest, book

_PATIENT_FIELDS = {"first_name", "last_name", "email", "phone", "language"}


@bp.route("/services", methods=["GET"], tags=["Catalogue"])
@bp.response(200, ServiceListSchema)
def list_services():
    """Services that can be booked online"""
    return {"services": [serializers.service(s) for s in active_services(db_session())]}


@bp.route("/locations", methods=["GET"], tags=["Catalogue"])
@bp.response(200, LocationListSchema)
def list_locations():
    """The clinic's open locations"""
    return {"locations": [serializers.location(loc) for loc in active_locations(db_session())]}


@bp.route("/practitioners", methods=["GET"], tags=["Catalogue"])
@bp.arguments(PractitionerQuerySchema, location="query")
@bp.response(200, PractitionerListSchema)
def list_practitioners(args):
    """Practitioners patients may book online, optionally only those at a location and offering a service

    Unknown ids in the filters give an empty list.
    """
    found = practitioners_for(
        db_session(), location_id=args.get("location_id"), service_id=args.get("service_id"), online_only=True
    )
    return {"practitioners": [serializers.practitioner(p) for p in found]}


AVAILABILITY_MAX_AGE = 10  # seconds a client may reuse a slot list without asking


@bp.route("/availability", methods=["GET"], tags=["Catalogue"])
@bp.arguments(AvailabilityQuerySchema, location="query")
@bp.response(
    200,
    AvailabilitySchema,
    headers={"ETag": conditional.ETAG_HEADER, "Cache-Control": conditional.cache_control_header(AVAILABILITY_MAX_AGE)},
)
@bp.alt_response(304, description="Not Modified: the slots are still those of the ETag sent in `If-None-Match`.")
@documented_errors(404)
def availability(args):
    """Free slots between two dates (inclusive, in the location's time zone)

    Without practitioner_id, the slots of every practitioner offering the service there
    ("anyone"). Days beyond the booking horizon or before the minimum notice have no slots.
    A range longer than 62 days is a 422; an unknown service or location a 404 naming the field.
    The answer carries an `ETag` (a hash of the body) and `Cache-Control: private, max-age=10`;
    with `If-None-Match` naming the current ETag it is a 304 without a body.
    """
    session = db_session()
    service, location, candidates = bookable(
        session,
        service_id=args["service_id"],
        location_id=args["location_id"],
        practitioner_id=args.get("practitioner_id"),
    )
    slots = find_slots(
        session,
        clinic=get_clinic(session),
        service=service,
        location=location,
        practitioners=candidates,
        first_day=args["start"],
        last_day=args["end"],
        now=utcnow(),
    )
    # Written by orjson, not dumped by the schema: the same document (the schema documents it),
    # several times faster for the hundreds of slots of a month.
    return conditional.json_response(serializers.availability_json(slots, location), max_age=AVAILABILITY_MAX_AGE)


@bp.route("/appointments", methods=["POST"], tags=["Booking"])
@limiter.limit(PUBLIC_WRITE_LIMIT)
@bp.arguments(BookingInSchema)
@bp.response(201, BookingSchema)
@documented_errors(400, 404, 409, 429)
def create_appointment(args):
    """Book an appointment

    `start` must be one of the slots of /api/v1/availability. A start that was a slot but was
    just taken is a 409 `slot_taken`; one that is not a slot at all (off the grid, outside hours,
    in the past, beyond the horizon) a 422 `slot_unavailable`. Both errors carry `alternatives`:
    nearby free slots. The patient needs an email or a phone; the phone may be in the clinic
    country's national format and is stored as E.164. Any true red flag in `intake` marks the
    booking `"triage": "urgent"`. The patient is sent a confirmation at once.
    """
    patient, intake = args["patient"], args.get("intake") or {}
    booking_request = BookingRequest(
        service_id=args["service_id"],
        location_id=args["location_id"],
        practitioner_id=args.get("practitioner_id"),
        start=args["start"],
        patient=PatientDetails(
            first_name=patient["first_name"],
            last_name=patient["last_name"],
            email=patient.get("email"),
            phone=patient.get("phone"),
            language=patient.get("language"),
            sms_consent=patient["sms_consent"],
            email_consent=patient["email_consent"],
            exercise_sms_consent=patient["exercise_sms_consent"],
        ),
        source="api",
        intake_reason=intake.get("reason"),
        red_flags=intake.get("red_flags") or {},
    )
    g.api_location_id = args["location_id"]  # error alternatives render in this zone
    session = db_session()
    try:
        booked = book(session, booking_request, secret_key=settings().SECRET_KEY, now=utcnow())
    except ValidationFailed as exc:
        if set(exc.fields) <= _PATIENT_FIELDS and exc.fields:
            raise nest_fields(exc, "patient") from None
        raise
    return serializers.booking(booked.appointment, token=booked.manage_token, base_url=settings().PUBLIC_BASE_URL)
