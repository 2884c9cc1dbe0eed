"""The clinic as a file: ``load-clinic FILE [--dry-run]`` and ``export-clinic FILE``, through the
command line as an owner would run them, on both engines."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from booking_service import create_app
from booking_service.audit.models import AuditEvent
from booking_service.clinic.files import export_clinic, read_document
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service, WorkingHours
from booking_service.demo import DEMO_CLINIC_FILE
from booking_service.scheduling import slots
from tests.conftest import NOW, SECRET

CLINIC = """\
# Harbour Physio: one location, two services, two practitioners.
clinic:
  name: Harbour Physio
  phone: 416 555 0199
  email: Hello@Harbour.example
  address: 1 Harbour St, Toronto, ON M5J 2N8
  country: CA
  timezone: America/Toronto
  languages: [en]
  policy:
    horizon_days: 60
    quiet_hours_start: 8:00
    reminder_rules:
      - {channel: sms, hours_before: 24}

locations:
  - key: harbour
    name: Harbour
    address: 1 Harbour St, Toronto, ON M5J 2N8
    phone: 416 555 0199
    timezone: America/Toronto
    directions: Enter from Queens Quay; visitor parking at the back.

services:
  - key: initial
    name: Initial assessment
    name_fr: Évaluation initiale
    kind: initial
    duration_minutes: 60
  - key: follow-up
    name: Follow-up
    kind: follow_up
    duration_minutes: 30
    buffer_minutes: 15
    price_cents: 9500

practitioners:
  - key: ines-silva
    first_name: Inês
    last_name: Silva
    profession: Physiotherapist
    bio: Shoulders and return to sport.
    locations: [harbour]
    services: [initial, follow-up]
    hours:
      harbour:
        - {day: monday, start: 9:00, end: 17:00, break_start: 12:00, break_end: 13:00}
        - {day: 2, start: 9:00, end: 13:00}
  - key: tom-reid
    first_name: Tom
    last_name: Reid
    profession: Physiotherapist
    locations: [harbour]
    services: [follow-up]
    hours:
      harbour:
        - {day: tue, start: "10:00", end: "18:00"}
