"""Providers as integrations (after Healthchecks' ``hc/integrations/``): one folder per provider.

* :mod:`.contract`: the tiny transport contract (``send() -> Sent`` or ``TransportError``).
* :mod:`.console`: the embedded default; logs what would be sent, needs no credentials.
* :mod:`.twilio`: SMS through Twilio: transport, error table, status vocabulary, webhooks.
* :mod:`.smtp`: e-mail through SMTP: transport and the Message-ID format.
* :mod:`.registry`: builds the configured transports from :class:`~booking_service.config.Settings`.

Provider quirks stay in their folder; the rest of the app sees only the contract. Importing
any of these modules builds nothing (no SDK client, no connection).
"""
