"""Patients' texts: how one reads (:func:`read`, pure). Acting on a text is a use case
(:func:`booking_service.usecases.replies.handle_inbound`: it may confirm an appointment); the
opt-out itself is kept by :mod:`booking_service.patients.consent`.

Keywords are matched on the whole message, ignoring case, accents, spaces and punctuation
(``" Yes! "`` is YES, ``Arrêt`` is ARRET); anything else goes to the staff inbox. What the
inbound webhook then does with each:

=====================  =========================================================================
keyword                 action
=====================  =========================================================================
C, CONFIRM, OUI         confirm the sender's next appointment; reply with thanks
YES                     the same, and lift a STOP (YES is one of Twilio's opt-in words)
STOP and Twilio's       record the opt-out (SmsOptOut + consent ledger), cancel pending texts to
other opt-out words     the number. No reply: Twilio answers STOP itself and refuses our texts.
START, UNSTOP           lift the opt-out (ledger). No reply: Twilio answers START itself.
HELP, INFO, AIDE        reply with the clinic's name and phone number
R, RESCHEDULE           reply with the manage link of the next appointment
0-10, DONE, red flags   home exercises (``exercises.replies``): log, pain, alert; else for staff
anything else           stored for staff; "stop texting me" and the like flagged likely_opt_out
=====================  =========================================================================

Replies are outbox rows (kind ``reply``, due now), never sent from the webhook.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Twilio's default opt-out words (Advanced Opt-Out adds OPTOUT and REVOKE; ARRET is its French one).
OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke", "arret"})
OPT_IN_WORDS = frozenset({"start", "unstop", "yes"})
CONFIRM_WORDS = frozenset({"c", "confirm", "yes", "oui", "confirmer"})
HELP_WORDS = frozenset({"help", "info", "aide"})
RESCHEDULE_WORDS = frozenset({"r", "reschedule", "reporter", "modifier"})
DONE_WORDS = frozenset({"done", "fait", "fini", "termine"})
FRENCH_WORDS = frozenset({"oui", "confirmer", "arret", "aide", "reporter", "modifier", "fait", "fini", "termine"})

# A pain score: "7", "7/10", "pain 7", "Pain: 7/10", "douleur 7", "douleur : 7".
_PAIN = re.compile(r"^(?:(?P<word>pain|douleur)\s*:?\s*)?(?P<score>10|[0-9])(\s*/\s*10)?$")
# Free text that reads as "stop texting me": staff should act on it (record an opt-out by hand)
# even though it is not a keyword Twilio acts on.
_LIKELY_OPT_OUT = re.compile(
    r"\b(stop|unsubscribe|opt ?-?out|remove me|take me off|don'?t (text|message|contact)|"
    r"do not (text|message|contact)|no more (texts?|messages?)|"
    r"arret|desabonn|desinscri|ne plus (recevoir|m'?ecrire)|plus de (textos?|messages?))",
)


@dataclass(frozen=True)
class Reading:
    """How a text reads: ``intent`` is confirm, stop, start, help, reschedule, pain, done or other."""

    intent: str
    keyword: str  # the folded keyword ("" for free text)
    french: bool = False
    likely_opt_out: bool = False
    pain: int | None = None  # the score, for intent "pain"


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().replace("\u2019", "'")


def read(body: str) -> Reading:
    """Classify one inbound text. Pure: no database."""
    folded = _fold(body or "").strip()
    keyword = re.sub(r"[\W_]+", "", folded)
    french = keyword in FRENCH_WORDS
    if keyword in CONFIRM_WORDS:
        return Reading("confirm", keyword, french)
    if keyword in OPT_OUT_WORDS:
        return Reading("stop", keyword, french)
    if keyword in OPT_IN_WORDS:
        return Reading("start", keyword, french)
    if keyword in HELP_WORDS:
        return Reading("help", keyword, french)
    if keyword in RESCHEDULE_WORDS:
        return Reading("reschedule", keyword, french)
    if keyword in DONE_WORDS:
        return Reading("done", keyword, french)
    pain = _PAIN.match(folded.strip(" .!"))
    if pain:
        return Reading("pain", "", pain.group("word") == "douleur", pain=int(pain.group("score")))
    return Reading("other", "", likely_opt_out=bool(_LIKELY_OPT_OUT.search(folded)))
