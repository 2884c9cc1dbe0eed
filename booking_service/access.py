"""Who may do what: the one access policy of the console, the staff API and any later surface.

Two tables, both data:

- ``POLICY``: (resource, action) -> {role: scope}. A role missing from a row may not do it at
  all (403). ``ALL``: every such resource; ``OWN``: only the user's own (a practitioner's own
  appointments through ``Practitioner.user_id``, their own patients, meaning patients with an
  appointment with them, their programs, and treatment plans booked with them or holding a
  visit with them; a staff user's own API tokens; their own
  account). Anonymous callers hold no role: only ``PUBLIC`` rows are open to them.
- ``ENDPOINTS``: Flask endpoint -> (resource, action): what each route is. An endpoint missing
  here is refused (403) by the console and the staff API, and fails the role-matrix test
  (``tests/test_access.py``), so a new route cannot ship without a policy entry.

:func:`authorize` applies both to one request: the role check (403), then, for an ``OWN`` grant,
every object named in the URL (``appointment_id``, ``patient_id``, ``token_id``) must be the
user's own, else 404, exactly as for an id that does not exist, so nobody learns which ids
belong to a colleague. Lists are filtered by :func:`practitioner_scope`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from booking_service.errors import DomainError, NotFound
from booking_service.exercises.models import Alert, Program
from booking_service.scheduling.models import Appointment, TreatmentPlan
from booking_service.scheduling.plans import plan_belongs_to
from booking_service.scheduling.queries import is_patient_of
from booking_service.staff.models import ApiToken

ALL = "all"
OWN = "own"
PUBLIC = "public"  # everyone, anonymous included (the patient's pages; a manage link is its own key)
SIGNED = "signed"  # no role at all: the caller proves itself (Twilio's signature, the metrics token)

ROLES = ("admin", "frontdesk", "practitioner")
ANONYMOUS = "anonymous"
# A practitioner login linked to no practitioner sees nothing: no practitioner has id 0.
NOBODY = 0

_DESK = {"admin": ALL, "frontdesk": ALL}
_CARE = {"admin": ALL, "frontdesk": ALL, "practitioner": OWN}  # the desk everything, a practitioner theirs
_ADMIN = {"admin": ALL}
_SELF = {"admin": OWN, "frontdesk": OWN, "practitioner": OWN}

POLICY: dict[tuple[str, str], Mapping[str, str] | str] = {
    ("public", "use"): PUBLIC,  # booking pages, catalogue API, manage links, health, static, OpenAPI
    ("session", "sign_in"): PUBLIC,  # the login page, and signing out
    ("webhook", "call"): SIGNED,
    ("metrics", "read"): SIGNED,  # no role either: the scraper proves itself with METRICS_TOKEN
    ("schedule", "read"): _CARE,  # day and week boards
    ("appointment", "read"): _CARE,
    ("appointment", "book"): _CARE,  # a practitioner books with themselves only
    ("appointment", "change"): _CARE,  # status, cancel, reschedule
    ("message", "read"): _CARE,  # the messages of an appointment
    ("patient", "read"): _CARE,
    ("program", "read"): _CARE,
    ("program", "change"): _CARE,
    ("hours", "read"): _CARE,  # a practitioner sees their own weekly hours
    ("hours", "change"): _DESK,
    ("time_off", "read"): _DESK,
    ("time_off", "change"): _DESK,  # time off and closures
    ("inbox", "read"): _DESK,
    ("inbox", "change"): _DESK,
    ("waitlist", "read"): _DESK,
    ("waitlist", "change"): _DESK,
    ("settings", "read"): _ADMIN,
    ("settings", "change"): _ADMIN,
    ("user", "read"): _ADMIN,
    ("user", "change"): _ADMIN,  # create, deactivate, role, password reset, practitioner link
    ("token", "read"): {"admin": ALL, "frontdesk": OWN, "practitioner": OWN},
    ("token", "change"): {"admin": ALL, "frontdesk": OWN, "practitioner": OWN},
    ("account", "read"): _SELF,  # one's own account page
    ("account", "change"): _SELF,  # one's own two-step sign-in
    ("exercise", "read"): {"admin": ALL, "frontdesk": ALL, "practitioner": ALL},  # the clinic's library
    ("exercise", "change"): {"admin": ALL, "practitioner": ALL},
    ("alert", "read"): _CARE,  # a practitioner: alerts of their own patients
    ("alert", "change"): _CARE,  # acknowledge
    ("patient", "merge"): _DESK,  # merge a possible duplicate
    ("patient", "export"): _DESK,  # a patient's data as JSON
    ("patient", "erase"): _ADMIN,
    ("audit", "read"): _ADMIN,  # the audit trail and its CSV
    # Clinic setup: the clinic's details, locations, practitioners, services.
    ("catalogue", "read"): _ADMIN,
    ("catalogue", "change"): _ADMIN,
    # First run: the first admin's account. Public, but its view answers 404 as soon as the
    # database holds a clinic or a staff user; the setup's later steps are ("catalogue", "change").
    ("setup", "start"): PUBLIC,
    # --- the desk: patients' details and notes, the triage queue
    ("patient", "create"): _DESK,  # a new patient without a booking
    ("patient", "change"): _CARE,  # contact details and consents as the patient gives them
    ("patient_note", "read"): _CARE,  # staff notes (on the patient's page)
    ("patient_note", "change"): _CARE,
    ("triage", "read"): _CARE,  # the queue on the front page: the desk sees it too
    ("triage", "handle"): {"admin": ALL, "practitioner": OWN},  # clinicians only
}

ENDPOINTS: dict[str, tuple[str, str]] = {
    # --- outside any blueprint
    "static": ("public", "use"),
    "healthz": ("public", "use"),
    "readyz": ("public", "use"),
    "metrics_view": ("metrics", "read"),
    "api-docs.openapi_json": ("public", "use"),
    # --- the patient's pages (web)
    **{
        f"web.{name}": ("public", "use")
        for name in (
            "start",
            "choose_time",
            "change_time",
            "details",
            "urgent",
            "review",
            "confirm",
            "confirmed",
            "manage",
            "calendar",
            "cancel",
            "reschedule",
            "book_again",
            "waitlist",
            "waitlist_joined",
        )
    },
    # --- provider webhooks
    "webhooks.inbound_sms": ("webhook", "call"),
    "webhooks.status_callback": ("webhook", "call"),
    # --- the JSON API: public
    "api.list_services": ("public", "use"),
    "api.list_locations": ("public", "use"),
    "api.list_practitioners": ("public", "use"),
    "api.availability": ("public", "use"),
    "api.create_appointment": ("public", "use"),
    "api.manage_show": ("public", "use"),
    "api.manage_cancel": ("public", "use"),
    "api.manage_reschedule": ("public", "use"),
    # --- the JSON API: staff (Bearer token)
    "api.staff_appointments": ("schedule", "read"),
    "api.staff_appointment": ("appointment", "read"),
    "api.staff_set_status": ("appointment", "change"),
    "api.staff_messages": ("message", "read"),
    "api.staff_patients": ("patient", "read"),
    "api.staff_patient": ("patient", "read"),
    # --- the console
    "console.login": ("session", "sign_in"),
    "console.login_code": ("session", "sign_in"),
    "console.logout": ("session", "sign_in"),
    "console.day": ("schedule", "read"),
    "console.week": ("schedule", "read"),
    "console.day_fragment": ("schedule", "read"),  # the live day view's polling
    "console.day_sheet": ("schedule", "read"),  # the printable day sheet
    "console.appointment": ("appointment", "read"),
    "console.set_status": ("appointment", "change"),
    "console.cancel": ("appointment", "change"),
    "console.reschedule": ("appointment", "change"),
    "console.book": ("appointment", "book"),
    "console.book_submit": ("appointment", "book"),
    "console.patients": ("patient", "read"),
    "console.patient": ("patient", "read"),
    "console.inbox": ("inbox", "read"),
    "console.inbox_handled": ("inbox", "change"),
    "console.inbox_opt_out": ("inbox", "change"),
    "console.waitlist": ("waitlist", "read"),
    "console.waitlist_offered": ("waitlist", "change"),
    "console.waitlist_offer": ("waitlist", "change"),
    "console.waitlist_remove": ("waitlist", "change"),
    "console.hours": ("hours", "read"),
    "console.hours_save": ("hours", "change"),
    "console.time_off": ("time_off", "read"),
    "console.time_off_add": ("time_off", "change"),
    "console.time_off_remove": ("time_off", "change"),
    "console.closure_add": ("time_off", "change"),
    "console.closure_remove": ("time_off", "change"),
    "console.settings": ("settings", "change"),
    "console.users": ("user", "read"),
    "console.user_create": ("user", "change"),
    "console.user": ("user", "read"),
    "console.user_update": ("user", "change"),
    "console.user_password": ("user", "change"),
    "console.tokens": ("token", "read"),
    "console.token_create": ("token", "change"),
    "console.token_revoke": ("token", "change"),
    "console.account": ("account", "read"),
    "console.totp_start": ("account", "change"),
    "console.totp_confirm": ("account", "change"),
    "console.totp_disable": ("account", "change"),
    "console.exercises": ("exercise", "read"),
    "console.exercise_new": ("exercise", "change"),
    "console.exercise_edit": ("exercise", "change"),
    "console.program_new": ("program", "change"),
    "console.program": ("program", "read"),
    "console.program_revise": ("program", "change"),
    "console.program_action": ("program", "change"),
    "console.progress": ("program", "read"),
    "console.program_progress": ("program", "read"),
    "console.alerts": ("alert", "read"),
    "console.alert_acknowledge": ("alert", "change"),
    "console.patient_merge": ("patient", "merge"),
    "console.patient_export": ("patient", "export"),
    "console.patient_erase": ("patient", "erase"),
    "console.audit": ("audit", "read"),
    "console.audit_csv": ("audit", "read"),
    # --- clinic setup (the forms answer GET and POST alike: "change")
    "console.clinic": ("catalogue", "change"),
    "console.locations": ("catalogue", "read"),
    "console.location_new": ("catalogue", "change"),
    "console.location_edit": ("catalogue", "change"),
    "console.practitioners": ("catalogue", "read"),
    "console.practitioner_new": ("catalogue", "change"),
    "console.practitioner_edit": ("catalogue", "change"),
    "console.services": ("catalogue", "read"),
    "console.service_new": ("catalogue", "change"),
    "console.service_edit": ("catalogue", "change"),
    # --- home exercise programs in the API
    "api.exercises": ("exercise", "read"),
    "api.assign_program": ("program", "change"),
    "api.program_detail": ("program", "read"),
    "api.list_alerts": ("alert", "read"),
    "api.acknowledge_alert": ("alert", "change"),
    # --- first run: the guided setup (docs/clinic-setup.md)
    "first_run.account": ("setup", "start"),
    "console.first_run": ("catalogue", "change"),
    "console.first_run_clinic": ("catalogue", "change"),
    "console.first_run_location": ("catalogue", "change"),
    "console.first_run_practitioner": ("catalogue", "change"),
    "console.first_run_service": ("catalogue", "change"),
    # --- treatment plans (a series of visits): booked, read and ended like appointments
    "api.create_plan": ("appointment", "book"),
    "api.plan_detail": ("appointment", "read"),
    "api.cancel_plan": ("appointment", "change"),
    "console.plan_new": ("appointment", "book"),
    "console.plan": ("appointment", "read"),
    "console.plan_cancel": ("appointment", "change"),
    # --- the desk: patients, triage, the waitlist's freed times
    "console.patient_new": ("patient", "create"),
    "console.patient_edit": ("patient", "change"),
    "console.patient_note_add": ("patient_note", "change"),
    "console.patient_note_edit": ("patient_note", "change"),
    "console.patient_compare": ("patient", "merge"),
    "console.triage_handle_appointment": ("triage", "handle"),
    "console.triage_handle_alert": ("triage", "handle"),
    "console.waitlist_pass_on": ("waitlist", "change"),
    "console.waitlist_close": ("waitlist", "change"),
    "api.staff_update_patient": ("patient", "change"),
    "web.waitlist_offer": ("public", "use"),  # a waitlist offer's link (its token is its own key)
    # --- the patient's program page (its link is its own key, like a manage link)
    **{
        f"web.{name}": ("public", "use")
        for name in ("program", "program_done", "program_function", "program_item_done", "program_pain")
    },
}


class Forbidden(DomainError):
    """The user's role may not do this at all (403)."""

    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Actor:
    """Who is asking: a signed-in staff member, a token's user, or nobody (``role`` None)."""

    user_id: int | None
    role: str | None
    practitioner_id: int | None = None


