"""URL map of the front-desk staff console under ``/staff``, and what ``register_console`` sets
up around it: Flask-Login, the login requirement, security headers, template helpers and error
pages. The controllers live beside this file; the logic they call lives in the domain packages.

Server-rendered, no JavaScript needed: the one script (``static/js/day-board.js``, served
from this site, no inline code) only adds live updates and arrow keys to the day board, and a
print button to the day sheet. Every change is a POST carrying the CSRF token and answered with
a redirect (post/redirect/get).
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from booking_service import access, unavailable
from booking_service.console import (
    account,
    alerts,
    appointments,
    auth,
    booking,
    first_run,
    inbox,
    patient_desk,
    patients,
    plans,
    programs,
    progress,
    schedule,
    settings,
    setup,
    tokens,
    triage,
    users,
    waitlist,
)
from booking_service.console.audit import export as audit_csv
from booking_service.console.audit import index as audit_index
from booking_service.console.common import (
    STATUS_LABELS,
    asset_url,
    clinic_or_none,
    display_phone,
    fmt_day,
    fmt_soon,
    fmt_time,
    fmt_when,
    local_iso,
    service_label,
    slot_value,
    staff_message,
    zone_label,
)
from booking_service.console.patient_data import erase as erase_patient_data
from booking_service.console.patient_data import export as export_patient_data
from booking_service.context import db_session
from booking_service.db import server_error_was_unavailable
from booking_service.errors import DomainError
from booking_service.extensions import PUBLIC_WRITE_LIMIT, limiter
from booking_service.messaging.queries import count_replies_needing_staff

bp = Blueprint("console", __name__, url_prefix="/staff")

address_limit = limiter.limit(auth.LOGIN_LIMIT, methods=["POST"], error_message=auth.LOGIN_LIMIT_MESSAGE)
account_limit = limiter.limit(
    auth.ACCOUNT_LOGIN_LIMIT,
    methods=["POST"],
    key_func=auth.login_account_key,
    deduct_when=auth.login_failed,
    error_message=auth.ACCOUNT_LOGIN_LIMIT_MESSAGE,
)

# --- signing in and out --------------------------------------------------------------------------
bp.add_url_rule("/login", "login", address_limit(account_limit(auth.login)), methods=["GET", "POST"])
bp.add_url_rule("/login/code", "login_code", address_limit(account_limit(auth.login_code)), methods=["GET", "POST"])
bp.add_url_rule("/logout", "logout", auth.logout, methods=["POST"])
# --- the schedule ----------------------------------------------------------------------------------
bp.add_url_rule("/", "day", schedule.day)
bp.add_url_rule("/week", "week", schedule.week)
bp.add_url_rule("/day/fragment", "day_fragment", schedule.day_fragment)  # polled by the open day view
bp.add_url_rule("/day/sheet", "day_sheet", schedule.day_sheet)
# --- one appointment -------------------------------------------------------------------------------
bp.add_url_rule("/appointments/<int:appointment_id>", "appointment", appointments.show)
bp.add_url_rule("/appointments/<int:appointment_id>/status", "set_status", appointments.change_status, methods=["POST"])
bp.add_url_rule("/appointments/<int:appointment_id>/cancel", "cancel", appointments.cancel, methods=["POST"])
bp.add_url_rule(
    "/appointments/<int:appointment_id>/reschedule", "reschedule", appointments.reschedule, methods=["GET", "POST"]
)
# --- booking for a caller --------------------------------------------------------------------------
bp.add_url_rule("/book", "book", booking.start)
bp.add_url_rule("/book", "book_submit", booking.submit, methods=["POST"])
# --- patients ------------------------------------------------------------------------------------
bp.add_url_rule("/patients", "patients", patients.search)
bp.add_url_rule("/patients/<int:patient_id>", "patient", patients.show)
bp.add_url_rule("/patients/<int:patient_id>/merge", "patient_merge", patients.merge, methods=["POST"])
# --- treatment plans: a series of visits booked in one go; cancelling the rest -------------------
bp.add_url_rule("/patients/<int:patient_id>/plans/new", "plan_new", plans.new, methods=["GET", "POST"])
bp.add_url_rule("/plans/<int:plan_id>", "plan", plans.show)
bp.add_url_rule("/plans/<int:plan_id>/cancel", "plan_cancel", plans.cancel, methods=["POST"])
# --- patients at the desk: a new patient, details, notes, two records side by side ----------------
bp.add_url_rule("/patients/new", "patient_new", patient_desk.new_patient, methods=["GET", "POST"])
bp.add_url_rule("/patients/<int:patient_id>/edit", "patient_edit", patient_desk.edit, methods=["GET", "POST"])
bp.add_url_rule("/patients/<int:patient_id>/notes", "patient_note_add", patient_desk.note_add, methods=["POST"])
bp.add_url_rule(
    "/patients/<int:patient_id>/notes/<int:note_id>", "patient_note_edit", patient_desk.note_edit, methods=["POST"]
)
bp.add_url_rule("/patients/<int:patient_id>/compare", "patient_compare", patient_desk.compare)
# --- the triage queue (shown on the day view; handled by clinicians) ------------------------------
bp.add_url_rule(
    "/triage/appointments/<int:appointment_id>/handled",
    "triage_handle_appointment",
    triage.handle_appointment,
    methods=["POST"],
)
bp.add_url_rule("/triage/alerts/<int:alert_id>/handled", "triage_handle_alert", triage.handle_alert, methods=["POST"])
# --- the exercise library and home exercise programs ---------------------------------------------
bp.add_url_rule("/exercises", "exercises", programs.exercises)
bp.add_url_rule("/exercises/new", "exercise_new", programs.exercise_form, methods=["GET", "POST"])
bp.add_url_rule("/exercises/<int:exercise_id>", "exercise_edit", programs.exercise_form, methods=["GET", "POST"])
bp.add_url_rule("/patients/<int:patient_id>/programs/new", "program_new", programs.assign, methods=["GET", "POST"])
bp.add_url_rule("/programs/<int:program_id>", "program", programs.show)
bp.add_url_rule("/programs/<int:program_id>/revise", "program_revise", programs.revise, methods=["GET", "POST"])
bp.add_url_rule("/programs/<int:program_id>/action", "program_action", programs.act, methods=["POST"])
# --- the desk's inbox and waitlist (who may use each route: booking_service.access.ENDPOINTS) -----
bp.add_url_rule("/inbox", "inbox", inbox.index)
bp.add_url_rule("/inbox/<int:message_id>/handled", "inbox_handled", inbox.handled, methods=["POST"])
bp.add_url_rule("/inbox/<int:message_id>/opt-out", "inbox_opt_out", inbox.opt_out, methods=["POST"])
bp.add_url_rule("/waitlist", "waitlist", waitlist.index)
bp.add_url_rule("/waitlist/<int:entry_id>/offered", "waitlist_offered", waitlist.offered, methods=["POST"])
bp.add_url_rule("/waitlist/<int:entry_id>/offer", "waitlist_offer", waitlist.send_offer, methods=["POST"])
bp.add_url_rule("/waitlist/<int:entry_id>/remove", "waitlist_remove", waitlist.remove, methods=["POST"])
bp.add_url_rule("/waitlist/openings/<int:opening_id>/next", "waitlist_pass_on", waitlist.pass_on, methods=["POST"])
bp.add_url_rule("/waitlist/openings/<int:opening_id>/close", "waitlist_close", waitlist.close, methods=["POST"])
# --- schedule and settings (hours: practitioners view their own; saving is the desk's) ------------
bp.add_url_rule("/hours", "hours", settings.hours)
bp.add_url_rule("/hours", "hours_save", settings.hours_save, methods=["POST"])
bp.add_url_rule("/time-off", "time_off", settings.time_off)
bp.add_url_rule("/time-off", "time_off_add", settings.time_off_add, methods=["POST"])
bp.add_url_rule("/time-off/<int:time_off_id>/remove", "time_off_remove", settings.time_off_remove, methods=["POST"])
bp.add_url_rule("/closures", "closure_add", settings.closure_add, methods=["POST"])
bp.add_url_rule("/closures/<int:closure_id>/remove", "closure_remove", settings.closure_remove, methods=["POST"])
bp.add_url_rule("/settings", "settings", settings.policy, methods=["GET", "POST"])
# --- clinic setup (admins): the clinic, locations, practitioners, services ---------------------------
bp.add_url_rule("/setup/clinic", "clinic", setup.clinic, methods=["GET", "POST"])
bp.add_url_rule("/setup/locations", "locations", setup.locations)
bp.add_url_rule("/setup/locations/new", "location_new", setup.location_form, methods=["GET", "POST"])
bp.add_url_rule("/setup/locations/<int:location_id>", "location_edit", setup.location_form, methods=["GET", "POST"])
bp.add_url_rule("/setup/practitioners", "practitioners", setup.practitioners)
bp.add_url_rule("/setup/practitioners/new", "practitioner_new", setup.practitioner_form, methods=["GET", "POST"])
bp.add_url_rule(
    "/setup/practitioners/<int:practitioner_id>",
    "practitioner_edit",
    setup.practitioner_form,
    methods=["GET", "POST"],
)
bp.add_url_rule("/setup/services", "services", setup.services)
bp.add_url_rule("/setup/services/new", "service_new", setup.service_form, methods=["GET", "POST"])
bp.add_url_rule("/setup/services/<int:service_id>", "service_edit", setup.service_form, methods=["GET", "POST"])
# --- home exercise programs: alerts (desk and the patient's practitioner) and progress -----------
bp.add_url_rule("/alerts", "alerts", alerts.index)
bp.add_url_rule("/alerts/<int:alert_id>/acknowledge", "alert_acknowledge", alerts.acknowledge, methods=["POST"])
bp.add_url_rule("/progress", "progress", progress.index)
bp.add_url_rule("/progress/<int:program_id>", "program_progress", progress.show)
# --- the audit trail, a patient's data (export: the desk; erase and the trail: admins) ------------
bp.add_url_rule("/audit", "audit", audit_index)
bp.add_url_rule("/audit.csv", "audit_csv", audit_csv)
bp.add_url_rule("/patients/<int:patient_id>/export", "patient_export", export_patient_data, methods=["POST"])
bp.add_url_rule("/patients/<int:patient_id>/erase", "patient_erase", erase_patient_data, methods=["GET", "POST"])

# --- the staff themselves: own account and tokens; accounts for admins ------------------------------
bp.add_url_rule("/account", "account", account.show)
bp.add_url_rule("/account/totp/start", "totp_start", account.totp_start, methods=["POST"])
bp.add_url_rule("/account/totp/confirm", "totp_confirm", account.totp_confirm, methods=["POST"])
bp.add_url_rule("/account/totp/disable", "totp_disable", account.totp_disable, methods=["POST"])
bp.add_url_rule("/tokens", "tokens", tokens.index)
bp.add_url_rule("/tokens", "token_create", tokens.create, methods=["POST"])
bp.add_url_rule("/tokens/<int:token_id>/revoke", "token_revoke", tokens.revoke, methods=["POST"])
bp.add_url_rule("/users", "users", users.index)
bp.add_url_rule("/users", "user_create", users.create, methods=["POST"])
bp.add_url_rule("/users/<int:user_id>", "user", users.show)
bp.add_url_rule("/users/<int:user_id>/change", "user_update", users.update, methods=["POST"])
bp.add_url_rule("/users/<int:user_id>/password", "user_password", users.password, methods=["POST"])

# --- first run: the guided setup (the account at /setup is public while the database is empty) ----
bp.add_url_rule("/first-run", "first_run", first_run.overview)
bp.add_url_rule("/first-run/clinic", "first_run_clinic", first_run.clinic, methods=["GET", "POST"])
bp.add_url_rule("/first-run/location", "first_run_location", first_run.location, methods=["GET", "POST"])
bp.add_url_rule("/first-run/practitioner", "first_run_practitioner", first_run.practitioner, methods=["GET", "POST"])
bp.add_url_rule("/first-run/service", "first_run_service", first_run.service, methods=["GET", "POST"])

bp.before_request(auth.require_login)
bp.before_request(auth.check_access)

# ``/setup`` lies outside ``/staff``: its own blueprint, dressed as the console (headers, helpers,
# error pages, below). Its view answers 404 once the database holds a clinic or a staff user.
first_run_bp = Blueprint("first_run", __name__)
first_run_bp.add_url_rule(
    "/setup", "account", limiter.limit(PUBLIC_WRITE_LIMIT, methods=["POST"])(first_run.account), methods=["GET", "POST"]
)
first_run_bp.before_request(auth.check_access)


def register_console(app: Flask) -> None:
    auth.init_login(app)
    app.register_blueprint(bp)
    app.register_blueprint(first_run_bp)


@bp.after_request
@first_run_bp.after_request
def _headers(response):
    """Pages about patients: never cached or framed, scripts only from this site's own files
    (no inline code), no Referer leaks."""
    headers = response.headers
    if response.mimetype == "text/html":
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        )
    headers["Cache-Control"] = "no-store"
    headers.add("Vary", "Cookie")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Robots-Tag", "noindex, nofollow")
    return response


@bp.context_processor
@first_run_bp.context_processor
def _template_helpers():
    clinic = clinic_or_none()
    show_inbox = current_user.is_authenticated and current_user.may("inbox", "read")
    return {
        "clinic_name": clinic.name if clinic else "Clinic",
        "inbox_count": count_replies_needing_staff(db_session()) if show_inbox else 0,
        "alert_count": alerts.open_count() if current_user.is_authenticated else 0,
        "asset_url": asset_url,
        "fmt_time": fmt_time,
        "fmt_when": fmt_when,
        "fmt_soon": fmt_soon,
        "fmt_day": fmt_day,
        "local_iso": local_iso,
        "zone_label": zone_label,
        "service_label": service_label,
        "display_phone": display_phone,
        "slot_value": slot_value,
        "status_labels": STATUS_LABELS,
        "may": _may,
        "triage_panel": triage.panel,
    }


def _may(endpoint: str) -> bool:
    """Whether the signed-in user may open ``endpoint`` (the navigation shows only those)."""
    rule = access.rule_of(endpoint)
    return current_user.is_authenticated and rule is not None and current_user.may(*rule)


# --- error pages (the console's own; the patient pages and the API keep theirs) -----------------

_ERRORS = {
    400: ("Something in that request was not right", "Go back, reload the page and try again."),
    403: ("Not for your role", "Your role does not give access to this page. Ask an admin if you need it."),
    404: ("Not found", "There is nothing here, or it is not yours to see."),
    405: ("Not allowed", "That address does not take this kind of request."),
    429: ("Too many attempts", "Please wait a minute before trying again."),
    503: (
        "The database cannot be reached",
        "Nothing was saved. Wait a minute and try again; if it lasts, tell whoever runs the service.",
    ),
}


def _error_page(status: int, title: str | None = None, message: str | None = None):
    default_title, default_message = _ERRORS.get(status, ("Something went wrong", "Please try again."))
    return render_template(
        "staff/error.html", status=status, title=title or default_title, message=message or default_message
    ), status


@bp.errorhandler(CSRFError)
@first_run_bp.errorhandler(CSRFError)
def _csrf_failed(_error):
    return _error_page(400, "The form had expired", "Nothing was changed. Go back, reload the page and try again.")


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError):
    return _error_page(error.status, "That did not work", staff_message(error))


@bp.errorhandler(429)
@first_run_bp.errorhandler(429)
def _too_many(error):
    # The sign-in limits carry their own sentence (which limit, how long); others the default.
    message = getattr(error, "description", None)
    return _error_page(429, message=message if isinstance(message, str) and message.endswith(".") else None)


@bp.errorhandler(500)
@first_run_bp.errorhandler(500)
def _server_error(error):
    if server_error_was_unavailable(error):
        title, message = _ERRORS[503]
        return unavailable.page(title=title, message=message, lang="en", stylesheet="staff.css")
    return error  # Flask's own 500 page


for _status in _ERRORS:
    if _status not in (429, 503):
        for _blueprint in (bp, first_run_bp):
            _blueprint.register_error_handler(_status, lambda error, _status=_status: _error_page(_status))
