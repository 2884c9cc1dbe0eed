"""Patients at the desk: contact details edited as the patient gives them (audited, a STOP
respected), staff notes, the duplicate warning before a new record, and two records compared and
merged with everything they hold. Console and staff API, SQLite and PostgreSQL; time frozen on
Monday 2026-11-23 08:00 in Toronto (``tests.console_fixtures``)."""

from __future__ import annotations

import html
from datetime import date

import pytest
from sqlalchemy import func, select

from booking_service import errors
from booking_service.audit.models import AuditEvent
from booking_service.exercises.models import Alert, Program
from booking_service.messaging.models import InboundMessage
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.consent import opt_out_phone
from booking_service.patients.desk import add_note, update_details
from booking_service.patients.duplicates import (
    NAME_AND_BIRTH_DATE,
    SAME_EMAIL,
    SAME_PHONE,
    find_duplicates,
    names_similar,
)
from booking_service.patients.models import ConsentEvent, Patient, PatientNote
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.staff.operations import create_api_token
from booking_service.waitlist.models import WaitlistEntry
from booking_service.waitlist.operations import WaitlistRequest, join_waitlist
from tests.conftest import NOW, local
from tests.support.programs import add_program

pytest_plugins = ["tests.console_fixtures"]

ANA_PHONE = "+14165550142"


def text(response) -> str:
    """The page as a reader sees it (entities such as &#39; decoded)."""
    return html.unescape(response.get_data(as_text=True))


def flashed(client) -> str:
    return text(client.get("/staff/"))


def patient_of(database, appointment_id: int) -> int:
    with database.unit_of_work() as s:
        return s.get(Appointment, appointment_id).patient_id


def edit_form(**changes) -> dict:
    form = {
        "first_name": "Ana",
        "last_name": "Silva",
        "phone": "416 555 0142",
        "email": "ana@example.com",
        "language": "en",
        "birth_date": "",
        "sms_consent": "yes",
        "email_consent": "yes",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def audit_rows(database, action: str) -> list[AuditEvent]:
    with database.unit_of_work() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))
        s.expunge_all()
        return rows


# --- contact details ----------------------------------------------------------------------------------


def test_the_desk_edits_contact_details_and_the_trail_names_the_fields_not_the_values(desk, database, booked):
    patient_id = patient_of(database, booked())
    response = desk.post(
        f"/staff/patients/{patient_id}/edit",
        data=edit_form(phone="(416) 555-0199", email="ana.silva@example.org", birth_date="1984-05-02"),
    )
    assert response.status_code == 302
    assert "Saved Ana Silva's details (email, phone, birth date)" in flashed(desk)
    with database.unit_of_work() as s:
        patient = s.get(Patient, patient_id)
        assert (patient.phone, patient.email, patient.birth_date) == (
            "+14165550199",
            "ana.silva@example.org",
            date(1984, 5, 2),
        )
        # The visit's reminders still waiting go to the new number and address.
        pending = s.scalars(
            select(OutboxMessage.to).where(OutboxMessage.patient_id == patient_id, OutboxMessage.status == "pending")
        ).all()
        assert pending and set(pending) <= {"+14165550199", "ana.silva@example.org"}
    [event] = audit_rows(database, "patient.update")
    assert event.patient_id == patient_id and event.actor_label == "desk@example.com"
    assert event.detail == {"changed": ["email", "phone", "birth_date"]}
    assert "0199" not in str(event.detail) and "example.org" not in str(event.detail)


def test_bad_details_are_refused_field_by_field_and_nothing_changes(desk, database, booked):
    patient_id = patient_of(database, booked())
    response = desk.post(
        f"/staff/patients/{patient_id}/edit", data=edit_form(phone="12345", birth_date="2090-01-01", last_name="")
    )
    assert response.status_code == 422
    page = text(response)
    assert "This is not a valid phone number" in page
    assert "Give a date of birth in the past" in page
    assert "Enter the patient's last name." in page
    with database.unit_of_work() as s:
        assert s.get(Patient, patient_id).phone == ANA_PHONE
    assert audit_rows(database, "patient.update") == []


