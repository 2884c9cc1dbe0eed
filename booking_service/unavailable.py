"""What the HTML surfaces answer while the database is away: 503, ``Retry-After``, and a page
that says nothing was saved.

A request that meets a database that is down, restarting or cut off
(:func:`booking_service.db.unavailable`) fails with a 500 wherever it meets it (a view, the
console's sign-in, the commit). Each surface's 500 handler asks
:func:`booking_service.db.server_error_was_unavailable` and, if so, answers with
:func:`page` in its own words (the patient pages translated, the console in staff English; the
API answers JSON ``service_unavailable``). The page is rendered straight from the template, not
through ``render_template``: the surfaces' context processors read the database.
"""

from __future__ import annotations

from flask import Response, current_app

from booking_service.db import RETRY_AFTER_SECONDS
from booking_service.form_values import asset_url


def page(*, title: str, message: str, lang: str, stylesheet: str) -> Response:
    """The 503 page: ``title`` and ``message`` in the surface's words, its ``stylesheet``."""
    html = current_app.jinja_env.get_template("unavailable.html").render(
        title=title, message=message, lang=lang, stylesheet=asset_url(stylesheet)
    )
    response = Response(html, status=503, mimetype="text/html")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response
