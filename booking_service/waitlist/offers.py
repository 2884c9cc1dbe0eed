"""The waitlist at work: freed times offered down the list, one person at a time, and taking
entries off the list. Operations: a session and plain values, no commit.

**A freed time** (an *opening*, :class:`~booking_service.waitlist.models.WaitlistOpening`): a
visit cancelled, or moved away from its time (a no-show frees nothing: the time has passed),
leaving a slot patients could book online now (:func:`time_freed`, called by the booking use
cases). When somebody is waiting for it (same service and location, the same practitioner or
anyone, the day inside their dates; never the patient who freed it) it is offered to the
longest-waiting one:

- an **offer** (:class:`~booking_service.waitlist.models.WaitlistOffer`) is a ``waitlist_offer``
  text and/or e-mail as the patient agreed (``messaging.planning``), with a link to a booking
  already set to that time (``/w/<offer id>/<token>``). Offers are not confirmations: the
  worker holds them for quiet hours, and the time to answer starts when the message may go
  out (``sends_at``) and lasts ``ClinicSettings.waitlist_offer_minutes`` (2 hours by default);
- an offer **unanswered** by then passes to the next person (:func:`expire_offers`, a worker job
  run once across workers; a conditional update per offer and a unique index allowing one live
  offer per opening mean two workers can never offer twice);
- a patient who agreed to neither texts nor e-mail is **skipped** (the desk sees it, and may
  phone); staff may **pass it on** at once (the patient said no on the phone) or **close** it;
- the first to book wins (offering never holds the time): when the offered patient, or any
  patient waiting for it, books that time, their entry becomes ``booked`` and the opening too
  (:func:`time_taken`, called by every booking); anyone else's booking over it closes it as
  ``taken``. The time stops being offered once it is within the minimum notice (``lapsed``).

Staff may also send a general "times are open" offer or record a phoned offer (:func:`offer`,
:func:`mark_offered`).
"""

from __future__ import annotations

import functools
import hmac
from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from booking_service import audit, errors
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.clinic.queries import get_clinic
from booking_service.db import is_sqlite, utcnow, write_transaction
from booking_service.errors import Conflict, InvalidTransition, NotFound
from booking_service.messaging import planning, rules
from booking_service.scheduling import availability, slots, tokens
from booking_service.scheduling.models import Appointment
from booking_service.waitlist.models import WaitlistEntry, WaitlistOffer, WaitlistOpening

# Offers the expiry job passes on per run (the rest wait for the next run, a minute later).
BATCH = 100
TOKEN_PURPOSE = "waitlist"


def _get(session: Session, entry_id: int) -> WaitlistEntry:
    write_transaction(session)
    entry = session.scalars(select(WaitlistEntry).where(WaitlistEntry.id == entry_id)).first()
    if entry is None:
        raise NotFound(errors.WAITLIST_ENTRY_NOT_FOUND)
    return entry


def booking_link(entry: WaitlistEntry) -> str:
    """The booking page, set to the entry's service, location and (if any) practitioner."""
    query = {"service_id": entry.service_id, "location_id": entry.location_id}
    if entry.practitioner_id is not None:
        query["practitioner_id"] = entry.practitioner_id
    return "/?" + urlencode(query)


def offer_token(secret_key: str, offer: WaitlistOffer) -> str:
    return tokens.link_token(secret_key, offer.token_nonce, purpose=TOKEN_PURPOSE)


def find_offer(session: Session, offer_id: int, token: str, *, secret_key: str) -> WaitlistOffer | None:
    """The offer a patient's link names, or None when the id is unknown or the token is not its
    own (not told apart)."""
    offer = session.get(WaitlistOffer, offer_id)
    if offer is None or not isinstance(token, str):
        return None
    return offer if hmac.compare_digest(offer_token(secret_key, offer), token) else None


# --------------------------------------------------------------------------- a general offer


