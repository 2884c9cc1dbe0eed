"""When a failed attempt is tried again: fast at first, then patient.

Most transient failures (a rate limit, a 5xx, a dropped connection) clear within seconds, and
a confirmation answers something the patient just did, so the first retries come within
seconds; a provider that stays down is then left alone, up to an hour between attempts.
"""

from __future__ import annotations

import random
from datetime import timedelta

# After the 8th failed attempt (about an hour and three quarters of waiting) a message is
# failed for good.
MAX_ATTEMPTS = 8
# The longest wait after the 1st, 2nd, ... failed attempt, in seconds; the last one repeats.
RETRY_CEILINGS = (2, 8, 30, 120, 600, 1800, 3600)
BACKOFF_CAP = timedelta(seconds=RETRY_CEILINGS[-1])


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """The wait before the next attempt after ``attempts`` failed ones: the ceiling of
    :data:`RETRY_CEILINGS` for that attempt, with "equal jitter" (between half and all of it)
    so a batch that failed together does not retry in step."""
    ceiling = RETRY_CEILINGS[min(max(attempts, 1), len(RETRY_CEILINGS)) - 1]
    return timedelta(seconds=ceiling / 2 + ceiling / 2 * (rng or random).random())