def test_staff_cannot_record_a_consent_to_texts_for_a_number_that_replied_stop(desk, database, booked):
    patient_id = patient_of(database, booked(sms_consent=False))
    with database.unit_of_work() as s:
        opt_out_phone(s, ANA_PHONE, source="sms_reply", now=NOW)
    refused = desk.post(f"/staff/patients/{patient_id}/edit", data=edit_form(sms_consent="yes"))
    assert refused.status_code == 422
    assert "replied STOP" in text(refused)
    with database.unit_of_work() as s:
        assert s.get(Patient, patient_id).sms_consent is False
    # Withdrawing is always allowed, and recorded in the consent history as the desk's.
    assert desk.post(f"/staff/patients/{patient_id}/edit", data=edit_form(sms_consent=None, email_consent=None))
    with database.unit_of_work() as s:
        patient = s.get(Patient, patient_id)
        assert patient.email_consent is False
        withdrawn = s.scalars(
            select(ConsentEvent).where(ConsentEvent.patient_id == patient_id, ConsentEvent.channel == "email")
        ).all()
        assert [(e.granted, e.source) for e in withdrawn][-1] == (False, "staff")


def test_the_staff_api_patches_only_the_fields_given(client, database, users, booked):
    patient_id = patient_of(database, booked())
    with database.unit_of_work() as s:
        token = create_api_token(s, "desk@example.com", now=NOW)
    headers = {"Authorization": f"Bearer {token}"}
    changed = client.patch(
        f"/api/v1/patients/{patient_id}", headers=headers, json={"phone": "416 555 0177", "birth_date": "1990-02-03"}
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["phone"], body["email"], body["birth_date"]) == ("+14165550177", "ana@example.com", "1990-02-03")
    assert body["appointments"] and body["sms_consent"] is True

    bad = client.patch(f"/api/v1/patients/{patient_id}", headers=headers, json={"email": "not an address"})
    assert bad.status_code == 422
    assert bad.get_json()["error"]["fields"] == {"email": "This email address does not look right."} or (
        "email" in bad.get_json()["error"]["fields"]
    )
    with database.unit_of_work() as s:
        opt_out_phone(s, "+14165550177", source="sms_reply", now=NOW)
        s.get(Patient, patient_id).sms_consent = False
    stop = client.patch(f"/api/v1/patients/{patient_id}", headers=headers, json={"sms_consent": True})
    assert stop.status_code == 422
    assert "START" in stop.get_json()["error"]["fields"]["sms_consent"]
    assert client.patch(f"/api/v1/patients/{patient_id}", json={"phone": "416 555 0100"}).status_code == 401
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "patch" in spec["paths"]["/api/v1/patients/{patient_id}"]


def test_a_practitioner_edits_only_their_own_patients(console_app, physio, database, booked):
    mine = patient_of(database, booked(practitioner=0))
    theirs = patient_of(
        database,
        booked(
            local("2026-11-24", "14:00"),
            practitioner=1,
            first_name="Bea",
            email="bea@example.com",
            phone="+14165550188",
        ),
    )
    assert physio.get(f"/staff/patients/{mine}/edit").status_code == 200
    assert physio.post(f"/staff/patients/{theirs}/edit", data=edit_form(first_name="Bee")).status_code == 404
    with database.unit_of_work() as s:
        assert s.get(Patient, theirs).first_name == "Bea"


# --- staff notes --------------------------------------------------------------------------------------


def test_staff_notes_are_kept_on_the_record_readable_by_every_role_and_audited_without_their_text(
    console_app, desk, admin, physio, database, booked
):
    patient_id = patient_of(database, booked(practitioner=0))
    note = "Prefers morning visits; hard of hearing on the left."
    assert desk.post(f"/staff/patients/{patient_id}/notes", data={"body": note}).status_code == 302
    for client in (desk, admin, physio):
        page = text(client.get(f"/staff/patients/{patient_id}"))
        assert "hard of hearing on the left" in page and "Dana Desk" in page
    with database.unit_of_work() as s:
        note_id = s.scalars(select(PatientNote.id)).one()
    assert physio.post(f"/staff/patients/{patient_id}/notes/{note_id}", data={"body": note + " Uses a cane."})
    with database.unit_of_work() as s:
        saved = s.get(PatientNote, note_id)
        assert saved.body.endswith("Uses a cane.") and saved.updated_at is not None
        assert saved.updated_by_user_id != saved.created_by_user_id
    added, edited = audit_rows(database, "patient.note_add"), audit_rows(database, "patient.note_edit")
    assert [e.detail["note_id"] for e in added + edited] == [note_id, note_id]
    assert all("hearing" not in str(e.detail) for e in added + edited)
    # Never in anything sent to the patient.
    with database.unit_of_work() as s:
        bodies = s.scalars(select(OutboxMessage.body)).all()
        payloads = s.scalars(select(OutboxMessage.payload)).all()
    assert not any("hearing" in (b or "") for b in bodies) and "hearing" not in str(payloads)