def _offer(session: Session, entry: WaitlistEntry, *, start: datetime | None, now: datetime) -> int:
    location = session.get(Location, entry.location_id)
    planned = planning.waitlist_offer(
        session,
        entry.patient,
        entry_id=entry.id,
        start=start,
        timezone=location.timezone,
        location_name=location.name,
        link=booking_link(entry),
        now=now,
    )
    entry.status = "offered"
    entry.offered_at = now
    session.flush()
    return planned


def offer(
    session: Session, entry_id: int, *, now: datetime, start: datetime | None = None
) -> tuple[WaitlistEntry, int]:
    """Offer a time (``start``, or "a time has opened up" when None) to this entry's patient.

    Returns (entry, number of messages planned): 0 means the patient agreed to no channel, and
    staff should phone. Raises NotFound, or InvalidTransition when the entry was booked or removed.
    """
    entry = _get(session, entry_id)
    if entry.status not in ("waiting", "offered"):
        raise InvalidTransition(errors.WAITLIST_ENTRY_CLOSED, params={"status": entry.status})
    return entry, _offer(session, entry, start=start, now=now)


def mark_offered(session: Session, entry_id: int, *, now: datetime) -> WaitlistEntry:
    """Record that a time was offered by phone (no message sent). Raises NotFound, or
    InvalidTransition when the entry is no longer waiting."""
    entry = _get(session, entry_id)
    if entry.status != "waiting":
        raise InvalidTransition(errors.WAITLIST_ENTRY_CLOSED, params={"status": entry.status})
    entry.status = "offered"
    entry.offered_at = now
    session.flush()
    return entry


def remove_entry(session: Session, entry_id: int, *, now: datetime | None = None) -> WaitlistEntry:
    """Take the entry off the list (kept, with status ``removed``); a freed time offered to it
    passes to the next person. Raises NotFound, or InvalidTransition when it was already booked
    or removed."""
    entry = _get(session, entry_id)
    if entry.status not in ("waiting", "offered"):
        raise InvalidTransition(errors.WAITLIST_ENTRY_CLOSED, params={"status": entry.status})
    entry.status = "removed"
    session.flush()
    live = session.scalars(
        select(WaitlistOffer).where(WaitlistOffer.entry_id == entry.id, WaitlistOffer.status == "offered")
    ).all()
    if live:
        now = now or utcnow()
        clinic = get_clinic(session)
        for gone in live:
            if _end_offer(session, gone, "withdrawn", now):
                _offer_next(session, gone.opening, clinic=clinic, now=now)
    return entry


# --------------------------------------------------------------------------- freed times


def _catalogue(session: Session, opening: WaitlistOpening) -> tuple[Service, Location, Practitioner]:
    return (
        session.get(Service, opening.service_id),
        session.get(Location, opening.location_id),
        session.get(Practitioner, opening.practitioner_id),
    )


def _bookable_now(session: Session, opening: WaitlistOpening, *, clinic: ClinicSettings, now: datetime) -> bool:
    """Whether a patient could book the opening's time online now: still free, on the grid,
    outside the minimum notice and inside the horizon, with everything still offered."""
    service, location, practitioner = _catalogue(session, opening)
    if not (service.active and service.online_bookable and location.active and practitioner.active):
        return False
    day = slots.local_date(opening.start_at, location)
    calendars = slots.load_calendars(
        session, location=location, practitioners=[practitioner], first_day=day, last_day=day
    )
    options = slots.engine_options(clinic, service, now)
    return bool(calendars) and availability.is_free(calendars[0], opening.start_at, **options)


