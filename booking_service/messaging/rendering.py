"""Rendering an outbox row into what a transport sends (:class:`Sms` or :class:`Email`).

The worker renders at send time, without a Flask app, so this module keeps its own plain Jinja2
environment over the project's ``templates/`` (built once per process, HTML autoescaped):

* ``templates/sms/<template>.<lang>.txt``: one SMS. Whitespace is collapsed, so templates may
  wrap lines. Every SMS must fit one GSM-7 segment (160 septets): see :func:`fit_sms`.
* ``templates/email/<template>.<lang>.txt`` and ``.html``: the two bodies of one e-mail. The
  text template sets ``subject`` (``{% set subject = ... %}``), read back as a module attribute.

``<template>`` is the row's ``template`` column, or its ``kind`` when that is empty; ``<lang>``
is ``en`` or ``fr``. What goes into a message is chosen here, in :func:`_context`: the intake
reason, red-flag answers, staff notes and the patient's surname are never given to a template,
so no template can leak them.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import object_session

from booking_service.config import PROJECT_ROOT
from booking_service.exercises.models import Program
from booking_service.integrations.contract import Email, Sms
from booking_service.integrations.smtp.message_id import message_id_for
from booking_service.integrations.twilio.callbacks import status_callback_url
from booking_service.messaging import ics
from booking_service.scheduling import tokens
from booking_service.scheduling.models import Appointment

logger = logging.getLogger("booking_service.messaging")

TEMPLATES_DIR = PROJECT_ROOT / "templates"
LANGUAGES = ("en", "fr")
SMS_MAX_SEPTETS = 160
# Shorter than this, a clinic name cut to fit an SMS no longer names the clinic.
MIN_CLINIC_NAME = 10
# Kinds whose e-mail carries the appointment as a calendar invitation.
ICS_KINDS = ("confirmation", "reminder", "reschedule", "cancellation")
# Kinds that are about one appointment and cannot be rendered without it.
APPOINTMENT_KINDS = ("confirmation", "reminder", "reschedule", "cancellation", "follow_up")
# A treatment plan's one confirmation and one cancellation notice: they list every visit (from
# the row's payload), carry no calendar file (one invitation holds one event; each visit's
# reminder e-mail carries its own), and may take up to this many SMS segments when the dates do
# not fit one.
PLAN_TEMPLATES = ("plan_confirmation", "plan_cancellation")
PLAN_SMS_SEGMENTS = 3


class RenderError(ValueError):
    """The row cannot be rendered (no such template, a missing appointment): a permanent failure."""


# --------------------------------------------------------------------------- GSM-7

# GSM 03.38 default alphabet (basic table). Note what is *not* here: ê â î ô û ç ë ï (lower
# case), È À Ê and every other capital with an accent except É Ç Ä Ö Ñ Ü Å Æ; typographic
# quotes, dashes and non-breaking spaces. One such character turns the whole SMS into UCS-2:
# 70 characters a segment instead of 160, and a one-segment text becomes three.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs two septets (an escape, then the character).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# Look-alikes for characters outside GSM-7 that patients' names and clinic names commonly hold.
_GSM7_REPLACEMENTS = {
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space (CLDR puts it before AM/PM and in French times)
    "\u2009": " ",
    "\u2018": "'",
    "\u2019": "'",
    "\u02bc": "'",
    "\u201c": '"',
    "\u201d": '"',
    "«": '"',
    "»": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2011": "-",
    "\u2026": "...",
    "œ": "oe",
    "Œ": "OE",
    "`": "'",
}


def gsm7_septets(text: str) -> int | None:
    """How many GSM-7 septets ``text`` takes, or None when it needs UCS-2 (a non-GSM character)."""
    total = 0
    for ch in text:
        if ch in GSM7_BASIC:
            total += 1
        elif ch in GSM7_EXTENSION:
            total += 2
        else:
            return None
    return total


def sms_segments(text: str) -> int:
    """How many segments a carrier bills for ``text`` (GSM-7: 160, or 153 each when split;
    UCS-2: 70, or 67 each when split)."""
    septets = gsm7_septets(text)
    if septets is not None:
        return 1 if septets <= SMS_MAX_SEPTETS else -(-septets // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def to_gsm7(text: str, *, strict: bool = False) -> str | None:
    """``text`` with every non-GSM-7 character replaced by a look-alike (ç -> c, ê -> e, ’ -> ').

    A character with no look-alike is dropped, or with ``strict`` the answer is None (used for
    names: better no name than a mangled one).
    """
    out: list[str] = []
    for ch in text:
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
            continue
        if ch in _GSM7_REPLACEMENTS:
            out.append(_GSM7_REPLACEMENTS[ch])
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base and all(c in GSM7_BASIC for c in base):
            out.append(base)
        elif strict:
            return None
    return "".join(out)


# --------------------------------------------------------------------------- dates and times

_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_FR_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_FR_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
# Abbreviations for SMS. "aout" (1990 spelling) because û is not GSM-7.
_FR_DAYS_SHORT = ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim.")
_FR_MONTHS_SHORT = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "aout", "sept.", "oct.", "nov.", "déc.")


def _time(local: datetime, lang: str) -> str:
    if lang == "fr":
        return f"{local.hour} h" + (f" {local.minute:02d}" if local.minute else "")
    hour = local.hour % 12 or 12
    return f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def format_when(instant: datetime, tz: ZoneInfo, lang: str, *, short: bool) -> str:
    """The local date and time of ``instant`` for a patient.

    ``short`` (SMS, GSM-7 only, no year): ``Wed Sep 30, 10:45 AM`` / ``mer. 30 sept., 10 h 45``.
    Long (e-mail): ``Wednesday, September 30, 2026 at 10:45 AM`` /
    ``mercredi 30 septembre 2026 à 10 h 45``.
    """
    local = instant.astimezone(tz)
    wd, month, day = local.weekday(), local.month - 1, local.day
    if lang == "fr":
        day_text = "1er" if day == 1 else str(day)
        if short:
            return f"{_FR_DAYS_SHORT[wd]} {day_text} {_FR_MONTHS_SHORT[month]}, {_time(local, lang)}"
        return f"{_FR_DAYS[wd]} {day_text} {_FR_MONTHS[month]} {local.year} à {_time(local, lang)}"
    if short:
        return f"{_EN_DAYS[wd][:3]} {_EN_MONTHS[month][:3]} {day}, {_time(local, lang)}"
    return f"{_EN_DAYS[wd]}, {_EN_MONTHS[month]} {day}, {local.year} at {_time(local, lang)}"


def compact_dates(instants: list[datetime], tz: ZoneInfo, lang: str) -> str:
    """A series of local dates for one text, short: each month named once and the time said
    once when every visit has it (``Nov 24, Dec 1, 8, 15 at 10:00 AM`` / ``24 nov., 1er, 8,
    15 déc. à 10 h``), else each date with its time (``Nov 24, 10:00 AM; Dec 1, 9:30 AM``)."""
    local = sorted(instant.astimezone(tz) for instant in instants)
    if not local:
        return ""

    def day_text(value: datetime) -> str:
        return "1er" if lang == "fr" and value.day == 1 else str(value.day)

    def month_text(value: datetime) -> str:
        return _FR_MONTHS_SHORT[value.month - 1] if lang == "fr" else _EN_MONTHS[value.month - 1][:3]

    if len({(value.hour, value.minute) for value in local}) > 1:
        if lang == "fr":
            return "; ".join(f"{day_text(v)} {month_text(v)}, {_time(v, lang)}" for v in local)
        return "; ".join(f"{month_text(v)} {day_text(v)}, {_time(v, lang)}" for v in local)
    groups = [list(group) for _, group in itertools.groupby(local, key=lambda v: (v.year, v.month))]
    if lang == "fr":
        text = ", ".join(", ".join(day_text(v) for v in group) + " " + month_text(group[0]) for group in groups)
        return f"{text} à {_time(local[0], lang)}"
    text = ", ".join(month_text(group[0]) + " " + ", ".join(day_text(v) for v in group) for group in groups)
    return f"{text} at {_time(local[0], lang)}"


def format_phone(phone: str | None, country: str = "CA") -> str:
    """A phone number as people in ``country`` write it: ``(416) 555-0100``."""
    if not phone:
        return ""
    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return phone
    formats = phonenumbers.PhoneNumberFormat
    style = formats.NATIONAL if phonenumbers.region_code_for_number(number) == country else formats.INTERNATIONAL
    return phonenumbers.format_number(number, style)


# --------------------------------------------------------------------------- the environment


@functools.cache
def environment() -> jinja2.Environment:
    """The message templates' Jinja environment, built once per process.

    Not Flask's: the worker renders without an app. Undefined variables raise, so a template
    typo fails its snapshot test instead of sending a message with a hole in it.
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def _template(path: str) -> jinja2.Template:
    try:
        return environment().get_template(path)
    except jinja2.TemplateNotFound:
        raise RenderError(f"no message template {path}") from None


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def fit_sms(template: str, context: Mapping[str, Any], *, segments: int = 1) -> str:
    """Render SMS ``template`` so that it fits one GSM-7 segment.

    Tries the full text first, then without the first name, without the location name, without
    both; then shortens the clinic name to what is left. If even that cannot fit (an absurdly
    long ``PUBLIC_BASE_URL``) the text is sent as it is, in several segments, with a warning:
    a reminder in two segments beats no reminder. With ``segments`` above one (a treatment
    plan's list of dates), the full text may then take up to that many segments (153 septets
    each) before the warning.
    """
    tmpl = _template(template)
    base = dict(context)
    variants = [
        base,
        {**base, "first_name": None},
        {**base, "location_name": None},
        {**base, "first_name": None, "location_name": None},
    ]
    body = ""
    for variant in variants:
        body = _collapse(tmpl.render(variant))
        septets = gsm7_septets(body)
        if septets is not None and septets <= SMS_MAX_SEPTETS:
            return body
    last = variants[-1]
    name = str(last.get("clinic_name") or "")
    marker = "\x00"  # one character standing for the clinic name, to measure the rest
    rest = gsm7_septets(_collapse(tmpl.render({**last, "clinic_name": marker})).replace(marker, ""))
    budget = SMS_MAX_SEPTETS - rest if rest is not None else 0
    if budget >= MIN_CLINIC_NAME and len(name) > budget:
        short = _shorten(name, budget)
        body = _collapse(tmpl.render({**last, "clinic_name": short}))
    septets = gsm7_septets(body)
    if segments > 1 and (septets is None or septets > SMS_MAX_SEPTETS):
        full = _collapse(tmpl.render(base))
        full_septets = gsm7_septets(full)
        if full_septets is not None and full_septets <= 153 * segments:
            return full
    if septets is None or septets > SMS_MAX_SEPTETS:
        logger.warning("SMS %s does not fit one segment (%s septets): %r", template, septets, body)
    return body


def _shorten(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` characters: at a word boundary when that keeps at least
    :data:`MIN_CLINIC_NAME` characters ("Lakeshore Sports"), else mid-word with a dot."""
    words = name[: limit + 1].rsplit(" ", 1)[0].rstrip(" -,&'.:")
    if len(name) > limit and MIN_CLINIC_NAME <= len(words) <= limit:
        return words
    return name[: limit - 1].rstrip(" -,&'.:") + "."


# --------------------------------------------------------------------------- context


def _get(settings: Any, name: str, default: Any = None) -> Any:
    value = settings.get(name) if isinstance(settings, Mapping) else getattr(settings, name, None)
    return default if value in (None, "") else value


def language_of(message: Any, clinic: Any) -> str:
    """The language of a row: an explicit ``payload["language"]`` (a reply to a French keyword),
    else the patient's, else the appointment's, else the clinic's default."""
    payload = message.payload or {}
    for candidate in (
        payload.get("language"),
        message.patient.language if message.patient is not None else None,
        message.appointment.language if message.appointment is not None else None,
        getattr(clinic, "default_language", None),
    ):
        if candidate in LANGUAGES:
            return candidate
    return "en"


def _host(base_url: str) -> str:
    return urlsplit(base_url).hostname or "localhost"


def _absolute(base_url: str, link: str | None) -> str | None:
    if not link:
        return None
    return link if re.match(r"^https?://", link) else base_url + "/" + link.lstrip("/")


def _context(message: Any, *, settings: Any, clinic: Any, now: datetime, lang: str, sms: bool) -> dict[str, Any]:
    """Everything a template may use. Deliberately small: see the module docstring."""
    base_url = str(_get(settings, "PUBLIC_BASE_URL", "http://127.0.0.1:5000")).rstrip("/")
    payload = message.payload or {}
    appointment = message.appointment
    patient = message.patient or (appointment.patient if appointment is not None else None)
    country = getattr(clinic, "country", "CA") or "CA"

    def text(value: str | None, *, strict: bool = False) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return (to_gsm7(value, strict=strict) or None) if sms else (value or None)

    ctx: dict[str, Any] = {
        "lang": lang,
        "clinic_name": text(clinic.name) or "",
        "clinic_phone": format_phone(clinic.phone, country),
        "clinic_email": getattr(clinic, "email", None),
        "brand_color": getattr(clinic, "brand_color", None) or "#0f6e6e",
        "first_name": text(patient.first_name, strict=True) if patient is not None else None,
        "base_url": base_url,
        "book_url": base_url + "/",
        "link": _absolute(base_url, payload.get("link")),
        "appointment": None,
        "when": None,
        "old_when": None,
        "location_name": None,
        "location_address": None,
        "contact_phone": format_phone(clinic.phone, country),
        "practitioner_name": None,
        "service_name": None,
        "is_initial": False,
        # Set by an admin: what to bring or wear, how to get there (e-mails only; no clinical detail).
        "preparation_notes": None,
        "directions": None,
        "manage_url": None,
        "cancellation_window_hours": getattr(clinic, "cancellation_window_hours", None),
        "alert_kind": payload.get("alert_kind"),  # red_flag, pain, urgent_booking: the clinic's alert e-mail
    }
    if appointment is None and payload.get("start"):
        # A message about a time that is not (yet) an appointment: a waitlist offer.
        tz = ZoneInfo(payload.get("timezone") or getattr(clinic, "timezone", None) or "America/Toronto")
        ctx["when"] = format_when(datetime.fromisoformat(payload["start"]), tz, lang, short=sms)
        ctx["location_name"] = text(payload.get("location_name"), strict=True)
        secret = _get(settings, "SECRET_KEY")
        if payload.get("offer_id") and payload.get("offer_nonce") and secret:
            token = tokens.link_token(secret, payload["offer_nonce"], purpose="waitlist")
            ctx["link"] = base_url + tokens.waitlist_offer_path(payload["offer_id"], token)
    if appointment is not None:
        location = appointment.location
        tz = ZoneInfo(location.timezone)
        ctx.update(
            appointment=True,
            when=format_when(appointment.start_at, tz, lang, short=sms),
            location_name=text(location.name, strict=True),
            location_address=location.address,
            contact_phone=format_phone(location.phone or clinic.phone, country),
            practitioner_name=appointment.practitioner.display_name,
            service_name=appointment.service.localized_name(lang),
            is_initial=appointment.service.kind == "initial",
        )
        if not sms:
            ctx.update(
                preparation_notes=appointment.service.localized_preparation_notes(lang).strip() or None,
                directions=location.localized_directions(lang).strip() or None,
            )
        if payload.get("old_start"):
            old = datetime.fromisoformat(payload["old_start"])
            ctx["old_when"] = format_when(old, tz, lang, short=sms)
        secret = _get(settings, "SECRET_KEY")
        if secret and appointment.status != "cancelled":
            token = tokens.manage_token(secret, appointment.manage_nonce)
            ctx["manage_url"] = base_url + tokens.manage_path(token)
    return ctx


# --------------------------------------------------------------------------- render


def render(session: Any, message: Any, *, settings: Any, clinic: Any, now: datetime) -> Sms | Email:
    """The :class:`Sms` or :class:`Email` for outbox row ``message``, as it should go out ``now``.

    ``settings``: :class:`booking_service.config.Settings` (or a mapping with the same keys);
    ``PUBLIC_BASE_URL``, ``SECRET_KEY`` and ``EMAIL_FROM`` are used. ``clinic``: the
    ``ClinicSettings`` row. The appointment, patient, location, practitioner and service are
    read through the row's relationships (``session`` is the caller's, for lazy loads and a
    nudge's program; None renders a nudge with its payload's ``link``).
    SMS carry ``status_callback = PUBLIC_BASE_URL + /webhooks/twilio/status``; e-mails have the
    stable Message-ID ``<outbox-{id}@{host}>`` and, for appointment kinds, the ``.ics``
    (UID ``appointment-{id}@{host}``, SEQUENCE = ``ics_sequence``, METHOD:CANCEL for a
    cancellation). Raises :class:`RenderError` for a missing template or appointment: retrying
    cannot help, so the worker should fail the row.
    """
    if message.kind in APPOINTMENT_KINDS and message.appointment is None:
        raise RenderError(f"outbox row {message.id} ({message.kind}) has no appointment")
    if not message.to:
        raise RenderError(f"outbox row {message.id} has no recipient")
    lang = language_of(message, clinic)
    name = message.template or message.kind
    base_url = str(_get(settings, "PUBLIC_BASE_URL", "http://127.0.0.1:5000")).rstrip("/")
    plan = name in PLAN_TEMPLATES
    if message.channel == "sms":
        ctx = _context(message, settings=settings, clinic=clinic, now=now, lang=lang, sms=True)
        ctx["link"] = _program_link(session, message, settings=settings, base_url=base_url) or ctx["link"]
        if plan:
            ctx.update(_plan_context(session, message, ctx, settings=settings, base_url=base_url, lang=lang, sms=True))
        body = fit_sms(f"sms/{name}.{lang}.txt", ctx, segments=PLAN_SMS_SEGMENTS if plan else 1)
        return Sms(to=message.to, body=body, status_callback=status_callback_url(base_url))
    if message.channel != "email":
        raise RenderError(f"unknown channel {message.channel!r}")

    ctx = _context(message, settings=settings, clinic=clinic, now=now, lang=lang, sms=False)
    ctx["link"] = _program_link(session, message, settings=settings, base_url=base_url) or ctx["link"]
    if plan:
        ctx.update(_plan_context(session, message, ctx, settings=settings, base_url=base_url, lang=lang, sms=False))
    module = _template(f"email/{name}.{lang}.txt").make_module(ctx)
    subject = _collapse(str(getattr(module, "subject", "") or ""))
    if not subject:
        raise RenderError(f"email/{name}.{lang}.txt does not set a subject")
    text_body = re.sub(r"[ \t]+\n", "\n", str(module))
    text_body = re.sub(r"\n{3,}", "\n\n", text_body).strip() + "\n"
    html_body = _template(f"email/{name}.{lang}.html").render({**ctx, "subject": subject})
    host = _host(base_url)
    ics_bytes = None
    method = "CANCEL" if message.kind == "cancellation" else "REQUEST"
    appointment = message.appointment
    if appointment is not None and message.kind in ICS_KINDS and not plan:
        ics_bytes = ics.build_ics(
            uid=f"appointment-{appointment.id}@{host}",
            sequence=appointment.ics_sequence or 0,
            method=method,
            start=appointment.start_at,
            end=appointment.end_at,
            summary=_ics_summary(ctx, lang),
            location=f"{ctx['clinic_name']}, {appointment.location.name}, {appointment.location.address}",
            description=_ics_description(ctx, lang),
            organizer_name=ctx["clinic_name"],
            organizer_email=_get(settings, "EMAIL_FROM"),
            attendee_email=message.to,
            stamp=now,
        )
    return Email(
        to=message.to,
        subject=subject,
        text=text_body,
        html=html_body,
        message_id=message_id_for(message.id, base_url),
        ics=ics_bytes,
        ics_method=method,
    )


def _plan_context(
    session: Any, message: Any, ctx: Mapping[str, Any], *, settings: Any, base_url: str, lang: str, sms: bool
) -> dict[str, Any]:
    """What a treatment plan's message lists: its visits (``payload["visits"]``: id, start,
    practitioner's name), their dates in the location's zone, and for a confirmation by e-mail
    each visit's own manage link (read through ``session``; without one, the first visit's).
    The practitioner is named once when every visit has the same one, else on each visit."""
    appointment = message.appointment
    if appointment is None:
        raise RenderError(f"outbox row {message.id} ({message.template}) has no appointment")
    tz = ZoneInfo(appointment.location.timezone)
    visits = (message.payload or {}).get("visits") or []
    starts = [datetime.fromisoformat(visit["start"]) for visit in visits]
    names = {visit.get("with") for visit in visits}
    links: dict[Any, str | None] = {}
    if message.template == "plan_confirmation" and not sms:
        links = _plan_links(session or object_session(message), visits, settings=settings, base_url=base_url)
        if not links and ctx.get("manage_url"):
            links = {appointment.id: ctx["manage_url"]}
    return {
        "visit_count": len(visits),
        "dates": compact_dates(starts, tz, lang),
        "same_practitioner": next(iter(names)) if len(names) == 1 else None,
        "visits": [
            {
                "when": format_when(start, tz, lang, short=sms),
                "with": None if len(names) == 1 else visit.get("with"),
                "manage_url": links.get(visit.get("id")),
            }
            for visit, start in zip(visits, starts, strict=True)
        ],
    }


def _plan_links(session: Any, visits: list[dict], *, settings: Any, base_url: str) -> dict[int, str]:
    """The manage link of each visit still booked (rebuilt from its nonce, as for reminders)."""
    secret = _get(settings, "SECRET_KEY")
    ids = [visit.get("id") for visit in visits if isinstance(visit.get("id"), int)]
    if session is None or not secret or not ids:
        return {}
    rows = session.execute(
        select(Appointment.id, Appointment.manage_nonce).where(
            Appointment.id.in_(ids), Appointment.status != "cancelled"
        )
    )
    return {row.id: base_url + tokens.manage_path(tokens.manage_token(secret, row.manage_nonce)) for row in rows}


def _program_link(session: Any, message: Any, *, settings: Any, base_url: str) -> str | None:
    """A nudge's link to the patient's program page, rebuilt from the program's nonce (pending
    rows carry no token). None without a session, a program or a secret."""
    program_id = (message.payload or {}).get("program_id")
    secret = _get(settings, "SECRET_KEY")
    if message.kind != "nudge" or session is None or not program_id or not secret:
        return None
    program = session.get(Program, program_id)
    if program is None:
        return None
    return base_url + tokens.program_path(tokens.link_token(secret, program.token_nonce, purpose="program"))


def _ics_summary(ctx: Mapping[str, Any], lang: str) -> str:
    what = ctx["service_name"] or ("Rendez-vous" if lang == "fr" else "Appointment")
    return f"{what} – {ctx['clinic_name']}"


def _ics_description(ctx: Mapping[str, Any], lang: str) -> str:
    lines = []
    if ctx["practitioner_name"]:
        lines.append(("Avec : " if lang == "fr" else "With: ") + ctx["practitioner_name"])
    if ctx["manage_url"]:
        lines.append(("Modifier ou annuler : " if lang == "fr" else "Change or cancel: ") + ctx["manage_url"])
    lines.append(("Téléphone : " if lang == "fr" else "Phone: ") + ctx["contact_phone"])
    return "\n".join(lines)
