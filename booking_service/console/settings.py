"""Schedule and settings: weekly hours, time off and closures, the clinic's policy.

Thin controllers: parse the form, check who may act, call one operation of
``booking_service.clinic.operations``, answer. A form the operation refuses comes back with
each problem marked (hours, policy) or as a flashed message (time off, closures).
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from booking_service.clinic import operations
from booking_service.clinic.models import Location, Practitioner
from booking_service.clinic.queries import active_locations, get_clinic, practitioners_for
from booking_service.console.auth import practitioner_scope
from booking_service.console.common import (
    choose_location,
    clinic_or_none,
    fmt_day,
    fmt_when,
    local_today,
    parse_date,
    parse_int,
    run,
    staff_field_errors,
    staff_message,
)
from booking_service.context import db_session, utcnow
from booking_service.errors import DomainError
from booking_service.messaging.rules import local_instant
from booking_service.scheduling.queries import closure_conflicts, outside_weekly_hours, time_off_conflicts
from booking_service.usecases import schedule

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HOURS_FIELDS = ("start", "end", "break_start", "break_end", "valid_from", "valid_until")
MAX_ROWS = 50  # a week of split shifts with dated changes fits many times over
BLANK_RULES = 2  # empty reminder rows offered under the clinic's rules
MAX_RULES = 10
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})(?::00)?$")
_INT = re.compile(r"^-?\d{1,6}$")
_NUMBER = re.compile(r"^\d{1,4}(?:\.\d{1,2})?$")


def _parse_time(raw: str | None) -> time | None:
    """``HH:MM`` (what ``<input type=time>`` sends) as a time; None when blank or unreadable."""
    match = _HHMM.match((raw or "").strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        return None
    return time(int(match[1]), int(match[2]))


def _hhmm(value: time | None) -> str:
    return value.strftime("%H:%M") if value else ""


# --- weekly hours ------------------------------------------------------------------------------------


def _practitioner_to_show(wanted: int | None) -> tuple[Practitioner | None, list[Practitioner]]:
    """(the practitioner whose hours are shown, those the user may choose from). A practitioner
    sees only themselves: asking for someone else is a 404."""
    session = db_session()
    scope = practitioner_scope()
    if scope is not None:
        if wanted is not None and wanted != scope:
            abort(404)
        own = session.get(Practitioner, scope)
        return own, [own] if own else []
    choices = practitioners_for(session)
    by_id = {p.id: p for p in choices}
    return by_id.get(wanted) or (choices[0] if choices else None), choices


def _hours_locations(practitioner: Practitioner, stored) -> list[Location]:
    """Where the practitioner works or has hours, active locations only."""
    ids = {loc.id for loc in practitioner.locations} | {row.location_id for row in stored}
    return [loc for loc in active_locations(db_session()) if loc.id in ids]


def _table(rows) -> list[dict]:
    """Form rows for stored hours: every weekday at least once (blank: not working)."""
    by_day: dict[int, list[dict]] = {day: [] for day in range(7)}
    for row in rows:
        by_day[row.weekday].append(
            {
                "weekday": row.weekday,
                "start": _hhmm(row.start_time),
                "end": _hhmm(row.end_time),
                "break_start": _hhmm(row.break_start),
                "break_end": _hhmm(row.break_end),
                "valid_from": row.valid_from.isoformat() if row.valid_from else "",
                "valid_until": row.valid_until.isoformat() if row.valid_until else "",
            }
        )
    return [item for day in range(7) for item in (by_day[day] or [{"weekday": day, **dict.fromkeys(HOURS_FIELDS, "")}])]


def _posted_table(form) -> list[dict]:
    table = []
    for index in range(MAX_ROWS):
        weekday = parse_int(form.get(f"rows.{index}.weekday"))
        if weekday is None or weekday > 6:
            break
        table.append(
            {"weekday": weekday, **{name: form.get(f"rows.{index}.{name}", "").strip() for name in HOURS_FIELDS}}
        )
    return table


def _rows_of(table: list[dict]) -> tuple[list[operations.HoursRow], list[int], dict[str, str]]:
    """(rows for the operation, the form index of each, problems found reading the form)."""
    rows, indexes, errors = [], [], {}
    for index, item in enumerate(table):
        if not any(item[name] for name in HOURS_FIELDS):
            continue  # a blank row: not working that day
        parsed = {name: _parse_time(item[name]) for name in ("start", "end", "break_start", "break_end")}
        dates = {name: parse_date(item[name]) for name in ("valid_from", "valid_until")}
        problems = {name: "Give a time as HH:MM." for name, value in parsed.items() if item[name] and value is None}
        problems |= {name: "Give a date." for name, value in dates.items() if item[name] and value is None}
        for name in ("start", "end"):
            if not item[name]:
                problems[name] = "Give a start and an end, or leave the whole row blank."
        if problems:
            errors |= {f"rows.{index}.{name}": message for name, message in problems.items()}
            continue
        rows.append(operations.HoursRow(weekday=item["weekday"], **parsed, **dates))
        indexes.append(index)
    return rows, indexes, errors


def _form_fields(fields: dict, indexes: list[int]) -> dict[str, str]:
    """The operation's ``rows.<n>.<field>`` renumbered to the form's rows (blank ones skipped)."""
    renamed = {}
    for key, message in fields.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "rows" and parts[1].isdigit() and int(parts[1]) < len(indexes):
            key = f"rows.{indexes[int(parts[1])]}.{parts[2]}"
        renamed[key] = message
    return renamed


def _render_hours(practitioner, choices, *, posted=None, status=200):
    """The page; ``posted`` = (location id, submitted table, errors, message) after a refused save.
    Under each location's table: the booked visits its hours no longer cover, to move."""
    session = db_session()
    stored = operations.weekly_hours(session, practitioner.id) if practitioner else []
    locations = _hours_locations(practitioner, stored) if practitioner else []
    forms = []
    for location in locations:
        if posted and posted[0] == location.id:
            table, errors = posted[1], posted[2]
        else:
            table, errors = _table(row for row in stored if row.location_id == location.id), {}
        outside = outside_weekly_hours(session, practitioner.id, location.id, now=utcnow())
        forms.append({"location": location, "rows": table, "errors": errors, "outside": outside})
    return (
        render_template(
            "staff/hours.html",
            nav="hours",
            practitioner=practitioner,
            choices=choices,
            forms=forms,
            weekdays=WEEKDAYS,
            can_edit=current_user.may("hours", "change"),
            error=posted[3] if posted else None,
        ),
        status,
    )