def test_an_empty_note_is_refused_with_a_message(desk, database, booked):
    patient_id = patient_of(database, booked())
    desk.post(f"/staff/patients/{patient_id}/notes", data={"body": "   "})
    assert "Write the note first." in flashed(desk)
    with database.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(PatientNote)) == 0


# --- duplicates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "similar"),
    [
        (("Hélène", "St-Pierre"), ("Helene", "St Pierre"), True),
        (("Maya", "Chen"), ("Chen", "Maya"), True),  # first and last swapped
        (("Jon", "Smith"), ("John", "Smith"), True),
        (("Alex", "Tremblay"), ("Alexandra", "Tremblay"), True),
        (("Jane", "Smith"), ("John", "Smith"), False),
        (("Maya", "Chen"), ("Mia", "Okafor"), False),
    ],
)
def test_names_are_compared_folded_and_swapped(a, b, similar):
    assert names_similar(*a, *b) is similar


def test_duplicate_candidates_share_a_phone_an_email_or_a_similar_name_and_birth_date(database, clinic):
    with database.unit_of_work() as s:
        people = [
            Patient(first_name="Ana", last_name="Silva", phone=ANA_PHONE, email="ana@example.com"),
            Patient(first_name="Ben", last_name="Silva", email="family@example.com"),
            Patient(first_name="Hélène", last_name="St-Pierre", email="h@example.com", birth_date=date(1970, 3, 1)),
            Patient(first_name="Helen", last_name="Stone", email="hs@example.com", birth_date=date(1970, 3, 1)),
            Patient(first_name="Erased", last_name="Erased", phone=None, email="family@example.com"),
        ]
        s.add_all(people)
        s.flush()
        people[-1].erased_at = NOW
        ids = [p.id for p in people]

        by_phone = find_duplicates(s, first_name="Anna", last_name="Silva", phone="416-555-0142")
        assert [(c.patient.id, c.reasons) for c in by_phone] == [(ids[0], (SAME_PHONE,))]
        by_email = find_duplicates(s, first_name="Carl", last_name="Silva", email="Family@Example.com")
        assert [c.patient.id for c in by_email] == [ids[1]]  # the erased record is never a candidate
        by_birth = find_duplicates(
            s, first_name="Helene", last_name="St Pierre", email="new@example.com", birth_date=date(1970, 3, 1)
        )
        assert [(c.patient.id, c.reasons) for c in by_birth] == [(ids[2], (NAME_AND_BIRTH_DATE,))]
        both = find_duplicates(s, first_name="Ana", last_name="Silva", phone=ANA_PHONE, email="ana@example.com")
        assert both[0].reasons == (SAME_PHONE, SAME_EMAIL)
        assert find_duplicates(s, first_name="Zoe", last_name="Wu", email="zoe@example.com") == []


def booking_form(clinic, **changes) -> dict:
    form = {
        "service": str(clinic.follow_up_id),
        "location": str(clinic.location_id),
        "practitioner": str(clinic.practitioner_ids[0]),
        "date": "2026-11-24",
        "start": "2026-11-24T15:00Z",
        "first_name": "Helene",
        "last_name": "St Pierre",
        "phone": "416 555 0161",
        "email": "",
        "birth_date": "1970-03-01",
        "language": "en",
        "sms_consent": "yes",
    }
    form.update(changes)
    return form


