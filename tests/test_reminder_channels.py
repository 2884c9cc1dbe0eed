"""Every reminder rule against every channel mix: the reminders a booking plans, as a table.

A patient booked Monday 2026-11-23 at 11:00 in Toronto (16:00 UTC, after the default e-mail
rule's 09:00) for a visit three days, two days, one day or five hours ahead, with and without
a confirmation (staff may skip it for a patient at the desk). The channel mixes: both channels,
SMS only, e-mail only, neither, and each channel present but without consent (or the phone
opted out by STOP). What a patient may get reminders on ("reach") decides what is planned; the
table says it for each rule set.

The rule this pins: a patient who may get reminders on some channel gets one whenever a rule's
time is still ahead, even when that rule is for the other channel (an e-mail-only patient booked
two days ahead once had none at all). A reminder already due, less than an hour before the
start, or within six hours of a notice sent now on the same channel stays unplanned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import SmsOptOut
from booking_service.patients.operations import PatientDetails
from booking_service.usecases import booking as usecases
from tests.conftest import SECRET, local

NOW = local("2026-11-23", "11:00")  # Monday, 16:00 UTC

LEADS = {
    "three days": local("2026-11-26", "14:00"),  # Thursday 19:00 UTC
    "two days": local("2026-11-25", "14:00"),  # Wednesday: the e-mail rule (Monday 09:00) is past
    "one day": local("2026-11-24", "14:00"),  # Tuesday: 24 hours before is 3 hours from now
    "five hours": local("2026-11-23", "16:00"),  # today: every rule is past
}

# When each rule is due for each lead (UTC), written out rather than computed.
DUE = {
    ("three days", "d2@0900"): "2026-11-24T14:00Z",
    ("three days", "h24"): "2026-11-25T19:00Z",
    ("two days", "d2@0900"): "2026-11-23T14:00Z",
    ("two days", "h24"): "2026-11-24T19:00Z",
    ("one day", "d2@0900"): "2026-11-22T14:00Z",
    ("one day", "h24"): "2026-11-23T19:00Z",
    ("five hours", "d2@0900"): "2026-11-21T14:00Z",
    ("five hours", "h24"): "2026-11-22T21:00Z",
}

EMAIL_D2 = {"channel": "email", "days_before": 2, "at": "09:00"}
SMS_H24 = {"channel": "sms", "hours_before": 24}
RULE_SETS = {
    "default (email 2 days at 09:00, sms 24 h)": [EMAIL_D2, SMS_H24],
    "sms 24 h only": [SMS_H24],
    "email 2 days at 09:00 only": [EMAIL_D2],
}

# The patient's details and what reminders may reach them on.
MIXES = {
    "sms and email": ({"phone": True, "sms_consent": True, "email": True, "email_consent": True}, "both"),
    "sms only": ({"phone": True, "sms_consent": True}, "sms"),
    "email only": ({"email": True, "email_consent": True}, "email"),
    "neither (contacts, no consent)": ({"phone": True, "email": True}, "none"),
    "sms, email without consent": ({"phone": True, "sms_consent": True, "email": True}, "sms"),
    "email, phone without consent": ({"phone": True, "email": True, "email_consent": True}, "email"),
    "email, phone opted out": (
        {"phone": True, "sms_consent": True, "email": True, "email_consent": True, "stop": True},
        "email",
    ),
}

# (rule set, lead, confirmation sent or None for either) -> reach -> {(channel, rule)} planned.
EXPECTED = {
    ("default (email 2 days at 09:00, sms 24 h)", "three days", None): {
        "both": {("email", "d2@0900"), ("sms", "h24")},
        "sms": {("sms", "h24")},
        "email": {("email", "d2@0900")},
        "none": set(),
    },
    ("default (email 2 days at 09:00, sms 24 h)", "two days", None): {
        "both": {("sms", "h24")},
        "sms": {("sms", "h24")},
        "email": {("email", "h24")},  # the e-mail rule is past: the 24-hour one comes by e-mail
        "none": set(),
    },
    ("default (email 2 days at 09:00, sms 24 h)", "one day", True): {
        # 3 hours after the confirmation on every channel they have: the confirmation covers it.
        "both": set(),
        "sms": set(),
        "email": set(),
        "none": set(),
    },
    ("default (email 2 days at 09:00, sms 24 h)", "one day", False): {
        "both": {("sms", "h24")},
        "sms": {("sms", "h24")},
        "email": {("email", "h24")},
        "none": set(),
    },
    ("sms 24 h only", "three days", None): {
        "both": {("sms", "h24")},
        "sms": {("sms", "h24")},
        "email": {("email", "h24")},
        "none": set(),
    },
    ("sms 24 h only", "two days", None): {
        "both": {("sms", "h24")},
        "sms": {("sms", "h24")},
        "email": {("email", "h24")},
        "none": set(),
    },
    ("sms 24 h only", "one day", True): {"both": set(), "sms": set(), "email": set(), "none": set()},
    ("sms 24 h only", "one day", False): {
        "both": {("sms", "h24")},
        "sms": {("sms", "h24")},
        "email": {("email", "h24")},
        "none": set(),
    },
    ("email 2 days at 09:00 only", "three days", None): {
        "both": {("email", "d2@0900")},
        "sms": {("sms", "d2@0900")},
        "email": {("email", "d2@0900")},
        "none": set(),
    },
    ("email 2 days at 09:00 only", "two days", None): {"both": set(), "sms": set(), "email": set(), "none": set()},
    ("email 2 days at 09:00 only", "one day", None): {"both": set(), "sms": set(), "email": set(), "none": set()},
}
for _rules in RULE_SETS:  # five hours ahead: every rule of every set is past
    EXPECTED[(_rules, "five hours", None)] = {"both": set(), "sms": set(), "email": set(), "none": set()}


def expected(rules: str, lead: str, confirm: bool, reach: str) -> set[tuple[str, str, str]]:
    table = EXPECTED.get((rules, lead, None)) or EXPECTED[(rules, lead, confirm)]
    return {(channel, rule, DUE[(lead, rule)]) for channel, rule in table[reach]}


def test_the_table_covers_every_rule_set_and_lead():
    for rules in RULE_SETS:
        for lead in LEADS:
            for confirm in (True, False):
                for reach in ("both", "sms", "email", "none"):
                    expected(rules, lead, confirm, reach)  # a KeyError names the missing row


@pytest.mark.parametrize("mix", list(MIXES))
@pytest.mark.parametrize("rules", list(RULE_SETS))
def test_reminders_planned_for_each_channel_mix_and_lead(make_clinic, session, rules, mix):
    clinic = make_clinic(reminder_rules=RULE_SETS[rules])
    contacts, reach = MIXES[mix]
    problems = []
    number = 0
    for lead, start in LEADS.items():
        for confirm in (True, False):
            number += 1
            phone = f"+1416555{number:04d}"
            if contacts.get("stop"):
                session.add(SmsOptOut(phone=phone, opted_out_at=NOW - timedelta(days=3), source="sms_reply"))
                session.flush()
            details = PatientDetails(
                first_name=f"Pat{number}",
                last_name="Table",
                phone=phone if contacts.get("phone") else None,
                email=f"pat{number}@example.com" if contacts.get("email") else None,
                sms_consent=bool(contacts.get("sms_consent")),
                email_consent=bool(contacts.get("email_consent")),
            )
            request = usecases.BookingRequest(
                service_id=clinic.initial_id, location_id=clinic.location_id, start=start, patient=details
            )
            appointment = usecases.book(session, request, secret_key=SECRET, now=NOW, confirm=confirm).appointment
            planned = {
                (r.channel, r.payload["rule"], r.due_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"))
                for r in session.scalars(
                    select(OutboxMessage).where(
                        OutboxMessage.appointment_id == appointment.id, OutboxMessage.kind == "reminder"
                    )
                )
            }
            want = expected(rules, lead, confirm, reach)
            if planned != want:
                problems.append(f"{lead}, confirmation {'sent' if confirm else 'not sent'}: {planned} != {want}")
            for r in session.scalars(select(OutboxMessage).where(OutboxMessage.appointment_id == appointment.id)):
                # Every row goes where the patient said it may: no text without consent or after STOP.
                assert r.to == (details.phone if r.channel == "sms" else details.email)
    session.commit()
    assert not problems, f"{rules} / {mix} (reach: {reach}):\n" + "\n".join(problems)


def test_an_email_only_booking_two_days_ahead_gets_a_reminder(make_clinic, session):
    """The case the desk found: booked Monday 11:00 for Wednesday 14:00 by e-mail only."""
    clinic = make_clinic()
    details = PatientDetails(first_name="Marc", last_name="Lefebvre", email="marc@example.com", email_consent=True)
    request = usecases.BookingRequest(
        service_id=clinic.initial_id, location_id=clinic.location_id, start=LEADS["two days"], patient=details
    )
    appointment = usecases.book(session, request, secret_key=SECRET, now=NOW).appointment
    session.commit()

    reminders = [
        (r.channel, r.due_at.astimezone(UTC))
        for r in session.scalars(select(OutboxMessage).where(OutboxMessage.appointment_id == appointment.id))
        if r.kind == "reminder"
    ]
    assert reminders == [("email", datetime(2026, 11, 24, 19, 0, tzinfo=UTC))]  # Tuesday 14:00, 24 hours before
