"""Home exercises by text and clinical alerts: reply parsing (English and French), logging by
SMS, red flags and pain jumps end to end (signed webhook -> console, clinic e-mail through the
worker to aiosmtpd, safety reply through the real Twilio SDK to the Twilio double, nudges
paused), urgent bookings, the alerts API and its scoping, and the practitioner's charts.
SQLite and PostgreSQL; time frozen at Monday 2026-11-23 08:00 in Toronto."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from booking_service.clinic.queries import get_clinic
from booking_service.console import charts
from booking_service.exercises import alerts as alert_rules
from booking_service.exercises.models import Alert, Exercise, Program, ProgramLog
from booking_service.exercises.programs import ItemSpec, create_program
from booking_service.integrations.registry import build_transports
from booking_service.messaging.rendering import render
from booking_service.messaging.replies import read
from booking_service.outbox.claim import DEFAULT_LEASE, claim_due
from booking_service.outbox.models import OutboxMessage
from booking_service.outbox.send import send_one, send_timeout_for
from booking_service.patients.models import Patient
from booking_service.staff.operations import create_api_token
from tests.conftest import NOW, SECRET
from tests.console_fixtures import _create_app, login
from tests.support.environ import settings_from

pytest_plugins = ["tests.console_fixtures"]

BASE_URL = "http://testserver.local"
AUTH_TOKEN = "test-twilio-auth-token"
CLINIC_EMAIL = "front@lakeshore.example"
PHONE = "+14165550177"
TODAY = date(2026, 11, 23)  # Monday, Toronto


# --------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("body", "intent", "pain", "french"),
    [
        ("DONE", "done", None, False),
        ("done!", "done", None, False),
        ("FAIT", "done", None, True),
        ("fini", "done", None, True),
        ("Terminé", "done", None, True),
        ("7", "pain", 7, False),
        ("0", "pain", 0, False),
        ("10", "pain", 10, False),
        ("7/10", "pain", 7, False),
        ("pain 7", "pain", 7, False),
        ("Pain: 7", "pain", 7, False),
        ("PAIN 3/10", "pain", 3, False),
        ("douleur 7", "pain", 7, True),
        ("Douleur : 9/10", "pain", 9, True),
        ("11", "other", None, False),
        ("pain 12", "other", None, False),
        ("7 out of 10 today, and tired", "other", None, False),
    ],
)
def test_reply_reading_in_english_and_french(body, intent, pain, french):
    reading = read(body)
    assert (reading.intent, reading.pain) == (intent, pain)
    if intent != "other":
        assert reading.french == french


@pytest.mark.parametrize(
    ("body", "flags"),
    [
        ("I can't feel my groin", ["saddle_numbness"]),
        ("I CAN'T FEEL MY GROIN", ["saddle_numbness"]),
        ("I can’t pee since this morning", ["bladder_bowel"]),
        ("lost control of my bladder", ["bladder_bowel"]),
        ("numbness is spreading down my leg", ["spreading_numbness"]),
        ("my leg is giving way", ["leg_weakness"]),
        ("it's in both legs now", ["both_legs"]),
        ("J'ai un engourdissement", ["spreading_numbness"]),
        ("problème de VESSIE", ["bladder_bowel"]),
        ("douleur dans les deux jambes", ["both_legs"]),
        ("engourdi à l'aine", ["saddle_numbness", "spreading_numbness"]),
        ("faiblesse à la jambe", ["leg_weakness"]),
        ("feeling better, walked 20 minutes", []),
        ("my back is sore after the bridges", []),
        ("ça va mieux, merci", []),
    ],
)
def test_red_flag_words_are_found_with_case_and_accents_folded(body, flags):
    assert alert_rules.red_flags(body) == flags


@pytest.mark.parametrize(
    ("pain", "baseline", "alerts"),
    [(8, None, True), (7, None, False), (10, 9.0, True), (7, 4.0, True), (6, 4.0, False), (5, 2.0, True)],
)
def test_pain_jumps_at_8_or_3_above_the_baseline(pain, baseline, alerts):
    assert (alert_rules.pain_jump(pain, baseline) is not None) == alerts


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def clinic(make_clinic, frozen):
    return make_clinic(email=CLINIC_EMAIL)


@pytest.fixture
def app(db_url, database, clinic):
    app = _create_app(db_url, WTF_CSRF_ENABLED=False, TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_BASE_URL=BASE_URL)
    yield app
    app.extensions["database"].dispose()


@pytest.fixture
def twilio(app):
    return app.test_client()


@pytest.fixture
def desk_client(app, users):
    client = app.test_client()
    assert login(client).status_code == 302
    return client


@pytest.fixture
def patient(database, clinic):
    """``patient(practitioner=0, program=True, language="en")``: a patient (and a daily program
    from a week ago with that practitioner); returns (patient id, program id or None)."""

    def make(*, practitioner=0, program=True, language="en", phone=PHONE, first_name="Ana"):
        with database.unit_of_work() as s:
            person = Patient(
                first_name=first_name,
                last_name="Silva",
                phone=phone,
                email=f"{first_name.lower()}@example.com",
                language=language,
                sms_consent=True,
                exercise_sms_consent=True,
            )
            s.add(person)
            exercise = s.scalars(select(Exercise)).first() or Exercise(
                key="nerve_glide",
                name_en="Nerve glide",
                name_fr="Glissement neural",
                instructions_en="Slowly.",
                instructions_fr="Lentement.",
            )
            s.add(exercise)
            s.flush()
            made = None
            if program:
                made = create_program(
                    s,
                    patient_id=person.id,
                    practitioner_id=clinic.practitioner_ids[practitioner],
                    location_id=clinic.location_id,
                    items=[ItemSpec(exercise.id)],
                    days=list(range(7)),
                    time_of_day=time(18),
                    start=TODAY - timedelta(days=7),
                    secret_key=SECRET,
                    now=NOW,
                ).id
            return person.id, made

    return make


def log_pain(database, program_id, scores: dict[int, int]):
    """Pain logged ``days_ago: score`` by the program page."""
    with database.unit_of_work() as s:
        program = s.get(Program, program_id)
        for days_ago, score in scores.items():
            s.add(
                ProgramLog(
                    program_id=program.id,
                    patient_id=program.patient_id,
                    local_date=TODAY - timedelta(days=days_ago),
                    done=True,
                    pain=score,
                    source="page",
                )
            )


_sid = iter(range(1, 10**6))


def text(client, body: str, *, from_: str = PHONE):
    params = {
        "MessageSid": f"SM{next(_sid):032x}",
        "AccountSid": "AC" + "0" * 32,
        "From": from_,
        "To": "+15005550006",
        "Body": body,
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(BASE_URL + "/webhooks/twilio/sms", params)
    response = client.post("/webhooks/twilio/sms", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    return response


def rows(database, **where) -> list[OutboxMessage]:
    with database.unit_of_work() as s:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        for name, value in where.items():
            query = query.where(getattr(OutboxMessage, name) == value)
        return list(s.scalars(query))


def open_alerts(database) -> list[Alert]:
    with database.unit_of_work() as s:
        return list(s.scalars(select(Alert).where(Alert.status == "open").order_by(Alert.id)))


def program(database, program_id) -> Program:
    with database.unit_of_work() as s:
        return s.get(Program, program_id)


def today_log(database, program_id) -> ProgramLog | None:
    with database.unit_of_work() as s:
        return s.scalars(
            select(ProgramLog).where(ProgramLog.program_id == program_id, ProgramLog.local_date == TODAY)
        ).first()


# --------------------------------------------------------------------------- red flags end to end


def test_a_red_flag_text_alerts_the_console_emails_the_clinic_answers_with_safety_and_pauses_nudges(
    database, twilio, desk_client, patient, fake, smtp
):
    _, program_id = patient()
    text(twilio, "I can't feel my groin and my legs feel weak")

    # On the console at once, with the nav badge.
    page = desk_client.get("/staff/alerts").get_data(as_text=True)
    assert "Ana Silva" in page and "Red flag" in page and "can&#39;t feel my groin" in page
    assert '<span class="count count-alert">1<' in page
    # Nudges paused until acknowledged.
    paused = program(database, program_id)
    assert (paused.status, paused.pause_reason) == ("paused", "alert")

    # The clinic's e-mail and the safety reply are due now; the worker sends them.
    [email] = rows(database, kind="alert")
    assert (email.channel, email.to, email.due_at) == ("email", CLINIC_EMAIL, NOW)
    [reply] = rows(database, kind="reply")
    assert (reply.channel, reply.to, reply.template, reply.due_at) == ("sms", PHONE, "reply_red_flag", NOW)
    settings = settings_from(fake.environ(), smtp.environ(), SECRET_KEY=SECRET, PUBLIC_BASE_URL=BASE_URL)
    transports = build_transports(settings, send_timeout=send_timeout_for(DEFAULT_LEASE))
    for row_id in claim_due(database, worker_id="w", now=NOW, limit=10):
        send_one(database, row_id, transports=transports, settings=settings, worker_id="w", now_fn=lambda: NOW)
    [mail] = smtp.messages
    assert mail.rcpt_tos == [CLINIC_EMAIL]
    body = mail.message.get_body(("plain",)).get_content()
    assert "possible red flag" in body and f"{BASE_URL}/staff/alerts" in body
    for private in ("groin", "weak", "Ana", "Silva", PHONE):
        assert private not in body and private not in mail.message["Subject"]
    [sms] = fake.messages
    assert sms["to"] == PHONE and "emergency department or call 911" in sms["body"]
    assert "groin" not in sms["body"]

    # Acknowledging resumes the program and clears the badge.
    [alert] = open_alerts(database)
    assert desk_client.post(f"/staff/alerts/{alert.id}/acknowledge").status_code == 302
    assert program(database, program_id).status == "active"
    page = desk_client.get("/staff/alerts").get_data(as_text=True)
    assert "No open alerts." in page and "count-alert" not in page


def test_a_french_red_flag_gets_the_safety_reply_in_french(database, twilio, patient):
    patient(language="fr")
    text(twilio, "J'ai un engourdissement dans les deux jambes")
    [reply] = rows(database, kind="reply")
    with database.unit_of_work() as s:
        settings = {"PUBLIC_BASE_URL": BASE_URL, "SECRET_KEY": SECRET}
        sms = render(s, s.get(OutboxMessage, reply.id), settings=settings, clinic=get_clinic(s), now=NOW)
    assert "allez à l'urgence ou composez le 911" in sms.body
    [alert] = open_alerts(database)
    assert alert.kind == "red_flag" and "both legs affected" in alert.text


def test_a_red_flag_without_a_program_still_alerts_and_answers(database, twilio, patient):
    patient_id, _ = patient(program=False)
    text(twilio, "lost control of my bladder")
    [alert] = open_alerts(database)
    assert (alert.patient_id, alert.kind, alert.program_id) == (patient_id, "red_flag", None)
    assert [r.template for r in rows(database, kind="reply")] == ["reply_red_flag"]
    assert [r.to for r in rows(database, kind="alert")] == [CLINIC_EMAIL]


# --------------------------------------------------------------------------- logging by text


def test_done_logs_today_and_thanks(database, twilio, patient):
    _, program_id = patient()
    text(twilio, "FAIT")
    log = today_log(database, program_id)
    assert (log.done, log.source) == (True, "sms")
    assert [r.template for r in rows(database, kind="reply")] == ["reply_logged"]
    assert open_alerts(database) == []


def test_a_pain_score_is_recorded_with_thanks_and_no_alert_near_the_baseline(database, twilio, patient):
    _, program_id = patient()
    log_pain(database, program_id, {1: 4, 2: 4, 3: 5})
    text(twilio, "pain 6/10")
    assert today_log(database, program_id).pain == 6
    assert [r.template for r in rows(database, kind="reply")] == ["reply_logged"]
    assert open_alerts(database) == [] and program(database, program_id).status == "active"


def test_pain_3_above_the_baseline_alerts(database, twilio, patient):
    _, program_id = patient()
    log_pain(database, program_id, {1: 3, 2: 4, 3: 3, 4: 2})  # median 3
    text(twilio, "douleur 6")
    [alert] = open_alerts(database)
    assert alert.kind == "pain" and "3 above the usual 3" in alert.text
    assert today_log(database, program_id).pain == 6
    assert [r.template for r in rows(database, kind="reply")] == ["reply_pain_alert"]
    assert program(database, program_id).status == "paused"


def test_pain_of_8_alerts_even_without_a_baseline(database, twilio, patient):
    patient()
    text(twilio, "8")
    [alert] = open_alerts(database)
    assert alert.kind == "pain" and "8 or more" in alert.text
    assert [r.to for r in rows(database, kind="alert")] == [CLINIC_EMAIL]


def test_a_number_without_a_program_goes_to_the_staff_inbox_as_before(database, twilio, desk_client, patient):
    patient(program=False)
    text(twilio, "DONE")
    assert rows(database, kind="reply") == [] and open_alerts(database) == []
    assert "DONE" in desk_client.get("/staff/inbox").get_data(as_text=True)


# --------------------------------------------------------------------------- urgent booking


def test_a_red_flag_screen_answered_yes_at_booking_raises_an_urgent_booking_alert(database, booked, desk_client):
    booked(red_flags={"bladder_bowel": True})
    [alert] = open_alerts(database)
    assert alert.kind == "urgent_booking" and "bladder_bowel" in alert.text
    assert [r.to for r in rows(database, kind="alert")] == [CLINIC_EMAIL]
    assert rows(database, kind="reply") == []  # the booking page gave the urgent-care guidance
    assert "Urgent booking" in desk_client.get("/staff/alerts").get_data(as_text=True)


# --------------------------------------------------------------------------- the API


def api_token(database, email):
    with database.unit_of_work() as s:
        return create_api_token(s, email, now=NOW)


def test_the_alerts_api_lists_and_acknowledges_in_the_contract_shape(database, app, users, twilio, patient):
    _, program_id = patient()
    text(twilio, "8")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(database, 'desk@example.com')}"}
    assert client.get("/api/v1/alerts").status_code == 401
    answer = client.get("/api/v1/alerts?status=open", headers=headers)
    assert answer.status_code == 200
    [alert] = answer.get_json()["alerts"]
    assert set(alert) == {"id", "patient_id", "kind", "status", "created_at", "text"}
    assert (alert["kind"], alert["status"], alert["created_at"]) == ("pain", "open", "2026-11-23T13:00:00+00:00")
    acknowledged = client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=headers)
    assert acknowledged.status_code == 200 and acknowledged.get_json()["status"] == "acknowledged"
    assert client.get("/api/v1/alerts", headers=headers).get_json() == {"alerts": []}
    assert program(database, program_id).status == "active"
    assert client.get("/api/v1/alerts?status=later", headers=headers).status_code == 422
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "/api/v1/alerts" in paths and "/api/v1/alerts/{alert_id}/acknowledge" in paths


def test_a_practitioner_sees_only_their_own_patients_alerts(database, app, users, twilio, patient):
    patient(practitioner=0, phone="+14165550171", first_name="Mine")
    patient(practitioner=1, phone="+14165550172", first_name="Theirs")
    text(twilio, "9", from_="+14165550171")
    text(twilio, "9", from_="+14165550172")
    mine, theirs = open_alerts(database)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(database, 'maya@example.com')}"}
    listed = client.get("/api/v1/alerts", headers=headers).get_json()["alerts"]
    assert [a["id"] for a in listed] == [mine.id]
    assert client.post(f"/api/v1/alerts/{theirs.id}/acknowledge", headers=headers).status_code == 404
    assert len(open_alerts(database)) == 2
    physio = app.test_client()
    login(physio, "maya@example.com")
    page = physio.get("/staff/alerts").get_data(as_text=True)
    assert "Mine Silva" in page and "Theirs Silva" not in page
    assert physio.post(f"/staff/alerts/{theirs.id}/acknowledge").status_code == 404  # the policy: not theirs
    assert len(open_alerts(database)) == 2


# --------------------------------------------------------------------------- practitioner view


def points(svg: str, series: str) -> list[tuple[str, str]]:
    import re

    return re.findall(rf'<g class="point" data-series="{series}" data-date="([0-9-]+)" data-value="(\d+)">', svg)


def test_the_pain_chart_plots_each_score_with_a_label_and_the_psfs_marks_a_2_point_change():
    pain = [(date(2026, 11, 16), 6), (date(2026, 11, 18), 5), (date(2026, 11, 20), 3)]
    svg = str(charts.pain_chart(pain))
    assert points(svg, "Pain") == [("2026-11-16", "6"), ("2026-11-18", "5"), ("2026-11-20", "3")]
    assert "<title" in svg and 'role="img"' in svg and "stroke-dasharray" not in svg
    psfs = {"Sitting": [(date(2026, 11, 16), 3), (date(2026, 11, 19), 4), (date(2026, 11, 22), 6)]}
    svg = str(charts.function_chart(psfs))
    assert points(svg, "Sitting") == [("2026-11-16", "3"), ("2026-11-19", "4"), ("2026-11-22", "6")]
    assert svg.count('class="change"') == 2 and ">+2</text>" in svg  # ring and label on the 6
    assert charts.change_reached(psfs["Sitting"]) == date(2026, 11, 22)
    assert "No scores yet" in str(charts.pain_chart([]))


def test_the_practitioner_view_puts_alerts_first_and_shows_the_program(database, app, users, twilio, patient, booked):
    _, quiet = patient(phone="+14165550173", first_name="Quiet")
    _, alerted = patient(phone="+14165550174", first_name="Alerted")
    log_pain(database, quiet, {1: 2, 2: 2})
    log_pain(database, alerted, {1: 3})
    text(twilio, "both legs are numb", from_="+14165550174")
    physio = app.test_client()
    login(physio, "maya@example.com")
    listing = physio.get("/staff/progress").get_data(as_text=True)
    assert listing.index("Alerted Silva") < listing.index("Quiet Silva")
    assert "1 open alert" in listing
    page = physio.get(f"/staff/progress/{alerted}").get_data(as_text=True)
    assert 'id="pain-chart"' in page and 'id="psfs-chart"' in page
    assert 'data-date="2026-11-22" data-value="3"' in page and "Acknowledge" in page
    # Another practitioner's program is not shown to Maya.
    _, other = patient(practitioner=1, phone="+14165550175", first_name="Other")
    assert physio.get(f"/staff/progress/{other}").status_code == 404
    # The appointment page carries the summary.
    appointment_id = booked(phone="+14165550173", first_name="Quiet", last_name="Silva", email="quiet@example.com")
    summary = physio.get(f"/staff/appointments/{appointment_id}").get_data(as_text=True)
    assert "Home exercises" in summary and "Last pain" in summary


def test_the_attention_list_costs_the_same_queries_for_one_program_or_many(database, patient):
    from sqlalchemy import event

    from booking_service.exercises.attention import needing_attention

    def queries() -> tuple[int, int]:
        count = [0]

        def tick(*_args):
            count[0] += 1

        event.listen(database.engine, "before_cursor_execute", tick)
        try:
            with database.unit_of_work() as s:
                listed = len(needing_attention(s, practitioner_id=None, now=NOW))
        finally:
            event.remove(database.engine, "before_cursor_execute", tick)
        return listed, count[0]

    _, first = patient(phone="+14165550181", first_name="One")
    log_pain(database, first, {1: 3, 2: 4})
    one = queries()
    for i in range(3):
        _, program_id = patient(phone=f"+1416555019{i}", first_name=f"More{i}")
        log_pain(database, program_id, {1: 5})

    many = queries()

    assert (one[0], many[0]) == (1, 4)
    assert many[1] == one[1], (one, many)