def hours():
    """GET: a practitioner's weekly hours, one editable table per location."""
    practitioner, choices = _practitioner_to_show(parse_int(request.args.get("practitioner")))
    return _render_hours(practitioner, choices)


def hours_save():
    """POST: replace the practitioner's hours at one location (desk only)."""
    form = request.form
    wanted = parse_int(form.get("practitioner"))
    practitioner, choices = _practitioner_to_show(wanted)
    location_id = parse_int(form.get("location"))
    if practitioner is None or practitioner.id != wanted:
        abort(404)
    if location_id is None:
        abort(400)
    table = _posted_table(form)
    rows, indexes, errors = _rows_of(table)
    session = db_session()
    if not errors:
        try:
            operations.set_weekly_hours(session, practitioner.id, location_id, rows)
        except DomainError as exc:
            errors, message = _form_fields(staff_field_errors(exc), indexes), staff_message(exc)
        else:
            outside = len(outside_weekly_hours(session, practitioner.id, location_id, now=utcnow()))
            flash(f"Saved the weekly hours of {practitioner.display_name}. {_outside_note(outside)}", "success")
            return redirect(url_for("console.hours", practitioner=practitioner.id))
    else:
        message = "Some hours need fixing: see the marked rows."
    practitioner, choices = _practitioner_to_show(practitioner.id)
    return _render_hours(practitioner, choices, posted=(location_id, table, errors, message), status=422)


# --- time off and closures ----------------------------------------------------------------------------