ANONYMOUS_ACTOR = Actor(user_id=None, role=None)


def rule_of(endpoint: str | None) -> tuple[str, str] | None:
    """(resource, action) of an endpoint; None for an endpoint the policy does not know."""
    return ENDPOINTS.get(endpoint or "")


def grant(role: str | None, resource: str, action: str) -> str | None:
    """What ``role`` (None: anonymous) may do to ``resource``: ``PUBLIC``, ``SIGNED``, ``ALL``,
    ``OWN``, or None (nothing). Unknown pairs grant nothing."""
    row = POLICY.get((resource, action))
    if row is None:
        return None
    if isinstance(row, str):
        return row
    return row.get(role) if role else None


def allows(actor: Actor, resource: str, action: str) -> bool:
    return grant(actor.role, resource, action) in (PUBLIC, ALL, OWN)


def practitioner_scope(actor: Actor, resource: str = "appointment", action: str = "read") -> int | None:
    """None when the actor sees every practitioner's ``resource``; else the one practitioner whose
    they see (``NOBODY`` for a practitioner login linked to no practitioner)."""
    if grant(actor.role, resource, action) != OWN or actor.role != "practitioner":
        return None
    return actor.practitioner_id or NOBODY


def can_see_appointment(actor: Actor, appointment: Appointment, action: str = "read") -> bool:
    scope = practitioner_scope(actor, "appointment", action)
    return allows(actor, "appointment", action) and (scope is None or appointment.practitioner_id == scope)