@pytest.fixture
def helene(database, clinic) -> int:
    with database.unit_of_work() as s:
        patient = Patient(first_name="Hélène", last_name="St-Pierre", phone="+14165550160", birth_date=date(1970, 3, 1))
        s.add(patient)
        s.flush()
        return patient.id


def appointments_of(database) -> list[tuple[int, str]]:
    with database.unit_of_work() as s:
        return [(a.patient_id, a.status) for a in s.scalars(select(Appointment).order_by(Appointment.id))]


def test_booking_a_caller_who_may_be_on_file_asks_first_and_books_the_chosen_record(desk, database, clinic, helene):
    warned = desk.post("/staff/book", data=booking_form(clinic))
    assert warned.status_code == 200
    page = text(warned)
    assert "Already on file?" in page and "similar name, same date of birth" in page
    assert f'name="patient_choice" value="{helene}"' in page and 'value="new"' in page
    assert appointments_of(database) == []  # nothing booked until the desk chooses

    chosen = desk.post("/staff/book", data=booking_form(clinic, patient_choice=str(helene)))
    assert chosen.status_code == 302
    assert appointments_of(database) == [(helene, "booked")]
    with database.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
        assert s.get(Patient, helene).phone == "+14165550160"  # the details on file


def test_none_of_these_makes_a_new_patient_and_books_them(desk, database, clinic, helene):
    created = desk.post("/staff/book", data=booking_form(clinic, patient_choice="new"))
    assert created.status_code == 302
    with database.unit_of_work() as s:
        newest = s.scalars(select(Patient).order_by(Patient.id.desc())).first()
        assert newest.id != helene and newest.phone == "+14165550161" and newest.birth_date == date(1970, 3, 1)
    assert appointments_of(database) == [(newest.id, "booked")]
    assert [e.resource_id for e in audit_rows(database, "patient.create")] == [newest.id]


def test_a_returning_caller_with_the_same_name_and_number_is_booked_without_a_warning(desk, database, clinic, helene):
    same = booking_form(clinic, first_name="Hélène", last_name="St-Pierre", phone="416 555 0160")
    assert desk.post("/staff/book", data=same).status_code == 302
    assert appointments_of(database) == [(helene, "booked")]


def test_the_new_patient_page_warns_then_creates_on_none_of_these(desk, database, clinic, helene):
    form = {"first_name": "Helen", "last_name": "Saint-Pierre", "phone": "416 555 0160", "language": "en"}
    warned = desk.post("/staff/patients/new", data=form)
    assert warned.status_code == 200 and "same mobile number" in text(warned)
    opened = desk.post("/staff/patients/new", data={**form, "patient_choice": str(helene)})
    assert opened.headers["Location"].endswith(f"/staff/patients/{helene}")
    made = desk.post("/staff/patients/new", data={**form, "patient_choice": "new", "sms_consent": "yes"})
    assert made.status_code == 302
    with database.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 2
        newest = s.scalars(select(Patient).order_by(Patient.id.desc())).first()
        assert newest.sms_consent and newest.possible_duplicate_of_id is None


def test_the_front_desk_only_registers_new_patients(physio):
    assert physio.get("/staff/patients/new").status_code == 403


# --- merge ----------------------------------------------------------------------------------------------


@pytest.fixture
def two_records(database, clinic, booked) -> tuple[int, int]:
    """Ana's record, and another of her made at the desk with everything a record can hold:
    a visit and its messages, consents, an exercise program with an alert, a waitlist entry, a
    text she sent, a staff note."""
    kept = patient_of(database, booked())
    other_visit = booked(
        local("2026-11-25", "09:00"),
        first_name="Ana",
        last_name="Silva-Reyes",
        email="ana.reyes@example.com",
        phone="+14165550155",
    )
    other = patient_of(database, other_visit)
    with database.unit_of_work() as s:
        program = add_program(s, clinic, other)
        s.add(Alert(patient_id=other, program_id=program.id, kind="pain", source="sms", text="Pain 9", created_at=NOW))
        s.add(
            InboundMessage(
                patient_id=other,
                from_phone="+14165550155",
                body="DONE",
                intent="done",
                received_at=NOW,
                provider_id="SMdesk1",
            )
        )
        join_waitlist(
            s,
            WaitlistRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                earliest_date=date(2026, 11, 30),
                latest_date=date(2026, 12, 4),
                patient=PatientDetails("Ana", "Silva-Reyes", email="ana.reyes@example.com", phone="+14165550155"),
            ),
            now=NOW,
        )
        add_note(s, other, "Came in with her sister.", user_id=None, now=NOW)
    return kept, other


