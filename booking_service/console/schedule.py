"""The day and week boards."""

from __future__ import annotations

from datetime import timedelta

from flask import flash, render_template, request

from booking_service import access
from booking_service.clinic.queries import practitioner_location_on
from booking_service.console.auth import practitioner_scope
from booking_service.console.common import choose_location, local_today, parse_date
from booking_service.context import db_session
from booking_service.messaging.queries import appointments_with_failures
from booking_service.scheduling.queries import WEEK_DAYS, day_schedule, week_schedule


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
    columns, failed = [], set()
    if location is not None:
        session = db_session()
        columns = day_schedule(
            session, shown, location=location, practitioner_id=practitioner_scope(), include_cancelled=include_cancelled
        )
        failed = appointments_with_failures(session, [a.id for column in columns for a in column.appointments])
    return render_template(
        "staff/day.html",
        nav="day",
        location=location,
        locations=locations,
        day=shown,
        today=today,
        previous=shown - timedelta(days=1),
        following=shown + timedelta(days=1),
        include_cancelled=include_cancelled,
        columns=columns,
        failed=failed,
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
