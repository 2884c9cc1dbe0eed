"""What every response and every request of the web app gets, whatever blueprint serves it.

- **Headers** on every response, errors and static files included: ``nosniff``, no framing,
  a restrictive default ``Content-Security-Policy`` (blueprints set their own stricter ones),
  a ``Referrer-Policy``, and HSTS in production. ``Cache-Control: no-store`` unless the
  response chose its own caching (static assets do), so nothing that carries patient data is
  kept by a browser or a proxy.
- **Bounds** on input: one ``MAX_CONTENT_LENGTH`` for every route (the API keeps its smaller
  one), and ``<int:...>`` URL parts limited to what the database's ids can hold, so a huge id
  is a 404, never a 500 from an integer overflow in the driver.
- **Behind a proxy**: ``TRUSTED_PROXIES`` (the number of proxies in front) makes ProxyFix trust
  that many ``X-Forwarded-For``/``-Proto`` hops, so rate limits see the client's address and
  the app knows the request came over TLS.
"""

from __future__ import annotations

from flask import Flask, Response, abort, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from booking_service.config import Settings

MAX_CONTENT_LENGTH = 1024 * 1024  # no form or JSON body of this app comes near it
MAX_ID = 2**31 - 1  # PostgreSQL's integer, the type of every id column
HSTS = "max-age=31536000"
DEFAULT_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` that matches only ids the database can hold (1 to 2**31 - 1, at most 10
    digits): anything else does not match the route, so it is a 404."""

    regex = r"\d{1,10}"

    def __init__(self, map, fixed_digits=0, min=1, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def install(app: Flask, settings: Settings) -> None:
    """Bind all of the above to ``app``; call before any blueprint is registered (the URL
    converter applies to rules added after it)."""
    app.url_map.converters["int"] = BoundedIntConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    secure = settings.is_production or settings.PUBLIC_BASE_URL.startswith("https://")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        # __Host-: the browser sends it only over TLS, only to this host, for every path;
        # nothing on a sibling subdomain can set or overwrite it.
        SESSION_COOKIE_NAME="__Host-session" if secure else "session",
    )
    if settings.TRUSTED_PROXIES:
        hops = settings.TRUSTED_PROXIES
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    hsts = settings.is_production

    @app.before_request
    def _refuse_oversize_bodies() -> None:
        # Before any view, CSRF check or form parsing: a route that never reads its body
        # refuses a huge one all the same (werkzeug alone only checks when the form is read).
        length = request.content_length
        if length is not None and length > (request.max_content_length or MAX_CONTENT_LENGTH):
            abort(413)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
        if "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        if hsts:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
