"""The access policy (``booking_service.access``) as callers meet it: the role matrix over every
route of the URL map and every operation of the OpenAPI document, a practitioner's token scoped
like the console, API tokens and staff accounts in the console, and the admins' two-step sign-in.

Actors: anonymous, practitioner A (Maya Chen, practitioner 0), practitioner B (Daniel Okafor,
practitioner 1), front desk, admin. Time is frozen (``tests.console_fixtures``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pyotp
import pytest
from flask import url_for

from booking_service import access
from booking_service.clinic.models import Practitioner
from booking_service.exercises.models import Alert, Exercise
from booking_service.exercises.programs import ItemSpec, create_program
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.staff.models import ApiToken, User
from booking_service.staff.operations import create_api_token, create_user
from booking_service.usecases.booking import BookingRequest, book
from booking_service.usecases.plans import PlanRequest, book_plan
from tests.conftest import NOW, SECRET, local
from tests.console_fixtures import PASSWORD, TUESDAY_10, _create_app, flashed, login, text

pytest_plugins = ["tests.console_fixtures"]

ACTORS = ("anonymous", "practitioner_a", "practitioner_b", "frontdesk", "admin")
EMAILS = {
    "practitioner_a": "maya@example.com",
    "practitioner_b": "daniel@example.com",
    "frontdesk": "desk@example.com",
    "admin": "admin@example.com",
}
ROLES = {"anonymous": None, "practitioner_a": "practitioner", "practitioner_b": "practitioner"}


def _role(actor: str) -> str | None:
    return ROLES.get(actor, actor)


@pytest.fixture
def daniel(database, users, clinic):
    """Practitioner B's login, linked to Daniel Okafor."""
    with database.unit_of_work() as s:
        create_user(
            s,
            "daniel@example.com",
            role="practitioner",
            password=PASSWORD,
            practitioner_id=clinic.practitioner_ids[1],
        )


@pytest.fixture
def tokens(database, users, daniel):
    with database.unit_of_work() as s:
        return {actor: create_api_token(s, email, now=NOW) for actor, email in EMAILS.items()}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _user_id(database, email: str) -> int:
    with database.unit_of_work() as s:
        return s.query(User).filter_by(email=email).one().id


# --- the role matrix --------------------------------------------------------------------------------


@pytest.fixture
def world(console_app, database, clinic, users, daniel, tokens, booked):
    """Objects for every URL argument: A's appointment and patient (what scoping protects), a spare
    API token of A's and a spare staff user (so revoking or resetting them ends no actor's access),
    a manage link of another booking (public pages may cancel it)."""
    a_appointment = booked(TUESDAY_10, practitioner=0)
    booked(
        local("2026-11-24", "14:00"), practitioner=1, first_name="Bea", email="bea@example.com", phone="+14165550199"
    )
    with database.unit_of_work() as s:
        a_patient = s.get(Appointment, a_appointment).patient_id
        spare = book(
            s,
            BookingRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                start=local("2026-11-25", "11:00"),
                patient=PatientDetails(first_name="Cy", last_name="Roe", email="cy@example.com", phone="+14165550177"),
            ),
            secret_key=SECRET,
            now=datetime.now(UTC),
        )
        create_api_token(s, "maya@example.com", now=NOW)
        spare_token = s.query(ApiToken).order_by(ApiToken.id.desc()).first().id
        spare_user, _ = create_user(s, "spare@example.com", role="frontdesk", password=PASSWORD)
        exercise = Exercise(
            key="bridge", name_en="Bridge", name_fr="Pont", instructions_en="Lift.", instructions_fr="Levez."
        )
        s.add(exercise)
        s.flush()
        program = create_program(
            s,
            patient_id=a_patient,
            practitioner_id=clinic.practitioner_ids[0],
            location_id=clinic.location_id,
            items=[ItemSpec(exercise.id)],
            days=[0, 2, 4],
            time_of_day=time(18),
            start=date(2026, 11, 23),
            secret_key=SECRET,
            now=NOW,
        )
        alert = Alert(
            patient_id=a_patient,
            program_id=program.id,
            practitioner_id=clinic.practitioner_ids[0],
            kind="pain",
            source="sms",
            text="Pain jump by text.",
            created_at=NOW,
        )
        s.add(alert)
        s.flush()
        plan = book_plan(
            s,
            PlanRequest(
                patient_id=a_patient,
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                first_start=local("2026-12-01", "10:00"),
                count=3,
            ),
            secret_key=SECRET,
            now=NOW,
        ).plan
        values = {
            "program_id": program.id,
            "alert_id": alert.id,
            "plan_id": plan.id,
            "exercise_id": exercise.id,
            "item_id": program.current.items[0].id,
            "appointment_id": a_appointment,
            "patient_id": a_patient,
            "token_id": spare_token,
            "user_id": spare_user.id,
            "location_id": clinic.location_id,
            "practitioner_id": clinic.practitioner_ids[1],
            "service_id": clinic.follow_up_id,
            "token": spare.manage_token,
            "filename": "staff.css",
        }
    clients = {}
    for actor in ACTORS:
        client = console_app.test_client()
        if actor != "anonymous":
            assert login(client, EMAILS[actor]).status_code == 302
        clients[actor] = client
    return values, clients