def can_see_patient(session: Session, actor: Actor, patient_id: int) -> bool:
    scope = practitioner_scope(actor, "patient", "read")
    return allows(actor, "patient", "read") and (scope is None or is_patient_of(session, patient_id, scope))


def _own_appointment(session: Session, actor: Actor, appointment_id: int) -> bool:
    appointment = session.get(Appointment, appointment_id)
    return appointment is None or appointment.practitioner_id == (actor.practitioner_id or NOBODY)


def _own_patient(session: Session, actor: Actor, patient_id: int) -> bool:
    return is_patient_of(session, patient_id, actor.practitioner_id or NOBODY)


def _own_program(session: Session, actor: Actor, program_id: int) -> bool:
    program = session.get(Program, program_id)
    return program is None or program.practitioner_id == (actor.practitioner_id or NOBODY)


def _own_alert(session: Session, actor: Actor, alert_id: int) -> bool:
    alert = session.get(Alert, alert_id)
    mine = actor.practitioner_id or NOBODY
    return alert is None or alert.practitioner_id == mine or is_patient_of(session, alert.patient_id, mine)


def _own_plan(session: Session, actor: Actor, plan_id: int) -> bool:
    plan = session.get(TreatmentPlan, plan_id)
    return plan is None or plan_belongs_to(session, plan_id, actor.practitioner_id or NOBODY)


