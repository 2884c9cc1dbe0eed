"""Setting up the clinic: the domain (``clinic.catalogue``, ``usecases.catalogue``) on both engines,
and the console's admin pages for the clinic, locations, practitioners and services.

Time is frozen at Monday 2026-11-23 08:00 in Toronto (``tests.console_fixtures``). The clinic of
``make_clinic``: one Toronto location, Maya Chen and Daniel Okafor, an initial assessment (60
min) and a follow-up (30 min + 15 min buffer).
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from booking_service import errors
from booking_service.api.messages import error_message, field_messages
from booking_service.audit.models import AuditEvent
from booking_service.clinic import catalogue
from booking_service.clinic.catalogue import ClinicFields, LocationFields, PractitionerFields, ServiceFields
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.clinic.queries import practitioners_for
from booking_service.console.common import staff_field_errors, staff_message
from booking_service.errors import NotFound, ValidationFailed
from booking_service.scheduling.models import Appointment
from booking_service.usecases import catalogue as changes
from booking_service.usecases.catalogue import ImpactNotConfirmed
from tests.conftest import NOW, local
from tests.console_fixtures import TUESDAY_10, flashed, login, text

pytest_plugins = ["tests.console_fixtures"]


def location_fields(**changed) -> LocationFields:
    values = {
        "key": None,
        "name": "Midtown",
        "address": "2300 Yonge St",
        "phone": "416 555 0101",
        "timezone": "America/Toronto",
        "directions": "Enter from Eglinton; parking at the back.",
        "active": True,
    }
    return LocationFields(**{**values, **changed})


def service_fields(clinic, **changed) -> ServiceFields:
    values = {
        "key": None,
        "name": "Acupuncture",
        "name_fr": "Acupuncture",
        "kind": "other",
        "duration_minutes": 45,
        "buffer_minutes": 0,
        "price_cents": 9500,
        "online_bookable": True,
        "preparation_notes": "Wear loose clothing.",
        "description": "",
        "description_fr": "",
        "practitioner_ids": clinic.practitioner_ids,
        "active": True,
    }
    return ServiceFields(**{**values, **changed})


def fields_of(practitioner: Practitioner, **changed) -> PractitionerFields:
    values = {
        "key": practitioner.key,
        "first_name": practitioner.first_name,
        "last_name": practitioner.last_name,
        "profession": practitioner.profession,
        "bio": practitioner.bio,
        "photo_url": practitioner.photo_url,
        "location_ids": [loc.id for loc in practitioner.locations],
        "service_ids": [s.id for s in practitioner.services],
        "online_bookable": practitioner.online_bookable,
        "user_id": practitioner.user_id,
        "active": practitioner.active,
    }
    return PractitionerFields(**{**values, **changed})


def service_as_fields(service: Service, **changed) -> ServiceFields:
    values = {
        name: getattr(service, name)
        for name in (
            "key",
            "name",
            "name_fr",
            "kind",
            "duration_minutes",
            "buffer_minutes",
            "price_cents",
            "online_bookable",
            "preparation_notes",
            "description",
            "description_fr",
            "active",
        )
    }
    values["practitioner_ids"] = [p.id for p in service.practitioners]
    return ServiceFields(**{**values, **changed})


def refused(call) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        call()
    return caught.value


# --- the clinic ------------------------------------------------------------------------------------


def test_a_new_clinic_is_created_and_an_existing_one_updated(session):
    fields = ClinicFields(
        name="Bayview Physio",
        phone="604 555 0100",
        email="Front@Bayview.example",
        address="1 Main St, Vancouver",
        country="ca",
        timezone="America/Vancouver",
        languages=["fr", "en"],
        brand_color="#0F6E6E",
    )
    clinic = catalogue.update_clinic(session, fields)
    assert (clinic.id, clinic.phone, clinic.email, clinic.country, clinic.languages, clinic.brand_color) == (
        1,
        "+16045550100",
        "front@bayview.example",
        "CA",
        ["en", "fr"],
        "#0f6e6e",
    )
    assert clinic.slot_step_minutes == 15  # the policies start at their defaults

    clinic = catalogue.update_clinic(session, ClinicFields(**{**fields.__dict__, "languages": ["fr"]}))
    assert (clinic.languages, clinic.default_language) == (["fr"], "fr")
    actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["clinic.create", "clinic.update"]


def test_every_problem_of_the_clinics_details_is_named_at_once_and_nothing_changes(session, make_clinic):
    make_clinic()
    exc = refused(
        lambda: catalogue.update_clinic(
            session,
            ClinicFields("", "12345", "not-an-address", "", "ZZ", "Mars/Olympus", [], "#eeeeee"),
        )
    )
    assert exc.reason == errors.CLINIC_INVALID
    assert exc.fields == {
        "name": errors.VALUE_MISSING,
        "phone": errors.PHONE_INVALID,
        "email": errors.EMAIL_INVALID,
        "country": errors.COUNTRY_INVALID,
        "timezone": errors.TIMEZONE_INVALID,
        "languages": errors.LANGUAGES_INVALID,
        "brand_color": errors.COLOUR_CONTRAST_LOW,
    }
    assert session.get(ClinicSettings, 1).name == "Lakeshore Physio"
    worded = staff_field_errors(exc)
    assert worded["timezone"] == "Choose a time zone from the list, such as America/Toronto."
    assert worded["name"] == "This is needed."


# --- locations -------------------------------------------------------------------------------------


def test_a_location_gets_a_unique_key_from_its_name_and_a_normalised_phone(session, make_clinic):
    make_clinic()  # has "Downtown"
    first = catalogue.save_location(session, None, location_fields(name="Downtown"))
    second = catalogue.save_location(session, None, location_fields(name="Café Élan"))
    assert (first.key, second.key) == ("downtown-2", "cafe-elan")
    assert first.phone == "+14165550101"
    assert first.directions == "Enter from Eglinton; parking at the back."


def test_a_bad_location_names_every_field_in_the_consoles_and_the_apis_words(session, make_clinic):
    make_clinic()
    exc = refused(
        lambda: catalogue.save_location(
            session,
            None,
            location_fields(
                key="Down Town!", name=" ", address="", phone="555", timezone="Toronto", directions="x" * 1001
            ),
        )
    )
    assert exc.fields == {
        "key": errors.KEY_INVALID,
        "name": errors.VALUE_MISSING,
        "address": errors.VALUE_MISSING,
        "phone": errors.PHONE_INVALID,
        "timezone": errors.TIMEZONE_INVALID,
        "directions": errors.TOO_LONG,
    }
    assert staff_message(exc) == "Some of the location's details need fixing."
    assert staff_field_errors(exc)["directions"] == "Keep this under 1000 characters."
    assert error_message(exc) == "Some of the location's details need fixing: see the fields."
    assert field_messages(exc)["timezone"] == "Use an IANA time zone, such as America/Toronto."
    assert session.scalars(select(Location)).all().__len__() == 1


def test_a_key_taken_by_another_location_is_refused_and_its_own_key_is_kept(session, make_clinic):
    clinic = make_clinic()
    midtown = catalogue.save_location(session, None, location_fields(key="midtown"))
    exc = refused(lambda: catalogue.save_location(session, midtown.id, location_fields(key="downtown")))
    assert exc.fields == {"key": errors.KEY_TAKEN}
    same = catalogue.save_location(session, midtown.id, location_fields(key="midtown", name="Midtown North"))
    assert (same.key, same.name) == ("midtown", "Midtown North")
    kept = catalogue.save_location(session, clinic.location_id, location_fields(key=None, name="Downtown"))
    assert kept.key == "downtown"


def test_an_unknown_location_is_not_found(session, make_clinic):
    make_clinic()
    with pytest.raises(NotFound):
        catalogue.save_location(session, 999, location_fields())


# --- services ----------------------------------------------------------------------------------------


def test_a_service_is_saved_with_its_price_notes_and_practitioners(session, make_clinic):
    clinic = make_clinic()
    service = catalogue.save_service(session, None, service_fields(clinic))
    assert (service.key, service.price_cents, service.preparation_notes) == (
        "acupuncture",
        9500,
        "Wear loose clothing.",
    )
    assert sorted(p.id for p in service.practitioners) == sorted(clinic.practitioner_ids)
    assert service.sort_order > session.get(Service, clinic.follow_up_id).sort_order  # listed last
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "service.create")).one()
    assert event.resource_id == service.id


def test_a_duration_off_the_slot_grid_and_other_bad_values_are_named(session, make_clinic):
    clinic = make_clinic()
    exc = refused(
        lambda: catalogue.save_service(
            session,
            None,
            service_fields(
                clinic,
                key="initial-assessment",
                name="",
                kind="massage",
                duration_minutes=50,
                buffer_minutes=-5,
                price_cents=-1,
                practitioner_ids=[clinic.practitioner_ids[0], 999],
            ),
        )
    )
    assert exc.fields == {
        "key": errors.KEY_TAKEN,
        "name": errors.VALUE_MISSING,
        "kind": errors.KIND_INVALID,
        "duration_minutes": errors.DURATION_INVALID,
        "buffer_minutes": errors.NUMBER_OUT_OF_RANGE,
        "price_cents": errors.PRICE_INVALID,
        "practitioner_ids": errors.PRACTITIONER_UNKNOWN,
    }
    assert staff_field_errors(exc)["duration_minutes"] == (
        "Give a number of minutes in steps of 15 (the booking grid), up to 480."
    )


# --- practitioners -----------------------------------------------------------------------------------


def test_a_staff_login_must_be_a_free_active_practitioner_login(session, make_clinic):
    from booking_service.staff.operations import create_user

    clinic = make_clinic()
    desk, _ = create_user(session, "desk@example.com", role="frontdesk", password="long-enough-password")
    physio, _ = create_user(
        session,
        "maya@example.com",
        role="practitioner",
        password="long-enough-password",
        practitioner_id=clinic.practitioner_ids[0],
    )
    daniel = session.get(Practitioner, clinic.practitioner_ids[1])
    assert refused(
        lambda: catalogue.save_practitioner(session, daniel.id, fields_of(daniel, user_id=desk.id))
    ).fields == {"user_id": errors.STAFF_LOGIN_INVALID}
    exc = refused(lambda: catalogue.save_practitioner(session, daniel.id, fields_of(daniel, user_id=physio.id)))
    assert exc.fields == {"user_id": errors.STAFF_LOGIN_TAKEN}
    assert staff_field_errors(exc) == {"user_id": "This login is already used by Maya Chen."}


def test_a_practitioner_who_leaves_keeps_history_and_disappears_from_booking(session, make_clinic):
    clinic = make_clinic()
    maya = session.get(Practitioner, clinic.practitioner_ids[0])
    left = catalogue.save_practitioner(session, maya.id, fields_of(maya, active=False), now=NOW)
    assert (left.active, left.left_on) == (False, date(2026, 11, 23))
    assert [loc.id for loc in left.locations] == [clinic.location_id]  # kept, for their history
    assert [p.id for p in practitioners_for(session, location_id=clinic.location_id)] == [clinic.practitioner_ids[1]]

    back = catalogue.save_practitioner(session, maya.id, fields_of(maya, active=True), now=NOW)
    assert (back.active, back.left_on) == (True, None)


def test_a_practitioner_not_bookable_online_is_offered_to_staff_only(session, make_clinic):
    clinic = make_clinic()
    maya = session.get(Practitioner, clinic.practitioner_ids[0])
    catalogue.save_practitioner(session, maya.id, fields_of(maya, online_bookable=False), now=NOW)
    online = practitioners_for(session, location_id=clinic.location_id, online_only=True)
    assert [p.id for p in online] == [clinic.practitioner_ids[1]]
    assert len(practitioners_for(session, location_id=clinic.location_id)) == 2


def test_a_bad_photo_and_unknown_ids_are_named(session, make_clinic):
    clinic = make_clinic()
    exc = refused(
        lambda: catalogue.save_practitioner(
            session,
            None,
            PractitionerFields(
                key=None,
                first_name="Lee",
                last_name="",
                profession="",
                photo_url="http://example.com/lee.jpg",
                location_ids=[clinic.location_id, 404],
                service_ids=[405],
            ),
        )
    )
    assert exc.fields == {
        "last_name": errors.VALUE_MISSING,
        "profession": errors.VALUE_MISSING,
        "photo_url": errors.PHOTO_URL_INVALID,
        "location_ids": errors.LOCATION_UNKNOWN,
        "service_ids": errors.SERVICE_UNKNOWN,
    }


# --- the appointments a change leaves to move ----------------------------------------------------------


def test_leaving_lists_every_future_appointment_and_needs_confirming(database, clinic, booked):
    first = booked(TUESDAY_10, practitioner=0)
    second = booked(local("2026-11-25", "10:00"), practitioner=0, email="bo@example.com", first_name="Bo")
    booked(local("2026-11-24", "11:00"), practitioner=1, email="cy@example.com", first_name="Cy")
    with database.unit_of_work() as s:
        maya = s.get(Practitioner, clinic.practitioner_ids[0])
        with pytest.raises(ImpactNotConfirmed) as caught:
            changes.save_practitioner(s, maya.id, fields_of(maya, active=False), now=NOW)
        assert [a.id for a in caught.value.appointments] == [first, second]
        assert caught.value.params == {"count": 2}
        assert s.get(Practitioner, maya.id).active is True  # nothing saved
    with database.unit_of_work() as s:
        maya = s.get(Practitioner, clinic.practitioner_ids[0])
        saved, to_move = changes.save_practitioner(
            s, maya.id, fields_of(maya, active=False), now=NOW, confirm_impact=True
        )
        assert (saved.active, [a.id for a in to_move]) == (False, [first, second])
    with database.unit_of_work() as s:
        statuses = s.scalars(select(Appointment.status).where(Appointment.id.in_([first, second]))).all()
        assert statuses == ["booked", "booked"]  # never cancelled or moved


def test_removing_a_service_from_a_practitioner_lists_only_those_bookings(database, clinic, booked):
    initial = booked(TUESDAY_10, practitioner=0)
    follow_up = booked(
        local("2026-11-24", "14:00"), practitioner=0, service=clinic.follow_up_id, email="bo@example.com"
    )
    with database.unit_of_work() as s:
        maya = s.get(Practitioner, clinic.practitioner_ids[0])
        fields = fields_of(maya, service_ids=[clinic.initial_id])
        assert [a.id for a in changes.impact_of_practitioner(s, maya.id, fields, NOW)] == [follow_up]
        moved = fields_of(maya, location_ids=[])
        assert [a.id for a in changes.impact_of_practitioner(s, maya.id, moved, NOW)] == [initial, follow_up]


def test_a_longer_service_lists_the_visits_it_would_run_into_the_next_one(database, clinic, booked):
    # Maya: initial 10:00-11:00 then another at 11:00; Daniel: initial 10:00 with a free hour after.
    tight = booked(TUESDAY_10, practitioner=0)
    booked(local("2026-11-24", "11:00"), practitioner=0, email="bo@example.com", first_name="Bo")
    booked(TUESDAY_10, practitioner=1, email="cy@example.com", first_name="Cy")
    with database.unit_of_work() as s:
        service = s.get(Service, clinic.initial_id)
        longer = service_as_fields(service, duration_minutes=75)
        assert [a.id for a in changes.impact_of_service(s, service.id, longer, NOW)] == [tight]
        with_buffer = service_as_fields(service, buffer_minutes=15)
        assert [a.id for a in changes.impact_of_service(s, service.id, with_buffer, NOW)] == [tight]
        shorter = service_as_fields(service, duration_minutes=45)
        assert changes.impact_of_service(s, service.id, shorter, NOW) == []  # booked visits keep their length


def test_taking_a_practitioner_off_a_service_lists_their_bookings_of_it(database, clinic, booked):
    theirs = booked(TUESDAY_10, practitioner=1, email="cy@example.com")
    booked(TUESDAY_10, practitioner=0)
    with database.unit_of_work() as s:
        service = s.get(Service, clinic.initial_id)
        fields = service_as_fields(service, practitioner_ids=[clinic.practitioner_ids[0]])
        assert [a.id for a in changes.impact_of_service(s, service.id, fields, NOW)] == [theirs]


def test_closing_a_location_or_changing_its_zone_lists_its_future_appointments(database, clinic, booked):
    visit = booked(TUESDAY_10)
    with database.unit_of_work() as s:
        location = s.get(Location, clinic.location_id)
        same = location_fields(key=location.key, name=location.name, timezone=location.timezone)
        assert changes.impact_of_location(s, location.id, same, NOW) == []
        closed = location_fields(key=location.key, timezone=location.timezone, active=False)
        assert [a.id for a in changes.impact_of_location(s, location.id, closed, NOW)] == [visit]
        moved_zone = location_fields(key=location.key, timezone="America/Vancouver")
        assert [a.id for a in changes.impact_of_location(s, location.id, moved_zone, NOW)] == [visit]


def test_past_and_cancelled_appointments_are_not_listed(database, clinic, booked, frozen):
    from booking_service.usecases.booking import cancel

    visit = booked(TUESDAY_10)
    with database.unit_of_work() as s:
        cancel(s, visit, now=NOW, by_patient=False)
    booked(local("2026-11-24", "11:00"), email="bo@example.com")
    later = NOW + timedelta(days=2)
    with database.unit_of_work() as s:
        location = s.get(Location, clinic.location_id)
        closed = location_fields(key=location.key, timezone=location.timezone, active=False)
        assert changes.impact_of_location(s, location.id, closed, later) == []


def test_an_invalid_change_is_refused_for_its_fields_before_its_impact(database, clinic, booked):
    booked(TUESDAY_10)
    with database.unit_of_work() as s:
        location = s.get(Location, clinic.location_id)
        with pytest.raises(ValidationFailed):
            changes.save_location(s, location.id, location_fields(name="", active=False), now=NOW)


# --- the console's pages -----------------------------------------------------------------------------


SETUP_PAGES = (
    "/staff/setup/clinic",
    "/staff/setup/locations",
    "/staff/setup/locations/new",
    "/staff/setup/locations/1",
    "/staff/setup/practitioners",
    "/staff/setup/practitioners/new",
    "/staff/setup/practitioners/1",
    "/staff/setup/services",
    "/staff/setup/services/new",
    "/staff/setup/services/1",
)


def test_the_desk_and_practitioners_may_not_set_up_the_clinic(desk, physio):
    for client in (desk, physio):
        for url in SETUP_PAGES:
            assert client.get(url).status_code == 403, url
            if not url.endswith(("/locations", "/practitioners", "/services")):  # the lists take no POST
                assert client.post(url, data={"name": "X"}).status_code == 403, url


def test_an_admin_sees_every_setup_page_and_the_menu_group(admin):
    for url in SETUP_PAGES:
        assert admin.get(url).status_code == 200, url
    page = text(admin.get("/staff/setup/clinic"))
    assert "Clinic setup" in page and 'aria-current="page">Clinic<' in page
    assert 'list="timezones"' in page and '<option value="America/Toronto">' in page
    assert 'href="/staff/settings"' in page  # the policies


def test_the_clinic_page_saves_and_marks_what_to_fix(admin, database):
    data = {
        "name": "Lakeshore Physio",
        "phone": "416 555 0100",
        "email": "hello@lakeshore.example",
        "address": "120 King St W",
        "country": "CA",
        "timezone": "America/Torontoo",
        "languages": ["en", "fr"],
        "brand_color": "#0f6e6e",
    }
    page = admin.post("/staff/setup/clinic", data=data)
    assert page.status_code == 422
    assert "Choose a time zone from the list" in text(page) and 'value="America/Torontoo"' in text(page)

    saved = admin.post("/staff/setup/clinic", data={**data, "timezone": "America/Toronto"})
    assert saved.status_code == 302
    with database.unit_of_work() as s:
        assert (s.get(ClinicSettings, 1).email, s.get(ClinicSettings, 1).address) == (
            "hello@lakeshore.example",
            "120 King St W",
        )


def test_adding_a_location_then_a_practitioner_and_a_service_from_the_console(admin, database):
    made = admin.post(
        "/staff/setup/locations/new",
        data={"name": "Midtown", "address": "2300 Yonge St", "timezone": "America/Toronto", "active": "yes"},
    )
    assert made.status_code == 302
    location_id = int(made.headers["Location"].rsplit("/", 1)[1])
    person = admin.post(
        "/staff/setup/practitioners/new",
        data={
            "first_name": "Lee",
            "last_name": "Park",
            "profession": "Physiotherapist",
            "bio": "Sports injuries.",
            "location_ids": [str(location_id)],
            "online_bookable": "yes",
            "status": "active",
        },
    )
    assert person.status_code == 302
    service = admin.post(
        "/staff/setup/services/new",
        data={
            "name": "Acupuncture",
            "kind": "other",
            "duration_minutes": "45",
            "buffer_minutes": "0",
            "price": "$95.50",
            "booking": "online",
            "active": "yes",
            "practitioner_ids": [person.headers["Location"].rsplit("/", 1)[1]],
        },
    )
    assert service.status_code == 302
    with database.unit_of_work() as s:
        lee = s.scalars(select(Practitioner).where(Practitioner.key == "lee-park")).one()
        acupuncture = s.scalars(select(Service).where(Service.key == "acupuncture")).one()
        assert [loc.name for loc in lee.locations] == ["Midtown"]
        assert (acupuncture.price_cents, [p.id for p in acupuncture.practitioners]) == (9550, [lee.id])
    listing = text(admin.get("/staff/setup/services"))
    assert "Acupuncture" in listing and "95.50" in listing


def test_the_service_form_warns_that_its_name_appears_in_texts(admin):
    page = text(admin.get("/staff/setup/services/new"))
    assert "The name appears in confirmations and reminders" in page
    assert "must not reveal a condition" in page


def test_a_refused_service_form_keeps_what_was_typed_and_names_each_field(admin, clinic):
    page = admin.post(
        f"/staff/setup/services/{clinic.initial_id}",
        data={"name": "Initial assessment", "kind": "initial", "duration_minutes": "50", "price": "ninety"},
    )
    body = text(page)
    assert page.status_code == 422
    assert "Give a number of minutes in steps of 15" in body
    assert "Give a price such as 95 or 95.50" in body
    assert 'value="ninety"' in body and 'id="price-error"' in body


def test_a_practitioner_leaving_with_bookings_needs_the_confirm_box(admin, clinic, booked, database):
    visit = booked(TUESDAY_10, practitioner=0)
    url = f"/staff/setup/practitioners/{clinic.practitioner_ids[0]}"
    form = {
        "first_name": "Maya",
        "last_name": "Chen",
        "profession": "Physiotherapist",
        "location_ids": [str(clinic.location_id)],
        "service_ids": [str(clinic.initial_id), str(clinic.follow_up_id)],
        "online_bookable": "yes",
        "status": "left",
    }
    first = admin.post(url, data=form)
    body = text(first)
    assert first.status_code == 409
    assert "1 future appointment to move" in body
    assert f"/staff/appointments/{visit}" in body and 'name="confirm_impact"' in body
    with database.unit_of_work() as s:
        assert s.get(Practitioner, clinic.practitioner_ids[0]).active is True

    confirmed = admin.post(url, data={**form, "confirm_impact": "yes"})
    assert confirmed.status_code == 302
    page = text(admin.get(url))
    assert "Saved Maya Chen. 1 future appointment to move" in page
    assert "still to move" in page and f"/staff/appointments/{visit}" in page
    with database.unit_of_work() as s:
        maya = s.get(Practitioner, clinic.practitioner_ids[0])
        assert (maya.active, maya.left_on) == (False, date(2026, 11, 23))
        assert s.get(Appointment, visit).status == "booked"


def test_closing_a_location_with_bookings_lists_them_first(admin, clinic, booked):
    booked(TUESDAY_10)
    page = admin.post(
        f"/staff/setup/locations/{clinic.location_id}",
        data={"name": "Downtown", "address": "120 King St W", "timezone": "America/Toronto"},
    )
    assert page.status_code == 409
    assert "This change leaves 1 future appointments to move" in text(page)


def test_the_practitioner_list_links_each_one_to_their_hours(admin, clinic):
    page = text(admin.get("/staff/setup/practitioners"))
    assert f"/staff/hours?practitioner={clinic.practitioner_ids[0]}" in page
    assert re.search(r"Maya Chen</a> <span[^>]*>maya-chen</span>", page)


def test_a_practitioner_login_cannot_reach_setup_even_by_signing_in_again(console_app, users):
    client = console_app.test_client()
    assert login(client, "maya@example.com").status_code == 302
    assert client.get("/staff/setup/services").status_code == 403
    assert "Clinic setup" not in flashed(client)


# --- what patients see -------------------------------------------------------------------------------


def _set(database, model, row_id, **values) -> None:
    with database.unit_of_work() as s:
        row = s.get(model, row_id)
        for name, value in values.items():
            setattr(row, name, value)


@pytest.fixture
def pages(console_app):
    return console_app.test_client()


def test_the_booking_page_shows_a_price_when_set_in_the_patients_language(pages, clinic, database):
    _set(database, Service, clinic.initial_id, price_cents=9500)
    english = text(pages.get("/?lang=en"))
    assert "60 min · $95.00" in english
    assert "30 min ·" not in english  # the follow-up has no price
    assert "95,00" in text(pages.get("/?lang=fr"))


def test_staff_only_practitioners_and_services_are_hidden_from_patients_and_the_public_api(pages, clinic, database):
    _set(database, Practitioner, clinic.practitioner_ids[0], online_bookable=False)
    _set(database, Service, clinic.follow_up_id, online_bookable=False)
    api = pages.get(f"/api/v1/practitioners?location_id={clinic.location_id}").get_json()
    assert [p["id"] for p in api["practitioners"]] == [clinic.practitioner_ids[1]]
    assert [s["id"] for s in pages.get("/api/v1/services").get_json()["services"]] == [clinic.initial_id]
    page = text(pages.get(f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}"))
    assert "Daniel Okafor" in page and "Maya Chen" not in page
    refused_slot = pages.get(
        f"/api/v1/availability?service_id={clinic.initial_id}&location_id={clinic.location_id}"
        f"&practitioner_id={clinic.practitioner_ids[0]}&from=2026-11-24&to=2026-11-24"
    )
    assert refused_slot.status_code == 422


def test_the_time_page_introduces_practitioners_with_their_bio_and_photo(pages, clinic, database):
    _set(
        database,
        Practitioner,
        clinic.practitioner_ids[0],
        bio="Runner; treats sports injuries.",
        photo_url="https://photos.example.org/maya.jpg",
    )
    response = pages.get(f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}")
    page = text(response)
    assert "About our practitioners" in page and "Runner; treats sports injuries." in page
    assert 'src="https://photos.example.org/maya.jpg"' in page
    assert "img-src 'self' data: https://photos.example.org;" in response.headers["Content-Security-Policy"]
    start = pages.get("/")
    assert "photos.example.org" not in start.headers["Content-Security-Policy"]


def _rendered_confirmations(database, visit: int):
    """(the confirmation e-mail as sent, its text message's body, the manage path) of a visit."""
    from booking_service.messaging.rendering import render
    from booking_service.outbox.models import OutboxMessage
    from booking_service.scheduling.tokens import manage_path, manage_token
    from tests.conftest import SECRET

    settings = {"SECRET_KEY": SECRET}
    with database.unit_of_work() as s:
        clinic = s.get(ClinicSettings, 1)
        confirmations = s.scalars(
            select(OutboxMessage).where(OutboxMessage.appointment_id == visit, OutboxMessage.template == "confirmation")
        ).all()
        sent = {m.channel: render(s, m, settings=settings, clinic=clinic, now=NOW) for m in confirmations}
        path = manage_path(manage_token(SECRET, s.get(Appointment, visit).manage_nonce))
    return sent["email"], sent["sms"].body, path


def test_preparation_notes_and_directions_reach_the_confirmation_email_and_manage_page(pages, clinic, database, booked):
    _set(database, Service, clinic.initial_id, preparation_notes="Wear shorts.\nBring your insurance card.")
    _set(database, Location, clinic.location_id, directions="Side door on Pearl St; parking on level P2.")
    visit = booked(TUESDAY_10)
    email, sms_text, path = _rendered_confirmations(database, visit)
    assert "Before your visit:\nWear shorts.\nBring your insurance card." in email.text
    assert "Getting here:\nSide door on Pearl St; parking on level P2." in email.text
    assert "Side door on Pearl St" in email.html and "Bring your insurance card." in email.html
    assert "Pearl St" not in sms_text  # texts stay short
    page = text(pages.get(path))
    assert "Before you come" in page and "Wear shorts." in page and "parking on level P2" in page


def test_a_patient_who_chose_french_reads_the_french_notes_and_else_the_english_ones(pages, clinic, database, booked):
    _set(
        database,
        Service,
        clinic.initial_id,
        preparation_notes="Wear shorts.",
        preparation_notes_fr="Portez un short.",
    )
    _set(database, Location, clinic.location_id, directions="Side door on Pearl St.", directions_fr="")
    visit = booked(TUESDAY_10, language="fr")
    email, _text, path = _rendered_confirmations(database, visit)

    assert "Portez un short." in email.text and "Wear shorts." not in email.text
    assert "Side door on Pearl St." in email.text  # no French directions written: the English ones
    french = text(pages.get(path, headers={"Accept-Language": "fr"}))
    assert "Portez un short." in french and "Side door on Pearl St." in french
    english = text(pages.get(path + "?lang=en"))
    assert "Wear shorts." in english and "Portez un short." not in english


def test_the_french_notes_and_directions_are_saved_from_the_setup_forms(admin, clinic, database):
    service_page = text(admin.get(f"/staff/setup/services/{clinic.initial_id}"))
    assert 'name="preparation_notes_fr"' in service_page
    location_page = text(admin.get(f"/staff/setup/locations/{clinic.location_id}"))
    assert 'name="directions_fr"' in location_page
    form = {
        "key": "downtown",
        "name": "Downtown",
        "address": "120 King St W, Toronto",
        "phone": "",
        "timezone": "America/Toronto",
        "directions": "Side door.",
        "directions_fr": "Porte de côté.",
        "active": "yes",
    }

    response = admin.post(f"/staff/setup/locations/{clinic.location_id}", data=form)

    assert response.status_code == 302, text(response)
    with database.session() as s:
        location = s.get(Location, clinic.location_id)
        assert (location.directions, location.directions_fr) == ("Side door.", "Porte de côté.")
        assert location.localized_directions("fr") == "Porte de côté."
        assert location.localized_directions("en") == "Side door."


def test_a_clinic_offering_one_language_hides_the_switch_and_answers_in_it(pages, clinic, database):
    _set(database, ClinicSettings, 1, languages=["fr"], default_language="fr")
    page = text(pages.get("/", headers={"Accept-Language": "en"}))
    assert '<html lang="fr' in page
    assert "lang-switch" not in page
    assert '<html lang="fr' in text(pages.get("/?lang=en"))
