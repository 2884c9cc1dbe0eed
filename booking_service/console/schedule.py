"""The day board (live), its fragment for polling, the printable day sheet, and the week."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from flask import Response, abort, current_app, flash, render_template, request, url_for

from booking_service import access, audit
from booking_service.clinic.models import Location
from booking_service.clinic.queries import practitioner_location_on
from booking_service.console.auth import actor, practitioner_scope
from booking_service.console.common import (
    RED_FLAG_LABELS,
    STATUS_LABELS,
    choose_location,
    fmt_day,
    fmt_time,
    local_iso,
    local_today,
    parse_date,
    parse_int,
    slot_value,
)
from booking_service.context import db_session, utcnow
from booking_service.messaging.queries import appointments_with_failures
from booking_service.scheduling.board import colour_of, day_board, day_change_token, now_bucket
from booking_service.scheduling.queries import WEEK_DAYS, day_schedule, week_schedule

# Bump when the board's markup changes, so open day views fetch the new markup.
BOARD_VERSION = "2"
# The grid's rows when the clinic has no slot step (it always has one: the column's default).
DEFAULT_STEP = 15
# How often an open day view asks whether anything changed (milliseconds; docs/architecture.md).
POLL_MS = 4000


def _etag(location: Location, day: date, *, include_cancelled: bool) -> tuple[str, int]:
    """(the board's ETag, the clinic's slot step): the change token of the day (one statement,
    the slot step included), with everything else the markup depends on (who looks, the
    options, which slot step "now" is in)."""
    scope = practitioner_scope()
    token = day_change_token(db_session(), day, location=location, practitioner_id=scope)
    step = token[-1] or DEFAULT_STEP
    bucket = now_bucket(day, location=location, step_minutes=step, now=utcnow())
    raw = repr((BOARD_VERSION, token, location.id, day.isoformat(), scope, _can_move(), include_cancelled, bucket))
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest(), step


def _can_move() -> bool:
    """Whether this login may move appointments: their visits on the board can be dragged to a
    free time (the move itself is checked as any other)."""
    return access.allows(actor(), "appointment", "change")


def _board_context(location: Location, day: date, *, include_cancelled: bool, step: int) -> dict:
    session = db_session()
    now = utcnow()
    tz = location.timezone
    board = day_board(
        session,
        day,
        location=location,
        step_minutes=step,
        now=now,
        practitioner_id=practitioner_scope(),
        include_cancelled=include_cancelled,
    )
    # What every cell of a row or column repeats, formatted once (the board has hundreds of cells).
    rows = [
        {
            "label": fmt_time(start, tz),
            "iso": local_iso(start, tz),
            "slot": slot_value(start),
            "key": start.strftime("%Y%m%d%H%M"),
        }
        for start in board.rows
    ]
    visits = [visit for column in board.columns for cell in column.cells if cell for visit in cell.appointments]
    times = {
        v.id: (fmt_time(v.start_at, tz), local_iso(v.start_at, tz), fmt_time(v.end_at, tz), local_iso(v.end_at, tz))
        for v in (*visits, *board.cancelled)
    }
    return {
        "board": board,
        "rows": rows,
        "times": times,
        # /staff/appointments/<id> and its /status, built by joining ids (url_for for each of a
        # hundred visits costs more than the rest of a row's markup).
        "visit_base": url_for("console.appointment", appointment_id=1).removesuffix("1"),
        "names": [column.practitioner.display_name for column in board.columns],
        "location": location,
        "tz": tz,
        "day": day,
        "today": local_today(location),
        "failed": appointments_with_failures(session, board.ids),
        "colour_of": colour_of,
        "book_base": url_for("console.book", location=location.id, date=day.isoformat()),
        "check_in_from": now + timedelta(hours=2),
        "here": url_for("console.day", date=day.isoformat(), location=location.id),
        "include_cancelled": include_cancelled,
        "can_move": _can_move(),
    }


def _render_board(context: dict) -> str:
    """The board alone. Rendered without the console's context processor: a fragment has no
    navigation, so it needs none of its counts (two queries on every poll), only the helpers
    the board uses."""
    template = current_app.jinja_env.get_template("staff/_board.html")
    return template.render(
        **context,
        fmt_time=fmt_time,
        fmt_day=fmt_day,
        local_iso=local_iso,
        status_labels=STATUS_LABELS,
    )


def _own_location():
    """For a practitioner's login: a ``prefer`` for ``choose_location`` naming where they work on
    the day asked for (so their own day opens), and a word when the login is not linked yet."""
    scope = practitioner_scope()
    if scope is None:
        return None
    if scope == access.NOBODY:
        flash(
            "Your login is not linked to a practitioner yet, so no appointments show: ask an admin to link it.", "error"
        )
        return None
    day = parse_date(request.args.get("date")) or local_today(None)
    return lambda: practitioner_location_on(db_session(), scope, day)


def day():
    location, locations = choose_location(_own_location())
    today = local_today(location)
    shown = parse_date(request.args.get("date")) or today
    include_cancelled = request.args.get("cancelled") == "1"
    values = {
        "nav": "day",
        "location": location,
        "locations": locations,
        "day": shown,
        "today": today,
        "previous": shown - timedelta(days=1),
        "following": shown + timedelta(days=1),
        "include_cancelled": include_cancelled,
        "poll_ms": POLL_MS,
        "board": None,
    }
    if location is not None:
        values["etag"], step = _etag(location, shown, include_cancelled=include_cancelled)
        values.update(_board_context(location, shown, include_cancelled=include_cancelled, step=step))
        values["live_url"] = url_for(
            "console.day_fragment",
            date=shown.isoformat(),
            location_id=location.id,
            cancelled="1" if include_cancelled else None,
        )
        values["sheet_url"] = url_for("console.day_sheet", date=shown.isoformat(), location_id=location.id)
    return render_template("staff/day.html", **values)


def _location_arg() -> Location:
    """``?location_id=`` (an active location), else 404."""
    location = db_session().get(Location, parse_int(request.args.get("location_id")) or 0)
    if location is None or not location.active:
        abort(404)
    return location


def day_fragment():
    """The board alone, for the day view's polling: 304 when the ETag the browser holds is
    still the board's, else the fragment with its new ETag. Polling does not count as activity
    for the idle sign-out (``auth.PASSIVE_ENDPOINTS``)."""
    location = _location_arg()
    shown = parse_date(request.args.get("date")) or local_today(location)
    include_cancelled = request.args.get("cancelled") == "1"
    etag, step = _etag(location, shown, include_cancelled=include_cancelled)
    if request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    context = _board_context(location, shown, include_cancelled=include_cancelled, step=step)
    response = Response(_render_board(context), mimetype="text/html")
    response.set_etag(etag)
    return response


def day_sheet():
    """The day's list per practitioner, one printed page each: times, patients, services,
    statuses and the staff-only notes and flags. Reading it is audited (it holds intake notes)."""
    location, locations = choose_location()
    wanted = parse_int(request.args.get("location_id"))
    if wanted is not None:
        location = next((loc for loc in locations if loc.id == wanted), None)
        if location is None:
            abort(404)
    if location is None:
        abort(404)
    shown = parse_date(request.args.get("date")) or local_today(location)
    session = db_session()
    columns = [
        column
        for column in day_schedule(session, shown, location=location, practitioner_id=practitioner_scope())
        if column.appointments
    ]
    audit.record(
        session,
        "schedule.print",
        "location",
        location.id,
        {"date": shown.isoformat(), "appointments": sum(len(c.appointments) for c in columns)},
    )
    return render_template(
        "staff/day_sheet.html",
        nav="day",
        location=location,
        tz=location.timezone,
        day=shown,
        columns=columns,
        red_flag_labels=RED_FLAG_LABELS,
        printed_at=utcnow(),
    )


def week():
    location, locations = choose_location(_own_location())
    today = local_today(location)
    shown = parse_date(request.args.get("date")) or today
    monday = shown - timedelta(days=shown.weekday())
    days = [monday + timedelta(days=i) for i in range(WEEK_DAYS)]
    rows = []
    if location is not None:
        rows = week_schedule(db_session(), monday, location=location, practitioner_id=practitioner_scope())
    totals = [sum(len(row.days[i]) for row in rows) for i in range(WEEK_DAYS)]
    return render_template(
        "staff/week.html",
        nav="week",
        location=location,
        locations=locations,
        days=days,
        today=today,
        previous=monday - timedelta(days=WEEK_DAYS),
        following=monday + timedelta(days=WEEK_DAYS),
        rows=rows,
        totals=totals,
    )