def test_the_comparison_shows_both_records_side_by_side_with_what_each_holds(desk, database, two_records):
    kept, other = two_records
    page = text(desk.get(f"/staff/patients/{kept}/compare?other={other}"))
    assert "Silva-Reyes" in page and "ana.reyes@example.com" in page and "ana@example.com" in page
    for label in (
        "Appointments",
        "Messages",
        "Consent history",
        "Exercise programs",
        "Alerts",
        "Waitlist entries",
        "Staff notes",
        "Texts received",
    ):
        assert label in page, label
    assert 'name="take" value="email"' in page and f'name="merge_id" value="{other}"' in page
    found = text(desk.get(f"/staff/patients/{kept}/compare?q=Reyes"))
    assert f"/staff/patients/{kept}/compare?other={other}" in found


def test_merging_from_the_console_moves_everything_and_is_audited(desk, database, two_records):
    kept, other = two_records
    done = desk.post(f"/staff/patients/{kept}/merge", data={"merge_id": other, "take": ["email"]})
    assert done.status_code == 302 and f"Merged patient #{other}" in flashed(desk)
    with database.unit_of_work() as s:
        assert s.get(Patient, other) is None
        assert s.get(Patient, kept).email == "ana.reyes@example.com"
        for model in (
            Appointment,
            OutboxMessage,
            ConsentEvent,
            Program,
            Alert,
            WaitlistEntry,
            InboundMessage,
            PatientNote,
        ):
            owners = set(s.scalars(select(model.patient_id).where(model.patient_id.is_not(None))))
            assert owners == {kept}, model.__name__
        assert s.scalar(select(func.count()).select_from(Appointment)) == 2
    [event] = audit_rows(database, "patient.merge")
    assert event.detail["merged_id"] == other and event.detail["took"] == ["email"]
    moved = dict(item.split(":") for item in event.detail["moved"])
    for table in ("appointments", "programs", "alerts", "waitlist_entries", "patient_notes", "consent_events"):
        assert int(moved[table]) >= 1, table


def test_merging_a_record_into_itself_is_refused_in_the_desks_words(desk, database, booked):
    patient_id = patient_of(database, booked())
    desk.post(f"/staff/patients/{patient_id}/merge", data={"merge_id": patient_id})
    assert "Choose two different patients." in flashed(desk)


def test_update_details_refuses_an_erased_record(database, clinic):
    with database.unit_of_work() as s:
        patient = Patient(first_name="Erased", last_name="Erased", erased_at=NOW)
        s.add(patient)
        s.flush()
        with pytest.raises(errors.Conflict):
            update_details(
                s,
                patient.id,
                PatientDetails("Ana", "Silva", email="ana@example.com"),
                birth_date=None,
                country="CA",
                default_language="en",
                now=NOW,
            )


def test_notes_and_the_birth_date_are_in_the_patients_export_and_cleared_by_an_erase(database, booked):
    from booking_service.usecases.erase import erase_patient
    from booking_service.usecases.export import export_patient

    patient_id = patient_of(database, booked())
    with database.unit_of_work() as s:
        s.get(Patient, patient_id).birth_date = date(1984, 5, 2)
        add_note(s, patient_id, "Prefers mornings.", user_id=None, now=NOW)
    with database.unit_of_work() as s:
        data = export_patient(s, patient_id, now=NOW)
    assert data["patient"]["birth_date"] == "1984-05-02"
    assert [n["body"] for n in data["patient_notes"]] == ["Prefers mornings."]
    with database.unit_of_work() as s:
        counts = erase_patient(s, patient_id, confirmation="Silva", now=NOW)
    assert counts["patient_notes"] == 1
    with database.unit_of_work() as s:
        assert s.get(Patient, patient_id).birth_date is None
        assert s.scalars(select(PatientNote.body)).all() == [""]