# Which actor owns each object the world gives an id for: test data, not policy. The policy's
# list of ownership checks must match it, so a new kind of owned object needs a row here.
OWNED_BY = {
    "appointment_id": "practitioner_a",
    "patient_id": "practitioner_a",
    "token_id": "practitioner_a",
    "program_id": "practitioner_a",
    "alert_id": "practitioner_a",
    "plan_id": "practitioner_a",
}


def _expected(endpoint: str, actor: str, args: list[str]) -> str:
    resource, action = access.ENDPOINTS[endpoint]
    granted = access.grant(_role(actor), resource, action)
    if granted == access.PUBLIC:
        return "allow"
    if granted == access.SIGNED:
        return "refused"  # no signature: every caller alike
    if granted is None:
        if actor == "anonymous":
            return "sign_in"
        return "forbidden"
    if granted == access.OWN and any(name in OWNED_BY and OWNED_BY[name] != actor for name in args):
        return "hidden"
    return "allow"


def _observed(response, *, api: bool, scoped: bool) -> str:
    status = response.status_code
    if status == 401 and api:
        return "sign_in"
    if status == 401:
        return "forbidden"  # a token-guarded route outside the API (/metrics) refuses every role
    if status in (302, 303) and "/staff/login" in response.headers.get("Location", ""):
        return "sign_in"
    if status == 403:
        return "forbidden"
    if status == 404 and scoped:
        return "hidden"
    return "allow"


def _expect_seen(expected: str, endpoint: str) -> str:
    """Public routes are open: being sent on to the login page from the login steps is their
    normal flow, not a refusal."""
    if expected == "allow" and access.ENDPOINTS[endpoint][0] == "session":
        return "allow_or_sign_in"
    if expected == "refused":
        return "forbidden"
    return expected


def test_every_route_has_a_policy_entry_and_every_entry_a_route(console_app):
    endpoints = {rule.endpoint for rule in console_app.url_map.iter_rules()}
    assert endpoints - set(access.ENDPOINTS) == set(), "routes without an access rule"
    assert set(access.ENDPOINTS) - endpoints == set(), "access rules for routes that do not exist"
    for resource_action in access.ENDPOINTS.values():
        assert resource_action in access.POLICY, resource_action
    assert set(OWNED_BY) == set(access._OWNERSHIP)