def _waiting_for(session: Session, opening: WaitlistOpening):
    """Entries waiting for the opening's time, longest waiting first, not yet offered it, never
    the freed visit's own patient."""
    location = session.get(Location, opening.location_id)
    day = opening.start_at.astimezone(ZoneInfo(location.timezone)).date()
    query = select(WaitlistEntry).where(
        WaitlistEntry.status == "waiting",
        WaitlistEntry.service_id == opening.service_id,
        WaitlistEntry.location_id == opening.location_id,
        or_(WaitlistEntry.practitioner_id.is_(None), WaitlistEntry.practitioner_id == opening.practitioner_id),
        WaitlistEntry.earliest_date <= day,
        WaitlistEntry.latest_date >= day,
        WaitlistEntry.id.not_in(select(WaitlistOffer.entry_id).where(WaitlistOffer.opening_id == opening.id)),
    )
    if opening.appointment_id is not None:
        freed_by = select(Appointment.patient_id).where(Appointment.id == opening.appointment_id).scalar_subquery()
        query = query.where(WaitlistEntry.patient_id != freed_by)
    return query.order_by(WaitlistEntry.created_at, WaitlistEntry.id)


def proposals(session: Session, opening: WaitlistOpening, *, limit: int = 5) -> list[WaitlistEntry]:
    """Who is next in line for an open opening (shown to the desk)."""
    return list(session.scalars(_waiting_for(session, opening).limit(limit)))


def time_freed(
    session: Session,
    appointment: Appointment,
    *,
    start: datetime,
    end: datetime,
    reason: str,
    clinic: ClinicSettings,
    now: datetime,
    practitioner_id: int | None = None,
    location_id: int | None = None,
) -> WaitlistOpening | None:
    """``appointment`` left the time ``start``-``end`` (``reason``: ``cancelled`` or
    ``rescheduled``): when that time can now be booked online and somebody waits for it, record
    the opening and offer it to the first in line. Returns the opening, or None.

    ``practitioner_id`` and ``location_id``: whose time and where it was, when a move handed the
    appointment to a colleague or another location (default: the appointment's own)."""
    opening = WaitlistOpening(
        appointment_id=appointment.id,
        service_id=appointment.service_id,
        location_id=location_id or appointment.location_id,
        practitioner_id=practitioner_id or appointment.practitioner_id,
        start_at=start,
        end_at=end,
        reason=reason,
        status="open",
        created_at=now,
    )
    if not _bookable_now(session, opening, clinic=clinic, now=now):
        return None
    if session.scalars(_waiting_for(session, opening).limit(1)).first() is None:
        return None
    session.add(opening)
    session.flush()
    _offer_next(session, opening, clinic=clinic, now=now)
    return opening


def _offers_of(session: Session, opening: WaitlistOpening, *, live: bool = False) -> list[WaitlistOffer]:
    query = select(WaitlistOffer).where(WaitlistOffer.opening_id == opening.id)
    if live:
        query = query.where(WaitlistOffer.status == "offered")
    return list(session.scalars(query.order_by(WaitlistOffer.id)))


def _close(session: Session, opening: WaitlistOpening, status: str, *, now: datetime) -> None:
    opening.status = status
    opening.closed_at = now
    for live in _offers_of(session, opening, live=True):
        _end_offer(session, live, "withdrawn", now)
    session.flush()


def _release(session: Session, entry: WaitlistEntry) -> None:
    """An entry whose offer ended unanswered waits again (for later openings)."""
    if entry.status == "offered":
        entry.status = "waiting"


