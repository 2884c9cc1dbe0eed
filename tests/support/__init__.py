"""Test doubles at the process boundary (Twilio, SMTP) and helpers shared by tests."""
