"""Privacy that survives a determined stranger: sessions that end, tokens that expire, headers on
every response, and no 5xx for an oversize id or body anywhere (issue: "Patients' data stays
theirs")."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from booking_service.staff.operations import create_api_token, create_user
from booking_service.staff.sessions import ABSOLUTE_TIMEOUT, IDLE_TIMEOUT
from tests.conftest import NOW, SECRET
from tests.console_fixtures import PASSWORD, _create_app, login, text

pytest_plugins = ["tests.console_fixtures"]

HUGE_IDS = ("2147483648", "99999999999999999999999")


def _cookie(client, app) -> str:
    return client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value


# --- sessions that can end -------------------------------------------------------------------------


def test_a_session_cookie_copied_before_logout_opens_nothing_afterwards(console_app, users, booked):
    patient_page = f"/staff/appointments/{booked()}"
    client = console_app.test_client()
    assert login(client).status_code == 302
    stolen = _cookie(client, console_app)
    assert client.get(patient_page).status_code == 200

    client.post("/staff/logout")

    thief = console_app.test_client()
    thief.set_cookie(console_app.config["SESSION_COOKIE_NAME"], stolen)
    response = thief.get(patient_page)
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]


def test_the_cookie_carries_no_user_id_or_password_fingerprint(console_app, users):
    from itsdangerous import URLSafeTimedSerializer

    client = console_app.test_client()
    login(client)
    serializer = URLSafeTimedSerializer(
        SECRET, salt="cookie-session", signer_kwargs={"key_derivation": "hmac", "digest_method": "sha1"}
    )
    payload = serializer.loads(_cookie(client, console_app))
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", payload["_user_id"])  # a random key, nothing else


def test_a_password_change_or_deactivation_ends_every_session_of_that_user(console_app, users, database):
    desk_a, desk_b, admin = (console_app.test_client() for _ in range(3))
    login(desk_a), login(desk_b), login(admin, "admin@example.com")

    with database.unit_of_work() as s:
        create_user(s, "desk@example.com", role="frontdesk", password="a-brand-new-password", update=True)

    assert desk_a.get("/staff/").status_code == 302
    assert desk_b.get("/staff/").status_code == 302
    assert admin.get("/staff/").status_code == 200  # other users keep theirs

    from booking_service.staff.models import User

    with database.unit_of_work() as s:
        s.query(User).filter_by(email="admin@example.com").one().active = False
    assert admin.get("/staff/").status_code == 302


def test_a_session_ends_after_30_idle_minutes(console_app, users, frozen):
    client = console_app.test_client()
    login(client)
    frozen.move_to(NOW + IDLE_TIMEOUT - timedelta(minutes=1))
    assert client.get("/staff/").status_code == 200  # activity keeps it alive

    frozen.move_to(NOW + 2 * IDLE_TIMEOUT - timedelta(minutes=2))
    assert client.get("/staff/").status_code == 200

    frozen.move_to(NOW + 3 * IDLE_TIMEOUT)
    assert client.get("/staff/").status_code == 302


def test_a_session_ends_12_hours_after_sign_in_however_busy(console_app, users, frozen):
    client = console_app.test_client()
    login(client)
    moment = NOW
    while moment < NOW + ABSOLUTE_TIMEOUT - timedelta(minutes=20):
        moment += timedelta(minutes=20)
        frozen.move_to(moment)
        assert client.get("/staff/").status_code == 200
    frozen.move_to(NOW + ABSOLUTE_TIMEOUT)
    assert client.get("/staff/").status_code == 302


def test_production_cookies_are_host_prefixed_secure_httponly_and_lax(db_url, database, users):
    app = _create_app(db_url, WTF_CSRF_ENABLED=False, ENV="production", PUBLIC_BASE_URL="https://clinic.example")
    try:
        response = app.test_client().post(
            "/staff/login", data={"email": "desk@example.com", "password": PASSWORD}, base_url="https://localhost"
        )
    finally:
        app.extensions["database"].dispose()
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie


# --- API tokens -------------------------------------------------------------------------------------


def test_an_api_token_expires_after_90_days(client, database, users, frozen):
    with database.unit_of_work() as s:
        token = create_api_token(s, "desk@example.com", now=NOW)
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/patients?q=ana", headers=auth).status_code == 200

    frozen.move_to(NOW + timedelta(days=90))
    assert client.get("/api/v1/patients?q=ana", headers=auth).status_code == 401


def test_a_password_change_revokes_the_users_api_tokens(client, database, users):
    with database.unit_of_work() as s:
        token = create_api_token(s, "desk@example.com", now=NOW)
        create_user(s, "desk@example.com", role="frontdesk", password="a-brand-new-password", update=True)
    assert client.get("/api/v1/patients?q=ana", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_revoke_api_token_command_revokes_every_token_of_that_user(app, database, users):
    with database.unit_of_work() as s:
        tokens = [create_api_token(s, "desk@example.com", now=NOW) for _ in range(2)]
    runner = app.test_cli_runner()

    result = runner.invoke(args=["revoke-api-token", "Desk@Example.com"])

    assert result.exit_code == 0, result.output
    assert "Revoked 2 API tokens of desk@example.com." in result.output
    client = app.test_client()
    for token in tokens:
        assert client.get("/api/v1/patients?q=a", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert runner.invoke(args=["revoke-api-token", "nobody@example.com"]).exit_code == 1


def test_create_user_links_a_practitioner_login_to_its_practitioner(app, database, clinic):
    runner = app.test_cli_runner()
    practitioner_id = clinic.practitioner_ids[1]
    result = runner.invoke(
        args=["create-user", "daniel@example.com", "--role", "practitioner", "--practitioner-id", str(practitioner_id)]
    )
    assert result.exit_code == 0, result.output

    from booking_service.clinic.models import Practitioner
    from booking_service.staff.models import User

    with database.unit_of_work() as s:
        user = s.query(User).filter_by(email="daniel@example.com").one()
        assert s.get(Practitioner, practitioner_id).user_id == user.id

    wrong_role = runner.invoke(args=["create-user", "x@example.com", "--role", "frontdesk", "--practitioner-id", "1"])
    assert wrong_role.exit_code == 1 and "practitioner" in wrong_role.output
    unknown = runner.invoke(args=["create-user", "y@example.com", "--role", "practitioner", "--practitioner-id", "999"])
    assert unknown.exit_code == 1 and "practitioner could not be found" in unknown.output


# --- headers on every response ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",  # a patient page
        "/staff/login",
        "/api/v1/services",
        "/api/v1/nowhere",  # a JSON error
        "/nowhere",  # an app-level 404
        "/healthz",
        "/static/../secret",  # a static-file error
    ],
)
def test_every_response_carries_the_security_headers_and_no_store(client, clinic, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer")
    assert response.headers["Cache-Control"] == "no-store"


def test_static_files_keep_their_own_caching_and_get_the_security_headers(client, app):
    static = next(p for p in (app.static_folder and __import__("pathlib").Path(app.static_folder)).rglob("*.css"))
    response = client.get("/static/" + static.relative_to(app.static_folder).as_posix())
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] != "no-store"


def test_production_sends_hsts(db_url, database, clinic):
    app = _create_app(db_url, ENV="production", PUBLIC_BASE_URL="https://clinic.example")
    try:
        for path in ("/", "/api/v1/services", "/nowhere"):
            assert app.test_client().get(path).headers["Strict-Transport-Security"].startswith("max-age="), path
    finally:
        app.extensions["database"].dispose()


def test_development_sends_no_hsts(client, clinic):
    assert "Strict-Transport-Security" not in client.get("/").headers


# --- bounds: no 5xx for an oversize id or body, on any route ---------------------------------------


def _concrete_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        yield rule


def _path(rule, value: str) -> str:
    return re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", lambda m: value, rule.rule)


@pytest.fixture
def everyone(console_app, users, database):
    """An admin console client that also sends an admin API token."""
    with database.unit_of_work() as s:
        token = create_api_token(s, "admin@example.com", now=NOW)
    client = console_app.test_client()
    login(client, "admin@example.com")
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_an_oversize_id_in_any_route_is_a_404_never_a_500(console_app, everyone):
    checked = 0
    for rule in _concrete_rules(console_app):
        if "<int:" not in rule.rule:
            continue
        for huge in HUGE_IDS:
            path = _path(rule, huge)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                response = everyone.open(path, method=method, json={} if path.startswith("/api/") else None)
                assert response.status_code == 404, (method, path, response.status_code)
                checked += 1
    assert checked >= 20  # the sweep really covered the id routes


def test_an_oversize_body_to_any_route_is_refused_with_413_before_it_is_read(console_app, everyone):
    body = b"x=" + b"a" * (1024 * 1024 + 1)
    checked = 0
    for rule in _concrete_rules(console_app):
        if "POST" not in rule.methods:
            continue
        path = _path(rule, "1")
        response = everyone.post(path, data=body, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 413, (path, response.status_code)
        checked += 1
    assert checked >= 20


def test_an_oversize_login_form_is_refused(console_app, users):
    response = console_app.test_client().post(
        "/staff/login", data=b"email=" + b"a" * (2 * 1024 * 1024), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert "nosniff" in response.headers["X-Content-Type-Options"]


def test_the_console_signs_in_after_all_of_the_above(console_app, users):
    client = console_app.test_client()
    assert login(client).status_code == 302
    assert "Dana Desk" in text(client.get("/staff/"))
