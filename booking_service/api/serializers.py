"""Models -> plain dicts for the JSON API, shared by every endpoint (the response schemas in
``schemas.py`` then dump and document them).

Times are rendered as aware datetimes in the location's time zone, so the JSON carries
ISO 8601 with the local offset (``2026-11-24T09:00:00-05:00``). What each audience sees is
decided here and only here: the manage link shows no contact details beyond a masked hint and
no intake; staff see everything.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from booking_service.scheduling import tokens
from booking_service.scheduling.availability import Slot
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.operations import inside_cancellation_window

MASK = "•••"


def _local(instant: datetime | None, zone: ZoneInfo) -> datetime | None:
    return None if instant is None else instant.astimezone(zone)


def zone_of(location: Location) -> ZoneInfo:
    return ZoneInfo(location.timezone)


# --- catalogue ---------------------------------------------------------------------------------


def service(s: Service) -> dict:
    return {
        "id": s.id,
        "name": s.name,
        "name_fr": s.name_fr,
        "kind": s.kind,
        "duration_minutes": s.duration_minutes,
        "description": s.description or "",
    }


def location(loc: Location) -> dict:
    return {"id": loc.id, "name": loc.name, "address": loc.address, "phone": loc.phone, "timezone": loc.timezone}


def practitioner(p: Practitioner) -> dict:
    return {
        "id": p.id,
        "display_name": p.display_name,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "profession": p.profession,
        "bio": p.bio or "",
        "location_ids": sorted(loc.id for loc in p.locations),
        "service_ids": sorted(s.id for s in p.services),
    }


def slot(s: Slot, zone: ZoneInfo) -> dict:
    return {"start": s.start.astimezone(zone), "end": s.end.astimezone(zone), "practitioner_id": s.practitioner_id}


def availability(slots: list[Slot], loc: Location) -> dict:
    zone = zone_of(loc)
    return {"timezone": loc.timezone, "slots": [slot(s, zone) for s in slots]}


def availability_json(slots: list[Slot], loc: Location) -> bytes:
    """The body of ``GET /api/v1/availability``: the document ``AvailabilitySchema`` dumps from
    :func:`availability` and Flask writes (compact, keys in this order, a final newline), made
    by orjson straight from the aware datetimes. orjson writes an aware datetime as
    ``datetime.isoformat()`` does when it has no microseconds (``2026-11-24T09:00:00-05:00``),
    which slots never have; ``tests/test_api_availability_http.py`` holds the two equal."""
    zone = zone_of(loc)
    # Converting to local time costs more than the encoding, and most instants repeat (one
    # start for several practitioners; a slot's end is a later slot's start): once each.
    local: dict[datetime, datetime] = {}

    def at(instant: datetime) -> datetime:
        found = local.get(instant)
        if found is None:
            found = local[instant] = instant.astimezone(zone)
        return found

    document = {
        "timezone": loc.timezone,
        "slots": [{"start": at(s.start), "end": at(s.end), "practitioner_id": s.practitioner_id} for s in slots],
    }
    return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)


# --- appointments ------------------------------------------------------------------------------


def _refs(a: Appointment) -> dict:
    return {
        "service": {"id": a.service.id, "name": a.service.localized_name(a.language)},
        "practitioner": {"id": a.practitioner.id, "display_name": a.practitioner.display_name},
        "location": {
            "id": a.location.id,
            "name": a.location.name,
            "address": a.location.address,
            "timezone": a.location.timezone,
        },
    }


def manage_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + tokens.manage_path(token)


def booking(a: Appointment, *, token: str, base_url: str) -> dict:
    zone = zone_of(a.location)
    return {
        "id": a.id,
        "status": a.status,
        "start": _local(a.start_at, zone),
        "end": _local(a.end_at, zone),
        "triage": a.triage,
        "manage_url": manage_url(base_url, token),
        "practitioner_id": a.practitioner_id,
        "service_id": a.service_id,
        "location_id": a.location_id,
        "language": a.language,
        **_refs(a),
    }


def mask_email(email: str | None) -> str | None:
    """``alice@example.com`` -> ``a•••@example.com``."""
    if not email or "@" not in email:
        return None
    local_part, _, domain = email.rpartition("@")
    return f"{local_part[:1]}{MASK}@{domain}"


def mask_phone(phone: str | None) -> str | None:
    """``+14165550142`` -> ``•••• 0142``."""
    if not phone:
        return None
    return f"•••• {phone[-4:]}"


def managed(a: Appointment, *, clinic: ClinicSettings, now: datetime) -> dict:
    """The patient's own view through the manage link: no contact details, no intake."""
    zone = zone_of(a.location)
    changeable = a.status in ("booked", "confirmed") and a.start_at > now
    inside = changeable and inside_cancellation_window(clinic, a, now)
    allowed = changeable and not (inside and clinic.late_cancellation_policy == "block")
    return {
        "id": a.id,
        "status": a.status,
        "start": _local(a.start_at, zone),
        "end": _local(a.end_at, zone),
        "confirmed_at": _local(a.confirmed_at, zone),
        "language": a.language,
        **_refs(a),
        "can_cancel": allowed,
        "can_reschedule": allowed,
        "cancellation_policy": {
            "window_hours": clinic.cancellation_window_hours,
            "policy": clinic.late_cancellation_policy,
            "inside_window": bool(inside),
            "clinic_phone": clinic.phone,
        },
        "contact": {"email": mask_email(a.patient.email), "phone": mask_phone(a.patient.phone)},
    }


