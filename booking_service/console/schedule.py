"""The day and week boards."""

from __future__ import annotations

from datetime import timedelta

from flask import render_template, request

from booking_service.console.auth import practitioner_scope
from booking_service.console.common import choose_location, local_today, parse_date
from booking_service.context import db_session
from booking_service.messaging.queries import appointments_with_failures
from booking_service.scheduling.queries import WEEK_DAYS, day_schedule, week_schedule


def day():
    location, locations = choose_location()
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
    location, locations = choose_location()
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
