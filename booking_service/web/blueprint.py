"""URL map of the patient pages, and what ``register_web`` sets up around them (Babel,
template helpers, security headers, error pages). The controllers live beside this file."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit

import phonenumbers
from flask import Blueprint, Flask, g, get_flashed_messages, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from booking_service import unavailable
from booking_service.db import server_error_was_unavailable
from booking_service.extensions import PUBLIC_WRITE_LIMIT, limiter
from booking_service.form_values import asset_url
from booking_service.web import booking, i18n, manage, program, waitlist, waitlist_offer
from booking_service.web.common import HONEYPOT_FIELD, current_clinic, database_away, page, private
from booking_service.web.theme import palette

bp = Blueprint("web", __name__)

write_limit = limiter.limit(PUBLIC_WRITE_LIMIT, methods=["POST"])

# --- the booking journey ---------------------------------------------------------------------------
bp.add_url_rule("/", "start", booking.start)
bp.add_url_rule("/book/time", "choose_time", booking.choose_time)
bp.add_url_rule("/book/details", "details", write_limit(booking.details), methods=["GET", "POST"])
bp.add_url_rule("/book/urgent", "urgent", write_limit(booking.urgent), methods=["GET", "POST"])
bp.add_url_rule("/book/review", "review", booking.review)
bp.add_url_rule("/book/confirm", "confirm", write_limit(booking.confirm), methods=["POST"])
bp.add_url_rule("/book/change-time", "change_time", write_limit(booking.change_time), methods=["POST"])
bp.add_url_rule("/book/confirmed", "confirmed", booking.confirmed)
# --- the waitlist ------------------------------------------------------------------------------------
bp.add_url_rule("/waitlist", "waitlist", write_limit(waitlist.join), methods=["GET", "POST"])
bp.add_url_rule("/waitlist/joined", "waitlist_joined", waitlist.joined)
bp.add_url_rule("/w/<int:offer_id>/<token>", "waitlist_offer", waitlist_offer.open_offer)  # offers link here
# --- the manage link (contract: messages link to /m/<token>) ---------------------------------------
bp.add_url_rule("/m/<token>", "manage", manage.show)
bp.add_url_rule("/m/<token>/calendar.ics", "calendar", manage.calendar)
bp.add_url_rule("/m/<token>/reschedule", "reschedule", write_limit(manage.reschedule_page), methods=["GET", "POST"])
bp.add_url_rule("/m/<token>/cancel", "cancel", write_limit(manage.cancel_page), methods=["GET", "POST"])
bp.add_url_rule("/m/<token>/book-again", "book_again", write_limit(manage.book_again), methods=["POST"])
# --- the home exercise program (contract: nudges link to /p/<token>) --------------------------------
bp.add_url_rule("/p/<token>", "program", program.show)
bp.add_url_rule(
    "/p/<token>/items/<int:item_id>/done", "program_item_done", write_limit(program.mark_item), methods=["POST"]
)
bp.add_url_rule("/p/<token>/done", "program_done", write_limit(program.mark_all), methods=["POST"])
bp.add_url_rule("/p/<token>/pain", "program_pain", write_limit(program.save_pain), methods=["POST"])
bp.add_url_rule("/p/<token>/function", "program_function", write_limit(program.save_function), methods=["POST"])


def register_web(app: Flask) -> None:
    i18n.init_babel(app)
    app.register_blueprint(bp)
    app.after_request(_cache_versioned_assets)


def _cache_versioned_assets(response):
    """Assets linked with a content hash (``asset_url``) never change under that URL."""
    if request.endpoint == "static" and request.args.get("v") and response.status_code == 200:
        response.cache_control.public = True
        response.cache_control.max_age = 365 * 24 * 3600
        response.cache_control.immutable = True
    return response


# --- around every patient page ---------------------------------------------------------------------


@bp.before_request
def _nonce() -> None:
    g.csp_nonce = secrets.token_urlsafe(12)


def _image_sources() -> str:
    """The page's own images, and the origins of the photos it shows (``allow_images_from``)."""
    return " ".join(["'self'", "data:", *sorted(g.get("image_origins", ()))])


@bp.after_request
def _headers(response):
    headers = response.headers
    if response.mimetype == "text/html":
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; "
            f"style-src 'self' 'nonce-{g.get('csp_nonce', '')}'; img-src {_image_sources()}; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        )
        headers.setdefault("Cache-Control", "no-store")
        headers.add("Vary", "Cookie")
        headers.add("Vary", "Accept-Language")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # Nothing on these pages needs to tell other sites where the visitor came from; the manage
    # pages must not (their URL is the credential), and the calendar link leaves the site.
    headers.setdefault("Referrer-Policy", "no-referrer")
    chosen = request.args.get("lang")
    if chosen in i18n.LANGUAGES and request.cookies.get(i18n.COOKIE) != chosen:
        response.set_cookie(
            i18n.COOKIE,
            chosen,
            max_age=i18n.COOKIE_MAX_AGE,
            samesite="Lax",
            httponly=True,
            secure=request.is_secure,
        )
    return response


@bp.errorhandler(CSRFError)
def _csrf_failed(_error):
    return booking.details_with_expired_token() or private(page("pages/error.html", 400, reason="expired"))


@bp.errorhandler(400)
def _bad_request(_error):
    return private(page("pages/error.html", 400, reason="bad_request"))


@bp.errorhandler(429)
def _too_many(_error):
    return private(page("pages/error.html", 429, reason="too_many"))


@bp.errorhandler(500)
def _server_error(error):
    if server_error_was_unavailable(error):
        database_away()
        return unavailable.page(
            title=_("We cannot take bookings just now"),
            message=_(
                "Our booking system is briefly unavailable, and nothing you sent was saved. "
                "Please try again in a minute."
            ),
            lang=i18n.language(),
            stylesheet="css/patient.css",
        )
    return error  # Flask's own 500 page


def language_url(code: str) -> str:
    """This page in another language. A page shown in answer to a POST links to the page to
    GET instead (``g.language_return``, set by the controller, else the same path)."""
    target = g.get("language_return")
    if target is not None:
        parts = urlsplit(target)
        path, args = parts.path, dict(parse_qsl(parts.query))
    else:
        path, args = request.path, (request.args.to_dict() if request.method == "GET" else {})
    args["lang"] = code
    return f"{path}?{urlencode(args)}"


@bp.context_processor
def _template_helpers():
    clinic = current_clinic(required=False)
    return {
        "clinic": clinic,
        "theme": palette(clinic.brand_color if clinic else None),
        "csp_nonce": g.get("csp_nonce", ""),
        "lang": i18n.language(),
        "languages": {code: i18n.LANGUAGE_NAMES[code] for code in i18n.offered_languages()},
        "language_url": language_url,
        "asset_url": asset_url,
        "honeypot_field": HONEYPOT_FIELD,
        "flashes": get_flashed_messages(with_categories=True),
        "service_name": i18n.service_name,
        "service_label": i18n.service_label,
        "service_minutes": i18n.service_minutes,
        "service_description": i18n.service_description,
        "service_price": i18n.service_price,
        "display_phone": display_phone,
    }


def display_phone(number: str | None) -> str:
    """``(416) 555-0100`` for a number of the clinic's country, else the international form."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    clinic = current_clinic(required=False)
    same_country = clinic is not None and phonenumbers.region_code_for_number(parsed) == clinic.country
    style = phonenumbers.PhoneNumberFormat.NATIONAL if same_country else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)