def time_off():
    """GET: upcoming time off and closures with the appointments they overlap; the add forms."""
    session = db_session()
    location, locations = choose_location()
    now = utcnow()
    tz = location.timezone if location else (clinic_or_none().timezone if clinic_or_none() else "UTC")
    absences = [(item, time_off_conflicts(session, item)) for item in operations.upcoming_time_off(session, now)]
    closures = [
        (item, closure_conflicts(session, item))
        for item in operations.upcoming_closures(session, local_today(location))
    ]
    return render_template(
        "staff/time_off.html",
        nav="time_off",
        location=location,
        locations=locations,
        tz=tz,
        today=local_today(location),
        practitioners=practitioners_for(session),
        absences=absences,
        closures=closures,
        location_names={loc.id: loc.name for loc in locations},
        practitioner_names={p.id: p.display_name for p in session.scalars(select(Practitioner))},
    )


def _outside_note(count: int) -> str:
    if not count:
        return "Every booked visit there is within them."
    if count == 1:
        return "1 booked visit is now outside them: move or cancel it (listed under the hours)."
    return f"{count} booked visits are now outside them: move or cancel them (listed under the hours)."


def _conflict_note(count: int) -> str:
    if not count:
        return "No appointments overlap it."
    noun = "appointment overlaps" if count == 1 else "appointments overlap"
    return f"{count} {noun} it: move or cancel them (listed below)."


def time_off_add():
    """POST: add time off from local dates and times in the chosen location's zone."""
    form = request.form
    back = url_for("console.time_off")
    practitioner_id = parse_int(form.get("practitioner"))
    location = db_session().get(Location, parse_int(form.get("location")) or 0)
    first, last = parse_date(form.get("start_date")), parse_date(form.get("end_date"))
    whole_day = form.get("whole_day") == "yes"
    start_time, end_time = _parse_time(form.get("start_time")), _parse_time(form.get("end_time"))
    if practitioner_id is None or location is None:
        flash("Choose a practitioner and a location.", "error")
        return redirect(back)
    if first is None or (not whole_day and (start_time is None or end_time is None)):
        flash("Give a start date, and a start and end time unless it is the whole day.", "error")
        return redirect(back)
    last = last or first
    tz = ZoneInfo(location.timezone)
    if whole_day:
        start_at, end_at = local_instant(first, time(0), tz), local_instant(last + timedelta(days=1), time(0), tz)
    else:
        start_at, end_at = local_instant(first, start_time, tz), local_instant(last, end_time, tz)

    def operation() -> str:
        added, conflicts = schedule.add_time_off(
            db_session(), practitioner_id, start_at, end_at, form.get("reason", "")[: operations.MAX_REASON + 1]
        )
        who = db_session().get(Practitioner, added.practitioner_id).display_name
        return (
            f"Added time off for {who} from {fmt_when(start_at, location.timezone)}. {_conflict_note(len(conflicts))}"
        )

    return run(operation, then=back)


def time_off_remove(time_off_id: int):
    def operation() -> str:
        operations.remove_time_off(db_session(), time_off_id)
        return "Removed the time off. Those hours can be booked again."

    return run(operation, then=url_for("console.time_off"))


def closure_add():
    """POST: close one location, or every location, for a day."""
    form = request.form
    back = url_for("console.time_off")
    day = parse_date(form.get("day"))  # None: the operation refuses it (DAY_INVALID)
    location_id = parse_int(form.get("location"))  # blank: the whole clinic

    def operation() -> str:
        closure, conflicts = schedule.add_closure(
            db_session(), day, form.get("name", "")[: operations.MAX_CLOSURE_NAME + 1], location_id
        )
        return f"Closed on {fmt_day(closure.day)}. {_conflict_note(len(conflicts))}"

    return run(operation, then=back)


def closure_remove(closure_id: int):
    def operation() -> str:
        closure = operations.remove_closure(db_session(), closure_id)
        return f"Open again on {fmt_day(closure.day)}."

    return run(operation, then=url_for("console.time_off"))


# --- clinic policy ----------------------------------------------------------------------------------

_NUMBER_FIELDS = (
    "min_notice_minutes",
    "horizon_days",
    "slot_step_minutes",
    "cancellation_window_hours",
    "sms_daily_cap",
    "sms_weekly_cap",
)
_TEXT_FIELDS = ("late_cancellation_policy", "brand_color", "quiet_hours_start", "quiet_hours_end")


def _whole(raw: str) -> int | str:
    """An int when the text is one; else the text itself, for the operation to refuse by name."""
    return int(raw) if _INT.match(raw) else raw