def _openapi_path(rule) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def test_the_openapi_document_marks_exactly_the_non_public_operations_as_needing_a_token(console_app):
    spec = console_app.test_client().get("/api/v1/openapi.json").get_json()
    rules = {
        (_openapi_path(rule), method): rule.endpoint
        for rule in console_app.url_map.iter_rules()
        for method in rule.methods
    }
    seen = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":  # shared by the path's operations, not an operation
                continue
            endpoint = rules[(path, method.upper())]
            public = access.POLICY[access.ENDPOINTS[endpoint]] == access.PUBLIC
            assert bool(operation.get("security")) is not public, (method, path)
            if not public:
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
            seen += 1
    api_routes = [
        r for r in console_app.url_map.iter_rules() if r.rule.startswith("/api/v1/") and r.endpoint.startswith("api.")
    ]
    assert seen == sum(len(r.methods - {"HEAD", "OPTIONS"}) for r in api_routes)


def _requests(app, values):
    """(endpoint, method, url, is_api, argument names) for every route and method of the URL map;
    the log-out last, since it ends the actor's session."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            url = url_for(rule.endpoint, **{name: values.get(name, 1) for name in rule.arguments})
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                found.append((rule.endpoint, method, url, url.startswith("/api/"), sorted(rule.arguments)))
    return sorted(found, key=lambda item: item[0] == "console.logout")


def test_role_matrix_every_route_answers_each_actor_as_the_policy_says(console_app, world, tokens):
    values, clients = world
    mismatches = []
    checked = 0
    for endpoint, method, url, is_api, args in _requests(console_app, values):
        for actor in ACTORS:
            headers = bearer(tokens[actor]) if is_api and actor != "anonymous" else {}
            kwargs = {"json": {}} if is_api and method == "POST" else {}
            response = clients[actor].open(url, method=method, headers=headers, **kwargs)
            expected = _expect_seen(_expected(endpoint, actor, args), endpoint)
            scoped = any(name in OWNED_BY for name in args)
            seen = _observed(response, api=is_api, scoped=scoped)
            if response.status_code >= 500 or not (
                seen == expected or (expected == "allow_or_sign_in" and seen in ("allow", "sign_in"))
            ):
                mismatches.append((actor, method, url, endpoint, expected, response.status_code))
            checked += 1
    assert mismatches == []
    assert checked >= 5 * 80


# --- the staff API scoped like the console ---------------------------------------------------------------


def test_a_practitioners_token_answers_404_for_another_practitioners_appointment_and_patient(
    client, clinic, tokens, booked, database
):
    theirs = booked(TUESDAY_10, practitioner=1)
    with database.unit_of_work() as s:
        patient_id = s.get(Appointment, theirs).patient_id
    maya = bearer(tokens["practitioner_a"])
    assert client.get(f"/api/v1/appointments/{theirs}", headers=maya).status_code == 404
    assert client.get(f"/api/v1/appointments/{theirs}/messages", headers=maya).status_code == 404
    assert client.get(f"/api/v1/patients/{patient_id}", headers=maya).status_code == 404
    changed = client.post(f"/api/v1/appointments/{theirs}/status", headers=maya, json={"status": "cancelled"})
    assert changed.status_code == 404
    assert (
        client.get(f"/api/v1/appointments/{theirs}", headers=bearer(tokens["frontdesk"])).get_json()["status"]
        == "booked"
    )
    unknown = client.get("/api/v1/appointments/999999", headers=maya)
    assert changed.get_json()["error"]["code"] == unknown.get_json()["error"]["code"] == "not_found"


def test_a_practitioners_token_lists_only_their_own_day_and_patients(client, clinic, tokens, booked):
    mine = booked(TUESDAY_10, practitioner=0, first_name="Ana")
    theirs = booked(TUESDAY_10, practitioner=1, first_name="Ben", email="ben@example.com", phone="+14165550111")
    maya, desk = bearer(tokens["practitioner_a"]), bearer(tokens["frontdesk"])

    day = client.get("/api/v1/appointments?date=2026-11-24", headers=maya).get_json()["appointments"]
    assert [a["id"] for a in day] == [mine]
    asked = f"/api/v1/appointments?date=2026-11-24&practitioner_id={clinic.practitioner_ids[1]}"
    assert client.get(asked, headers=maya).get_json()["appointments"] == []
    everyone = client.get("/api/v1/appointments?date=2026-11-24", headers=desk).get_json()["appointments"]
    assert sorted(a["id"] for a in everyone) == sorted([mine, theirs])

    found = client.get("/api/v1/patients?q=example.com", headers=maya).get_json()["patients"]
    assert [p["first_name"] for p in found] == ["Ana"]
    assert len(client.get("/api/v1/patients?q=example.com", headers=desk).get_json()["patients"]) == 2


def test_a_practitioner_changes_the_status_of_their_own_appointment_by_token(client, clinic, tokens, booked, frozen):
    mine = booked(TUESDAY_10, practitioner=0)
    frozen.move_to(TUESDAY_10 - timedelta(minutes=30))
    changed = client.post(
        f"/api/v1/appointments/{mine}/status", headers=bearer(tokens["practitioner_a"]), json={"status": "checked_in"}
    )
    assert changed.status_code == 200
    assert changed.get_json()["status"] == "checked_in"


def test_a_practitioner_login_linked_to_no_practitioner_sees_nothing(client, database, clinic, booked):
    booked(TUESDAY_10, practitioner=0)
    with database.unit_of_work() as s:
        create_user(s, "new@example.com", role="practitioner", password=PASSWORD)
        token = create_api_token(s, "new@example.com", now=NOW)
    day = client.get("/api/v1/appointments?date=2026-11-24", headers=bearer(token)).get_json()
    assert day["appointments"] == []


# --- API tokens in the console ----------------------------------------------------------------------------


def test_a_staff_user_creates_a_token_seen_once_that_acts_with_their_role(console_app, physio, database):
    page = physio.post("/staff/tokens")
    assert page.status_code == 200
    token = text(page).split("<code>")[1].split("</code>")[0]
    assert token.startswith("pbs_")
    assert token not in text(physio.get("/staff/tokens"))  # shown once
    api = console_app.test_client()
    assert api.get("/api/v1/appointments", headers=bearer(token)).status_code == 200
    listing = text(physio.get("/staff/tokens"))
    assert "Your tokens" in listing and "active" in listing


def test_revoking_a_token_in_the_console_stops_it_at_once(console_app, physio, database):
    token = text(physio.post("/staff/tokens")).split("<code>")[1].split("</code>")[0]
    with database.unit_of_work() as s:
        token_id = s.query(ApiToken).one().id
    assert physio.post(f"/staff/tokens/{token_id}/revoke").status_code == 302
    assert "Token revoked" in flashed(physio)
    assert console_app.test_client().get("/api/v1/appointments", headers=bearer(token)).status_code == 401


def test_an_admin_sees_and_revokes_everyones_tokens_the_desk_only_their_own(console_app, admin, desk, tokens, database):
    with database.unit_of_work() as s:
        maya_token = s.query(ApiToken).join(User).filter(User.email == "maya@example.com").one().id
    assert "maya@example.com" in text(admin.get("/staff/tokens"))
    assert "maya@example.com" not in text(desk.get("/staff/tokens"))
    assert desk.post(f"/staff/tokens/{maya_token}/revoke").status_code == 404
    assert (
        console_app.test_client().get("/api/v1/appointments", headers=bearer(tokens["practitioner_a"])).status_code
        == 200
    )
    assert admin.post(f"/staff/tokens/{maya_token}/revoke").status_code == 302
    assert (
        console_app.test_client().get("/api/v1/appointments", headers=bearer(tokens["practitioner_a"])).status_code
        == 401
    )


# --- staff accounts, for admins ------------------------------------------------------------------------


def test_an_admin_creates_a_user_with_a_generated_password_shown_once(console_app, admin):
    page = admin.post("/staff/users", data={"email": "new@example.com", "name": "New", "role": "frontdesk"})
    assert page.status_code == 200
    password = text(page).split("shown only this once: <code>")[1].split("</code>")[0]
    assert len(password) >= 10
    assert login(console_app.test_client(), "new@example.com", password).status_code == 302
    assert password not in text(admin.get("/staff/users"))


def test_a_typed_password_shorter_than_10_characters_is_refused(admin, database):
    page = admin.post("/staff/users", data={"email": "new@example.com", "role": "frontdesk", "password": "short"})
    assert page.status_code == 422
    assert "at least 10 characters" in text(page)
    with database.unit_of_work() as s:
        assert s.query(User).filter_by(email="new@example.com").count() == 0


def test_only_admins_set_up_the_clinic(console_app, admin, desk, physio):
    setup = sorted(endpoint for endpoint, rule in access.ENDPOINTS.items() if rule[0] == "catalogue")
    assert setup == [
        "console.clinic",
        "console.first_run",
        "console.first_run_clinic",
        "console.first_run_location",
        "console.first_run_practitioner",
        "console.first_run_service",
        "console.location_edit",
        "console.location_new",
        "console.locations",
        "console.practitioner_edit",
        "console.practitioner_new",
        "console.practitioners",
        "console.service_edit",
        "console.service_new",
        "console.services",
    ]
    for role in ("frontdesk", "practitioner"):
        assert access.grant(role, "catalogue", "read") is None
        assert access.grant(role, "catalogue", "change") is None
    assert admin.get("/staff/setup/services").status_code == 200
    for client in (desk, physio):
        assert client.get("/staff/setup/services").status_code == 403
        assert client.post("/staff/setup/services/new", data={"name": "Walk-in"}).status_code == 403
        assert "Clinic setup" not in text(client.get("/staff/account"))


def test_the_desk_and_practitioners_cannot_manage_users(desk, physio):
    for client in (desk, physio):
        assert client.get("/staff/users").status_code == 403
        assert client.post("/staff/users", data={"email": "x@example.com", "role": "admin"}).status_code == 403


def test_deactivation_role_change_and_password_reset_sign_the_user_out_and_revoke_their_tokens(
    console_app, admin, database, tokens
):
    desk_id = _user_id(database, "desk@example.com")
    for action in ({"action": "deactivate"}, {"action": "role", "role": "practitioner"}, None):
        with database.unit_of_work() as s:
            user = s.get(User, desk_id)
            user.active, user.role = True, "frontdesk"
            token = create_api_token(s, "desk@example.com", now=NOW)
        signed_in = console_app.test_client()
        login(signed_in, "desk@example.com")
        assert signed_in.get("/staff/").status_code == 200
        if action is None:
            reset = admin.post(f"/staff/users/{desk_id}/password", data={"password": "another-long-one"})
            assert reset.status_code == 200
        else:
            assert admin.post(f"/staff/users/{desk_id}/change", data=action).status_code == 302
        assert "/staff/login" in signed_in.get("/staff/").headers["Location"], action
        assert console_app.test_client().get("/api/v1/appointments", headers=bearer(token)).status_code == 401


def test_the_last_admin_can_neither_deactivate_nor_demote_themselves(admin, database):
    admin_id = _user_id(database, "admin@example.com")
    admin.post(f"/staff/users/{admin_id}/change", data={"action": "deactivate"})
    assert "last active admin" in flashed(admin)
    admin.post(f"/staff/users/{admin_id}/change", data={"action": "role", "role": "frontdesk"})
    assert "last active admin" in flashed(admin)
    with database.unit_of_work() as s:
        user = s.get(User, admin_id)
        assert (user.active, user.role) == (True, "admin")


def test_an_admin_links_a_practitioner_login_which_then_sees_that_practitioners_day(
    console_app, admin, database, clinic, booked
):
    theirs = booked(TUESDAY_10, practitioner=1)
    admin.post("/staff/users", data={"email": "dan@example.com", "role": "practitioner", "password": PASSWORD})
    dan_id = _user_id(database, "dan@example.com")
    dan = console_app.test_client()
    login(dan, "dan@example.com")
    assert dan.get(f"/staff/appointments/{theirs}").status_code == 404
    admin.post(f"/staff/users/{dan_id}/change", data={"action": "link", "practitioner": clinic.practitioner_ids[1]})
    with database.unit_of_work() as s:
        assert s.get(Practitioner, clinic.practitioner_ids[1]).user_id == dan_id
    login(dan, "dan@example.com")
    assert dan.get(f"/staff/appointments/{theirs}").status_code == 200


# --- two-step sign-in for admins ---------------------------------------------------------------------------


def _turn_on_totp(admin, frozen) -> tuple[pyotp.TOTP, list[str]]:
    page = text(admin.post("/staff/account/totp/start"))
    secret = page.split('id="totp-secret">')[1].split("<")[0]
    assert "otpauth://totp/" in page
    totp = pyotp.TOTP(secret)
    confirmed = text(admin.post("/staff/account/totp/confirm", data={"code": totp.at(NOW)}))
    codes = [part.split("</code>")[0] for part in confirmed.split("<li><code>")[1:]]
    frozen.shift(60)  # the confirming code is used: sign-ins take the next one
    return totp, codes


def test_an_admin_turns_on_totp_and_signing_in_then_asks_for_a_code(console_app, admin, frozen):
    totp, codes = _turn_on_totp(admin, frozen)
    assert len(codes) == 10 and len(set(codes)) == 10
    client = console_app.test_client()
    step = login(client, "admin@example.com")
    assert step.status_code == 302 and "/staff/login/code" in step.headers["Location"]
    assert "/staff/login" in client.get("/staff/").headers["Location"]  # the password alone opens nothing
    wrong = client.post("/staff/login/code", data={"code": "000000"})
    assert wrong.status_code == 200 and "not right" in text(wrong)
    right = client.post("/staff/login/code", data={"code": totp.at(datetime.now(UTC))})
    assert right.status_code == 302
    assert client.get("/staff/").status_code == 200


def test_a_totp_code_is_not_taken_twice(console_app, admin, frozen):
    totp, _codes = _turn_on_totp(admin, frozen)
    code = totp.at(datetime.now(UTC))
    first, second = console_app.test_client(), console_app.test_client()
    login(first, "admin@example.com")
    assert first.post("/staff/login/code", data={"code": code}).status_code == 302
    login(second, "admin@example.com")
    assert second.post("/staff/login/code", data={"code": code}).status_code == 200


def test_a_recovery_code_signs_in_once(console_app, admin, frozen):
    _totp, codes = _turn_on_totp(admin, frozen)
    first, second = console_app.test_client(), console_app.test_client()
    login(first, "admin@example.com")
    assert first.post("/staff/login/code", data={"code": codes[0]}).status_code == 302
    login(second, "admin@example.com")
    assert second.post("/staff/login/code", data={"code": codes[0]}).status_code == 200
    assert "9 recovery codes left" in text(first.get("/staff/account"))


def test_wrong_codes_count_against_the_accounts_sign_in_limit(db_url, database, users, frozen):
    app = _create_app(db_url, WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=True, TRUSTED_PROXIES=1)
    try:
        admin = app.test_client()
        login(admin, "admin@example.com")
        totp, _codes = _turn_on_totp(admin, frozen)
        client = app.test_client()
        statuses = []
        for i in range(6):
            headers = {"X-Forwarded-For": f"203.0.113.{i}"}
            client.post("/staff/login", data={"email": "admin@example.com", "password": PASSWORD}, headers=headers)
            statuses.append(client.post("/staff/login/code", data={"code": f"00000{i}"}, headers=headers).status_code)
        locked = client.post(
            "/staff/login/code", data={"code": totp.at(datetime.now(UTC))}, headers={"X-Forwarded-For": "203.0.113.50"}
        )
    finally:
        app.extensions["database"].dispose()
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:] or locked.status_code == 429
    assert locked.status_code == 429


def test_two_step_sign_in_is_offered_to_admins_only(physio):
    assert physio.post("/staff/account/totp/start").status_code == 422
    assert "Two-step sign-in" not in text(physio.get("/staff/account"))