def patient_ref(p: Patient) -> dict:
    return {"id": p.id, "first_name": p.first_name, "last_name": p.last_name}


def patient(p: Patient, *, opted_out: bool) -> dict:
    return {
        **patient_ref(p),
        "email": p.email,
        "phone": p.phone,
        "language": p.language,
        "sms_consent": p.sms_consent,
        "email_consent": p.email_consent,
        "sms_opted_out": opted_out,
        "exercise_sms_consent": p.exercise_sms_consent,
        "birth_date": p.birth_date,
    }


def staff_appointment(a: Appointment) -> dict:
    zone = zone_of(a.location)
    return {
        "id": a.id,
        "status": a.status,
        "start": _local(a.start_at, zone),
        "end": _local(a.end_at, zone),
        "triage": a.triage,
        "source": a.source,
        "language": a.language,
        "practitioner_id": a.practitioner_id,
        "service_id": a.service_id,
        "location_id": a.location_id,
        "patient_id": a.patient_id,
        **_refs(a),
        "patient": patient_ref(a.patient),
        "confirmed_at": _local(a.confirmed_at, zone),
        "checked_in_at": _local(a.checked_in_at, zone),
        "completed_at": _local(a.completed_at, zone),
        "no_show_at": _local(a.no_show_at, zone),
        "cancelled_at": _local(a.cancelled_at, zone),
        "cancelled_by": a.cancelled_by,
        "cancel_reason": a.cancel_reason,
        "late_cancellation": bool(a.late_cancellation),
        "created_at": _local(a.created_at, zone),
        "plan_id": a.plan_id,
    }


def staff_appointment_detail(a: Appointment, *, opted_out: bool) -> dict:
    return {
        **staff_appointment(a),
        "patient": patient(a.patient, opted_out=opted_out),
        "intake": {"reason": a.intake_reason, "red_flags": a.red_flags},
    }


def message(m: OutboxMessage, zone: ZoneInfo) -> dict:
    """Exactly the contract's fields."""
    return {
        "id": m.id,
        "channel": m.channel,
        "kind": m.kind,
        "status": m.status,
        "due_at": _local(m.due_at, zone),
        "sent_at": _local(m.sent_at, zone),
        "to": m.to,
        "provider_id": m.provider_id,
        "error": m.error,
    }


# --- exercise programs -------------------------------------------------------------------------


def exercise(e) -> dict:
    return {
        "id": e.id,
        "key": e.key,
        "name": e.name_en,
        "name_fr": e.name_fr,
        "instructions": e.instructions_en,
        "instructions_fr": e.instructions_fr,
        "cautions": e.cautions_en,
        "cautions_fr": e.cautions_fr,
        "default_reps": e.default_reps,
        "default_sets": e.default_sets,
        "default_hold_seconds": e.default_hold_seconds,
        "default_times_per_day": e.default_times_per_day,
        "media_url": e.media_url,
    }


def _weekdays(days: list[int]) -> list[str]:
    from booking_service.exercises.models import WEEKDAYS

    return [WEEKDAYS[d] for d in days]


def _program_items(version) -> list[dict]:
    return [
        {
            "exercise_id": item.exercise_id,
            "key": item.exercise.key,
            "name": item.exercise.name_en,
            "reps": item.reps,
            "sets": item.sets,
            "hold_seconds": item.hold_seconds,
            "times_per_day": item.times_per_day,
        }
        for item in version.items
    ]


def program(p, *, url: str) -> dict:
    """A program with its current exercises; ``created_at`` in the program's zone."""
    return {
        "id": p.id,
        "patient_id": p.patient_id,
        "practitioner_id": p.practitioner_id,
        "status": p.status,
        "pause_reason": p.pause_reason,
        "end_reason": p.end_reason,
        "version": p.version,
        "program_url": url,
        "days": _weekdays(p.days),
        "time": p.time_of_day,
        "timezone": p.timezone,
        "start": p.start_date,
        "end": p.end_date,
        "exercises": _program_items(p.current),
        "created_at": _local(p.created_at, ZoneInfo(p.timezone)),
    }


def program_detail(p, *, url: str, logs: list, weeks: list, overall: float | None) -> dict:
    zone = ZoneInfo(p.timezone)
    return {
        **program(p, url=url),
        "versions": [
            {
                "version": v.version,
                "days": _weekdays(v.days),
                "time": v.time_of_day,
                "start": v.start_date,
                "end": v.end_date,
                "created_at": _local(v.created_at, zone),
                "exercises": _program_items(v),
            }
            for v in p.versions
        ],
        "logs": [
            {"date": log.local_date, "done": log.done, "pain": log.pain, "source": log.source, "note": log.note}
            for log in logs
        ],
        "adherence": {
            "overall": overall,
            "weeks": [
                {"start": w.start, "logged": w.logged, "prescribed": w.prescribed, "ratio": w.ratio} for w in weeks
            ],
        },
    }


# --- treatment plans ---------------------------------------------------------------------------


def plan(p, *, progress) -> dict:
    """A treatment plan with its visits (in time order) and where it stands."""
    from booking_service.exercises.models import WEEKDAYS

    zone = zone_of(p.location)
    return {
        "id": p.id,
        "patient_id": p.patient_id,
        "service_id": p.service_id,
        "location_id": p.location_id,
        "practitioner_id": p.practitioner_id,
        "count": p.count,
        "every_days": p.every_days,
        "weekdays": None if p.weekdays is None else [WEEKDAYS[d] for d in p.weekdays],
        "source": p.source,
        "status": progress.status,
        "visits_done": progress.done,
        "visits_left": progress.left,
        "created_at": _local(p.created_at, zone),
        "cancelled_at": _local(p.cancelled_at, zone),
        "appointments": [staff_appointment(a) for a in p.appointments],
    }


def plan_conflict(visit, zone: ZoneInfo) -> dict:
    """One visit of a plan in the way: ``scheduling.plans.Visit`` with its conflict."""
    return {
        "index": visit.index,
        "start": visit.start.astimezone(zone),
        "reason": visit.conflict,
        "alternatives": [slot(s, zone) for s in visit.alternatives],
    }
