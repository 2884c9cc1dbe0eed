"""Message texts: snapshots of every template in every language, and the rules texts obey.

Snapshots live in ``tests/snapshots/<channel>/<template>.<lang>.txt``. After changing a text on
purpose, rewrite them with ``SNAPSHOT_UPDATE=1 pytest tests/test_templates.py`` and review the
diff like code.

No database: messages are built from unsaved model objects, as the worker would load them.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.config import PROJECT_ROOT, Settings
from booking_service.integrations.contract import Email, Sms
from booking_service.messaging import rendering
from booking_service.messaging.rendering import (
    RenderError,
    environment,
    format_when,
    gsm7_septets,
    render,
    sms_segments,
    to_gsm7,
)
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from booking_service.scheduling import tokens
from booking_service.scheduling.models import Appointment
from tests.support.fake_twilio import count_segments

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("SNAPSHOT_UPDATE") == "1"
TEMPLATES = PROJECT_ROOT / "templates"
BASE_URL = "https://book.lakeshorephysio.ca"
SETTINGS = Settings(PUBLIC_BASE_URL=BASE_URL, SECRET_KEY="snapshot-secret", EMAIL_FROM="rendezvous@lakeshorephysio.ca")
NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
START = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # Thursday 10:00 in Toronto
INTAKE_REASON = "Sciatica down my left leg since lifting a box; numbness in the foot"
CLINICAL_WORDS = (
    "sciatica",
    "sciatique",
    "bladder",
    "bowel",
    "saddle",
    "numbness",
    "weakness",
    "fever",
    "cancer",
    "urgent",
    "red flag",
    "triage",
    "vessie",
    "intestin",
    "engourdissement",
    "faiblesse",
    "fièvre",
    "disc",
    "hernia",
    "herniation",
)

# Which templates are about an appointment, and which texts must offer C and STOP.
APPOINTMENT_TEMPLATES = {
    "confirmation",
    "reminder",
    "reschedule",
    "cancellation",
    "follow_up",
    "reply_confirmed",
    "reply_reschedule",
}
# A treatment plan's one confirmation and one cancellation notice: about a series of visits.
PLAN_TEMPLATES = {"plan_confirmation": "confirmation", "plan_cancellation": "cancellation"}
PLAN_VISITS = 6
CONFIRMABLE = {"confirmation", "reminder", "reschedule"}
CONFIRM_STOP = {"en": "Reply C to confirm, STOP to opt out", "fr": "C pour confirmer, STOP pour vous désabonner"}
STOP_ONLY = {"en": "Reply STOP to opt out", "fr": "STOP pour vous désabonner"}
STAFF_TEMPLATES = {"alert"}


def templates(channel: str) -> list[tuple[str, str]]:
    """(name, lang) of every template of ``channel`` found on disk."""
    found = []
    for path in sorted((TEMPLATES / channel).glob("*.*.txt")):
        name, lang, _ = path.name.split(".")
        if not name.startswith("_"):
            found.append((name, lang))
    return found


SMS_TEMPLATES = templates("sms")
EMAIL_TEMPLATES = templates("email")


def scene(
    name: str,
    channel: str,
    lang: str,
    *,
    longest: bool = False,
    start: datetime = START,
    service_kind: str = "initial",
    payload: dict | None = None,
    clinic_name: str | None = None,
) -> tuple[OutboxMessage, ClinicSettings]:
    """An outbox row for template ``name`` with everything it refers to, unsaved."""
    clinic = ClinicSettings(
        id=1,
        name=clinic_name or ("Lakeshore Sports Physiotherapy" if longest else "Lakeshore Physio"),
        phone="+14165550100",
        email="hello@lakeshorephysio.ca",
        country="CA",
        timezone="America/Toronto",
        default_language="en",
        brand_color="#0f6e6e",
        cancellation_window_hours=24,
    )
    location = Location(
        id=3,
        name="Mississauga Square One" if longest else "Downtown",
        address="100 City Centre Dr, Mississauga, ON L5B 2C9" if longest else "120 King St W, Toronto, ON M5H 1J9",
        phone="+19055550199" if longest else None,
        timezone="America/Toronto",
    )
    practitioner = Practitioner(id=5, first_name="Maya", last_name="Chen", profession="Physiotherapist")
    service = (
        Service(id=1, name="Initial assessment", name_fr="Évaluation initiale", kind="initial", duration_minutes=60)
        if service_kind == "initial"
        else Service(id=2, name="Follow-up", name_fr="Suivi", kind="follow_up", duration_minutes=30)
    )
    patient = Patient(
        id=9,
        first_name="Marie-Françoise" if longest else "Alex",
        last_name="Tremblay-Beauchemin",
        email="alex@example.com",
        phone="+14165550123",
        language=lang,
    )
    appointment = Appointment(
        id=42,
        patient=patient,
        patient_id=patient.id,
        practitioner=practitioner,
        location=location,
        service=service,
        start_at=start,
        end_at=start + timedelta(minutes=service.duration_minutes),
        status={"cancellation": "cancelled", "plan_cancellation": "cancelled", "follow_up": "completed"}.get(
            name, "booked"
        ),
        language=lang,
        manage_nonce="5f2b7c0e9a1d4e3f8b6a2c4d1e0f9a8b",
        ics_sequence=2 if name == "reschedule" else 0,
        intake_reason=INTAKE_REASON,
        red_flags={"bladder_bowel": False, "saddle_numbness": True, "leg_weakness": True, "systemic": False},
        triage="urgent",
        staff_notes="Query L5 disc herniation",
    )
    kind = "reply" if name.startswith("reply_") else PLAN_TEMPLATES.get(name, name)
    about = appointment if name in APPOINTMENT_TEMPLATES or name in PLAN_TEMPLATES else None
    data = dict(payload or {})
    if name in PLAN_TEMPLATES:  # six weekly visits from ``start``, all with Maya Chen
        visits = [
            {"id": 42 + i, "start": (start + timedelta(days=7 * i)).isoformat(), "with": "Maya Chen"}
            for i in range(PLAN_VISITS)
        ]
        data.setdefault("visits", visits)
    if name == "reschedule":
        data.setdefault("old_start", (start - timedelta(days=1)).isoformat())
    if name in ("waitlist_offer", "nudge", "alert"):
        data.setdefault(
            "link",
            {"waitlist_offer": "/w/", "nudge": "/p/"}.get(name, "/x/") + "Xk3v9QpL2mZr8TbN5cYh1sWd",
        )
    if name == "waitlist_offer":
        data.setdefault("start", (start + timedelta(days=1)).isoformat())
        data.setdefault("location_name", location.name)
    staff = name in STAFF_TEMPLATES
    message = OutboxMessage(
        id=7,
        appointment=about,
        appointment_id=about.id if about else None,
        patient=None if staff else patient,
        patient_id=None if staff else patient.id,
        channel=channel,
        kind=kind,
        to=("+14165550100" if staff else patient.phone)
        if channel == "sms"
        else ("frontdesk@lakeshorephysio.ca" if staff else patient.email),
        template=name,
        payload={**data, "language": lang} if staff else data,
    )
    return message, clinic


def rendered(name: str, channel: str, lang: str, **options) -> Sms | Email:
    message, clinic = scene(name, channel, lang, **options)
    return render(None, message, settings=SETTINGS, clinic=clinic, now=NOW)


def snapshot_text(result: Sms | Email) -> str:
    if isinstance(result, Sms):
        return f"To: {result.to}\nStatus-Callback: {result.status_callback}\n\n{result.body}\n"
    parts = [
        f"To: {result.to}",
        f"Subject: {result.subject}",
        f"Message-ID: {result.message_id}",
        "",
        result.text.rstrip("\n"),
        "",
        "----- text/html -----",
        result.html.rstrip("\n"),
    ]
    if result.ics is not None:
        parts += [
            "",
            f"----- text/calendar; method={result.ics_method} -----",
            result.ics.decode().replace("\r\n", "\n").rstrip("\n"),
        ]
    return "\n".join(parts) + "\n"


def check_snapshot(relative: str, actual: str) -> None:
    path = SNAPSHOTS / relative
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {relative}: run SNAPSHOT_UPDATE=1 pytest {__file__}"
    assert actual == path.read_text(encoding="utf-8"), f"{relative} changed; if on purpose: SNAPSHOT_UPDATE=1"


# --------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize(("name", "lang"), SMS_TEMPLATES, ids=[f"{n}.{lang}" for n, lang in SMS_TEMPLATES])
def test_every_sms_template_matches_its_snapshot(name, lang):
    check_snapshot(f"sms/{name}.{lang}.txt", snapshot_text(rendered(name, "sms", lang)))


@pytest.mark.parametrize(("name", "lang"), EMAIL_TEMPLATES, ids=[f"{n}.{lang}" for n, lang in EMAIL_TEMPLATES])
def test_every_email_template_matches_its_snapshot(name, lang):
    check_snapshot(f"email/{name}.{lang}.txt", snapshot_text(rendered(name, "email", lang)))


def test_every_template_exists_in_english_and_french_and_every_email_has_both_bodies():
    for channel in ("sms", "email"):
        names = {name for name, _ in templates(channel)}
        for name in names:
            for lang in rendering.LANGUAGES:
                assert (TEMPLATES / channel / f"{name}.{lang}.txt").exists(), f"{channel}/{name}.{lang}.txt"
                if channel == "email":
                    assert (TEMPLATES / channel / f"{name}.{lang}.html").exists(), f"{channel}/{name}.{lang}.html"
    kinds = {"confirmation", "reminder", "reschedule", "cancellation", "follow_up", "waitlist_offer", "nudge", "alert"}
    assert kinds <= {name for name, _ in SMS_TEMPLATES}
    assert kinds <= {name for name, _ in EMAIL_TEMPLATES}
    assert {"reply_help", "reply_confirmed", "reply_reschedule", "reply_no_appointment"} <= {
        n for n, _ in SMS_TEMPLATES
    }


def test_snapshots_have_no_orphans():
    expected = {f"sms/{n}.{lang}.txt" for n, lang in SMS_TEMPLATES} | {
        f"email/{n}.{lang}.txt" for n, lang in EMAIL_TEMPLATES
    }
    on_disk = {str(p.relative_to(SNAPSHOTS)) for p in SNAPSHOTS.rglob("*.txt")}
    assert on_disk == expected


# --------------------------------------------------------------------------- what every SMS obeys


@pytest.mark.parametrize("longest", [False, True], ids=["typical", "longest"])
@pytest.mark.parametrize(("name", "lang"), SMS_TEMPLATES, ids=[f"{n}.{lang}" for n, lang in SMS_TEMPLATES])
def test_every_sms_fits_one_gsm7_segment_and_says_what_it_must(name, lang, longest):
    # The longest realistic values: a 15-letter hyphenated first name with a ç, a 30-letter clinic
    # name, a 22-letter location, and a date with the longest day, month and time of each language
    # (Tuesday 1 September 10:45: "mar. 1er sept., 10 h 45"), and a production base URL.
    start = datetime(2026, 9, 1, 14, 45, tzinfo=UTC) if longest else START
    result = rendered(name, "sms", lang, longest=longest, start=start)
    body = result.body

    assert gsm7_septets(body) is not None, f"non-GSM-7 character in {body!r}"
    assert gsm7_septets(body) <= 160, f"{gsm7_septets(body)} septets: {body!r}"
    assert sms_segments(body) == 1 and count_segments(body) == 1
    clinic = "Lakeshore Sports" if longest else "Lakeshore Physio"
    assert clinic in body
    if not longest:
        assert body.startswith(
            ("Lakeshore Physio:", "Lakeshore Physio :", "Lakeshore Physio reminder:", "Rappel Lakeshore Physio :")
        )
    if name in APPOINTMENT_TEMPLATES - {"follow_up"}:
        tz = ZoneInfo("America/Toronto")
        assert format_when(start, tz, lang, short=True) in body
    if name in PLAN_TEMPLATES:
        weekly = [start + timedelta(days=7 * i) for i in range(PLAN_VISITS)]
        assert rendering.compact_dates(weekly, ZoneInfo("America/Toronto"), lang) in body
    if name in CONFIRMABLE:
        token = tokens.manage_token(SETTINGS.SECRET_KEY, "5f2b7c0e9a1d4e3f8b6a2c4d1e0f9a8b")
        assert f"{BASE_URL}/m/{token} " in body
        assert body.endswith(CONFIRM_STOP[lang])
    elif not name.startswith("reply_") and name not in STAFF_TEMPLATES:
        assert body.endswith(STOP_ONLY[lang])
    assert not re.search(r"\bcancel\b", body, re.IGNORECASE), "never ask a patient to reply CANCEL"
    assert "Tremblay" not in body and "Chen" not in body
    assert "assessment" not in body.lower() and "évaluation" not in body.lower()


@pytest.mark.parametrize(("name", "lang"), SMS_TEMPLATES, ids=[f"{n}.{lang}" for n, lang in SMS_TEMPLATES])
def test_sms_template_sources_are_gsm7(name, lang):
    source = (TEMPLATES / "sms" / f"{name}.{lang}.txt").read_text(encoding="utf-8")
    bad = sorted({ch for ch in source if gsm7_septets(ch) is None})
    assert not bad, f"sms/{name}.{lang}.txt has non-GSM-7 characters {bad}"


def test_an_unreasonably_long_clinic_name_is_shortened_to_fit_rather_than_split():
    result = rendered("reminder", "sms", "fr", longest=True, clinic_name="Clinique de physiothérapie du Lakeshore")
    assert gsm7_septets(result.body) <= 160
    assert result.body.startswith("Rappel Clinique de ")


# --------------------------------------------------------------------------- privacy


@pytest.mark.parametrize("channel", ["sms", "email"])
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_no_message_carries_the_intake_reason_red_flags_staff_notes_or_clinical_words(channel, lang):
    names = {n for n, _ in (SMS_TEMPLATES if channel == "sms" else EMAIL_TEMPLATES)}
    for name in sorted(names):
        result = rendered(name, channel, lang)
        texts = (
            [result.body]
            if isinstance(result, Sms)
            else [result.subject, result.text, result.html, (result.ics or b"").decode()]
        )
        for text in texts:
            lowered = text.lower()
            assert INTAKE_REASON.lower() not in lowered
            assert "l5" not in lowered
            for word in CLINICAL_WORDS:
                assert word not in lowered, f"{channel}/{name}.{lang} mentions {word!r}"


# --------------------------------------------------------------------------- dates, languages


@pytest.mark.parametrize(
    ("instant", "lang", "short", "expected"),
    [
        ("2026-03-09T14:00Z", "en", True, "Mon Mar 9, 10:00 AM"),  # EDT since the day before
        ("2026-03-09T14:00Z", "fr", True, "lun. 9 mars, 10 h"),
        ("2026-11-02T15:00Z", "en", True, "Mon Nov 2, 10:00 AM"),  # EST again
        ("2026-10-01T16:30Z", "fr", True, "jeu. 1er oct., 12 h 30"),
        ("2026-08-12T04:05Z", "fr", True, "mer. 12 aout, 0 h 05"),  # no û in an SMS
        ("2026-08-12T04:05Z", "en", True, "Wed Aug 12, 12:05 AM"),
        ("2026-08-12T17:05Z", "en", False, "Wednesday, August 12, 2026 at 1:05 PM"),
        ("2026-08-12T17:05Z", "fr", False, "mercredi 12 août 2026 à 13 h 05"),
        ("2026-12-01T13:00Z", "fr", False, "mardi 1er décembre 2026 à 8 h"),
    ],
)
def test_dates_are_local_and_in_the_patients_language(instant, lang, short, expected):
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    assert format_when(moment, ZoneInfo("America/Toronto"), lang, short=short) == expected


def test_a_reply_to_a_french_keyword_is_in_french_even_for_an_english_patient():
    message, clinic = scene("reply_help", "sms", "en", payload={"language": "fr"})
    body = render(None, message, settings=SETTINGS, clinic=clinic, now=NOW).body
    assert "Répondez C pour confirmer" in body


# --------------------------------------------------------------------------- e-mail envelope


def test_emails_carry_a_stable_message_id_and_the_appointment_as_an_ics_invitation():
    confirmation = rendered("confirmation", "email", "en")
    assert confirmation.message_id == "<outbox-7@book.lakeshorephysio.ca>"
    assert confirmation.ics_method == "REQUEST"
    ics = confirmation.ics.decode()
    assert "METHOD:REQUEST" in ics
    assert "UID:appointment-42@book.lakeshorephysio.ca" in ics
    assert "SEQUENCE:0" in ics
    assert "DTSTART:20261126T150000Z" in ics
    assert "mailto:rendezvous@lakeshorephysio.ca" in ics

    moved = rendered("reschedule", "email", "en")
    assert "SEQUENCE:2" in moved.ics.decode()
    assert "UID:appointment-42@book.lakeshorephysio.ca" in moved.ics.decode()

    cancelled = rendered("cancellation", "email", "fr")
    assert cancelled.ics_method == "CANCEL"
    assert "METHOD:CANCEL" in cancelled.ics.decode() and "STATUS:CANCELLED" in cancelled.ics.decode()
    assert "/m/" not in cancelled.text  # no manage link for a cancelled visit

    assert rendered("follow_up", "email", "en").ics is None


def test_emails_name_the_clinic_and_give_its_phone_address_and_manage_link():
    email = rendered("reminder", "email", "en")
    token = tokens.manage_token(SETTINGS.SECRET_KEY, "5f2b7c0e9a1d4e3f8b6a2c4d1e0f9a8b")
    for body in (email.text, email.html):
        assert "Lakeshore Physio" in body
        assert "(416) 555-0100" in body
        assert "120 King St W" in body
        assert f"{BASE_URL}/m/{token}" in body
        assert "Thursday, November 26, 2026 at 10:00 AM" in body


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_initial_assessment_emails_carry_preparation_notes_and_follow_up_visits_do_not(lang):
    marker = "Before your first visit" if lang == "en" else "Avant votre première visite"
    for name in ("confirmation", "reminder", "reschedule"):
        assert marker in rendered(name, "email", lang).text
        assert marker in rendered(name, "email", lang).html
        assert marker not in rendered(name, "email", lang, service_kind="follow_up").text
    assert marker not in rendered("cancellation", "email", lang).text


def test_sms_carry_the_status_callback_url():
    assert rendered("reminder", "sms", "en").status_callback == f"{BASE_URL}/webhooks/twilio/status"


def test_html_bodies_escape_values_and_text_bodies_do_not():
    email = rendered("confirmation", "email", "en", clinic_name="Physio <Lakeshore> & Co")
    assert "Physio &lt;Lakeshore&gt; &amp; Co" in email.html
    assert "Physio <Lakeshore> & Co" in email.text
    assert "Physio <Lakeshore> & Co" in email.subject


def test_the_template_environment_is_built_once_and_is_not_flasks():
    assert environment() is environment()
    assert environment().undefined.__name__ == "StrictUndefined"


def test_an_unknown_template_or_a_missing_appointment_is_a_render_error():
    message, clinic = scene("reminder", "sms", "en")
    message.template = "no_such_text"
    with pytest.raises(RenderError):
        render(None, message, settings=SETTINGS, clinic=clinic, now=NOW)
    message, clinic = scene("reminder", "email", "en")
    message.appointment = None
    with pytest.raises(RenderError):
        render(None, message, settings=SETTINGS, clinic=clinic, now=NOW)


# --------------------------------------------------------------------------- GSM-7


@pytest.mark.parametrize(
    ("text", "septets"),
    [
        ("hello", 5),
        ("", 0),
        ("é è ù ì ò à Ç É", 15),
        ("Ä Ö Ñ Ü ä ö ñ ü ß Æ æ Ø ø Å å", 29),
        ("@£$¥¤§¿¡_\n", 10),
        ("ΔΦΓΛΩΠΨΣΘΞ", 10),
        ("€", 2),
        ("[x]", 5),
        ("{}|~^\\", 12),
        ("ê", None),
        ("â", None),
        ("î", None),
        ("ô", None),
        ("û", None),
        ("ç", None),
        ("È", None),
        ("À", None),
        ("ë", None),
        ("`", None),
        ("’", None),
        ("\u00a0", None),
        ("\u202f", None),
        ("😀", None),
    ],
)
def test_the_gsm7_counter_knows_the_basic_and_extension_tables(text, septets):
    assert gsm7_septets(text) == septets


@given(
    st.text(
        alphabet=st.sampled_from(sorted(rendering.GSM7_BASIC | rendering.GSM7_EXTENSION | set("êç’😀é"))), max_size=400
    )
)
def test_segment_counts_agree_with_the_twilio_double(text):
    assert sms_segments(text) == count_segments(text)


@pytest.mark.parametrize(
    ("text", "strict", "expected"),
    [
        ("Françoise", False, "Francoise"),
        ("Zoë", False, "Zoe"),
        ("Hélène", False, "Hélène"),
        ("Jérôme", False, "Jérome"),
        ("O’Brien", False, "O'Brien"),
        ("Lakeshore\u00a0Physio", False, "Lakeshore Physio"),
        ("Cœur", False, "Coeur"),
        ("Ève", False, "Eve"),
        ("李", True, None),
        ("Li 李", False, "Li "),
    ],
)
def test_names_are_turned_into_gsm7_look_alikes(text, strict, expected):
    assert to_gsm7(text, strict=strict) == expected


@pytest.mark.parametrize("longest", [False, True], ids=["typical", "longest"])
@pytest.mark.parametrize(
    ("lang", "ask"), [("en", "Reply DONE, or your pain 0-10."), ("fr", "Répondez FAIT, ou douleur 0-10.")]
)
def test_a_nudge_carries_the_program_link_and_asks_for_done_or_a_pain_score(lang, ask, longest):
    body = rendered("nudge", "sms", lang, longest=longest, start=datetime(2026, 9, 1, 14, 45, tzinfo=UTC)).body
    assert f"{BASE_URL}/p/Xk3v9QpL2mZr8TbN5cYh1sWd " in body
    assert ask in body
    assert sms_segments(body) == 1