def _end_offer(session: Session, offer: WaitlistOffer, status: str, now: datetime) -> bool:
    """End a live offer with ``status``: a conditional update, so of two workers ending the same
    offer exactly one goes on to pass it on. Returns whether this call ended it."""
    result = session.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.id == offer.id, WaitlistOffer.status == "offered")
        .values(status=status, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire(offer, ["status", "ended_at"])
    if result.rowcount != 1:
        return False
    if status != "booked":
        _release(session, offer.entry)
    return True


def _offer_next(
    session: Session, opening: WaitlistOpening, *, clinic: ClinicSettings, now: datetime, user_id: int | None = None
) -> WaitlistOffer | None:
    """Offer the opening to the next in line; close it when its time cannot be booked any more
    or nobody is left. Returns the live offer made, or None (also when another worker made it)."""
    if opening.status != "open":
        return None
    if not _bookable_now(session, opening, clinic=clinic, now=now):
        late = opening.start_at <= now + timedelta(minutes=clinic.min_notice_minutes)
        _close(session, opening, "lapsed" if late else "taken", now=now)
        return None
    location = session.get(Location, opening.location_id)
    zone = ZoneInfo(location.timezone)
    sends_at = rules.next_allowed(now, zone, clinic.quiet_hours_start, clinic.quiet_hours_end)
    while True:
        entry = session.scalars(_waiting_for(session, opening).limit(1)).first()
        if entry is None:
            _close(session, opening, "lapsed", now=now)
            return None
        reachable = planning.sms_allowed(session, entry.patient) or planning.email_allowed(
            entry.patient, transactional=False
        )
        made = WaitlistOffer(
            opening_id=opening.id,
            entry_id=entry.id,
            status="offered" if reachable else "skipped",
            offered_at=now,
            sends_at=sends_at,
            expires_at=sends_at + timedelta(minutes=clinic.waitlist_offer_minutes),
            ended_at=None if reachable else now,
            token_nonce=tokens.new_nonce(),
            offered_by_user_id=user_id,
        )
        try:
            with session.begin_nested():
                session.add(made)
                session.flush()
        except IntegrityError:
            return None  # another worker offered this opening meanwhile: theirs stands
        if not reachable:
            continue
        made.messages = planning.waitlist_offer(
            session,
            entry.patient,
            entry_id=entry.id,
            start=opening.start_at,
            timezone=location.timezone,
            location_name=location.name,
            link=booking_link(entry),
            now=now,
            offer_id=made.id,
            offer_nonce=made.token_nonce,
        )
        entry.status = "offered"
        entry.offered_at = now
        session.flush()
        audit.record(
            session,
            "waitlist.offer",
            "waitlist_entry",
            entry.id,
            {"opening_id": opening.id, "offer_id": made.id, "by_staff": user_id is not None},
            patient_id=entry.patient_id,
            now=now,
        )
        return made


def _opening_for_update(session: Session, opening_id: int) -> WaitlistOpening:
    write_transaction(session)
    opening = session.get(WaitlistOpening, opening_id)
    if opening is None:
        raise NotFound(errors.NOT_FOUND)
    if opening.status != "open":
        raise Conflict(errors.CONFLICT)
    return opening


def pass_on(session: Session, opening_id: int, *, now: datetime, user_id: int | None) -> WaitlistOffer | None:
    """Staff move on at once (the patient said no on the phone): the live offer ends as
    ``passed`` and the next in line is offered. Returns the new offer, or None when nobody is
    left. Raises NotFound, or Conflict when the opening is no longer open."""
    opening = _opening_for_update(session, opening_id)
    for live in _offers_of(session, opening, live=True):
        _end_offer(session, live, "passed", now)
    return _offer_next(session, opening, clinic=get_clinic(session), now=now, user_id=user_id)


def close_opening(session: Session, opening_id: int, *, now: datetime) -> WaitlistOpening:
    """Staff stop offering a freed time (its live offer is withdrawn). Raises NotFound, or
    Conflict when it is no longer open."""
    opening = _opening_for_update(session, opening_id)
    _close(session, opening, "closed", now=now)
    audit.record(session, "waitlist.close", "waitlist_opening", opening.id, None, now=now)
    return opening


def expire_offers(session: Session, *, now: datetime, limit: int = BATCH) -> int:
    """The worker's job: every live offer whose time to answer is over passes to the next
    person, and openings whose time is now inside the minimum notice stop (``lapsed``).
    Returns how many offers it ended. Safe to run by several workers at once: see the module's
    docstring."""
    write_transaction(session)
    try:
        clinic = get_clinic(session)
    except NotFound:
        return 0
    due = (
        select(WaitlistOffer)
        .where(WaitlistOffer.status == "offered", WaitlistOffer.expires_at <= now)
        .order_by(WaitlistOffer.expires_at, WaitlistOffer.id)
        .limit(limit)
    )
    if not is_sqlite(session):
        due = due.with_for_update(skip_locked=True)
    ended = 0
    for offer in session.scalars(due).all():
        if not _end_offer(session, offer, "expired", now):
            continue
        ended += 1
        audit.record(
            session,
            "waitlist.offer_expired",
            "waitlist_entry",
            offer.entry_id,
            {"opening_id": offer.opening_id, "offer_id": offer.id},
            patient_id=offer.entry.patient_id,
            now=now,
        )
        _offer_next(session, offer.opening, clinic=clinic, now=now)
    too_late = now + timedelta(minutes=clinic.min_notice_minutes)
    late = select(WaitlistOpening).where(WaitlistOpening.status == "open", WaitlistOpening.start_at <= too_late)
    if not is_sqlite(session):
        late = late.with_for_update(skip_locked=True)
    for opening in session.scalars(late).all():
        _close(session, opening, "lapsed", now=now)
    return ended


def time_taken(session: Session, appointment: Appointment, *, now: datetime) -> None:
    """``appointment`` was booked (or moved) over open openings of its practitioner: an opening
    taken at its very time by a patient waiting for it (the offered one, or any of theirs that
    matches) is ``booked`` with their entry; otherwise it is ``taken``. Live offers end."""
    overlapping = session.scalars(
        _open_overlapping(),
        {"practitioner_id": appointment.practitioner_id, "start": appointment.start_at, "end": appointment.busy_until},
    ).all()
    for opening in overlapping:
        entry = _entry_of(session, opening, appointment) if appointment.start_at == opening.start_at else None
        if entry is None:
            opening.booked_appointment_id = appointment.id
            _close(session, opening, "taken", now=now)
            continue
        theirs = next((o for o in _offers_of(session, opening) if o.entry_id == entry.id), None)
        if theirs is not None:
            if theirs.status == "offered":
                _end_offer(session, theirs, "booked", now)
            else:  # answered after it expired or passed on: the first to book still wins
                theirs.status, theirs.ended_at = "booked", now
            theirs.appointment_id = appointment.id
        entry.status = "booked"
        opening.booked_appointment_id = appointment.id
        _close(session, opening, "booked", now=now)
        audit.record(
            session,
            "waitlist.booked",
            "waitlist_entry",
            entry.id,
            {"opening_id": opening.id, "appointment_id": appointment.id},
            patient_id=entry.patient_id,
            now=now,
        )


@functools.cache
def _open_overlapping() -> Select:
    """Open openings of a practitioner overlapping [start, end): every booking asks (built once)."""
    return select(WaitlistOpening).where(
        WaitlistOpening.status == "open",
        WaitlistOpening.practitioner_id == bindparam("practitioner_id"),
        WaitlistOpening.start_at < bindparam("end"),
        WaitlistOpening.end_at > bindparam("start"),
    )


def _entry_of(session: Session, opening: WaitlistOpening, appointment: Appointment) -> WaitlistEntry | None:
    """The booking patient's entry for this opening: the one offered it, else one of theirs
    still open that the opening matches."""
    offered = [o.entry for o in _offers_of(session, opening) if o.entry.patient_id == appointment.patient_id]
    open_offered = [e for e in offered if e.status in ("waiting", "offered")]
    if open_offered:
        return open_offered[0]
    location = session.get(Location, opening.location_id)
    day = opening.start_at.astimezone(ZoneInfo(location.timezone)).date()
    return session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.patient_id == appointment.patient_id,
            WaitlistEntry.status.in_(("waiting", "offered")),
            WaitlistEntry.service_id == opening.service_id,
            WaitlistEntry.location_id == opening.location_id,
            or_(WaitlistEntry.practitioner_id.is_(None), WaitlistEntry.practitioner_id == opening.practitioner_id),
            WaitlistEntry.earliest_date <= day,
            WaitlistEntry.latest_date >= day,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(1)
    ).first()
