"""The audit trail for admins: filter, page through, export the filtered rows as CSV."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Response, render_template, request

from booking_service import audit
from booking_service.audit.context import ACTOR_KINDS
from booking_service.audit.queries import Filters, actions, export_csv, search
from booking_service.console.common import clinic_or_none, parse_date, parse_int
from booking_service.context import db_session, utcnow

MAX_TEXT = 100


def _zone() -> ZoneInfo:
    clinic = clinic_or_none()
    return ZoneInfo(clinic.timezone if clinic else "UTC")


def _filters() -> tuple[Filters, dict]:
    """The filters from the query string (dates are local days of the clinic, both inclusive),
    and the values to show back in the form."""
    args = request.args
    kind = args.get("kind", "")
    actor = " ".join(args.get("actor", "").split())[:MAX_TEXT]
    action = args.get("action", "").strip()[:48]
    patient_id = parse_int(args.get("patient"))
    start, end = parse_date(args.get("from")), parse_date(args.get("to"))
    zone = _zone()
    filters = Filters(
        actor_kind=kind if kind in ACTOR_KINDS else None,
        actor=actor or None,
        action=action or None,
        patient_id=patient_id,
        since=datetime.combine(start, time(0), zone) if start else None,
        until=datetime.combine(end + timedelta(days=1), time(0), zone) if end else None,
    )
    shown = {
        "kind": filters.actor_kind or "",
        "actor": actor,
        "action": action,
        "patient": patient_id or "",
        "from": start.isoformat() if start else "",
        "to": end.isoformat() if end else "",
    }
    return filters, shown


def index():
    filters, shown = _filters()
    page_number = parse_int(request.args.get("page")) or 1
    session = db_session()
    page = search(session, filters, page=page_number)
    query = {key: value for key, value in shown.items() if value != ""}
    return render_template(
        "staff/audit.html",
        nav="audit",
        page=page,
        shown=shown,
        query=query,
        kinds=ACTOR_KINDS,
        known_actions=actions(session),
        tz=_zone().key,
    )


def export():
    """The filtered rows as CSV, newest first; the export is itself an audit event."""
    filters, shown = _filters()
    session = db_session()
    body, count = export_csv(session, filters)
    filtered_by = sorted(key for key, value in shown.items() if value != "")
    audit.record(session, "audit.export", "audit_events", None, {"rows": count, "filtered_by": filtered_by})
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )
