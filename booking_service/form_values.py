"""Reading values that forms and query strings carry, shared by the patient pages and the staff
console. Each parser returns None for anything it cannot read, so views answer "choose again"
instead of failing; dates outside 2000-2200 are typos, and far ones would overflow date maths."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

from flask import current_app, url_for

FIRST_YEAR, LAST_YEAR = 2000, 2200


def parse_int(raw: str | None) -> int | None:
    """A positive id such as ``"12"``; None for anything else (signs, spaces inside, 10+ digits)."""
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 9 else None


def parse_date(raw: str | None) -> date | None:
    """``YYYY-MM-DD`` within FIRST_YEAR..LAST_YEAR, else None."""
    try:
        value = date.fromisoformat((raw or "").strip()[:10])
    except ValueError:
        return None
    return value if FIRST_YEAR <= value.year <= LAST_YEAR else None


def slot_value(instant: datetime) -> str:
    """How a start travels in forms: UTC, minute precision (``2026-11-24T14:00Z``)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_slot_value(raw: str | None) -> datetime | None:
    """A start as forms carry it (ISO 8601 with an offset), in UTC; None when naive or unreadable."""
    if not raw or len(raw) > 40:
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if value.tzinfo is None or not FIRST_YEAR <= value.year <= LAST_YEAR:
        return None
    return value.astimezone(UTC)


_asset_versions: dict[tuple[str, float], str] = {}


def asset_url(filename: str) -> str:
    """The static file's URL with a content hash, so browsers may cache it for a year."""
    path = Path(current_app.static_folder) / filename
    try:
        key = (filename, path.stat().st_mtime)
    except OSError:
        return url_for("static", filename=filename)
    if key not in _asset_versions:
        _asset_versions[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return url_for("static", filename=filename, v=_asset_versions[key])