"""


@pytest.fixture
def app(db_url, database):
    app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": SECRET})
    yield app
    app.extensions["database"].dispose()


@pytest.fixture
def cli(app, tmp_path):
    """``cli("load-clinic", text=..., "--dry-run")``: run a command, the text written to a file first."""
    runner = app.test_cli_runner()

    def run(*args: str, text: str | None = None):
        if text is not None:
            path = tmp_path / "clinic.yaml"
            path.write_text(text, encoding="utf-8")
            args = (*args, str(path))
        return runner.invoke(args=list(args))

    return run


def line_of(text: str, snippet: str, occurrence: int = 1) -> int:
    """The line number (from 1) of the ``occurrence``-th line of ``text`` containing ``snippet``."""
    found = [number for number, line in enumerate(text.splitlines(), start=1) if snippet in line]
    return found[occurrence - 1]


def fingerprint(database) -> tuple:
    """What a load could change: the whole catalogue as exported, row counts and the audit trail."""
    with database.session() as s:
        counts = tuple(
            s.scalar(select(func.count()).select_from(model))
            for model in (ClinicSettings, Location, Service, Practitioner, WorkingHours, AuditEvent)
        )
        return export_clinic(s), counts


# --- loading ----------------------------------------------------------------------------------------


def test_a_clinic_file_sets_up_an_empty_database(cli, database):
    result = cli("load-clinic", text=CLINIC)
    assert result.exit_code == 0, result.output
    assert "create location harbour" in result.output and "create practitioner ines-silva" in result.output
    assert result.output.rstrip().endswith("Saved 9 changes.")
    with database.session() as s:
        clinic = s.get(ClinicSettings, 1)
        assert (clinic.name, clinic.phone, clinic.email) == ("Harbour Physio", "+14165550199", "hello@harbour.example")
        assert (clinic.languages, clinic.horizon_days, clinic.quiet_hours_start) == (["en"], 60, time(8))
        assert clinic.reminder_rules == [{"channel": "sms", "hours_before": 24}]
        assert clinic.slot_step_minutes == 15  # a policy the file leaves out keeps its default
        harbour = s.scalars(select(Location)).one()
        assert harbour.directions.startswith("Enter from Queens Quay")
        follow_up = s.scalar(select(Service).where(Service.key == "follow-up"))
        assert (follow_up.price_cents, follow_up.buffer_minutes, follow_up.online_bookable) == (9500, 15, True)
        assert sorted(p.key for p in follow_up.practitioners) == ["ines-silva", "tom-reid"]
        ines = s.scalar(select(Practitioner).where(Practitioner.key == "ines-silva"))
        assert ines.display_name == "Inês Silva" and [loc.key for loc in ines.locations] == ["harbour"]
        rows = sorted((r.weekday, r.start_time, r.end_time, r.break_start) for r in ines.working_hours)
        # 9:00 unquoted is a time, not YAML 1.1's sexagesimal 540; "monday" and 2 are days.
        assert rows == [(0, time(9), time(17), time(12)), (2, time(9), time(13), None)]


def test_loading_the_same_file_again_changes_nothing_and_says_no_change(cli, database):
    assert cli("load-clinic", text=CLINIC).exit_code == 0
    before = fingerprint(database)

    dry = cli("load-clinic", "--dry-run", text=CLINIC)
    again = cli("load-clinic", text=CLINIC)

    # The file writes the phone with spaces and 8:00 for 08:00: stored alike, so no change.
    assert (dry.exit_code, dry.output) == (0, "no change\n")
    assert (again.exit_code, again.output) == (0, "no change\n")
    assert fingerprint(database) == before  # not one row more, not even in the audit trail


def test_a_dry_run_shows_exactly_the_changed_field_and_changes_nothing(cli, database):
    assert cli("load-clinic", text=CLINIC).exit_code == 0
    before = fingerprint(database)
    changed = CLINIC.replace("duration_minutes: 30", "duration_minutes: 45")

    dry = cli("load-clinic", "--dry-run", text=changed)

    assert dry.exit_code == 0, dry.output
    assert dry.output == (
        "update service follow-up\n    duration_minutes: 30 -> 45\nDry run: 1 change, nothing saved.\n"
    )
    assert fingerprint(database) == before

    load = cli("load-clinic", text=changed)
    assert load.output == "update service follow-up\n    duration_minutes: 30 -> 45\nSaved 1 change.\n"
    with database.session() as s:
        assert s.scalar(select(Service.duration_minutes).where(Service.key == "follow-up")) == 45
    assert cli("load-clinic", "--dry-run", text=changed).output == "no change\n"


def test_changed_hours_are_shown_by_day(cli, database):
    assert cli("load-clinic", text=CLINIC).exit_code == 0
    changed = CLINIC.replace('{day: tue, start: "10:00", end: "18:00"}', '{day: tue, start: "10:00", end: "16:00"}')

    result = cli("load-clinic", text=changed)

    assert result.output == (
        'update hours tom-reid at harbour\n    tue: "10:00-18:00" -> "10:00-16:00"\nSaved 1 change.\n'
    )
    with database.session() as s:
        tom = s.scalar(select(Practitioner).where(Practitioner.key == "tom-reid"))
        assert [(r.weekday, r.end_time) for r in tom.working_hours] == [(1, time(16))]


def test_new_hours_that_leave_a_booked_visit_outside_list_it_and_need_confirming(cli, database):
    assert cli("load-clinic", text=CLINIC).exit_code == 0
    appointment_id = _book_tom(database)  # Tuesday 10:00, his first free time next week
    changed = CLINIC.replace('{day: tue, start: "10:00", end: "18:00"}', '{day: tue, start: "14:00", end: "18:00"}')
    before = fingerprint(database)

    dry = cli("load-clinic", "--dry-run", text=changed)
    refused = cli("load-clinic", text=changed)

    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith(
        'update hours tom-reid at harbour\n    tue: "10:00-18:00" -> "14:00-18:00"\n'
        "    leaves 1 future appointment to move:\n"
        f"      appointment {appointment_id}: "
    )
    assert refused.exit_code == 1 and "--confirm-moves" in refused.output
    assert fingerprint(database) == before

    confirmed = cli("load-clinic", "--confirm-moves", text=changed)

    assert confirmed.exit_code == 0, confirmed.output
    with database.session() as s:
        tom = s.scalar(select(Practitioner).where(Practitioner.key == "tom-reid"))
        assert [(r.weekday, r.start_time) for r in tom.working_hours] == [(1, time(14))]


def test_items_and_fields_the_file_leaves_out_are_left_alone(cli, database):
    assert cli("load-clinic", text=CLINIC).exit_code == 0
    partial = """\