# Optional on the form: a form without it (an older page) leaves the setting as it is.
_OPTIONAL_NUMBER_FIELDS = ("waitlist_offer_minutes",)


def _policy_values(clinic) -> dict:
    values = {name: str(getattr(clinic, name)) for name in (*_NUMBER_FIELDS, *_OPTIONAL_NUMBER_FIELDS)}
    values.update(
        late_cancellation_policy=clinic.late_cancellation_policy,
        brand_color=clinic.brand_color,
        quiet_hours_start=_hhmm(clinic.quiet_hours_start),
        quiet_hours_end=_hhmm(clinic.quiet_hours_end),
        follow_up_prompt=clinic.follow_up_prompt,
        rules=[_rule_row(rule) for rule in clinic.reminder_rules or []],
    )
    return values


def _rule_row(rule: dict) -> dict:
    if "hours_before" in rule:
        return {"channel": rule.get("channel", ""), "kind": "hours", "amount": f"{rule['hours_before']:g}", "at": ""}
    return {
        "channel": rule.get("channel", ""),
        "kind": "days",
        "amount": str(rule.get("days_before", "")),
        "at": rule.get("at", ""),
    }


def _posted_rules(form) -> list[dict]:
    rows = []
    for index in range(MAX_RULES + BLANK_RULES):
        if f"rule.{index}.channel" not in form:
            break
        rows.append(
            {name: form.get(f"rule.{index}.{name}", "").strip() for name in ("channel", "kind", "amount", "at")}
        )
    return rows


def _rule_of(row: dict) -> dict:
    """The JSON rule of a form row, values as typed when they are not numbers: ``parse_rules``
    says what is wrong with them."""
    amount = row["amount"]
    if row["kind"] == "hours":
        number = float(amount) if _NUMBER.match(amount) else amount
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        return {"channel": row["channel"], "hours_before": number}
    return {"channel": row["channel"], "days_before": _whole(amount), "at": row["at"]}


def _render_policy(values: dict, errors: dict, error: str | None, status: int = 200):
    rules = values["rules"][:MAX_RULES]
    rules = rules + [{"channel": "sms", "kind": "hours", "amount": "", "at": ""}] * BLANK_RULES
    return (
        render_template(
            "staff/settings.html",
            nav="settings",
            values=values,
            rules=rules,
            errors=errors,
            error=error,
            slot_steps=operations.SLOT_STEPS,
        ),
        status,
    )


def policy():
    """GET: the clinic's policy form. POST: validate and apply it (admin only)."""
    session = db_session()
    clinic = get_clinic(session)
    if request.method == "GET":
        return _render_policy(_policy_values(clinic), {}, None)
    form = request.form
    values = {name: form.get(name, "").strip() for name in (*_NUMBER_FIELDS, *_TEXT_FIELDS)}
    values.update(follow_up_prompt=form.get("follow_up_prompt") == "yes", rules=_posted_rules(form))
    changes: dict[str, object] = {name: _whole(values[name]) for name in _NUMBER_FIELDS}
    for name in _OPTIONAL_NUMBER_FIELDS:
        if name in form:
            values[name] = form.get(name, "").strip()
            changes[name] = _whole(values[name])
        else:
            values[name] = str(getattr(clinic, name))
    changes.update(
        late_cancellation_policy=values["late_cancellation_policy"],
        brand_color=values["brand_color"],
        quiet_hours_start=_parse_time(values["quiet_hours_start"]) or values["quiet_hours_start"],
        quiet_hours_end=_parse_time(values["quiet_hours_end"]) or values["quiet_hours_end"],
        follow_up_prompt=values["follow_up_prompt"],
        reminder_rules=[_rule_of(row) for row in values["rules"] if row["amount"]],
    )
    try:
        operations.update_policy(session, **changes)
    except DomainError as exc:
        values["rules"] = [row for row in values["rules"] if row["amount"]]
        return _render_policy(values, staff_field_errors(exc), staff_message(exc), status=exc.status)
    flash("Saved the clinic's settings. New bookings and reminders follow them from now on.", "success")
    return redirect(url_for("console.settings"))
