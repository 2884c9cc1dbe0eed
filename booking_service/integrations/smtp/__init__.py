"""E-mail through SMTP: :mod:`.transport` (``SmtpEmail``) and :mod:`.message_id` (the one
Message-ID format, shared by rendering and the send path)."""