services:
  - key: follow-up
    name: Follow-up
    kind: follow_up
    duration_minutes: 30
  - key: massage
    name: Massage therapy
    kind: other
    duration_minutes: 60
"""
    result = cli("load-clinic", text=partial)

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "create service massage"
    assert "update" not in result.output  # follow-up keeps its price and buffer, the rest is untouched
    with database.session() as s:
        follow_up = s.scalar(select(Service).where(Service.key == "follow-up"))
        assert (follow_up.price_cents, follow_up.buffer_minutes) == (9500, 15)
        assert s.scalar(select(func.count()).select_from(Practitioner)) == 2
        assert s.get(ClinicSettings, 1).name == "Harbour Physio"


def _book_tom(database) -> int:
    """A follow-up with Tom next week (now: the command's clock); returns its id."""
    from booking_service.db import utcnow
    from booking_service.patients.operations import PatientDetails
    from booking_service.usecases.booking import BookingRequest, book

    now = utcnow()
    with database.unit_of_work() as s:
        clinic = s.get(ClinicSettings, 1)
        harbour = s.scalar(select(Location).where(Location.key == "harbour"))
        follow_up = s.scalar(select(Service).where(Service.key == "follow-up"))
        tom = s.scalar(select(Practitioner).where(Practitioner.key == "tom-reid"))
        first = slots.local_date(now, harbour) + timedelta(days=2)
        free = slots.find_slots(
            s, clinic=clinic, service=follow_up, location=harbour, practitioners=[tom],
            first_day=first, last_day=first + timedelta(days=7), now=now,
        )  # fmt: skip
        request = BookingRequest(
            service_id=follow_up.id, location_id=harbour.id, practitioner_id=tom.id, start=free[0].start,
            source="staff", patient=PatientDetails(first_name="Ana", last_name="Lima", phone="416 555 0123",
                                                   sms_consent=True),
        )  # fmt: skip
        return book(s, request, secret_key=SECRET, now=now).appointment.id


def test_a_change_that_leaves_appointments_to_move_lists_them_and_needs_confirming(cli, database):
    from booking_service.scheduling.models import Appointment

    assert cli("load-clinic", text=CLINIC).exit_code == 0
    appointment_id = _book_tom(database)
    # Tom stops offering follow-ups (he keeps the initial assessment).
    changed = CLINIC.replace("services: [follow-up]", "services: [initial]")
    before = fingerprint(database)

    dry = cli("load-clinic", "--dry-run", text=changed)
    refused = cli("load-clinic", text=changed)

    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith(
        'update practitioner tom-reid\n    services: ["follow-up"] -> ["initial"]\n'
        "    leaves 1 future appointment to move:\n"
        f"      appointment {appointment_id}: "
    )
    assert "Follow-up with Tom Reid at Harbour" in dry.output
    assert refused.exit_code == 1
    assert "leave 1 future appointment to move (listed above)" in refused.output
    assert "--confirm-moves" in refused.output
    assert fingerprint(database) == before

    confirmed = cli("load-clinic", "--confirm-moves", text=changed)

    assert confirmed.exit_code == 0, confirmed.output
    assert confirmed.output.endswith("Saved 1 change.\n")
    with database.session() as s:
        tom = s.scalar(select(Practitioner).where(Practitioner.key == "tom-reid"))
        assert [service.key for service in tom.services] == ["initial"]
        assert s.get(Appointment, appointment_id).status == "booked"  # kept, for staff to move


# --- broken files: exit 1, the field and its line named, nothing changed ----------------------------


def _broken(name: str, old: str, new: str, snippet: str, expected: str, occurrence: int = 1):
    return pytest.param(old, new, snippet, expected, occurrence, id=name)


BROKEN = [
    _broken(
        "bad type",
        "duration_minutes: 30",
        'duration_minutes: "half an hour"',
        "half an hour",
        "services[1].duration_minutes (line {line}): must be a positive whole number",
    ),
    _broken(
        "unknown field",
        "    buffer_minutes: 15",
        "    bufer_minutes: 15",
        "bufer_minutes",
        "services[1].bufer_minutes (line {line}): is not a field here",
    ),
    _broken(
        "unknown key reference",
        "services: [follow-up]",
        "services: [follow-up, massage]",
        "services: [follow-up, massage]",
        "practitioners[1].services[1] (line {line}): 'massage' is not the key of any of the services",
    ),
    _broken(
        "bad zone",
        "    timezone: America/Toronto\n    directions",
        "    timezone: America/Torronto\n    directions",
        "America/Torronto",
        "locations[0].timezone (line {line}): Give an IANA time zone, such as America/Toronto.",
    ),
    _broken(
        "duplicate key",
        "  - key: tom-reid",
        "  - key: ines-silva",
        "key: ines-silva",
        "practitioners[1].key (line {line}): 'ines-silva' is already the key of practitioners[0]",
        occurrence=2,
    ),
    _broken(
        "YAML syntax error",
        "languages: [en]",
        "languages: [en",
        "policy:",
        "(line {line}): not valid YAML",
    ),
    _broken(
        "overlapping hours",
        "{day: 2, start: 9:00, end: 13:00}",
        "{day: 0, start: 16:00, end: 18:00}",
        "day: 0, start: 16:00",
        "practitioners[0].hours.harbour[1].start (line {line}): ",
    ),
    _broken(
        "hours at a location the practitioner does not work at",
        "      harbour:\n        - {day: tue",
        "      harbor:\n        - {day: tue",
        "harbor:",
        "practitioners[1].hours.harbor (line {line}): 'harbor' is not one of this practitioner's locations",
    ),
]


@pytest.mark.parametrize(("old", "new", "snippet", "expected", "occurrence"), BROKEN)
def test_a_broken_file_exits_non_zero_naming_the_line_and_field_and_changes_nothing(
    cli, database, old, new, snippet, expected, occurrence
):
    assert cli("load-clinic", text=CLINIC).exit_code == 0
    # Every good change of the file is refused with the bad one: the load is one transaction.
    broken = CLINIC.replace(old, new).replace("name: Harbour Physio", "name: Harbourfront Physio")
    assert CLINIC.count(old) == 1
    before = fingerprint(database)

    for dry_run in ((), ("--dry-run",)):
        result = cli("load-clinic", *dry_run, text=broken)

        assert result.exit_code == 1, result.output
        assert "was not loaded; nothing was changed" in result.output
        assert expected.format(line=line_of(broken, snippet, occurrence)) in result.output
        assert fingerprint(database) == before


def test_a_broken_file_lists_every_problem_of_its_shape_at_once(cli, database):
    broken = CLINIC.replace("duration_minutes: 60", "duration_minutes: 0").replace("    kind: initial\n", "")

    result = cli("load-clinic", text=broken)

    assert result.exit_code == 1
    assert f"services[0].kind (line {line_of(broken, 'key: initial')}): is missing (required)" in result.output
    assert (
        f"services[0].duration_minutes (line {line_of(broken, 'duration_minutes: 0')}): "
        "must be a positive whole number" in result.output
    )
    assert fingerprint(database)[1] == (0, 0, 0, 0, 0, 0)


def test_a_file_without_a_clinic_cannot_start_an_empty_database(cli, database):
    result = cli("load-clinic", text=CLINIC[CLINIC.index("locations:") :])

    assert result.exit_code == 1
    assert "clinic (line 1): is missing: the database has no clinic yet" in result.output


def test_a_missing_file_is_refused_by_the_command(cli):
    result = cli("load-clinic", "/nonexistent/clinic.yaml")
    assert result.exit_code == 2 and "No such file" in result.output


# --- export ---------------------------------------------------------------------------------------------


def test_an_export_loads_back_as_no_change_and_writes_the_normalised_values(cli, database, tmp_path):
    assert cli("load-clinic", text=CLINIC).exit_code == 0
    target = tmp_path / "export.yaml"

    written = cli("export-clinic", str(target))
    printed = cli("export-clinic", "-")

    assert written.exit_code == 0 and printed.exit_code == 0
    exported = target.read_text(encoding="utf-8")
    assert printed.stdout == exported
    assert 'phone: "+14165550199"' in exported and 'quiet_hours_start: "08:00"' in exported
    assert '- {day: mon, start: "09:00", end: "17:00", break_start: "12:00", break_end: "13:00"}' in exported
    assert cli("load-clinic", "--dry-run", str(target)).output == "no change\n"
    document = read_document(exported).data
    assert [item["key"] for item in document["services"]] == ["initial", "follow-up"]
    assert document["practitioners"][1]["hours"] == {"harbour": [{"day": "tue", "start": "10:00", "end": "18:00"}]}


def test_an_edited_export_changes_only_what_was_edited(cli, database, tmp_path):
    assert cli("load-clinic", text=CLINIC).exit_code == 0
    exported = cli("export-clinic", "-").stdout
    edited = exported.replace("name: Tom", "name: Thomas")

    result = cli("load-clinic", text=edited)

    assert result.output == 'update practitioner tom-reid\n    first_name: "Tom" -> "Thomas"\nSaved 1 change.\n'


# --- the demo clinic ---------------------------------------------------------------------------------


def test_the_demo_file_is_a_clinic_file_with_the_demo_capacity(cli, database):
    demo_text = DEMO_CLINIC_FILE.read_text(encoding="utf-8")
    result = cli("load-clinic", str(DEMO_CLINIC_FILE))
    assert result.exit_code == 0, result.output

    with database.session() as s:
        clinic = s.get(ClinicSettings, 1)
        downtown = s.scalar(select(Location).where(Location.key == "downtown"))
        practitioners = list(s.scalars(select(Practitioner).where(Practitioner.active.is_(True))))
        assert len(practitioners) == 5
        # DESIGN.md, "Demo capacity": five practitioners, about eight hours a day, five days a week.
        for practitioner in practitioners:
            week = [r for r in practitioner.working_hours if r.location_id == downtown.id]
            assert sorted(r.weekday for r in week) == [0, 1, 2, 3, 4]
            for row in week:
                assert row.valid_until is None
                minutes = _minutes(row.end_time) - _minutes(row.start_time)
                minutes -= _minutes(row.break_end) - _minutes(row.break_start) if row.break_start else 0
                assert minutes == 480
            # Slots twelve weeks ahead, inside the booking horizon.
            service = practitioner.services[0]
            far = slots.local_date(NOW, downtown) + timedelta(weeks=12)
            far -= timedelta(days=far.weekday())  # a Monday
            free = slots.find_slots(
                s, clinic=clinic, service=service, location=downtown, practitioners=[practitioner],
                first_day=far, last_day=far + timedelta(days=4), now=NOW,
            )  # fmt: skip
            assert len({slot.start.date() for slot in free}) == 5
            assert len(free) >= 5 * 480 // 60
        names = [service.name for service in s.scalars(select(Service))]
        assert "Initial assessment" in names and all("pain" not in name.lower() for name in names)
    assert cli("load-clinic", "--dry-run", str(DEMO_CLINIC_FILE)).output == "no change\n"
    assert read_document(cli("export-clinic", "-").stdout).data == read_document(demo_text).data


def test_seed_demo_loads_the_demo_file(cli, database):
    assert cli("seed-demo").exit_code == 0
    assert cli("load-clinic", "--dry-run", str(Path(DEMO_CLINIC_FILE))).output == "no change\n"


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute
