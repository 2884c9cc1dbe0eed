"""Booking a treatment plan (a series of visits) and cancelling the rest of one, with messages.

Like ``usecases.booking``: the scheduling change (``scheduling.plans``), then its outbox rows
(``messaging.planning``), waitlist offers and audit rows, in the caller's session and
transaction; nothing here commits. A plan gets ONE confirmation listing every visit (not one per
visit) and each visit its reminders as usual; cancelling the rest of a plan cancels each visit
still to come like any staff cancellation (pending reminders stop, the freed time is offered to
the waitlist) and sends ONE notice listing the cancelled dates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from booking_service import audit
from booking_service.clinic.queries import get_clinic
from booking_service.messaging import planning
from booking_service.scheduling import operations
from booking_service.scheduling import plans as scheduling_plans
from booking_service.scheduling.models import Appointment, TreatmentPlan
from booking_service.scheduling.plans import BookedPlan, PlanCheck, PlanRequest
from booking_service.usecases.booking import after_cancel

__all__ = ["BookedPlan", "PlanCheck", "PlanRequest", "book_plan", "cancel_rest", "preview"]


def preview(session: Session, request: PlanRequest, *, now: datetime) -> PlanCheck:
    """Every visit of the plan checked (free, or in conflict with alternatives); writes nothing.
    Raises the errors of ``scheduling.plans.check``."""
    return scheduling_plans.check(session, request, now=now)


def book_plan(
    session: Session, request: PlanRequest, *, secret_key: str, now: datetime, confirm: bool = True
) -> BookedPlan:
    """Book every visit of the plan in one piece, plan one confirmation listing them all (unless
    ``confirm`` is False) and each visit's reminders, and record it in the audit trail.

    Raises PlanConflicts (409, with each visit in the way and its alternatives; nothing written),
    NotFound or ValidationFailed.
    """
    booked = scheduling_plans.book_plan(session, request, secret_key=secret_key, now=now)
    plan = booked.plan
    planning.plan_booked(
        session, booked.appointments, clinic=get_clinic(session), now=now, plan_id=plan.id, confirm=confirm
    )
    audit.record(
        session,
        "plan.book",
        "treatment_plan",
        plan.id,
        {
            "source": request.source,
            "count": plan.count,
            "every_days": plan.every_days,
            "practitioner_id": plan.practitioner_id,
            "service_id": plan.service_id,
            "appointments": [a.id for a in booked.appointments],
        },
        patient_id=plan.patient_id,
        now=now,
    )
    return booked


def cancel_rest(
    session: Session, plan_id: int, *, now: datetime, user_id: int | None = None, reason: str | None = None
) -> tuple[TreatmentPlan, list[Appointment]]:
    """Cancel every visit of the plan still to come (booked or confirmed, not started), as staff:
    their pending messages stop, each freed time is offered to the waitlist, and the patient gets
    ONE notice listing the cancelled dates. Returns the plan and the visits cancelled.

    Raises NotFound (unknown plan) or InvalidTransition (no visit left to cancel).
    """
    plan, ids = scheduling_plans.end_plan(session, plan_id, now=now, user_id=user_id)
    clinic = get_clinic(session)
    cancelled = [
        operations.cancel_appointment(session, appointment_id, now=now, by_patient=False, reason=reason)
        for appointment_id in ids
    ]
    planning.plan_cancelled(session, cancelled, clinic=clinic, now=now, plan_id=plan.id)
    for appointment in cancelled:
        after_cancel(session, appointment, clinic=clinic, now=now, by_patient=False, plan_id=plan.id)
    audit.record(
        session,
        "plan.cancel",
        "treatment_plan",
        plan.id,
        {"appointments": [a.id for a in cancelled]},
        patient_id=plan.patient_id,
        now=now,
    )
    return plan, cancelled
