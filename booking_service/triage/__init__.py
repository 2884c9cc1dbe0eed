"""The triage queue: urgent bookings and clinical alerts waiting for a clinician."""
