"""SMS through Twilio, everything Twilio-specific in one place.

* :mod:`.transport`: ``TwilioSms`` (the real SDK, a timeout, ``TWILIO_API_BASE_URL``).
* :mod:`.errors`: ``TWILIO_ERROR_RULES`` and ``classify_twilio_error``: each code classified once.
* :mod:`.statuses`: Twilio's message statuses in our vocabulary (the one table).
* :mod:`.callbacks`: the ``StatusCallback`` URL, and reading/applying a status callback.
* :mod:`.signature`: the ``X-Twilio-Signature`` check.
* :mod:`.blueprint`: ``/webhooks/twilio/sms`` and ``/webhooks/twilio/status``.
"""
