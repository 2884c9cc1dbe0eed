"""Flask extensions, created unbound here and bound to an app in ``create_app``."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

limiter = Limiter(key_func=get_remote_address, default_limits=[])
csrf = CSRFProtect()

# Public write endpoints (booking, manage actions, waitlist): generous for a person, tight for a bot.
PUBLIC_WRITE_LIMIT = "20 per minute;200 per hour"
