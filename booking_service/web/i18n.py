"""Languages of the patient pages: choosing the locale, and formatting dates and times for it.

The page language is, in order: the patient's explicit choice (``?lang=`` on any page, then kept
in the ``lang`` cookie), the language of the booking a manage page is about, the browser's
Accept-Language, and the clinic's default. English and French are offered; dates and times use
the clinic country's variant (``en_CA``, ``fr_CA`` for a Canadian clinic), always in the
location's own time zone, whatever the zone of the patient's device.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from babel import Locale, localedata
from babel.dates import format_date, format_time, get_timezone_location, get_timezone_name
from babel.numbers import format_currency, get_territory_currencies
from flask import Flask, g, request
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from booking_service.config import PROJECT_ROOT

LANGUAGES = ("en", "fr")
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

# Day patterns per language: CLDR's skeletons pick abbreviated forms, and a booking deserves the
# full weekday and month.
_DAY = {"en": "EEEE, MMMM d", "fr": "EEEE d MMMM"}
_DAY_YEAR = {"en": "EEEE, MMMM d, y", "fr": "EEEE d MMMM y"}
_SHORT_DAY = {"en": "EEE, MMM d", "fr": "EEE d MMM"}

# Professions as the demo and most clinics spell them, marked for translation (the pages show
# ``_(practitioner.profession)``; one not listed here shows as entered).
PROFESSIONS = (
    _l("Physiotherapist"),
    _l("Registered Massage Therapist"),
    _l("Massage Therapist"),
    _l("Kinesiologist"),
    _l("Chiropractor"),
)


def init_babel(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(PROJECT_ROOT / "translations"))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    Babel(app, locale_selector=select_locale)


def offered_languages() -> tuple[str, ...]:
    """The languages the clinic offers its patients (its settings), in the order of LANGUAGES;
    all of them before it is set up."""
    from booking_service.web.common import current_clinic

    clinic = current_clinic(required=False)
    chosen = set(clinic.languages or ()) if clinic is not None else set(LANGUAGES)
    return tuple(code for code in LANGUAGES if code in chosen) or LANGUAGES


def explicit_language() -> str | None:
    """The language the visitor chose with the switch, if any (and the clinic offers it)."""
    offered = offered_languages()
    for value in (request.args.get("lang"), request.cookies.get(COOKIE)):
        if value in offered:
            return value
    return None


def _clinic_defaults() -> tuple[str, str]:
    """(default language, country) of the clinic; English and Canada before it is set up."""
    from booking_service.web.common import current_clinic

    clinic = current_clinic(required=False)
    if clinic is None:
        return "en", "CA"
    language = clinic.default_language if clinic.default_language in LANGUAGES else "en"
    return language, clinic.country or "CA"


def select_locale() -> str:
    default_language, country = _clinic_defaults()
    offered = offered_languages()
    subject = g.get("subject_language")
    language = (
        explicit_language()
        or (subject if subject in offered else None)
        or request.accept_languages.best_match(offered)
        or (default_language if default_language in offered else offered[0])
    )
    regional = f"{language}_{country.upper()}"
    return regional if localedata.exists(regional) else language


def language() -> str:
    """The page's language code: ``en`` or ``fr``."""
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else "en"


def _locale() -> Locale:
    return get_locale() or Locale.parse("en")


def local(instant: datetime, tz_name: str) -> datetime:
    return instant.astimezone(ZoneInfo(tz_name))


def format_day(day: date, *, year: bool = False, short: bool = False) -> str:
    """``Tuesday, November 24`` / ``mardi 24 novembre``."""
    patterns = _SHORT_DAY if short else (_DAY_YEAR if year else _DAY)
    return format_date(day, patterns[language()], locale=_locale())


def format_clock(instant: datetime, tz_name: str) -> str:
    """``9:00 a.m.`` / ``09 h 00``: the wall time at the location."""
    wall = instant.astimezone(ZoneInfo(tz_name))
    return _clock(str(_locale()), wall.hour, wall.minute)


def clock_formatter(tz_name: str):
    """``format_clock`` for many instants at one location (the locale and zone looked up once)."""
    tz, locale = ZoneInfo(tz_name), str(_locale())

    def clock(instant: datetime) -> str:
        wall = instant.astimezone(tz)
        return _clock(locale, wall.hour, wall.minute)

    return clock


@functools.lru_cache(maxsize=4096)
def _clock(locale: str, hour: int, minute: int) -> str:
    # Babel takes ~0.1 ms per call and a week of slots repeats the same few dozen wall times.
    return format_time(time(hour, minute), "short", locale=locale)


def format_when(instant: datetime, tz_name: str, *, year: bool = True) -> str:
    """``Tuesday, November 24, 2026 at 9:00 a.m.``, at the location."""
    return _(
        "%(day)s at %(time)s",
        day=format_day(local(instant, tz_name).date(), year=year),
        time=format_clock(instant, tz_name),
    )


def zone_label(tz_name: str, instants: list[datetime] | tuple[datetime, ...] = ()) -> str:
    """``Toronto time (EST)``: the location's city and the zone's abbreviation(s) then.

    Across a DST change both abbreviations are named (``EST/EDT``).
    """
    tz = ZoneInfo(tz_name)
    locale = _locale()
    city = get_timezone_location(tz, locale=locale, return_city=True)
    moments = list(instants) or [datetime.now(tz)]
    abbreviations: list[str] = []
    for moment in moments:
        abbreviation = get_timezone_name(moment.astimezone(tz), "short", locale=locale)
        if abbreviation not in abbreviations:
            abbreviations.append(abbreviation)
    return _("%(city)s time (%(zone)s)", city=city, zone="/".join(abbreviations))


def service_name(service) -> str:
    return service.localized_name(language())


def service_price(service) -> str:
    """The service's price in the clinic country's currency for the page's locale (``$95.00``,
    ``95,00 $``); empty when it has none."""
    if service.price_cents is None:
        return ""
    _language, country = _clinic_defaults()
    currencies = get_territory_currencies(country.upper())
    return format_currency(service.price_cents / 100, currencies[0] if currencies else "CAD", locale=_locale())


def service_description(service) -> str:
    if language() == "fr" and service.description_fr:
        return service.description_fr
    return service.description or ""