def _own_token(session: Session, actor: Actor, token_id: int) -> bool:
    token = session.get(ApiToken, token_id)
    return token is None or token.user_id == actor.user_id


# URL arguments that name an object, and how an OWN grant checks it is the actor's. An unknown id
# passes here: the view answers its own 404, the same answer a colleague's id gets.
_OWNERSHIP: dict[str, Callable[[Session, Actor, int], bool]] = {
    "appointment_id": _own_appointment,
    "patient_id": _own_patient,
    "token_id": _own_token,
    "program_id": _own_program,
    "alert_id": _own_alert,
    "plan_id": _own_plan,
}


def authorize(session: Session, actor: Actor, endpoint: str | None, view_args: Mapping | None = None) -> str:
    """Check one request against the policy; returns the grant (``ALL``, ``OWN``, ``PUBLIC``...).

    Raises Forbidden when the endpoint has no policy entry or the actor's role may not do it, and
    NotFound when the grant is ``OWN`` and an object of the URL is not the actor's.
    """
    rule = rule_of(endpoint)
    if rule is None:
        raise Forbidden("This address has no access rule, so it is closed.")
    granted = grant(actor.role, *rule)
    if granted is None:
        raise Forbidden("Your role may not do this.")
    if granted == OWN:
        for name, value in (view_args or {}).items():
            check = _OWNERSHIP.get(name)
            if check is not None and not check(session, actor, value):
                raise NotFound("There is nothing here, or it is not yours to see.")
    return granted
