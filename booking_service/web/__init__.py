"""The patient pages: booking journey, manage link and waitlist (docs/patient-pages.md)."""
