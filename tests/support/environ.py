"""Settings for tests, built as the app builds them: ``load_settings`` over environment strings.

The doubles (:class:`~tests.support.fake_twilio.FakeTwilio`,
:class:`~tests.support.smtp_server.SmtpServer`) give the variables that point the app at them;
``settings_from`` parses them strictly, so a test cannot pass a value the app would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping

from booking_service.config import Settings, load_settings

TEST_ENVIRON = {"APP_ENV": "test", "SECRET_KEY": "test-secret-key", "PUBLIC_BASE_URL": "http://testserver.local"}


def settings_from(*environs: Mapping[str, str], **variables: str) -> Settings:
    """``load_settings`` over :data:`TEST_ENVIRON`, then each of ``environs``, then ``variables``."""
    merged = dict(TEST_ENVIRON)
    for environ in environs:
        merged.update(environ)
    merged.update(variables)
    return load_settings(merged)


def variables(**values: object) -> dict[str, str]:
    """Environment strings: None drops a variable (as if unset), anything else becomes text."""
    return {name: str(value) for name, value in values.items() if value is not None}
